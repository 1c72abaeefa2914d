"""The training tries the readable tree with two leaf sizes and keeps the one that ranks
the held-back rows better; the stored model is refitted with the rule it chose."""

from __future__ import annotations

import numpy as np
import pandas as pd

from campaign.config import UpliftConfig
from campaign.uplift.data import FEATURE_COLUMNS
from campaign.uplift.evaluate import qini_coefficient
from campaign.uplift.training import (
    TUNED_RESPONDERS,
    _fit_tree,
    _split,
    compare,
    design,
    fit_uplift,
    leaf_rules,
)


def _rare_outcome_experiment(n: int, seed: int = 4) -> pd.DataFrame:
    """A 50/50 test with 1 % conversion; the message adds 3 points 4-9 months after
    the last order and nothing elsewhere."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(0.0, index=range(n), columns=list(FEATURE_COLUMNS))
    days = rng.uniform(10, 600, n)
    frame["days_since_last_purchase"] = days
    frame["spend_total_cents"] = rng.gamma(2.0, 10_000, n).round()
    frame["orders_total"] = rng.integers(1, 8, n)
    frame["events_90d"] = rng.poisson(4, n)
    treated = rng.random(n) < 0.5
    rate = 0.01 + 0.03 * treated * ((days > 120) & (days <= 270))
    converted = rng.random(n) < rate
    frame["user_id"] = np.arange(n)
    frame["treatment"] = treated
    frame["p_treatment"] = 0.5
    frame["converted"] = converted.astype(float)
    frame["visited"] = converted.astype(float)
    frame["revenue_cents"] = 0.0
    return frame


def test_the_leaf_size_that_ranks_the_held_back_rows_better_is_kept_and_refitted() -> None:
    frame = _rare_outcome_experiment(30_000)
    config = UpliftConfig()
    assert leaf_rules(config) == (0, TUNED_RESPONDERS)
    comparison = compare(frame, "converted", config, "USD")
    # The same split, both trees, measured independently.
    y = frame["converted"].to_numpy()
    w = frame["treatment"].to_numpy(dtype=bool)
    p = frame["p_treatment"].to_numpy()
    train, valid = _split(frame, y, config)
    X = design(frame, None)
    qini = {rule: qini_coefficient(
        y[valid], w[valid],
        _fit_tree(X.iloc[train], y[train], w[train], p[train], config, rule)
        .predict_uplift(X.iloc[valid]), p[valid]) for rule in leaf_rules(config)}
    assert comparison.min_responders == max(qini, key=lambda rule: qini[rule])
    assert comparison.table.at["qini", "tree"] == max(qini.values())
    model = fit_uplift(frame, "spring", "converted", config, "USD", comparison.chosen,
                       comparison.min_responders)
    assert model.tree.min_responders == comparison.min_responders
    # Two different trees were compared (larger leaves: other splits).
    assert qini[0] != qini[TUNED_RESPONDERS]


def test_without_tuning_the_configured_leaf_size_is_the_only_one() -> None:
    config = UpliftConfig(tune_leaf_size=False, min_responders_per_leaf=3)
    assert leaf_rules(config) == (3,)
    comparison = compare(_rare_outcome_experiment(6_000), "converted", config, "USD")
    assert comparison.min_responders == 3
    assert leaf_rules(UpliftConfig(min_responders_per_leaf=25)) == (25,)
