"""Implicit feedback as sparse matrices: event weights and time decay as of T (pure).

Every scorer of the recommender reads the same :class:`Feedback`: a users × products
matrix of decayed, weighted interactions plus the purchase history needed by the
buy-again scorer and the repurchase filter. Rows follow ``user_ids``, columns follow
``product_ids`` (the catalogue order of the products frame).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
from scipy import sparse

SECONDS_PER_DAY = 86_400.0


@dataclass(frozen=True)
class Feedback:
    """Decayed implicit feedback as of ``as_of``.

    Attributes:
        user_ids: internal user ids, one per row (sorted, unique).
        product_ids: internal product ids, one per column (catalogue order).
        interactions: CSR float32, sum over events of ``weight[type] * 0.5 ** (age / half_life)``.
        purchases: CSR float32, decayed purchase quantities (buy-again strength).
        purchase_counts: CSR float32, number of purchase events (undecayed).
        days_since_purchase: CSR float32, days since the last purchase of the product
            plus one (so that a purchase today is stored, not an implicit zero).
        as_of: the time the decay was computed at (UTC).
    """

    user_ids: np.ndarray
    product_ids: np.ndarray
    interactions: sparse.csr_matrix
    purchases: sparse.csr_matrix
    purchase_counts: sparse.csr_matrix
    days_since_purchase: sparse.csr_matrix
    as_of: datetime

    @property
    def n_users(self) -> int:
        """Number of rows."""
        return int(self.user_ids.shape[0])

    @property
    def n_items(self) -> int:
        """Number of columns."""
        return int(self.product_ids.shape[0])

    def slice(self, start: int, stop: int) -> Feedback:
        """Rows ``start:stop`` (a block of users for batched scoring)."""
        return Feedback(
            user_ids=self.user_ids[start:stop],
            product_ids=self.product_ids,
            interactions=self.interactions[start:stop],
            purchases=self.purchases[start:stop],
            purchase_counts=self.purchase_counts[start:stop],
            days_since_purchase=self.days_since_purchase[start:stop],
            as_of=self.as_of,
        )

    def rows_for(self, user_ids: Sequence[int] | np.ndarray) -> Feedback:
        """The feedback of ``user_ids`` in that order; unknown users get empty rows."""
        wanted = np.asarray(user_ids, dtype=np.int64)
        position = pd.Index(self.user_ids).get_indexer(wanted)
        known = position >= 0
        # A selector matrix maps known users to their rows and leaves cold users empty.
        selector = sparse.csr_matrix(
            (
                np.ones(int(known.sum()), dtype=np.float32),
                (np.flatnonzero(known), position[known]),
            ),
            shape=(wanted.shape[0], self.n_users),
        )
        return Feedback(
            user_ids=wanted,
            product_ids=self.product_ids,
            interactions=_csr(selector @ self.interactions),
            purchases=_csr(selector @ self.purchases),
            purchase_counts=_csr(selector @ self.purchase_counts),
            days_since_purchase=_csr(selector @ self.days_since_purchase),
            as_of=self.as_of,
        )


def _csr(matrix: sparse.spmatrix | sparse.sparray) -> sparse.csr_matrix:
    out = sparse.csr_matrix(matrix, dtype=np.float32)
    out.sum_duplicates()
    out.sort_indices()
    return out


def _age_days(ts: pd.Series, as_of: datetime) -> np.ndarray:
    stamps = pd.to_datetime(ts, utc=True)
    delta = pd.Timestamp(as_of).tz_convert("UTC") - stamps
    return np.maximum(delta.dt.total_seconds().to_numpy(dtype=np.float64), 0.0) / SECONDS_PER_DAY


def build_feedback(
    events: pd.DataFrame,
    product_ids: Sequence[int] | np.ndarray,
    as_of: datetime,
    event_weights: Mapping[str, float],
    half_life_days: float,
) -> Feedback:
    """Turn raw events into decayed sparse matrices.

    Args:
        events: columns ``user_id``, ``product_id``, ``type``, ``ts`` (UTC-aware) and
            optionally ``quantity``; events at or after ``as_of``, without a product,
            of a type with no or zero weight, or of a product outside the catalogue are
            ignored.
        product_ids: the catalogue, in column order.
        as_of: the decay reference time (UTC-aware).
        event_weights: weight per event type (``purchase`` also feeds buy-again).
        half_life_days: an interaction loses half its weight every this many days.

    Returns:
        The :class:`Feedback`, with one row per user that has a usable event.
    """
    catalogue = np.asarray(product_ids, dtype=np.int64)
    frame = events.loc[events["product_id"].notna()]
    if len(frame):
        frame = frame.loc[pd.to_datetime(frame["ts"], utc=True) < pd.Timestamp(as_of)]
    weights = frame["type"].map(dict(event_weights)).astype("float64").fillna(0.0)
    column = pd.Index(catalogue).get_indexer(frame["product_id"].astype("int64"))
    keep = (weights.to_numpy() > 0) & (column >= 0)
    frame = frame.loc[keep]
    column = column[keep]
    weight = weights.to_numpy()[keep]

    user_ids = np.unique(frame["user_id"].to_numpy(dtype=np.int64))
    row = np.searchsorted(user_ids, frame["user_id"].to_numpy(dtype=np.int64))
    age = _age_days(frame["ts"], as_of)
    decay = np.power(0.5, age / half_life_days)
    shape = (user_ids.shape[0], catalogue.shape[0])
    interactions = _csr(sparse.coo_matrix((weight * decay, (row, column)), shape=shape))

    is_purchase = (frame["type"] == "purchase").to_numpy()
    quantity = (
        frame["quantity"].fillna(1).clip(lower=1).to_numpy(dtype=np.float64)
        if "quantity" in frame
        else np.ones(len(frame))
    )
    purchases = _csr(
        sparse.coo_matrix(
            (quantity[is_purchase] * decay[is_purchase], (row[is_purchase], column[is_purchase])),
            shape=shape,
        )
    )
    counts = _csr(
        sparse.coo_matrix(
            (np.ones(int(is_purchase.sum())), (row[is_purchase], column[is_purchase])),
            shape=shape,
        )
    )
    # Days since the last purchase: the minimum age per cell, stored as age + 1.
    last = (
        pd.DataFrame({"r": row[is_purchase], "c": column[is_purchase], "a": age[is_purchase]})
        .groupby(["r", "c"], sort=True)["a"]
        .min()
    )
    days = _csr(
        sparse.coo_matrix(
            (
                last.to_numpy() + 1.0,
                (
                    last.index.get_level_values(0).to_numpy(),
                    last.index.get_level_values(1).to_numpy(),
                ),
            ),
            shape=shape,
        )
    )
    return Feedback(
        user_ids=user_ids,
        product_ids=catalogue,
        interactions=interactions,
        purchases=purchases,
        purchase_counts=counts,
        days_since_purchase=days,
        as_of=as_of,
    )
