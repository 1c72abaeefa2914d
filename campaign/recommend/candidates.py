"""The recommender's candidates: one interface for every way of ranking a user's items (pure).

A candidate is fitted on a :class:`History` (the shop's events before a time) and then
scores a block of users: a sparse users × items matrix holding, for each user, the
best ``depth`` items it would recommend (excluded cells removed first), each row
scaled so its best item is 1. Blends add such matrices with weights
(:mod:`campaign.recommend.recipe`), the tournament compares them
(:mod:`campaign.recommend.tournament`). Each candidate also names why it picked an
item (:meth:`Candidate.reasons`), so a blend's pick carries the reason of the part
that contributed most.

Candidates: ``replenish`` (buy again on the user's cycle), ``buy_again`` (distinct
orders), ``popular`` (distinct buyers in the last weeks), ``popular_in`` (popular in
the user's categories), ``trending`` (buyers in the last week), ``item_cf``,
``content``, ``hybrid`` (the configured blend of :mod:`campaign.recommend.hybrid`) and,
where its module and torch import, ``sequence``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

import numpy as np
import pandas as pd
from scipy import sparse

from campaign.recommend.feedback import SECONDS_PER_DAY, Feedback, build_feedback
from campaign.recommend.replenish import Orders, Replenishment, buy_again_scores, order_lines
from campaign.recommend.scoring import (
    Neighbourhood,
    keep_top,
    popular_in_categories,
    remove_cells,
    row_max_one,
    same_list,
)


@dataclass(frozen=True)
class History:
    """What the shop knew at ``as_of``: decayed feedback, distinct orders, the catalogue.

    Rows of ``feedback`` and ``orders`` are the same users; columns are the catalogue
    (``feedback.product_ids``), and ``products`` is aligned with it.
    """

    feedback: Feedback
    orders: Orders
    products: pd.DataFrame
    category_codes: np.ndarray
    category_names: np.ndarray
    as_of: datetime

    @property
    def n_items(self) -> int:
        """Catalogue size."""
        return self.feedback.n_items

    def rows_of(self, user_ids: np.ndarray) -> np.ndarray:
        """Row of each internal user id (-1 for a user without history)."""
        return pd.Index(self.feedback.user_ids).get_indexer(np.asarray(user_ids, dtype=np.int64))


def build_history(
    events: pd.DataFrame,
    products: pd.DataFrame,
    as_of: datetime,
    event_weights: Mapping[str, float],
    half_life_days: float,
) -> History:
    """The :class:`History` of the events before ``as_of``.

    Args:
        events: columns ``user_id``, ``product_id``, ``type``, ``ts`` and optionally
            ``quantity`` and ``order_id`` (purchases without one count as their own
            order at their time); events at or after ``as_of`` are ignored.
        products: the catalogue (``product_id`` plus attributes), any order.
    """
    catalogue = products.sort_values("product_id", kind="stable").reset_index(drop=True)
    product_ids = catalogue["product_id"].to_numpy(np.int64)
    feedback = build_feedback(events, product_ids, as_of, event_weights, half_life_days)
    ts = pd.to_datetime(events["ts"], utc=True)
    bought = events.loc[
        (events["type"] == "purchase") & events["product_id"].notna() & (ts < pd.Timestamp(as_of))
    ]
    rows = pd.Index(feedback.user_ids).get_indexer(bought["user_id"].to_numpy(np.int64))
    cols = pd.Index(product_ids).get_indexer(bought["product_id"].to_numpy(np.int64))
    keep = (rows >= 0) & (cols >= 0)
    bought = bought.loc[keep]
    stamps = pd.to_datetime(bought["ts"], utc=True)
    age = (pd.Timestamp(as_of) - stamps).dt.total_seconds().to_numpy(np.float64) / SECONDS_PER_DAY
    if "order_id" in bought:
        keys = bought["order_id"].astype("object").where(bought["order_id"].notna(), None)
        stamp_keys = stamps.astype("int64").astype(str)
        order_keys = np.where(keys.isna(), "t" + stamp_keys, "o" + keys.astype(str)).astype(object)
    else:
        order_keys = stamps.astype("int64").to_numpy()
    orders = order_lines(rows[keep], cols[keep], np.maximum(age, 0.0), order_keys,
                         (feedback.n_users, len(product_ids)))
    categories = catalogue.get("category", pd.Series([None] * len(catalogue)))
    codes, names = pd.factorize(categories.astype("object").where(categories.notna(), None))
    return History(
        feedback=feedback,
        orders=orders,
        products=catalogue,
        category_codes=np.asarray(codes, dtype=np.int64),
        category_names=np.asarray(names, dtype=object),
        as_of=as_of,
    )


class Candidate(Protocol):
    """A way of ranking items for users, fitted on a :class:`History`."""

    name: str
    repeat_only: bool  # scores only items the user bought (nothing for new items)

    def fit(self, history: History) -> Candidate:
        """Learn from the history; returns self."""
        ...

    def scores(
        self,
        user_rows: np.ndarray,
        depth: int,
        exclude: sparse.csr_matrix | None,
        *,
        repeat: bool = True,
    ) -> sparse.csr_matrix:
        """len(user_rows) × items, each row's best ``depth`` items, row max 1.

        ``user_rows`` index the history's users (-1: no history); ``exclude`` holds
        the cells that must not be scored (aligned with ``user_rows``): the user's
        past purchases for new-items lists (``repeat`` false), the ones inside the
        repurchase window otherwise.
        """
        ...

    def reasons(self, user_rows: np.ndarray, cols: np.ndarray) -> list[tuple[str, dict[str, str]]]:
        """The reason kind (a :mod:`campaign.recommend.reasons` phrase) and its values
        for each (user row, item column) pick."""
        ...


class ReplenishCandidate:
    """Buy again on each user's own cycle (:class:`Replenishment`)."""

    repeat_only = True

    def __init__(self, params: Mapping[str, float] | None = None, name: str = "replenish"
                 ) -> None:
        self.name = name
        self.params = dict(params or {})

    def fit(self, history: History) -> ReplenishCandidate:
        """Learn the items' repurchase cycles."""
        self.history_ = history
        self.model_ = Replenishment(**self.params).fit(history.orders)
        return self

    def _score(self, orders: Orders) -> sparse.csr_matrix:
        return self.model_.score(orders)

    def scores(
        self,
        user_rows: np.ndarray,
        depth: int,
        exclude: sparse.csr_matrix | None,
        *,
        repeat: bool = True,
    ) -> sparse.csr_matrix:
        """The user's bought items (none when ``exclude`` removes past purchases)."""
        matrix = self._score(self.history_.orders.take(user_rows))
        return keep_top(remove_cells(matrix, exclude), depth)

    def reasons(self, user_rows: np.ndarray, cols: np.ndarray) -> list[tuple[str, dict[str, str]]]:
        """Always "buy again"."""
        return [("buy_again", {})] * len(cols)


