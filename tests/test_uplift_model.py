"""The uplift estimators, metrics, segments and reasons (pure, no database)."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from campaign.uplift.data import FEATURE_COLUMNS
from campaign.uplift.evaluate import (
    bootstrap_qini,
    qini_coefficient,
    qini_curve,
    ranking_table,
    uplift_at,
)
from campaign.uplift.model import (
    LOST_CAUSE,
    PERSUADABLE,
    SLEEPING_DOG,
    SURE_THING,
    TwoModelBoosting,
    UpliftTree,
    segments,
    transformed_outcome,
)
from campaign.uplift.reasons import condition_text, effect_text, leaf_paths, reason


def planted(n: int, seed: int, shares: tuple[float, ...] = (0.9, 0.5)) -> pd.DataFrame:
    """Persuadables 4–9 months since their last order, sleeping dogs among big spenders,
    no effect elsewhere; rows from a 10 % holdout and from a 50/50 test."""
    rng = np.random.default_rng(seed)
    days = rng.uniform(10, 600, n)
    spend = rng.uniform(1_000, 40_000, n)
    frame = pd.DataFrame(0.0, index=range(n), columns=list(FEATURE_COLUMNS))
    frame["days_since_last_purchase"] = days
    frame["spend_total_cents"] = spend
    frame["orders_total"] = rng.integers(1, 6, n)
    frame["events_90d"] = rng.poisson(5, n)
    p = rng.choice(shares, n)
    w = rng.random(n) < p
    persuadable = (days > 120) & (days <= 270)
    dog = (spend > 30_000) & ~persuadable
    control_rate = np.where(dog, 0.30, np.where(persuadable, 0.05, 0.10))
    treated_rate = np.where(dog, 0.05, np.where(persuadable, 0.30, 0.10))
    y = rng.random(n) < np.where(w, treated_rate, control_rate)
    frame["treatment"], frame["p"], frame["y"] = w, p, y.astype(float)
    frame["true_uplift"] = treated_rate - control_rate
    return frame


def test_the_transformed_outcome_is_the_uplift_in_expectation_row_by_row() -> None:
    """Brute force: over both assignments of every row, weighted by its own p."""
    rng = np.random.default_rng(1)
    y1, y0 = rng.random(50) * 10, rng.random(50) * 10
    p = rng.uniform(0.05, 0.95, 50)
    expected = np.zeros(50)
    for w in (0, 1):
        y = np.where(w, y1, y0)
        z = transformed_outcome(y, np.full(50, w), p)
        expected += np.where(w, p, 1 - p) * z
    np.testing.assert_allclose(expected, y1 - y0)
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        transformed_outcome(np.ones(2), np.ones(2), np.array([0.5, 1.0]))


def _naive_qini(y: np.ndarray, w: np.ndarray, score: np.ndarray) -> list[float]:
    """scikit-uplift's definition, one cut-off at a time."""
    order = np.argsort(-score, kind="mergesort")
    values = [0.0]
    for k in range(1, len(y) + 1):
        top = order[:k]
        if k < len(y) and score[order[k]] == score[order[k - 1]]:
            continue
        n_t, n_c = w[top].sum(), (~w[top]).sum()
        y_t, y_c = y[top][w[top]].sum(), y[top][~w[top]].sum()
        values.append(y_t - y_c * (n_t / n_c if n_c else 0.0))
    return values


def test_the_qini_curve_matches_the_definition_and_one_probability_only_scales_it() -> None:
    rng = np.random.default_rng(2)
    y = (rng.random(200) < 0.3).astype(float)
    w = rng.random(200) < 0.5
    score = np.round(rng.random(200), 1)  # ties
    _, curve = qini_curve(y, w, score, np.full(200, 0.5))
    np.testing.assert_allclose(curve, 2.0 * np.asarray(_naive_qini(y, w, score)))
    # The coefficient does not depend on the (common) probability.
    assert qini_coefficient(y, w, score, np.full(200, 0.5)) == pytest.approx(
        qini_coefficient(y, w, score, np.full(200, 0.8)))
    perfect = np.where(w, y, -y)
    assert qini_coefficient(y, w, perfect, np.full(200, 0.5)) == pytest.approx(1.0)


def test_uplift_at_k_is_the_weighted_difference_among_the_first_rows() -> None:
    y = np.array([1, 0, 1, 1, 0, 0, 1, 0], dtype=float)
    w = np.array([1, 0, 1, 0, 1, 0, 0, 1], dtype=bool)
    score = np.arange(8, 0, -1, dtype=float)
    p = np.full(8, 0.5)
    # First 4 rows: treated 1, 1 → 1.0; control 0, 1 → 0.5.
    assert uplift_at(y, w, score, p, 0.5) == pytest.approx(0.5)
    # Different probabilities: treated rows weigh 1/p, controls 1/(1-p), per group.
    p2 = np.array([0.9, 0.5, 0.5, 0.9, 0.5, 0.5, 0.5, 0.5])
    treated = (1 / 0.9 * 1 + 2 * 1) / (1 / 0.9 + 2)
    control = (2 * 0 + 10 * 1) / (2 + 10)
    assert uplift_at(y, w, score, p2, 0.5) == pytest.approx(treated - control)


