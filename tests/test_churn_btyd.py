"""The snapshot's own BG/NBD expectation as a tree input, and the within-leaf bands.

Each snapshot (every training snapshot and the scoring one) gets a BG/NBD model fitted
on its own population's history before its as-of time; the tree uses that figure as
``expected_orders`` and orders each leaf's customers by it, within a band wide enough
to survive the scores CSV's four decimals.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from campaign.churn.btyd import expected_orders, fit_bgnbd
from campaign.churn.model import (
    MAX_TIE_OFFSET,
    SAME_RATE,
    fit_churn_model,
    predict_risk,
    snapshot_horizon,
)
from campaign.churn.reasons import explain, path_conditions
from campaign.churn.summary import BTYD_COLUMN, btyd_history, purchase_summary
from tests.test_churn_model import H, T, labelled, synthetic_purchases


@pytest.fixture(scope="module")
def purchases() -> pd.DataFrame:
    return synthetic_purchases()


def test_the_expectation_at_t_ignores_purchases_at_or_after_t(purchases: pd.DataFrame) -> None:
    user = int(purchases["user_id"].iloc[0])
    future = pd.DataFrame(
        {"user_id": [user, user, 99999], "ts": [T, T + timedelta(days=3), T + timedelta(days=1)],
         "amount_cents": [999, 5, 7]}
    )
    planted = pd.concat([purchases, future], ignore_index=True)
    before = purchase_summary(purchases, T, lookback_days=365, horizon_days=H)
    after = purchase_summary(planted, T, lookback_days=365, horizon_days=H)
    assert BTYD_COLUMN in before
    pd.testing.assert_frame_equal(before, after)


def test_the_expectation_is_fitted_on_every_buyer_of_the_snapshot(
    purchases: pd.DataFrame,
) -> None:
    lookback = 120
    summary = purchase_summary(purchases, T, lookback_days=lookback, horizon_days=H)
    everyone = purchase_summary(purchases, T)
    assert len(everyone) > len(summary)  # lapsed buyers are part of the fit
    x, t_x, t = btyd_history(everyone)
    params = fit_bgnbd(x, t_x, t)
    reference = pd.Series(expected_orders(params, x, t_x, t, H), index=everyone.index)
    assert summary[BTYD_COLUMN].to_numpy() == pytest.approx(
        reference.reindex(summary.index).to_numpy()
    )
    # Fewer expected orders the longer a customer has been away (same history otherwise).
    assert (summary[BTYD_COLUMN] >= 0).all()


@pytest.fixture(scope="module")
def fitted(purchases: pd.DataFrame):  # type: ignore[no-untyped-def]
    snapshots = [labelled(purchases, T - timedelta(days=H * (j + 1))) for j in range(3)]
    assert all(BTYD_COLUMN in s for s, _ in snapshots)
    return fit_churn_model(
        snapshots[1:], horizon_days=H, depth_candidates=(3, 4, 5), leaf_candidates=(20, 50)
    ), snapshots[0]


def test_the_tree_reads_each_snapshots_own_expectation(fitted) -> None:  # type: ignore[no-untyped-def]
    result, (summary, _) = fitted
    inputs = result.pipeline.named_steps["inputs"]
    assert inputs.snapshot_btyd_ and snapshot_horizon(result.pipeline) == H
    frame = inputs.transform(summary)
    assert frame["expected_orders"].to_numpy() == pytest.approx(
        np.round(summary[BTYD_COLUMN].to_numpy(), 3)
    )
    # A frame built without a horizon falls back to the parameters fitted on the rows.
    bare = inputs.transform(summary.drop(columns=BTYD_COLUMN))
    x, t_x, t = btyd_history(summary)
    assert bare["expected_orders"].to_numpy() == pytest.approx(
        np.round(expected_orders(inputs.bgnbd_, x, t_x, t, H), 3)
    )


def test_every_customer_still_gets_the_reason_of_their_path(fitted) -> None:  # type: ignore[no-untyped-def]
    result, (summary, _) = fitted
    reasons = explain(result.pipeline, summary)
    assert reasons.notna().all() and (reasons.str.len() > 0).all()
    for reason, conditions in zip(reasons, path_conditions(result.pipeline, summary), strict=True):
        assert reason.count(";") == len(conditions) - 1
    if "expected_orders" in result.params["inputs"]:
        assert reasons.str.contains(f"orders in the next {H} days").any()


def test_bands_survive_four_decimals_and_keep_the_leaves_apart(fitted) -> None:  # type: ignore[no-untyped-def]
    result, (summary, labels) = fitted
    tree = result.pipeline.named_steps["tree"]
    inputs = result.pipeline.named_steps["inputs"].transform(summary)
    rate = tree.leaf_risk(inputs)
    risk = predict_risk(result.pipeline, summary).to_numpy()
    assert (np.abs(risk - rate) <= MAX_TIE_OFFSET + 1e-12).all()
    riskier = rate[:, None] > rate[None, :] + SAME_RATE
    assert (risk[:, None] > risk[None, :])[riskier].all()
    # Rounded like the CSV, the order within the leaves is (nearly) all kept.
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(labels, np.round(risk, 4)) == pytest.approx(
        roc_auc_score(labels, risk), abs=5e-4
    )
    # Centred on the leaf: some customers sit above their leaf's rate, some below.
    inside = (rate > 0) & (rate < 1)
    assert (risk[inside] > rate[inside]).any() and (risk[inside] < rate[inside]).any()
