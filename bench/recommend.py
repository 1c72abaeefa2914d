"""Recommender speed: top-10 for 100,000 users over 10,000 products, beside ``implicit``.

Generates (once, cached under ``bench/.cache/``) a power-law shop: item popularity
Zipf-like, users with a taste for two of 50 categories, ~2M interactions, each
user's last 20% of events held out. Then, in the same run:

* the hybrid (item-CF + content + popularity, filters, diversity cap, reasons):
  seconds to fit, seconds to rank top-10 for every user;
* ``implicit``'s ``CosineRecommender`` (item-item cosine, K neighbours) on the same
  matrix: seconds to fit and to recommend top-10 for every user
  (``pip install -e .[bench]``; when it is missing a plain scipy sparse item-item
  cosine is timed instead);
* recall@10 of both on the held-out events (already-seen items excluded for both).

Wall seconds are what the goal is about; CPU seconds (``*_cpu``, all threads) are
printed too because the machine is often shared and wall time then mostly measures
the neighbours' load.

Prints ``name: value unit`` lines and ratios. Usage:
``.venv/bin/python bench/recommend.py [--users 100000] [--items 10000] [--jobs -1]``
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import sparse

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from campaign.recommend.feedback import Feedback, build_feedback  # noqa: E402
from campaign.recommend.hybrid import HybridRecommender  # noqa: E402

CACHE = Path(__file__).resolve().parent / ".cache"
AS_OF = datetime(2026, 11, 1, tzinfo=UTC)
WEIGHTS = {"view": 1.0, "cart": 3.0, "purchase": 5.0}
N_CATEGORIES = 50


def generate(n_users: int, n_items: int, per_user: float, seed: int = 7) -> tuple[
    pd.DataFrame, pd.DataFrame
]:
    """Events (user_id, product_id, type, ts, quantity) and products, deterministic."""
    path = CACHE / f"recommend_{n_users}_{n_items}_{per_user:g}_{seed}.npz"
    rng = np.random.default_rng(seed)
    category = rng.integers(0, N_CATEGORIES, n_items)
    popularity = 1.0 / np.arange(1, n_items + 1) ** 0.9
    rng.shuffle(popularity)
    products = pd.DataFrame(
        {
            "product_id": np.arange(1, n_items + 1),
            "name": [f"item {i} c{c}" for i, c in enumerate(category)],
            "category": [f"c{c}" for c in category],
            "brand": [f"b{b}" for b in rng.integers(0, 400, n_items)],
            "tags": [[f"t{t}"] for t in rng.integers(0, 200, n_items)],
            "price_cents": np.round(np.exp(rng.normal(8, 1, n_items))).astype(np.int64),
            "in_stock": rng.random(n_items) > 0.02,
        }
    )
    if path.exists():
        data = np.load(path)
        events = pd.DataFrame({k: data[k] for k in ("user_id", "product_id", "type", "age")})
    else:
        counts = np.maximum(1, rng.geometric(1.0 / per_user, n_users))
        users = np.repeat(np.arange(1, n_users + 1), counts)
        total = users.shape[0]
        # Each user has two favourite categories; 70% of their events fall in them.
        favourite = rng.integers(0, N_CATEGORIES, (n_users, 2))
        by_category = [np.flatnonzero(category == c) for c in range(N_CATEGORIES)]
        weights_in = [popularity[ix] / popularity[ix].sum() for ix in by_category]
        items = rng.choice(n_items, total, p=popularity / popularity.sum())
        in_taste = rng.random(total) < 0.7
        chosen_cat = favourite[users - 1, rng.integers(0, 2, total)]
        for c in range(N_CATEGORIES):
            mask = in_taste & (chosen_cat == c)
            items[mask] = rng.choice(by_category[c], int(mask.sum()), p=weights_in[c])
        kinds = rng.choice(np.array([0, 1, 2]), total, p=[0.7, 0.15, 0.15])
        age = rng.uniform(0, 365, total)
        events = pd.DataFrame(
            {"user_id": users, "product_id": items + 1, "type": kinds, "age": age}
        )
        CACHE.mkdir(parents=True, exist_ok=True)
        np.savez(path, **{k: events[k].to_numpy() for k in events})
    events["type"] = np.array(["view", "cart", "purchase"])[events["type"].to_numpy()]
    events["ts"] = pd.Timestamp(AS_OF) - pd.to_timedelta(events.pop("age"), unit="D")
    events["quantity"] = 1
    return events, products


def split(events: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, datetime]:
    """Hold out events after the 80% time quantile; T is that time."""
    cut = events["ts"].quantile(0.8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the cut's nanoseconds do not matter
        moment = cut.to_pydatetime()
    return events.loc[events["ts"] < cut], events.loc[events["ts"] >= cut], moment


def recall_at(recommended: np.ndarray, truth: sparse.csr_matrix, users: np.ndarray) -> float:
    """Mean recall over ``users`` (rows of truth with at least one target)."""
    hits = np.zeros(users.shape[0])
    for i, (u, recs) in enumerate(zip(users, recommended, strict=True)):
        target = truth.indices[truth.indptr[u] : truth.indptr[u + 1]]
        hits[i] = np.isin(recs, target).sum() / target.shape[0]
    return float(hits.mean())


def real_refit(split_name: str, neighbours: int) -> None:
    """The product's daily refit + top-10 on a real split, beside implicit."""
    import tempfile

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from realdata.speed import daily_refit, database

    with tempfile.TemporaryDirectory(prefix="recommend-bench-") as scratch:
        path = database("cj", split_name, Path(scratch), log=lambda m: print(m, file=sys.stderr))
        daily_refit(path, print, neighbours=neighbours)


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument(
        "--items", type=int, nargs="+", default=[10_000],
        help="catalogue sizes; with two or more, each size's lines are prefixed "
        "items_N. and the growth from the first to the last is printed",
    )
    parser.add_argument("--per-user", type=float, default=20.0)
    parser.add_argument("--neighbours", type=int, default=50)
    parser.add_argument(
        "--jobs", type=int, default=-1, help="hybrid threads (-1: one per core, 1: none)"
    )
    parser.add_argument(
        "--dataset", choices=["synthetic", "cj"], default="synthetic",
        help="cj: the product's daily refit on a Complete Journey split's database",
    )
    parser.add_argument("--split", default="2017-12-04+28d", help="the cj split (bench/realdata)")
    args = parser.parse_args()
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    if args.dataset == "cj":
        real_refit(args.split, args.neighbours)
        return

    sizes = args.items
    found = []
    for n_items in sizes:
        prefix = f"items_{n_items}." if len(sizes) > 1 else ""
        found.append(run_size(args, n_items, lambda line, p=prefix: print(p + line, flush=True)))
    if len(sizes) > 1:
        growth = sizes[-1] / sizes[0]
        print(f"scaling.items_ratio: {growth:.2f} x")
        for name in found[0]:
            ratio = found[-1][name] / found[0][name]
            print(f"scaling.{name}_time_ratio: {ratio:.2f} x")
            # Time ratio over size ratio: 1 is linear growth, below 1 slower than linear.
            print(f"scaling.{name}_per_size_ratio: {ratio / growth:.2f} x")