def test_the_tree_finds_planted_persuadables_and_sleeping_dogs() -> None:
    train, test = planted(20_000, 3), planted(20_000, 4)
    X = train[list(FEATURE_COLUMNS)]
    tree = UpliftTree(max_depth=3, min_samples_leaf=200).fit(
        X, train["y"].to_numpy(), train["treatment"].to_numpy(), train["p"].to_numpy())
    predicted = tree.predict_uplift(test[list(FEATURE_COLUMNS)])
    qini = qini_coefficient(test["y"].to_numpy(), test["treatment"].to_numpy(), predicted,
                            test["p"].to_numpy())
    shuffled = np.random.default_rng(5).permutation(predicted)
    random = qini_coefficient(test["y"].to_numpy(), test["treatment"].to_numpy(), shuffled,
                              test["p"].to_numpy())
    oracle = qini_coefficient(test["y"].to_numpy(), test["treatment"].to_numpy(),
                              test["true_uplift"].to_numpy(), test["p"].to_numpy())
    # Clearly above random, and most of what knowing the true effect would give.
    assert qini > 0.8 * oracle and qini > 0.2 and abs(random) < 0.05, (qini, oracle, random)
    control = tree.predict_control(test[list(FEATURE_COLUMNS)])
    found = segments(predicted, control, delta=0.05, base_rate=0.2)
    truth = test["true_uplift"].to_numpy()
    assert (found[truth > 0] == PERSUADABLE).mean() > 0.9
    assert (found[truth < 0] == SLEEPING_DOG).mean() > 0.9
    assert np.isin(found[truth == 0], [SURE_THING, LOST_CAUSE]).mean() > 0.8
    # The reasons read the planted regions off the tree.
    paths = leaf_paths(tree.tree_, tree.features_)
    leaf = tree.leaves(test[list(FEATURE_COLUMNS)])[np.flatnonzero(truth > 0)[0]]
    text = reason(tree.leaf_uplift_[int(leaf)], paths[int(leaf)], outcome="converted",
                  delta=0.05, currency="EUR")
    assert text.startswith("the message helps: ") and "months since last order" in text
    assert text.endswith("pts)")


def test_the_boosted_challenger_ranks_the_planted_effect_too() -> None:
    train, test = planted(6_000, 6), planted(6_000, 7)
    model = TwoModelBoosting(max_iter=30, min_samples_leaf=100).fit(
        train[list(FEATURE_COLUMNS)], train["y"].to_numpy(), train["treatment"].to_numpy(),
        train["p"].to_numpy())
    table = ranking_table(test["y"].to_numpy(), test["treatment"].to_numpy(),
                          test["p"].to_numpy(),
                          {"boosting": model.predict_uplift(test[list(FEATURE_COLUMNS)]),
                           "oracle": test["true_uplift"].to_numpy()})
    assert table.at["qini", "boosting"] > 0.6 * table.at["qini", "oracle"] > 0.15
    assert table.at["uplift_at_30", "boosting"] > table.at["uplift_at_30", "random"] + 0.05


def test_segments_follow_the_cut_offs() -> None:
    uplift = np.array([0.03, 0.011, 0.01, -0.01, -0.011, 0.0, 0.0])
    control = np.array([0.0, 0.0, 0.5, 0.05, 0.9, 0.1, 0.0999])
    assert segments(uplift, control, delta=0.01, base_rate=0.1).tolist() == [
        PERSUADABLE, PERSUADABLE, SURE_THING, LOST_CAUSE, SLEEPING_DOG, SURE_THING, LOST_CAUSE]


@pytest.mark.parametrize(("name", "low", "high", "text"), [
    ("days_since_last_purchase", 121.0, 274.0, "4–9 months since last order"),
    ("days_since_last_purchase", None, 30.5, "up to 30 days since last order"),
    ("days_since_last_purchase", 6000.0, None, "never (since last order)"),
    ("spend_total_cents", 20_000.0, None, "spent over 200"),
    ("orders_total", 1.5, 3.5, "2–3 orders"),
    ("orders_total", None, 1.5, "at most 1 orders"),
    ("coupon_order_share", 0.25, None, "over 25% of orders with a coupon"),
])
def test_conditions_read_like_a_marketer_says_them(
    name: str, low: float | None, high: float | None, text: str
) -> None:
    assert condition_text(name, low, high, "EUR") == text


def test_effects_are_in_outcome_units() -> None:
    assert effect_text(0.061, "converted", "EUR") == "+6.1 pts"
    assert effect_text(-3.2, "revenue", "EUR") == "-3.20 EUR"
    assert effect_text(150.0, "revenue", "JPY") == "+150 JPY"


