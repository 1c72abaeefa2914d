"""Churn quality: the tree vs recency, BG/NBD and Pareto/NBD on one forward split.

Datasets:

* ``demo``: the generated demo shop (``campaign.demo.shop.generate_shop``), purchases
  only, T = its newest event.
* ``cdnow``: the real CDNOW log (23,570 customers who first bought in Q1 1997, 69,659
  purchases to June 1998) shipped inside the ``lifetimes`` package
  (``pip install -e .[bench]``).
* ``demo-db``: the product path of ``campaign evaluate churn``: the demo shop imported
  into a SQLite database (built once, cached under ``bench/.cache/``), profile
  features from SQL including browsing, ``campaign.churn.training.evaluate_churn``
  with the demo's ``[model]`` config at ``DEMO_AS_OF``.

Split (the same as ``campaign evaluate churn``), horizon h: the tree is trained on
snapshots at T-2h, T-3h, T-4h (labels from the h days after each), scored at T-h and
compared with what happened in (T-h, T]. Tree candidates are the ``[model]`` config
defaults. The recency and BG/NBD baselines of ``campaign evaluate churn`` are fitted on
the same rows. ``lifetimes``' BG/NBD and Pareto/NBD are fitted on all purchases
before T-h and rank customers by the purchases they expect in the next h days (not by
1 - P(alive), which ranks one-time buyers backwards). Everyone with a purchase in the
365 days before T-h is scored and counted. ``tree_leaf_rate_only`` is the same tree
without the within-leaf refinement (every customer of a leaf tied), for comparison.

The real log never enters our database: its transactions frame goes straight into
the pure code (``purchase_summary`` → ``fit_churn_model`` → ``predict_risk``), the
same functions ``campaign train`` runs on the SQL summary. ``lifetimes`` 0.11.3's
summary helpers crash under pandas 3, so the RFM summary is built here.

Prints ``name: value unit`` lines, e.g. ``cdnow.tree.roc_auc: 0.80``.

Usage: ``.venv/bin/python bench/churn_quality.py [--dataset demo|cdnow|demo-db|all]
[--horizon 90]``
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from campaign.churn.evaluate import BGNBDBaseline, RecencyBaseline, churn_metrics  # noqa: E402
from campaign.churn.labels import churn_labels  # noqa: E402
from campaign.churn.model import fit_churn_model, predict_risk  # noqa: E402
from campaign.churn.summary import purchase_summary  # noqa: E402
from campaign.config import ModelConfig  # noqa: E402

LOOKBACK = 365
CACHE = Path(__file__).resolve().parent / ".cache"


def cdnow_purchases() -> pd.DataFrame:
    """CDNOW as purchase lines: user_id, ts (UTC), amount_cents."""
    import lifetimes

    path = Path(lifetimes.__file__).parent / "datasets" / "CDNOW_master.txt"
    raw = pd.read_csv(path, sep=r"\s+", header=0, names=["user_id", "date", "cds", "usd"])
    return pd.DataFrame(
        {
            "user_id": raw["user_id"].astype("int64"),
            "ts": pd.to_datetime(raw["date"].astype(str), format="%Y%m%d", utc=True)
            + pd.Timedelta(hours=12),
            "amount_cents": (raw["usd"] * 100).round().astype("int64"),
        }
    )


def demo_purchases() -> tuple[pd.DataFrame, datetime]:
    """The demo shop's purchase lines (user_id, ts, order_id, amount_cents) and its T."""
    from campaign.demo.shop import generate_shop

    shop = generate_shop()
    events = shop.events
    buys = events[events["type"] == "purchase"]
    frame = pd.DataFrame(
        {
            "user_id": buys["user_id"].str.lstrip("U").astype("int64"),
            "ts": buys["ts"],
            "order_id": buys["order_id"].where(buys["order_id"].notna(), None),
            "amount_cents": (buys["amount"].astype(float) * 100).round().astype("int64"),
        }
    )
    return frame.reset_index(drop=True), events["ts"].max().to_pydatetime()


def rfm(purchases: pd.DataFrame, at: datetime) -> pd.DataFrame:
    """lifetimes-style summary: frequency (repeat purchase days), recency, T (days)."""
    before = purchases[purchases["ts"] < at]
    days = before.assign(day=before["ts"].dt.floor("D")).drop_duplicates(["user_id", "day"])
    grouped = days.groupby("user_id")["day"]
    first, last = grouped.min(), grouped.max()
    cut = pd.Timestamp(at).floor("D")
    return pd.DataFrame(
        {
            "frequency": grouped.size() - 1,
            "recency": (last - first).dt.days,
            "T": (cut - first).dt.days,
        }
    )