class BuyAgainCandidate(ReplenishCandidate):
    """Plain buy-again: distinct orders, ties by the latest purchase."""

    def __init__(self, name: str = "buy_again") -> None:
        super().__init__(None, name)

    def fit(self, history: History) -> BuyAgainCandidate:
        """Nothing to learn."""
        self.history_ = history
        return self

    def _score(self, orders: Orders) -> sparse.csr_matrix:
        return buy_again_scores(orders)


class PopularCandidate:
    """Distinct buyers in the last ``window_days`` (``popular``, ``trending``), or that
    popularity inside each user's favourite categories (``popular_in``)."""

    repeat_only = False

    def __init__(self, name: str, window_days: float, *, by_category: bool = False) -> None:
        self.name = name
        self.window_days = window_days
        self.by_category = by_category

    def fit(self, history: History) -> PopularCandidate:
        """Count each item's distinct recent buyers (all history when nobody is recent)."""
        self.history_ = history
        orders = history.orders
        recent = orders.days < self.window_days
        if not recent.any():
            recent = np.ones_like(recent)
        pairs = np.unique(orders.rows[recent] * np.int64(orders.shape[1]) + orders.cols[recent])
        counts = np.bincount(pairs % orders.shape[1], minlength=orders.shape[1])
        self.popularity_ = counts.astype(np.float64)
        return self

    def scores(
        self,
        user_rows: np.ndarray,
        depth: int,
        exclude: sparse.csr_matrix | None,
        *,
        repeat: bool = True,
    ) -> sparse.csr_matrix:
        """The same popular list for everyone, or popular in the user's categories."""
        if self.by_category:
            affinity = self._affinity(user_rows)
            matrix = popular_in_categories(
                affinity, self.history_.category_codes, self.popularity_, depth, exclude
            )
        else:
            matrix = same_list(len(user_rows), self.popularity_, depth, exclude)
        return row_max_one(matrix)

    def _affinity(self, user_rows: np.ndarray) -> sparse.csr_matrix:
        """Users × categories: each user's share of order lines per category."""
        orders = self.history_.orders.take(user_rows)
        codes = self.history_.category_codes[orders.cols]
        ok = codes >= 0
        n_categories = max(int(self.history_.category_names.shape[0]), 1)
        counts = sparse.csr_matrix(
            (np.ones(int(ok.sum())), (orders.rows[ok], codes[ok])),
            shape=(len(user_rows), n_categories),
        )
        counts.sum_duplicates()
        return row_max_one(counts)

    def reasons(self, user_rows: np.ndarray, cols: np.ndarray) -> list[tuple[str, dict[str, str]]]:
        """"popular in Y" for a category pick, else "popular now"."""
        if not self.by_category:
            return [("popular", {})] * len(cols)
        out: list[tuple[str, dict[str, str]]] = []
        for col in cols.tolist():
            code = int(self.history_.category_codes[col])
            if code < 0:
                out.append(("popular", {}))
            else:
                out.append(("popular_in", {"category": str(self.history_.category_names[code])}))
        return out


class NeighbourCandidate:
    """Item-item similarity from co-occurrence (``item_cf``) or attributes (``content``).

    The fit is a :class:`campaign.recommend.scoring.Neighbourhood` factory, so the
    neighbour search stays in :mod:`campaign.recommend.itemcf` and
    :mod:`campaign.recommend.content`.
    """

    repeat_only = False

    def __init__(self, name: str, build: Callable[[History], Neighbourhood]) -> None:
        self.name = name
        self.build = build

    def fit(self, history: History) -> NeighbourCandidate:
        """Build the item neighbourhoods."""
        self.history_ = history
        self.neighbourhood_ = self.build(history)
        return self

    def scores(
        self,
        user_rows: np.ndarray,
        depth: int,
        exclude: sparse.csr_matrix | None,
        *,
        repeat: bool = True,
    ) -> sparse.csr_matrix:
        """``profile @ S`` per user, best ``depth`` kept."""
        profile = self.neighbourhood_.profile(self.history_.feedback, user_rows)
        matrix = sparse.csr_matrix(profile @ self.neighbourhood_.similarity)
        return keep_top(remove_cells(row_max_one(matrix), exclude), depth)

    def reasons(self, user_rows: np.ndarray, cols: np.ndarray) -> list[tuple[str, dict[str, str]]]:
        """"because you bought X" (item-CF) or "similar to X you bought" (content)."""
        return self.neighbourhood_.reasons(self.history_, user_rows, cols)
