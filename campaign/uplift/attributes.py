"""Pure: the shop's own user attributes (``users.csv`` extra columns) as model inputs.

``[uplift] numeric_attributes`` are read as numbers (a missing or unreadable value
takes the training rows' median); ``categorical_attributes`` become one column per
value seen in training (``region=north``, 1 or 0), at most ``max_categories`` per
attribute, the most frequent first. A value training never saw (or a missing one)
sets none of its attribute's columns, so a new region scores like "none of the known
ones" instead of failing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd


def _number(value: Any) -> float:
    try:
        number = float(str(value).strip())
    except (TypeError, ValueError):
        return float("nan")
    return number if np.isfinite(number) else float("nan")


def _category(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


class AttributeEncoder:
    """Fitted state: ``medians_`` (numeric attribute → fill value), ``categories_``
    (categorical attribute → known values), ``columns_`` (output column names)."""

    def __init__(self, numeric: Iterable[str] = (), categorical: Iterable[str] = (),
                 max_categories: int = 20) -> None:
        self.numeric = tuple(numeric)
        self.categorical = tuple(categorical)
        self.max_categories = max_categories

    def fit(self, attributes: Iterable[Mapping[str, Any] | None]) -> AttributeEncoder:
        """Learn the medians and the known values from the training rows' attributes."""
        rows = [row or {} for row in attributes]
        self.medians_: dict[str, float] = {}
        for name in self.numeric:
            values = np.array([_number(row.get(name)) for row in rows], dtype=float)
            finite = values[np.isfinite(values)]
            self.medians_[name] = float(np.median(finite)) if len(finite) else 0.0
        self.categories_: dict[str, list[str]] = {}
        for name in self.categorical:
            counts = Counter(v for row in rows if (v := _category(row.get(name))) is not None)
            ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
            self.categories_[name] = [value for value, _ in ordered[: self.max_categories]]
        self.columns_ = [*self.numeric, *(f"{name}={value}" for name in self.categorical
                                          for value in self.categories_[name])]
        return self

    def transform(self, attributes: Iterable[Mapping[str, Any] | None],
                  index: pd.Index | None = None) -> pd.DataFrame:
        """One row per input, :attr:`columns_` (floats)."""
        rows = [row or {} for row in attributes]
        data: dict[str, np.ndarray] = {}
        for name in self.numeric:
            values = np.array([_number(row.get(name)) for row in rows], dtype=float)
            data[name] = np.where(np.isfinite(values), values, self.medians_[name])
        for name in self.categorical:
            seen = [_category(row.get(name)) for row in rows]
            for value in self.categories_[name]:
                data[f"{name}={value}"] = np.array([v == value for v in seen], dtype=float)
        return pd.DataFrame(data, index=index, columns=self.columns_)
