"""Readable reasons from the tree's decision path: "no order in the last 90 days and
spent under 120" (English or Chinese), one per customer, with the bounds of the leaf.

The inputs and their units are :data:`campaign.churn.model.INPUTS`; a reason names each
input's tightest bound along the customer's path, in the customer's language.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.pipeline import Pipeline

from campaign.churn.model import INPUTS, InputSpec, Kind, Locale
from campaign.common.money import format_money, minor_digits

_BOUNDS = {
    "en": {"over": "over {a}", "at_most": "at most {b}", "between": "{a} to {b}"},
    "zh-CN": {"over": "超过 {a}", "at_most": "不超过 {b}", "between": "{a} 至 {b}"},
}
_SEPARATOR = {"en": "; ", "zh-CN": "；"}


def reason_locale(locale: object) -> Locale:
    """The reason language for a user's locale: Chinese for ``zh*``, else English."""
    if isinstance(locale, str) and locale.lower().startswith("zh"):
        return "zh-CN"
    return "en"



@dataclass(frozen=True)
class Condition:
    """What a decision path says about one input: ``lower < value <= upper``."""

    feature: str
    lower: float | None
    upper: float | None
    value: float


def leaf_bounds(pipeline: Pipeline) -> dict[int, list[tuple[str, float | None, float | None]]]:
    """For every leaf: the inputs its path tests (root first) and their tightest bounds.

    Each entry is ``(input, lower, upper)`` meaning ``lower < value <= upper`` (None:
    unbounded). The path to a leaf is the same for every row that reaches it, so
    reasons are built per leaf, not per row.
    """
    tree = pipeline.named_steps["tree"].tree_.tree_
    names = list(pipeline.named_steps["inputs"].columns_)
    out: dict[int, list[tuple[str, float | None, float | None]]] = {}
    stack: list[tuple[int, dict[str, list[float | None]]]] = [(0, {})]
    while stack:
        node, bounds = stack.pop()
        left, right = tree.children_left[node], tree.children_right[node]
        if left < 0:  # a leaf
            out[node] = [(name, lo, hi) for name, (lo, hi) in bounds.items()]
            continue
        name, threshold = names[tree.feature[node]], float(tree.threshold[node])
        lower, upper = bounds.get(name, [None, None])
        go_left = {k: list(v) for k, v in bounds.items()}
        go_left[name] = [lower, threshold if upper is None else min(upper, threshold)]
        go_right = {k: list(v) for k, v in bounds.items()}
        go_right[name] = [threshold if lower is None else max(lower, threshold), upper]
        stack.append((right, go_right))
        stack.append((left, go_left))
    return out


def path_conditions(pipeline: Pipeline, summary: pd.DataFrame) -> list[list[Condition]]:
    """Each row's decision path, merged per input into its tightest bounds."""
    inputs: pd.DataFrame = pipeline.named_steps["inputs"].transform(summary)
    leaves = pipeline.named_steps["tree"].tree_.apply(inputs)
    per_leaf = leaf_bounds(pipeline)
    return [
        [Condition(name, lo, hi, float(inputs.iat[row, inputs.columns.get_loc(name)]))
         for name, lo, hi in per_leaf[int(leaf)]]
        for row, leaf in enumerate(leaves)
    ]


def _fmt(kind: Kind, number: float, currency: str | None = None) -> str:
    if kind in ("count", "days"):
        return str(int(math.floor(number)))
    if kind == "money":
        if currency:  # the input is in major units of the shop currency
            return format_money(number * 10 ** minor_digits(currency), currency)
        return f"{number:.2f}"
    if kind == "share":
        return f"{number * 100:.0f}%"
    if kind == "ratio":
        return f"{number:.1f}"
    return f"{number:.2f}"