def btyd_risks(
    purchases: pd.DataFrame, at: datetime, customers: pd.Index, horizon: int
) -> dict[str, pd.Series]:
    """Negative expected purchases in the horizon (higher = riskier) from lifetimes."""
    from lifetimes import BetaGeoFitter, ParetoNBDFitter

    summary = rfm(purchases, at)
    out: dict[str, pd.Series] = {}
    for name, fitter in (
        ("bg_nbd", BetaGeoFitter(penalizer_coef=0.0)),
        ("pareto_nbd", ParetoNBDFitter(penalizer_coef=0.0)),
    ):
        fitter.fit(summary["frequency"], summary["recency"], summary["T"])
        rows = summary.loc[customers]
        expected = fitter.conditional_expected_number_of_purchases_up_to_time(
            horizon, rows["frequency"], rows["recency"], rows["T"]
        )
        out[name] = -pd.Series(np.asarray(expected, dtype=float), index=customers)
    return out


def report(
    name: str, labels: pd.Series, scores: dict[str, pd.Series], seconds: float
) -> None:
    """Print ROC AUC of every model, the other metrics of ours, and the differences."""
    print(f"{name}.customers: {len(labels)} users")
    print(f"{name}.churn_rate: {labels.mean():.3f} share")
    aucs = {
        model: float(roc_auc_score(labels, risk.reindex(labels.index)))
        for model, risk in scores.items()
    }
    for model, auc in aucs.items():
        print(f"{name}.{model}.roc_auc: {auc:.4f}")
    for model in ("tree", "recency", "bgnbd_baseline"):
        metrics = churn_metrics(labels, scores[model].reindex(labels.index))
        print(f"{name}.{model}.pr_auc: {metrics['pr_auc']:.4f}")
        print(f"{name}.{model}.brier: {metrics['brier']:.4f}")
        print(f"{name}.{model}.lift_top_decile: {metrics['lift_top_decile']:.2f} x")
    for other in aucs:
        if other != "tree":
            print(f"{name}.tree_minus_{other}.roc_auc: {aucs['tree'] - aucs[other]:+.4f}")
    print(f"{name}.seconds: {seconds:.1f} s")


def leaf_rate_only(pipeline: object, summary: pd.DataFrame) -> pd.Series:
    """The tree's plain leaf churn rates (no within-leaf refinement)."""
    inputs = pipeline["inputs"].transform(summary)  # type: ignore[index]
    risk = pipeline["tree"].leaf_risk(inputs)  # type: ignore[index]
    return pd.Series(risk, index=summary.index)


def run(name: str, purchases: pd.DataFrame, t: datetime, horizon: int) -> None:
    started = time.perf_counter()
    config = ModelConfig()

    def snapshot(at: datetime) -> tuple[pd.DataFrame, pd.Series]:
        summary = purchase_summary(purchases, at, lookback_days=LOOKBACK, horizon_days=horizon)
        return summary, churn_labels(purchases, summary.index, at, horizon)

    h = timedelta(days=horizon)
    training = [snapshot(t - (2 + j) * h) for j in range(config.snapshots)]
    training = [(s, y) for s, y in training if len(y) and y.nunique() == 2]
    summary, labels = snapshot(t - h)
    fit = fit_churn_model(
        training,
        horizon_days=horizon,
        depth_candidates=config.max_depth_candidates,
        leaf_candidates=config.min_samples_leaf_candidates,
        random_state=config.random_state,
    )
    train_x = pd.concat([s for s, _ in training])
    train_y = pd.concat([y for _, y in training])
    scores: dict[str, pd.Series] = {
        "tree": predict_risk(fit.pipeline, summary),
        "tree_leaf_rate_only": leaf_rate_only(fit.pipeline, summary),
    }
    for model, baseline in (
        ("recency", RecencyBaseline()),
        ("bgnbd_baseline", BGNBDBaseline(horizon)),
    ):
        baseline.fit(train_x, train_y)
        scores[model] = pd.Series(baseline.predict_proba(summary)[:, 1], index=summary.index)
    scores.update(btyd_risks(purchases, t - h, summary.index, horizon))
    print(f"{name}.training_rows: {fit.params['training_rows']} rows")
    leaves = fit.pipeline["tree"].tree_.get_n_leaves()
    print(
        f"{name}.tree.params: depth={fit.params['max_depth']} "
        f"leaf={fit.params['min_samples_leaf']} leaves={leaves}"
    )
    report(name, labels, scores, time.perf_counter() - started)


