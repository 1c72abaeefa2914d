"""Pure churn parts: labels without leakage, determinism, planted signal, reasons = path,
the within-leaf refinement of risk and the BG/NBD baseline."""

from __future__ import annotations

import math
import pickle
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.metrics import roc_auc_score

from campaign.churn.evaluate import BGNBDBaseline, RecencyBaseline, churn_metrics, lift_at
from campaign.churn.labels import churn_labels, customers_at
from campaign.churn.model import (
    INPUTS,
    MAX_TIE_OFFSET,
    SAME_RATE,
    ChurnTree,
    assign_tiers,
    auc_standard_error,
    fit_churn_model,
    predict_risk,
)
from campaign.churn.reasons import Condition, _bound_text, explain, path_conditions
from campaign.churn.summary import purchase_summary

START = datetime(2025, 1, 1, tzinfo=UTC)
T = START + timedelta(days=600)
H = 90


def synthetic_purchases(n_users: int = 1500, seed: int = 1) -> pd.DataFrame:
    """Purchase lines of customers with a personal rate who may stop ("die") at a random day.

    Columns: user_id, ts (UTC), amount_cents. Day 0 is START, history runs 700 days.
    """
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(1, n_users + 1):
        rate = rng.gamma(1.0, 1 / 30)
        death = rng.uniform(0, 700) if rng.random() < 0.7 else math.inf
        day = rng.uniform(0, 200)
        while day < min(death, 700):
            rows.append((user, START + timedelta(days=float(day)), int(rng.integers(1000, 20000))))
            day += rng.exponential(1 / rate)
    return pd.DataFrame(rows, columns=["user_id", "ts", "amount_cents"])


def labelled(purchases: pd.DataFrame, at: datetime) -> tuple[pd.DataFrame, pd.Series]:
    summary = purchase_summary(purchases, at, lookback_days=365, horizon_days=H)
    return summary, churn_labels(purchases, summary.index, at, H)


@pytest.fixture(scope="module")
def purchases() -> pd.DataFrame:
    return synthetic_purchases()


@pytest.fixture(scope="module")
def fitted(purchases: pd.DataFrame):  # type: ignore[no-untyped-def]
    snapshots = [labelled(purchases, T - timedelta(days=H * (j + 1))) for j in range(3)]
    return fit_churn_model(
        snapshots[1:], horizon_days=H, depth_candidates=(3, 4, 5), leaf_candidates=(20, 50)
    ), snapshots[0]


def test_a_planted_future_purchase_changes_no_feature_at_t(purchases: pd.DataFrame) -> None:
    user = int(purchases["user_id"].iloc[0])
    future = pd.DataFrame(
        {"user_id": [user, user], "ts": [T, T + timedelta(days=3)], "amount_cents": [999, 5]}
    )
    planted = pd.concat([purchases, future], ignore_index=True)
    pd.testing.assert_frame_equal(
        purchase_summary(purchases, T, lookback_days=365),
        purchase_summary(planted, T, lookback_days=365),
    )
    assert customers_at(purchases, T, 365).equals(customers_at(planted, T, 365))


def test_label_window_is_open_at_t_and_closed_at_the_horizon() -> None:
    customers = pd.Index([1, 2, 3, 4], name="user_id")
    purchases = pd.DataFrame(
        {
            "user_id": [1, 2, 3, 4],
            "ts": [T, T + timedelta(seconds=1), T + timedelta(days=H),
                   T + timedelta(days=H, seconds=1)],
        }
    )
    labels = churn_labels(purchases, customers, T, H)
    assert labels.to_dict() == {1: 1, 2: 0, 3: 0, 4: 1}


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(1, 5), st.integers(-400 * 1440, 200 * 1440)), max_size=40
    ),
    st.integers(7, 120),
)
def test_labels_and_customers_agree_with_a_direct_count(
    events: list[tuple[int, int]], horizon: int
) -> None:
    purchases = pd.DataFrame(
        {"user_id": [u for u, _ in events], "ts": [T + timedelta(minutes=m) for _, m in events]},
        columns=["user_id", "ts"],
    ).astype({"user_id": "int64"})
    if purchases.empty:
        purchases["ts"] = pd.to_datetime(purchases["ts"], utc=True)
    customers = customers_at(purchases, T, 365)
    expected_customers = sorted({u for u, m in events if -365 * 1440 <= m < 0})
    assert list(customers) == expected_customers
    labels = churn_labels(purchases, customers, T, horizon)
    for user in customers:
        bought = any(u == user and 0 < m <= horizon * 1440 for u, m in events)
        assert labels[user] == (0 if bought else 1)