def test_every_combination_of_groups_gets_a_leaf_estimate() -> None:
    """A leaf with only treated rows falls back to the population's uplift."""
    X = pd.DataFrame({name: [0.0] * 4 for name in FEATURE_COLUMNS})
    X["orders_total"] = [0, 0, 5, 5]
    for w in itertools.product([True, False], repeat=4):
        if all(w) or not any(w):
            continue
        tree = UpliftTree(max_depth=1, min_samples_leaf=1).fit(
            X, np.array([1.0, 0.0, 1.0, 0.0]), np.array(w), np.full(4, 0.5))
        assert np.isfinite(tree.predict_uplift(X)).all()


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n=st.integers(4, 300),
       levels=st.sampled_from([2, 5, 1000]), share=st.sampled_from([0.5, 0.9]))
def test_bootstrap_qini_equals_the_qini_of_each_resamples_rows(
    seed: int, n: int, levels: int, share: float
) -> None:
    # Sorted once and re-weighted by how often each row is drawn, with ties in the
    # score (levels=2) and a holdout's probability: the same value as sorting the
    # resample's own rows again.
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.3).astype(float)
    w = rng.random(n) < share
    w[0], w[-1] = True, False
    p = np.full(n, share)
    scores = {"a": np.floor(rng.random(n) * levels), "b": rng.normal(size=n)}
    draws = 5
    found = bootstrap_qini(y, w, p, scores, np.random.default_rng(seed), draws)
    replay = np.random.default_rng(seed)
    for draw in range(draws):
        rows = replay.integers(0, n, n)
        for name, score in scores.items():
            expected = qini_coefficient(y[rows], w[rows], score[rows], p[rows])
            if np.isnan(expected):
                assert np.isnan(found[name][draw])
            else:
                assert found[name][draw] == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_targeting_figures_match_the_metrics_they_summarise() -> None:
    from campaign.uplift.targeting import decile_table, gain_table, qini_points

    rng = np.random.default_rng(3)
    n = 4000
    x = rng.random(n)
    w = rng.random(n) < 0.9  # a 10 % holdout
    p = np.full(n, 0.9)
    y = (rng.random(n) < 0.1 + 0.3 * w * (x > 0.7)).astype(float)
    uplift, risk = x + rng.normal(0, 0.05, n), rng.random(n)
    curve = qini_points(y, w, p, {"uplift": uplift, "risk": risk})
    # From nothing to everyone: every ranking ends where random does.
    assert curve.iloc[0][["uplift", "risk", "random"]].tolist() == [0.0, 0.0, 0.0]
    end = curve.iloc[-1]
    assert end["uplift"] == pytest.approx(end["risk"]) == pytest.approx(end["random"])
    assert curve["uplift"].iloc[6] > curve["random"].iloc[6] + 10  # 30 % targeted
    gain = gain_table({"converted": y}, w, p, uplift, risk, np.random.default_rng(0))
    for row in gain.itertuples(index=False):
        by_uplift = uplift_at(y, w, uplift, p, row.share)
        by_risk = uplift_at(y, w, risk, p, row.share)
        assert row.gain == pytest.approx(1000 * (by_uplift - by_risk))
        assert row.low < row.gain < row.high
    deciles = decile_table(y, w, p, uplift, np.random.default_rng(0))
    assert deciles["customers"].sum() == n and len(deciles) == 10
    # The top three deciles hold the responders (x > 0.7): about +30 points.
    # (40 held-out customers per decile: each decile's figure is noisy, their mean not.)
    assert all(deciles["uplift"].iloc[:3] > 0.2)
    assert abs(deciles["uplift"].iloc[4:].mean()) < 0.05
    assert (deciles["low"] <= deciles["uplift"]).all()
    assert (deciles["uplift"] <= deciles["high"]).all()


def test_a_resampled_qini_of_a_continuous_score_is_the_exact_one_within_a_small_margin() -> None:
    # Beyond MAX_POINTS distinct scores the resampled curve keeps MAX_POINTS points and is
    # straight between them; on the rows themselves (each drawn once) it must stay
    # within a hair of the exact coefficient, for a good ranking and a useless one.
    from campaign.uplift.evaluate import (
        MAX_POINTS,
        QiniPoints,
        perfect_ranking,
        qini_on_resamples,
    )
    from campaign.uplift.model import balancing_weights

    rng = np.random.default_rng(11)
    n = 40 * MAX_POINTS
    x = rng.random(n)
    w = rng.random(n) < 0.5
    p = np.full(n, 0.5)
    y = (rng.random(n) < 0.1 + 0.1 * w * (x > 0.6)).astype(float)
    weights = balancing_weights(w, p)
    scores = {"good": x + rng.normal(0, 0.1, n), "useless": rng.random(n)}
    perfect = QiniPoints(y, w, perfect_ranking(y, w), weights)
    ranked = {name: QiniPoints(y, w, score, weights) for name, score in scores.items()}
    assert all(points.points <= MAX_POINTS + 1 for points in ranked.values())
    once = [np.asarray(points.matrix.sum(axis=0)) for points in (perfect, *ranked.values())]
    found = qini_on_resamples(perfect, ranked, once)
    for name, score in scores.items():
        assert found[name][0] == pytest.approx(qini_coefficient(y, w, score, p), abs=2e-3)
    assert found["good"][0] > 0.1 > abs(found["useless"][0])
