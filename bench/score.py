"""Benchmark: churn features + scoring for N users / M events on SQLite, PostgreSQL and
MariaDB/MySQL.

    .venv/bin/python bench/score.py --users 1000000 --events 10000000
    .venv/bin/python bench/score.py --smoke          # 2,000 users / 20,000 events

The data comes from ``bench/profile.py`` (generated once, cached under
``bench/.cache/`` and in ``campaign_bench_*`` PostgreSQL databases). A model is trained
once per database (on at most 50,000 customers of the snapshot 90 days earlier; not
timed) and stored as the active model. Then, timed in the same run:

* ``aggregation``: the SQL aggregation alone (``load_profile_aggregates``);
* ``predict_proba``: the tree pipeline's ``predict_proba`` alone on every customer;
* ``score``: ``score_and_store`` end to end (profile_frame → summary → risk, tier,
  reasons in the user's locale → insert into ``churn_scores``) and the same without
  the insert.

Prints ``name: value unit`` lines, users/s, ratios to the aggregation, and the peak
resident memory of the process. Goal: end to end within 3x of the aggregation.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from profile import AS_OF, add_dialect_options, databases, time_aggregation  # noqa: E402

from campaign.churn.data import load_summary, load_user_info  # noqa: E402
from campaign.churn.model import fit_churn_model, snapshot_horizon  # noqa: E402
from campaign.churn.registry import activate, active_model_id, load_model, save_model_version  # noqa: E402
from campaign.churn.scoring import score_and_store, score_summary  # noqa: E402
from campaign.churn.training import labelled_snapshot  # noqa: E402
from campaign.config import ModelConfig  # noqa: E402
from campaign.db.engine import make_engine  # noqa: E402

# The benchmark database holds its own model, signed with a key of its own.
BENCH_KEY = b"bench model signing key"
CONFIG = ModelConfig(signing_key=BENCH_KEY.decode())  # type: ignore[arg-type]


def ensure_model(url: str) -> None:
    """Train and activate a model in the benchmark database unless one is active."""
    engine = make_engine(url)
    with engine.connect() as connection:
        if active_model_id(connection) is not None:
            engine.dispose()
            return
        at = AS_OF - timedelta(days=CONFIG.horizon_days)
        summary, labels = labelled_snapshot(
            connection, at, CONFIG.horizon_days, CONFIG.lookback_days
        )
    sample = summary.sample(min(len(summary), 50_000), random_state=0).index
    fit = fit_churn_model(
        [(summary.loc[sample], labels.loc[sample])],
        horizon_days=CONFIG.horizon_days,
        depth_candidates=(5,),
        leaf_candidates=(100,),
    )
    with engine.begin() as connection:
        version = save_model_version(
            connection,
            pipeline=fit.pipeline,
            trained_at=datetime.now(UTC),
            as_of=AS_OF,
            horizon_days=CONFIG.horizon_days,
            params=fit.params,
            metrics={},
            key=BENCH_KEY,
        )
        activate(connection, version)
    engine.dispose()


def report(dialect: str, url: str) -> None:
    ensure_model(url)
    engine = make_engine(url)
    # Warm the page cache first: otherwise the first timed step pays for the disk reads
    # and every later step looks cheaper than the aggregation it contains.
    time_aggregation(engine)
    aggregation, _ = time_aggregation(engine)
    started = time.perf_counter()
    with engine.connect() as connection:
        model = load_model(connection, key=BENCH_KEY)
        summary = load_summary(
            connection, AS_OF, lookback_days=CONFIG.lookback_days,
            horizon_days=snapshot_horizon(model.pipeline),  # the snapshot's BG/NBD fit
        )
        users = load_user_info(connection, summary.index)
    features = time.perf_counter() - started
    started = time.perf_counter()
    model.pipeline.predict_proba(summary)
    predict = time.perf_counter() - started
    started = time.perf_counter()
    score_summary(model.pipeline, summary, users["locale"], CONFIG.tier_thresholds)
    scoring = time.perf_counter() - started
    started = time.perf_counter()
    scores = score_and_store(engine, CONFIG, AS_OF)
    end_to_end = time.perf_counter() - started
    engine.dispose()
    n = len(scores)
    print(f"{dialect}.customers_scored: {n} users")
    print(f"{dialect}.aggregation_seconds: {aggregation:.2f} s")
    print(f"{dialect}.features_seconds: {features:.2f} s")
    print(f"{dialect}.predict_proba_seconds: {predict:.2f} s")
    print(f"{dialect}.risk_tier_reason_seconds: {scoring:.2f} s")
    print(f"{dialect}.score_and_store_seconds: {end_to_end:.2f} s")
    print(f"{dialect}.score_and_store_users_per_second: {n / end_to_end:,.0f} users/s")
    print(f"{dialect}.without_store_vs_aggregation: {(features + scoring) / aggregation:.2f} x")
    print(f"{dialect}.end_to_end_vs_aggregation: {end_to_end / aggregation:.2f} x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--smoke", action="store_true", help="2,000 users, 20,000 events")
    add_dialect_options(parser)
    args = parser.parse_args()
    users, events = (2_000, 20_000) if args.smoke else (args.users, args.events)
    print(f"events: {events} events")
    for dialect, url in databases(args, users, events):
        report(dialect, url)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"peak_memory: {peak_kib / 1024:.0f} MiB")


if __name__ == "__main__":
    main()