def test_orders_sharing_an_order_id_count_once() -> None:
    lines = pd.DataFrame(
        {
            "user_id": [1, 1, 1],
            "ts": [T - timedelta(days=10), T - timedelta(days=10), T - timedelta(days=40)],
            "order_id": ["A", "A", None],
            "amount_cents": [100, 250, 1000],
        }
    )
    row = purchase_summary(lines, T).loc[1]
    assert row["orders_total"] == 2
    assert row["spend_365d_cents"] == 1350
    assert row["days_since_last_purchase"] == pytest.approx(10)
    assert row["days_since_first_purchase"] == pytest.approx(40)


def test_same_data_gives_the_same_tree(purchases: pd.DataFrame, fitted) -> None:  # type: ignore[no-untyped-def]
    result, (summary, _) = fitted
    snapshots = [labelled(purchases, T - timedelta(days=H * (j + 1))) for j in range(1, 3)]
    again = fit_churn_model(
        snapshots, horizon_days=H, depth_candidates=(3, 4, 5), leaf_candidates=(20, 50)
    )
    assert again.params == result.params
    first, second = result.pipeline["tree"].tree_.tree_, again.pipeline["tree"].tree_.tree_
    assert np.array_equal(first.feature, second.feature)
    assert np.array_equal(first.threshold, second.threshold)
    pd.testing.assert_series_equal(
        predict_risk(result.pipeline, summary), predict_risk(again.pipeline, summary)
    )


def test_planted_signal_is_found_and_beats_recency_alone(fitted) -> None:  # type: ignore[no-untyped-def]
    result, (summary, labels) = fitted
    risk = predict_risk(result.pipeline, summary)
    assert risk.between(0, 1).all()
    tree = churn_metrics(labels, risk)
    train_x = pd.concat([labelled(synthetic_purchases(), T - timedelta(days=2 * H))[0]])
    train_y = churn_labels(synthetic_purchases(), train_x.index, T - timedelta(days=2 * H), H)
    recency = churn_metrics(
        labels, RecencyBaseline().fit(train_x, train_y).predict_proba(summary)[:, 1]
    )
    assert tree["roc_auc"] > 0.8
    assert tree["roc_auc"] > recency["roc_auc"]
    assert tree["brier"] < 0.2


def test_validation_keeps_the_simplest_tree_within_one_standard_error_of_the_best(
    fitted, purchases: pd.DataFrame  # type: ignore[no-untyped-def]
) -> None:
    result, _ = fitted
    table = result.validation
    assert len(table) == 6
    # Judged on the newest training snapshot (the validation's labels).
    newest_labels = labelled(purchases, T - timedelta(days=H * 2))[1]
    margin = auc_standard_error(table["roc_auc"].max(), newest_labels)
    assert 0 < margin < 0.05
    # Rows run from the simplest tree; the first within the margin is the one kept.
    within = table[table["roc_auc"] >= table["roc_auc"].max() - margin]
    first = within.iloc[0]
    assert (result.params["max_depth"], result.params["min_samples_leaf"]) == (
        first["max_depth"], first["min_samples_leaf"]
    )


def test_the_auc_standard_error_is_hanley_and_mcneils() -> None:
    labels = pd.Series([1] * 100 + [0] * 100)
    # At AUC 0.5 with 100 of each: sqrt((0.25 + 99 * (1/3 - 1/4) * 2) / 100**2).
    expected = math.sqrt((0.25 + 99 * (1 / 3 - 1 / 4) * 2) / 100**2)
    assert auc_standard_error(0.5, labels) == pytest.approx(expected)
    # It shrinks with more labels and vanishes with one class only.
    assert auc_standard_error(0.8, pd.concat([labels] * 4)) < auc_standard_error(0.8, labels)
    assert auc_standard_error(0.8, pd.Series([0, 0, 0])) == 0.0


