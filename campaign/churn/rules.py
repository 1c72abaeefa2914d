"""Pure: the churn tree as text rules, one per leaf, riskiest first.

"if days since last order > 90 and spend in 365 days ≤ CN¥200.00 → churn 62%
(1,204 users)": each leaf's path bounds (the same ones the customers' reasons of
:mod:`campaign.churn.reasons` are read from, formatted by the same code), its training
churn rate, and the training rows that reached it.
"""

from __future__ import annotations

import math

from sklearn.pipeline import Pipeline

from campaign.churn.model import INPUTS
from campaign.churn.reasons import _fmt, leaf_bounds
from campaign.common.rules import Rule

# Short names of the inputs for a rule (an input not named here uses its meaning).
RULE_WORDS = {
    "days_since_last_purchase": "days since last order",
    "days_since_first_purchase": "days since first order",
    "orders_total": "orders",
    "orders_30d": "orders in 30 days",
    "orders_90d": "orders in 90 days",
    "orders_365d": "orders in 365 days",
    "spend_365d": "spend in 365 days",
    "usual_gap_days": "usual days between orders",
    "recency_vs_rhythm": "days since last order ÷ usual gap",
    "recent_share": "share of last year's orders in the last 90 days",
    "expected_orders": "expected orders in the next {h} days",
    "days_since_last_event": "days since last visit",
    "views_30d": "product views in 30 days",
    "carts_30d": "add-to-carts in 30 days",
    "abandoned_carts_30d": "products left in the cart in 30 days",
}


def condition(name: str, low: float | None, high: float | None, *, horizon_days: int,
              currency: str | None = None) -> str:
    """One condition of a path: ``days since last order > 90``, ``orders 2–4``,
    ``spend in 365 days ≤ CN¥200.00`` (``low < value <= high``; None: unbounded)."""
    spec = INPUTS[name]
    words = RULE_WORDS.get(name, spec.meaning).format(h=horizon_days)
    whole = spec.kind in ("count", "days")  # thresholds at .5 between whole numbers
    if whole:
        low_text = None if low is None else str(math.floor(low))
        high_text = None if high is None else str(math.floor(high))
        if low is not None and high_text is not None:
            first = str(math.floor(low) + 1)
            return f"{words} {first}" if first == high_text else f"{words} {first}–{high_text}"
    else:
        low_text = None if low is None else _fmt(spec.kind, low, currency)
        high_text = None if high is None else _fmt(spec.kind, high, currency)
        if low_text is not None and high_text is not None:
            return f"{low_text} < {words} ≤ {high_text}"
    if low_text is not None:
        return f"{words} > {low_text}"
    if whole and high_text == "0":
        return f"{words} = 0"
    return f"{words} ≤ {high_text}"


def churn_rules(pipeline: Pipeline, currency: str | None = None) -> list[Rule]:
    """Every leaf of the fitted churn ``pipeline`` as a :class:`Rule`, highest churn
    rate first; money bounds in ``currency`` (the inputs are in its major units)."""
    tree = pipeline.named_steps["tree"]
    horizon = int(pipeline.named_steps["inputs"].horizon_days)
    structure = tree.tree_.tree_
    leaves = [node for node in range(structure.node_count) if structure.children_left[node] < 0]
    rates = dict(zip(leaves, tree.leaf_rates(), strict=True))
    rules = []
    for leaf, bounds in leaf_bounds(pipeline).items():
        conditions = tuple(condition(name, low, high, horizon_days=horizon, currency=currency)
                           for name, low, high in bounds)
        rate = float(rates[leaf])
        rules.append(Rule(conditions, f"churn {rate:.0%}", rate,
                          int(structure.n_node_samples[leaf])))
    return sorted(rules, key=lambda rule: -rule.value)
