"""Pure: a customer's reason, read from the readable tree's decision path.

"the message helps: 4–9 months since last order, spent over 200 (+6 pts)": the verdict
from the predicted uplift and the segment cut-off, the conditions of the tree's leaf
(each feature once, with the tightest bounds along the path), and the effect in
outcome units (points of probability, or money in the shop's currency).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from babel.numbers import get_currency_symbol

from campaign.common.money import minor_digits
from campaign.common.rules import Rule

if TYPE_CHECKING:
    from campaign.uplift.model import UpliftTree

# Beyond this many days a recency bound only separates "never" from "ever"
# (campaign.profile.features.NEVER_DAYS stands for never).
_NEVER_FROM_DAYS = 5_000.0

# feature → (words after the value, kind of value)
FEATURE_TEXT: dict[str, tuple[str, str]] = {
    "days_since_last_purchase": ("since last order", "days"),
    "days_since_last_event": ("since last visit", "days"),
    "tenure_days": ("as a customer", "days"),
    "orders_total": ("orders", "count"),
    "orders_365d": ("orders in the last year", "count"),
    "spend_total_cents": ("spent", "money"),
    "spend_365d_cents": ("spent in the last year", "money"),
    "avg_order_value_cents": ("average order", "money"),
    "events_90d": ("shop events in 90 days", "count"),
    "messages_received": ("of our messages received", "count"),
    "coupon_order_share": ("of orders with a coupon", "share"),
}

Bounds = dict[str, tuple[float | None, float | None]]


def leaf_paths(tree: object, features: list[str]) -> dict[int, Bounds]:
    """For every leaf of a fitted sklearn tree: feature → (lower, upper) along its path
    (``lower < x <= upper``; None where unbounded), features in path order."""
    inner = tree.tree_  # type: ignore[attr-defined]
    out: dict[int, Bounds] = {}
    stack: list[tuple[int, Bounds]] = [(0, {})]
    while stack:
        node, bounds = stack.pop()
        left, right = int(inner.children_left[node]), int(inner.children_right[node])
        if left == right:  # a leaf
            out[node] = bounds
            continue
        name = features[int(inner.feature[node])]
        threshold = float(inner.threshold[node])
        low, high = bounds.get(name, (None, None))
        stack.append((left, {**bounds, name: (low, threshold if high is None
                                               else min(high, threshold))}))
        stack.append((right, {**bounds, name: (threshold if low is None
                                                else max(low, threshold), high)}))
    return out


def _days(value: float) -> str:
    if value >= 60:
        return f"{value / 30.44:.0f} months"
    return f"{value:.0f} days"


def _value(kind: str, value: float, currency: str, symbol: bool = False) -> str:
    if kind == "days":
        return _days(value)
    if kind == "money":
        major = f"{value / 10 ** minor_digits(currency):,.0f}"
        return get_currency_symbol(currency, "en") + major if symbol else major
    if kind == "share":
        return f"{value:.0%}"
    return f"{value:.0f}"


def condition_text(name: str, low: float | None, high: float | None, currency: str,
                   *, symbol: bool = False) -> str:
    """One condition for people: ``4–9 months since last order``, ``spent over 200``
    (``symbol``: money with the currency's sign, ``spent over CN¥200``)."""
    if name not in FEATURE_TEXT:
        return _attribute_text(name, low, high)
    words, kind = FEATURE_TEXT[name]
    if kind == "days":
        if low is not None and low >= _NEVER_FROM_DAYS:
            return f"never ({words})"
        if high is not None and high >= _NEVER_FROM_DAYS:
            high = None
    if kind == "count":
        # Counts are whole: x <= 2.5 means at most 2, x > 2.5 at least 3.
        low_text = None if low is None else f"{np.floor(low) + 1:.0f}"
        high_text = None if high is None else f"{np.floor(high):.0f}"
        if low_text and high_text:
            text = low_text if low_text == high_text else f"{low_text}–{high_text}"
        elif low_text:
            text = f"at least {low_text}"
        else:
            text = f"at most {high_text}"
        return f"{text} {words}"
    show = [None if b is None else _value(kind, b, currency, symbol) for b in (low, high)]
    if show[0] and show[1]:
        if kind == "days" and show[0].endswith(" months") and show[1].endswith(" months"):
            text = f"{show[0].removesuffix(' months')}–{show[1]}"
        else:
            text = f"{show[0]}–{show[1]}"
    elif show[0]:
        text = f"over {show[0]}"
    else:
        text = f"up to {show[1]}"
    return f"{words} {text}" if kind == "money" else f"{text} {words}"


def _attribute_text(name: str, low: float | None, high: float | None) -> str:
    """An imported attribute: ``region is north`` / ``region is not north`` for a
    category's column (0 or 1), ``age over 30`` for a number."""
    if "=" in name:
        attribute, value = name.split("=", 1)
        return f"{attribute} is {value}" if low is not None else f"{attribute} is not {value}"
    if low is not None and high is not None:
        return f"{name} {low:g}–{high:g}"
    return f"{name} over {low:g}" if low is not None else f"{name} up to {high:g}"


def effect_text(uplift: float, outcome: str, currency: str) -> str:
    """``+6 pts`` (converted, visited) or ``+3.20 EUR`` (revenue, major units)."""
    if outcome == "revenue":
        digits = minor_digits(currency)
        return f"{uplift:+,.{digits}f} {currency}"
    return f"{uplift * 100:+.1f} pts"


def verdict(uplift: float, delta: float) -> str:
    """What the message does, by the segment cut-off ``delta``."""
    if uplift > delta:
        return "the message helps"
    if uplift < -delta:
        return "the message puts them off"
    return "the message changes little"


def reason(
    uplift: float, bounds: Bounds, *, outcome: str, delta: float, currency: str
) -> str:
    """The whole reason of one customer (module docstring)."""
    conditions = ", ".join(
        condition_text(name, low, high, currency) for name, (low, high) in bounds.items()
    ) or "every customer"
    return f"{verdict(uplift, delta)}: {conditions} ({effect_text(uplift, outcome, currency)})"


def tree_rules(tree: UpliftTree, outcome: str, currency: str) -> list[Rule]:
    """Every leaf of the readable uplift ``tree`` as a :class:`Rule`, the largest
    uplift first: its conditions as the reasons word them, the leaf's uplift in
    outcome units, and its treated plus held-out training rows."""
    rules = []
    for leaf, bounds in leaf_paths(tree.tree_, tree.features_).items():
        conditions = tuple(condition_text(name, low, high, currency, symbol=True)
                           for name, (low, high) in bounds.items())
        uplift = float(tree.leaf_uplift_[leaf])
        users = tree.leaf_treated_.get(leaf, 0) + tree.leaf_held_out_.get(leaf, 0)
        rules.append(Rule(conditions, f"uplift {effect_text(uplift, outcome, currency)}",
                          uplift, int(users)))
    return sorted(rules, key=lambda rule: -rule.value)