def _walk_path(pipeline, summary: pd.DataFrame) -> list[list[tuple[str, str, float]]]:  # type: ignore[no-untyped-def]
    """Each row's raw path from sklearn's decision_path: (input, '<=' or '>', threshold)."""
    inputs = pipeline["inputs"].transform(summary)
    tree = pipeline["tree"].tree_
    indicator = tree.decision_path(inputs)
    structure = tree.tree_
    out = []
    for row in range(len(inputs)):
        steps = []
        for node in indicator.indices[indicator.indptr[row] : indicator.indptr[row + 1]]:
            if structure.children_left[node] < 0:
                continue
            name = inputs.columns[structure.feature[node]]
            threshold = structure.threshold[node]
            side = "<=" if inputs.iat[row, structure.feature[node]] <= threshold else ">"
            steps.append((name, side, float(threshold)))
        out.append(steps)
    return out


def test_each_reason_states_the_bounds_of_the_users_decision_path(fitted) -> None:  # type: ignore[no-untyped-def]
    result, (summary, _) = fitted
    sample = summary.iloc[:300]
    reasons = explain(result.pipeline, sample)
    conditions = path_conditions(result.pipeline, sample)
    for steps, merged, reason in zip(_walk_path(result.pipeline, sample), conditions, reasons,
                                     strict=True):
        expected: dict[str, list[float | None]] = {}
        for name, side, threshold in steps:
            lo, hi = expected.setdefault(name, [None, None])
            if side == "<=":
                expected[name][1] = threshold if hi is None else min(hi, threshold)
            else:
                expected[name][0] = threshold if lo is None else max(lo, threshold)
        assert [c.feature for c in merged] == list(expected)
        clauses = reason.split("; ")
        assert len(clauses) == len(merged)
        for condition, clause in zip(merged, clauses, strict=True):
            assert [condition.lower, condition.upper] == expected[condition.feature]
            if condition.lower is not None:
                assert condition.value > condition.lower
            if condition.upper is not None:
                assert condition.value <= condition.upper
            bound = _bound_text(INPUTS[condition.feature], condition.lower, condition.upper, "en")
            assert clause.endswith(f"({bound})")


def test_count_and_day_bounds_read_as_whole_numbers() -> None:
    orders = INPUTS["orders_90d"]
    days = INPUTS["days_since_last_purchase"]
    assert _bound_text(orders, None, 1.5, "en") == "at most 1"
    assert _bound_text(days, 60.5, None, "en") == "over 60"
    assert _bound_text(orders, 1.5, 4.5, "en") == "2 to 4"
    assert _bound_text(days, 60.5, None, "zh-CN") == "超过 60"


def test_reason_reads_like_a_marketer_would_say_it(fitted) -> None:  # type: ignore[no-untyped-def]
    result, (summary, _) = fitted
    locales = pd.Series(["zh-CN", "en", None], index=summary.index[:3])
    reasons = explain(result.pipeline, summary.iloc[:3], locales)
    assert "天" in reasons.iloc[0] and "；" in reasons.iloc[0]
    assert reasons.iloc[1].isascii() and reasons.iloc[2].isascii()
    condition = Condition("orders_90d", None, 1.5, 1.0)
    from campaign.churn.reasons import describe_condition

    assert describe_condition(condition, "en", 90) == "1 order in the last 90 days (at most 1)"


def test_tiers_take_the_highest_threshold_reached() -> None:
    risk = pd.Series([0.05, 0.4, 0.69, 0.7, 1.0])
    tiers = assign_tiers(risk, {"high": 0.7, "medium": 0.4, "low": 0.0})
    assert tiers.tolist() == ["low", "medium", "medium", "high", "high"]