def demo_database() -> tuple[str, dict[int, int]]:
    """URL of the cached demo-shop SQLite database, and internal → shop user ids."""
    from sqlalchemy import select

    from campaign.db.engine import make_engine
    from campaign.db.migrate import upgrade
    from campaign.db.models import User
    from campaign.demo.shop import generate_shop, write_csv
    from campaign.ingest import import_csv

    CACHE.mkdir(exist_ok=True)
    path = CACHE / "churn_quality_demo.db"
    url = f"sqlite:///{path}"
    if not path.exists():
        import tempfile

        building = path.with_suffix(".building")
        building.unlink(missing_ok=True)
        engine = make_engine(f"sqlite:///{building}")
        upgrade(engine)
        with tempfile.TemporaryDirectory() as folder:
            files = write_csv(generate_shop(), Path(folder))
            for kind in ("users", "products", "events"):
                import_csv(engine, kind, files[kind])  # type: ignore[arg-type]
        engine.dispose()
        building.rename(path)
    engine = make_engine(url)
    upgrade(engine)  # the cached shop may predate newer migrations
    with engine.connect() as connection:
        ids = {
            int(row.id): int(str(row.external_id).lstrip("U"))
            for row in connection.execute(select(User.id, User.external_id))
        }
    engine.dispose()
    return url, ids


def run_db(horizon: int) -> None:
    """The demo shop through ``evaluate_churn`` (SQL profile with browsing features)."""
    from campaign.churn.training import BGNBD, RECENCY, TREE, evaluate_churn
    from campaign.db.engine import make_engine
    from campaign.demo.shop import DEMO_AS_OF

    url, ids = demo_database()
    started = time.perf_counter()
    config = ModelConfig(min_customers=100, min_history_days=180, horizon_days=horizon)
    engine = make_engine(url)
    evaluation = evaluate_churn(engine, config, DEMO_AS_OF, horizon)
    engine.dispose()
    summary, labels = evaluation.holdout
    train_x = pd.concat([s for s, _ in evaluation.training])
    fit = evaluation.fit
    scores: dict[str, pd.Series] = {"tree": predict_risk(fit.pipeline, summary)}
    scores["tree_leaf_rate_only"] = leaf_rate_only(fit.pipeline, summary)
    for model, column in (("recency", RECENCY), ("bgnbd_baseline", BGNBD)):
        # Only the table's figures are printed for these two; rebuild scores for report().
        baseline = RecencyBaseline() if model == "recency" else BGNBDBaseline(horizon)
        baseline.fit(train_x, pd.concat([y for _, y in evaluation.training]))
        scores[model] = pd.Series(baseline.predict_proba(summary)[:, 1], index=summary.index)
        assert abs(
            roc_auc_score(labels, scores[model]) - evaluation.metric(column)
        ) < 1e-9, "bench and evaluate_churn disagree"
    assert abs(roc_auc_score(labels, scores["tree"]) - evaluation.metric(TREE)) < 1e-9
    purchases, _ = demo_purchases()
    shop_ids = pd.Index([ids[u] for u in summary.index])
    for model, risk in btyd_risks(purchases, evaluation.holdout_at, shop_ids, horizon).items():
        scores[model] = pd.Series(risk.to_numpy(), index=summary.index)
    print(f"demo_db.training_rows: {fit.params['training_rows']} rows")
    print(f"demo_db.tree.inputs: {len(fit.params['inputs'])} inputs")
    leaves = fit.pipeline["tree"].tree_.get_n_leaves()
    print(
        f"demo_db.tree.params: depth={fit.params['max_depth']} "
        f"leaf={fit.params['min_samples_leaf']} leaves={leaves}"
    )
    report("demo_db", labels, scores, time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", choices=["demo", "cdnow", "demo-db", "all"], default="all")
    parser.add_argument("--horizon", type=int, default=90)
    args = parser.parse_args()
    if args.dataset in ("demo", "all"):
        purchases, t = demo_purchases()
        run("demo", purchases, t, args.horizon)
    if args.dataset in ("demo-db", "all"):
        run_db(args.horizon)
    if args.dataset in ("cdnow", "all"):
        purchases = cdnow_purchases()
        t = datetime(1998, 7, 1, tzinfo=UTC)
        run("cdnow", purchases, t, args.horizon)


if __name__ == "__main__":
    main()