def run_size(
    args: argparse.Namespace, n_items: int, emit: Callable[[str], None]
) -> dict[str, float]:
    """One benchmark run at ``n_items`` products; the total seconds of each model."""
    started = time.perf_counter()
    events, products = generate(args.users, n_items, args.per_user)
    train, test, as_of = split(events)
    emit(f"data.interactions: {len(events)} events")
    emit(f"data.generate: {time.perf_counter() - started:.1f} s")

    started = time.perf_counter()
    feedback = build_feedback(train, products["product_id"].to_numpy(), as_of, WEIGHTS, 60.0)
    emit(f"feedback.build: {time.perf_counter() - started:.2f} s")
    all_users = np.arange(1, args.users + 1)
    rows = feedback.rows_for(all_users)
    column = pd.Index(products["product_id"]).get_indexer(test["product_id"])
    truth = sparse.csr_matrix(
        (np.ones(len(test)), (test["user_id"].to_numpy() - 1, column)),
        shape=(args.users, n_items),
    )
    seen = rows.interactions
    truth = sparse.csr_matrix(truth - truth.multiply(seen > 0))
    truth.eliminate_zeros()
    target_users = np.flatnonzero(np.diff(truth.indptr) > 0)

    jobs = None if args.jobs == 1 else args.jobs
    model = HybridRecommender(
        neighbours=args.neighbours, max_per_category=3, chunk_size=1000, n_jobs=jobs
    )
    started, cpu = time.perf_counter(), time.process_time()
    model.fit(feedback, products)
    fit_s = time.perf_counter() - started
    fit_cpu = time.process_time() - cpu
    started, cpu = time.perf_counter(), time.process_time()
    result = model.recommend(rows, 10)
    rank_s = time.perf_counter() - started
    rank_cpu = time.process_time() - cpu
    emit(f"hybrid.fit: {fit_s:.2f} s")
    emit(f"hybrid.top10_all_users: {rank_s:.2f} s")
    emit(f"hybrid.fit_cpu: {fit_cpu:.2f} s")
    emit(f"hybrid.top10_all_users_cpu: {rank_cpu:.2f} s")
    emit(f"hybrid.recommendations: {len(result)} rows")
    emit(f"hybrid.users_per_second: {args.users / rank_s:.0f} users/s")
    # Recall on items the user had not touched (both models exclude seen items).
    model_noreason = HybridRecommender(
        neighbours=args.neighbours, max_per_category=None, n_jobs=jobs
    )
    model_noreason.fit(feedback, products.assign(in_stock=True))
    seen_rows = Feedback(
        user_ids=rows.user_ids,
        product_ids=rows.product_ids,
        interactions=rows.interactions,
        purchases=rows.purchases,
        purchase_counts=rows.purchase_counts,
        days_since_purchase=sparse.csr_matrix(
            (rows.interactions > 0).astype(np.float32)
        ),
        as_of=rows.as_of,
    )
    ours = model_noreason.recommend(seen_rows.rows_for(target_users + 1), 10, explain=False)
    ours_matrix = np.full((target_users.shape[0], 10), -1, dtype=np.int64)
    position = pd.Index(target_users + 1).get_indexer(ours["user_id"])
    ours_matrix[position, ours["rank"].to_numpy() - 1] = ours["product_id"].to_numpy() - 1
    hybrid_recall = recall_at(ours_matrix, truth, target_users)
    emit(f"hybrid.recall@10: {hybrid_recall:.4f} ratio")

    matrix = sparse.csr_matrix(rows.interactions, dtype=np.float32)
    try:
        from implicit.nearest_neighbours import CosineRecommender

        baseline_name = "implicit_cosine"
        baseline = CosineRecommender(K=args.neighbours)
        started, cpu = time.perf_counter(), time.process_time()
        baseline.fit(matrix, show_progress=False)
        base_fit = time.perf_counter() - started
        base_fit_cpu = time.process_time() - cpu
        started, cpu = time.perf_counter(), time.process_time()
        ids, _scores = baseline.recommend(
            np.arange(args.users), matrix, N=10, filter_already_liked_items=True
        )
        base_rank = time.perf_counter() - started
        base_rank_cpu = time.process_time() - cpu
        base_recs = ids[target_users]
    except ImportError:
        from campaign.recommend.itemcf import ItemCF
        from campaign.recommend.ranking import top_k

        baseline_name = "scipy_cosine"
        started, cpu = time.perf_counter(), time.process_time()
        cf = ItemCF(args.neighbours).fit(matrix)
        base_fit = time.perf_counter() - started
        base_fit_cpu = time.process_time() - cpu
        started, cpu = time.perf_counter(), time.process_time()
        base_recs_all = np.full((args.users, 10), -1, dtype=np.int64)
        for lo in range(0, args.users, 1000):
            block = matrix[lo : lo + 1000]
            scores = cf.score(block).toarray()
            scores[block.nonzero()] = -np.inf
            chosen = top_k(scores, 10)
            base_recs_all[chosen.rows + lo, chosen.ranks - 1] = chosen.cols
        base_rank = time.perf_counter() - started
        base_rank_cpu = time.process_time() - cpu
        base_recs = base_recs_all[target_users]
    base_recall = recall_at(base_recs, truth, target_users)
    emit(f"{baseline_name}.fit: {base_fit:.2f} s")
    emit(f"{baseline_name}.top10_all_users: {base_rank:.2f} s")
    emit(f"{baseline_name}.fit_cpu: {base_fit_cpu:.2f} s")
    emit(f"{baseline_name}.top10_all_users_cpu: {base_rank_cpu:.2f} s")
    emit(f"{baseline_name}.recall@10: {base_recall:.4f} ratio")
    emit(f"ratio.fit_vs_{baseline_name}: {fit_s / base_fit:.2f} x")
    emit(f"ratio.top10_vs_{baseline_name}: {rank_s / base_rank:.2f} x")
    emit(f"ratio.total_vs_{baseline_name}: {(fit_s + rank_s) / (base_fit + base_rank):.2f} x")
    emit(
        f"ratio.total_cpu_vs_{baseline_name}: "
        f"{(fit_cpu + rank_cpu) / (base_fit_cpu + base_rank_cpu):.2f} x"
    )
    emit(f"ratio.recall_vs_{baseline_name}: {hybrid_recall / base_recall:.2f} x")

    return {
        "hybrid": fit_s + rank_s,
        "hybrid_cpu": fit_cpu + rank_cpu,
        baseline_name: base_fit + base_rank,
        f"{baseline_name}_cpu": base_fit_cpu + base_rank_cpu,
    }


if __name__ == "__main__":
    main()