def test_lift_counts_ties_at_the_cut_fractionally() -> None:
    y = np.array([1, 0] * 10)
    assert lift_at(y, np.ones(20)) == pytest.approx(1.0)
    perfect = np.array([1.0] * 2 + [0.0] * 18)
    assert lift_at(np.array([1, 1] + [0] * 18), perfect) == pytest.approx(10.0)


def _leaf_and_risk(pipeline, summary: pd.DataFrame) -> pd.DataFrame:  # type: ignore[no-untyped-def]
    inputs = pipeline["inputs"].transform(summary)
    tree = pipeline["tree"]
    return pd.DataFrame(
        {
            "leaf": tree.tree_.apply(inputs),
            "rate": tree.leaf_risk(inputs),
            "risk": predict_risk(pipeline, summary).to_numpy(),
            "expected": inputs["expected_orders"].to_numpy(),
            "score": tree.tie_score(inputs),
        }
    )


def test_refined_risk_keeps_the_order_of_the_leaves_and_stays_a_probability(fitted) -> None:  # type: ignore[no-untyped-def]
    result, (summary, _) = fitted
    frame = _leaf_and_risk(result.pipeline, summary)
    assert frame["risk"].between(0, 1).all()
    assert ((frame["risk"] - frame["rate"]).abs() <= MAX_TIE_OFFSET + 1e-12).all()
    by_rate = frame.groupby("rate")["risk"].agg(["min", "max"]).sort_index()
    assert len(by_rate) > 3
    # Every customer of a riskier leaf ranks above every customer of a safer one.
    rates = by_rate.index.to_numpy()
    for lower, upper in zip(range(len(rates) - 1), range(1, len(rates)), strict=True):
        if rates[upper] - rates[lower] > SAME_RATE:
            assert by_rate["max"].iloc[lower] < by_rate["min"].iloc[upper]


def test_within_a_leaf_a_higher_tie_score_means_higher_risk(fitted) -> None:  # type: ignore[no-untyped-def]
    result, (summary, _) = fitted
    frame = _leaf_and_risk(result.pipeline, summary)
    ties_broken = 0
    for _, leaf in frame.groupby("leaf"):
        leaf = leaf.sort_values("score", kind="stable")
        assert leaf["risk"].is_monotonic_increasing
        if 0 < leaf["rate"].iloc[0] < 1 and leaf["score"].nunique() > 1:
            ties_broken += 1
            assert leaf["risk"].nunique() > 1
    assert ties_broken > 0
    # The refinement ranks better than the bare leaf rates on this forward split.
    _, (summary, labels) = fitted
    assert churn_metrics(labels, frame["risk"])["roc_auc"] > churn_metrics(
        labels, frame["rate"]
    )["roc_auc"]


def test_a_tree_ordering_by_expected_orders_puts_fewer_orders_higher(fitted) -> None:  # type: ignore[no-untyped-def]
    result, (summary, labels) = fitted
    pipeline = pickle.loads(pickle.dumps(result.pipeline))
    inputs = pipeline["inputs"].transform(summary)
    tree = ChurnTree(
        result.params["max_depth"], result.params["min_samples_leaf"], tie_break="expected_orders"
    ).fit(inputs, labels)
    risk = tree.predict_proba(inputs)[:, 1]
    frame = pd.DataFrame({"leaf": tree.tree_.apply(inputs), "risk": risk,
                          "expected": inputs["expected_orders"].to_numpy()})
    for _, leaf in frame.groupby("leaf"):
        assert leaf.sort_values("expected", kind="stable")["risk"].is_monotonic_decreasing


def test_reasons_do_not_depend_on_the_refinement(fitted) -> None:  # type: ignore[no-untyped-def]
    result, (summary, _) = fitted
    sample = summary.iloc[:200]
    plain = pickle.loads(pickle.dumps(result.pipeline))
    plain["tree"].tie_break = None
    pd.testing.assert_series_equal(explain(plain, sample), explain(result.pipeline, sample))
    inputs = plain["inputs"].transform(sample)
    assert np.array_equal(plain.predict_proba(sample)[:, 1], plain["tree"].leaf_risk(inputs))