def _bound_text(spec: InputSpec, lower: float | None, upper: float | None, locale: Locale,
                currency: str | None = None) -> str:
    """The path's bound in words: ``over 60``, ``at most 4``, ``2 to 4`` (money in
    ``currency`` when given)."""
    words = _BOUNDS[locale]
    if spec.kind in ("count", "days"):
        # Integer inputs, thresholds at .5: "> 1.5" is "over 1", "<= 4.5" is "at most 4",
        # and "1.5 < v <= 4.5" is "2 to 4".
        a = None if lower is None else str(int(math.floor(lower)))
        between_a = None if lower is None else str(int(math.floor(lower)) + 1)
    else:
        a = between_a = None if lower is None else _fmt(spec.kind, lower, currency)
    b = None if upper is None else _fmt(spec.kind, upper, currency)
    if a is not None and b is not None:
        return words["between"].format(a=between_a, b=b)
    if a is not None:
        return words["over"].format(a=a)
    return words["at_most"].format(b=b)


def describe_condition(condition: Condition, locale: Locale, horizon_days: int) -> str:
    """One clause: the value in words, then the path's bound in brackets."""
    spec = INPUTS[condition.feature]
    template = spec.zh if locale == "zh-CN" else spec.en
    if locale == "en" and spec.en_one and spec.kind in ("count", "days"):
        if int(math.floor(condition.value)) == 1:
            template = spec.en_one
    text = template.format(v=_fmt(spec.kind, condition.value), h=horizon_days)
    bound = _bound_text(spec, condition.lower, condition.upper, locale)
    return f"{text}（{bound}）" if locale == "zh-CN" else f"{text} ({bound})"


def _values_text(spec: InputSpec, values: np.ndarray, locale: Locale, horizon: int) -> list[str]:
    template = spec.zh if locale == "zh-CN" else spec.en
    one = spec.en_one if locale == "en" and spec.kind in ("count", "days") else None
    texts = []
    for value in values:
        chosen = one if one is not None and math.floor(value) == 1 else template
        texts.append(chosen.format(v=_fmt(spec.kind, float(value)), h=horizon))
    return texts


def explain(
    pipeline: Pipeline, summary: pd.DataFrame, locales: pd.Series | None = None
) -> pd.Series:
    """The reason for each row of ``summary``: its decision path in plain words.

    ``locales`` (same index, values like ``"zh-CN"``, ``"en"`` or None) picks the
    language per row (see :func:`reason_locale`); missing means English. Returns
    Series ``reason``. Built per leaf and language, so scoring a million users stays
    cheap.
    """
    if summary.empty:
        return pd.Series([], dtype=object, index=summary.index, name="reason")
    horizon = int(pipeline.named_steps["inputs"].horizon_days)
    inputs: pd.DataFrame = pipeline.named_steps["inputs"].transform(summary)
    leaves = pipeline.named_steps["tree"].tree_.apply(inputs)
    per_leaf = leaf_bounds(pipeline)
    langs = (
        np.array([reason_locale(v) for v in locales.reindex(summary.index).tolist()])
        if locales is not None
        else np.full(len(summary), "en")
    )
    reasons = np.empty(len(summary), dtype=object)
    frame = pd.DataFrame({"leaf": leaves, "lang": langs})
    for (leaf, lang), group in frame.groupby(["leaf", "lang"], sort=False):
        rows = group.index.to_numpy()
        locale: Locale = "zh-CN" if lang == "zh-CN" else "en"
        clauses: list[list[str]] = []
        for name, lower, upper in per_leaf[int(leaf)]:
            spec = INPUTS[name]
            bound = _bound_text(spec, lower, upper, locale)
            wrap = "{}（{}）" if locale == "zh-CN" else "{} ({})"
            values = inputs[name].to_numpy()[rows]
            clauses.append(
                [wrap.format(t, bound) for t in _values_text(spec, values, locale, horizon)]
            )
        if not clauses:
            text = "与店铺整体相同的风险" if locale == "zh-CN" else "same risk as the shop overall"
            reasons[rows] = text
            continue
        reasons[rows] = [_SEPARATOR[locale].join(parts) for parts in zip(*clauses, strict=True)]
    return pd.Series(reasons, index=summary.index, name="reason", dtype=object)
