"""Speed of training the uplift model on N experiment rows, beside scikit-uplift.

What ``campaign train uplift`` does once the experiment frame is loaded
(``campaign.uplift.training.compare`` — the readable tree and the boosted challenger
on one part, compared by Qini with bootstrap resamples on the other — then
``fit_uplift``, the winner and the tree refitted on every row), timed against
scikit-uplift's two-model approach (``sklift.models.TwoModels``, one
``HistGradientBoostingClassifier`` per group, the product's challenger's learner) fitted
once on the same rows, in the same run.

The rows are synthetic with a planted effect (the persuadable are recent, big
spenders; the put-off, old one-time buyers), so the challenger is chosen where it should
be and both code paths run. The database part of ``train uplift`` (profiles as of
each assignment) is measured by bench/score.py's profile figures; this is the model
part only.

Usage: ``.venv/bin/python bench/uplift_speed.py [--rows 1000000]``. Prints ``name:
value unit`` lines and ``ratio`` (product ÷ scikit-uplift; goal ≤ 2).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from campaign.config import UpliftConfig  # noqa: E402
from campaign.uplift.data import FEATURE_COLUMNS  # noqa: E402
from campaign.uplift.training import compare, fit_uplift  # noqa: E402


def experiment(rows: int, seed: int = 0) -> pd.DataFrame:
    """``rows`` randomised users (2/3 treated) with the uplift features and a visit
    outcome whose effect depends on recency and spend."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({
        "days_since_last_purchase": rng.integers(1, 365, rows).astype(float),
        "days_since_last_event": rng.integers(0, 365, rows).astype(float),
        "tenure_days": rng.integers(30, 2000, rows).astype(float),
        "orders_total": rng.poisson(3, rows).astype(float) + 1,
        "orders_365d": rng.poisson(1.5, rows).astype(float),
        "spend_total_cents": rng.gamma(2.0, 15000, rows).round(),
        "spend_365d_cents": rng.gamma(2.0, 8000, rows).round(),
        "avg_order_value_cents": rng.gamma(3.0, 2500, rows).round(),
        "events_90d": rng.poisson(4, rows).astype(float),
        "messages_received": rng.poisson(2, rows).astype(float),
        "coupon_order_share": rng.random(rows),
    })
    assert list(frame.columns) == list(FEATURE_COLUMNS)
    treatment = rng.random(rows) < 2 / 3
    recent = frame["days_since_last_purchase"].to_numpy() < 90
    big = frame["spend_365d_cents"].to_numpy() > 20000
    put_off = (frame["orders_total"].to_numpy() == 1) & ~recent
    base = 0.08 + 0.05 * recent
    effect = 0.02 + 0.06 * (recent & big) - 0.04 * put_off
    visited = rng.random(rows) < base + treatment * effect
    frame["user_id"] = np.arange(rows)
    frame["treatment"] = treatment
    frame["p_treatment"] = 2 / 3
    frame["visited"] = visited.astype(float)
    frame["converted"] = visited.astype(float)
    frame["revenue_cents"] = 0.0
    return frame


def main() -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklift.models import TwoModels

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    frame = experiment(args.rows)
    config = UpliftConfig()

    X = frame[list(FEATURE_COLUMNS)]

    def product() -> tuple[float, float, str]:
        started = time.perf_counter()
        comparison = compare(frame, "visited", config, "USD")
        compared = time.perf_counter() - started
        fit_uplift(frame, "bench", "visited", config, "USD", comparison.chosen)
        return compared, time.perf_counter() - started, comparison.chosen

    def anchor() -> float:
        started = time.perf_counter()
        TwoModels(HistGradientBoostingClassifier(random_state=0),
                  HistGradientBoostingClassifier(random_state=0), method="vanilla").fit(
            X, frame["visited"].to_numpy(), frame["treatment"].to_numpy(dtype=int))
        return time.perf_counter() - started

    # Alternated and the best of each kept: OpenMP's threads slow down many times over
    # when another process takes a core, and that must not decide the ratio.
    runs = []
    for _ in range(args.repeats):
        runs.append((anchor(), *product()))
    anchor_time = min(r[0] for r in runs)
    compared = min(r[1] for r in runs)
    total = min(r[2] for r in runs)
    chosen = runs[-1][3]
    print(f"uplift.rows: {args.rows} rows")
    print(f"uplift.chosen: {chosen}")
    print(f"uplift.product.compare: {compared:.1f} s")
    print(f"uplift.product.train: {total:.1f} s")
    print(f"uplift.sklift_two_model_hgb.fit: {anchor_time:.1f} s")
    print(f"uplift.ratio: {total / anchor_time:.2f}x")


if __name__ == "__main__":
    main()