def test_a_tree_pickled_before_the_refinement_scores_its_plain_leaf_rates(fitted) -> None:  # type: ignore[no-untyped-def]
    result, (summary, _) = fitted
    old = pickle.loads(pickle.dumps(result.pipeline))
    for name in ("tie_break", "rate_levels_", "tie_centre_", "tie_model_"):
        del old["tree"].__dict__[name]
    inputs = old["inputs"].transform(summary)
    assert np.array_equal(predict_risk(old, summary).to_numpy(), old["tree"].leaf_risk(inputs))


def test_a_tree_pickled_with_the_fixed_tie_width_keeps_it(fitted) -> None:  # type: ignore[no-untyped-def]
    result, (summary, _) = fitted
    old = pickle.loads(pickle.dumps(result.pipeline))
    for name in ("rate_levels_", "tie_centre_", "tie_model_"):
        del old["tree"].__dict__[name]
    old["tree"].tie_width_, old["tree"].tie_break = 0.0005, "expected_orders"
    inputs = old["inputs"].transform(summary)
    rate = old["tree"].leaf_risk(inputs)
    expected = inputs["expected_orders"].to_numpy()
    width = np.minimum(0.0005, np.minimum(rate, 1 - rate))
    assert np.allclose(
        predict_risk(old, summary).to_numpy(), rate + width * (1 - expected) / (1 + expected)
    )


@settings(max_examples=40, deadline=None)
@given(
    st.integers(0, 10_000),
    st.integers(40, 400),
    st.sampled_from([1, 2, 3, 5]),
    st.sampled_from([1, 5, 20]),
)
def test_refinement_never_reorders_leaves_nor_leaves_zero_to_one(
    seed: int, rows: int, depth: int, leaf: int
) -> None:
    rng = np.random.default_rng(seed)
    inputs = pd.DataFrame(
        {
            "a": rng.integers(0, 5, rows).astype(float),
            "expected_orders": np.round(rng.exponential(1.0, rows), 3),
        }
    )
    labels = rng.integers(0, 2, rows)
    if labels.min() == labels.max():
        labels[0] = 1 - labels[0]
    tree = ChurnTree(depth, leaf).fit(inputs, labels)
    risk = tree.predict_proba(inputs)[:, 1]
    rate = tree.leaf_risk(inputs)
    distance = np.abs(rate[:, None] - tree.leaf_rates()[None, :])
    assert (distance.min(axis=1) < 1e-12).all() and (distance.min(axis=0) < 1e-12).all()
    assert ((risk >= 0) & (risk <= 1)).all()
    assert (np.abs(risk - rate) <= MAX_TIE_OFFSET + 1e-12).all()
    assert (risk[rate == 0] == 0).all() and (risk[rate == 1] == 1).all()
    riskier = rate[:, None] > rate[None, :] + SAME_RATE
    assert (risk[:, None] > risk[None, :])[riskier].all()


def test_bgnbd_baseline_ranks_by_expected_orders_and_the_tree_is_as_good(fitted) -> None:  # type: ignore[no-untyped-def]
    result, (summary, labels) = fitted
    purchases = synthetic_purchases()
    older = [labelled(purchases, T - timedelta(days=H * (j + 2))) for j in range(2)]
    train_x = pd.concat([x for x, _ in older])
    train_y = pd.concat([y for _, y in older])
    baseline = BGNBDBaseline(H).fit(train_x, train_y)
    risk = baseline.predict_proba(summary)[:, 1]
    expected = baseline.expected(summary)
    assert ((risk >= 0) & (risk <= 1)).all()
    order = np.argsort(expected, kind="stable")
    assert np.all(np.diff(risk[order]) <= 1e-12)  # more expected orders, lower risk
    bgnbd = churn_metrics(labels, risk)["roc_auc"]
    assert bgnbd == pytest.approx(roc_auc_score(labels, -expected))
    assert bgnbd > 0.8
    # The goal of the churn model: the tree is at least as good as BG/NBD.
    assert churn_metrics(labels, predict_risk(result.pipeline, summary))["roc_auc"] >= bgnbd
