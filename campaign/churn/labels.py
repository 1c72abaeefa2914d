"""Churn labels: who bought before T and did not buy again in (T, T + horizon].

Pure: frames in, frames out. The database side (a GROUP BY over purchase events in
the window) lives in :mod:`campaign.churn.data`; these functions are its reference and
what the tests and the real-data benchmark use.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pandas as pd

LABEL = "churned"


def customers_at(purchases: pd.DataFrame, as_of: datetime, lookback_days: int) -> pd.Index:
    """Users with at least one purchase in ``[as_of - lookback_days, as_of)``.

    ``purchases`` has columns ``user_id`` and ``ts`` (UTC-aware). Returns a sorted
    ``Index`` named ``user_id``.
    """
    start = as_of - timedelta(days=lookback_days)
    window = purchases[(purchases["ts"] >= start) & (purchases["ts"] < as_of)]
    return pd.Index(sorted(window["user_id"].unique()), name="user_id")


def churn_labels(
    purchases: pd.DataFrame, customers: pd.Index, as_of: datetime, horizon_days: int
) -> pd.Series:
    """1 for each customer with no purchase in ``(as_of, as_of + horizon_days]``, else 0.

    Args:
        purchases: columns ``user_id``, ``ts`` (UTC-aware); other columns are ignored.
        customers: the users to label (see :func:`customers_at`).
        as_of: the snapshot time T; nothing at or before T decides a label.
        horizon_days: label window length in days.

    Returns:
        ``int8`` Series named ``churned`` indexed by ``user_id`` (the customers, in order).
    """
    end = as_of + timedelta(days=horizon_days)
    window = purchases[(purchases["ts"] > as_of) & (purchases["ts"] <= end)]
    bought_again = pd.Index(window["user_id"].unique())
    labels = pd.Series(
        (~customers.isin(bought_again)).astype("int8"), index=customers, name=LABEL
    )
    labels.index.name = "user_id"
    return labels
