"""The readable trees as text rules: one rule per leaf, its bounds as the reasons word
them (money in the shop currency), the leaf's prediction and its training rows."""

from __future__ import annotations

import re
from datetime import timedelta

import numpy as np
import pytest

from campaign.churn.model import fit_churn_model
from campaign.churn.reasons import path_conditions
from campaign.churn.rules import churn_rules, condition
from campaign.uplift.data import FEATURE_COLUMNS
from campaign.uplift.model import UpliftTree
from campaign.uplift.reasons import tree_rules
from tests.test_churn_model import H, T, labelled, synthetic_purchases
from tests.test_uplift_model import planted


@pytest.mark.parametrize(("name", "low", "high", "text"), [
    ("days_since_last_purchase", 90.5, None, "days since last order > 90"),
    ("orders_total", 1.5, 4.5, "orders 2–4"),
    ("orders_total", 1.5, 2.5, "orders 2"),
    ("views_30d", None, 0.5, "product views in 30 days = 0"),
    ("spend_365d", None, 200.0, "spend in 365 days ≤ CN¥200.00"),
    ("expected_orders", 1.5, 2.49, "1.50 < expected orders in the next 90 days ≤ 2.49"),
])
def test_a_condition_reads_as_its_bound(name: str, low: float | None, high: float | None,
                                        text: str) -> None:
    assert condition(name, low, high, horizon_days=90, currency="CNY") == text


def test_the_churn_tree_gives_one_rule_per_leaf_riskiest_first() -> None:
    purchases = synthetic_purchases(800)
    snapshots = [labelled(purchases, T - timedelta(days=H * (j + 1))) for j in range(2)]
    fit = fit_churn_model(snapshots, horizon_days=H, depth_candidates=(3,),
                          leaf_candidates=(30,))
    tree = fit.pipeline.named_steps["tree"]
    rules = churn_rules(fit.pipeline, "CNY")
    assert len(rules) == tree.tree_.get_n_leaves()
    assert sum(r.users for r in rules) == sum(len(s) for s, _ in snapshots)
    assert [r.value for r in rules] == sorted(tree.leaf_rates(), reverse=True)
    assert all(re.fullmatch(r"if .+ → churn \d+% \([\d,]+ users\)", r.text) for r in rules)
    # Each customer's reason names the inputs of exactly one rule's leaf.
    summary = snapshots[0][0]
    paths = {tuple(c.feature for c in path) for path in path_conditions(fit.pipeline, summary)}
    assert len(paths) <= len(rules)


def test_the_uplift_tree_gives_its_leaves_with_their_effect_in_points() -> None:
    train = planted(6000, 3)
    tree = UpliftTree(max_depth=2, min_samples_leaf=300).fit(
        train[list(FEATURE_COLUMNS)], train["y"].to_numpy(), train["treatment"].to_numpy(),
        train["p"].to_numpy())
    rules = tree_rules(tree, "converted", "CNY")
    assert len(rules) == len(tree.leaf_uplift_) and sum(r.users for r in rules) == len(train)
    assert [r.value for r in rules] == sorted(tree.leaf_uplift_.values(), reverse=True)
    assert all(re.fullmatch(r"if .+ → uplift [+-]\d+\.\d pts \([\d,]+ users\)", r.text)
               for r in rules)
    revenue = tree_rules(tree, "revenue", "CNY")
    assert all(" CNY (" in r.text for r in revenue)
    spent = [r for r in rules if "spent" in r.text]
    assert all("CN¥" in r.text for r in spent)
    assert np.isfinite([r.value for r in rules]).all()
