"""Buy again on the shopper's own rhythm: frequency, recency and replenishment cycles (pure).

For user u and an item j they bought in ``n`` distinct orders, the first at ``first``
and the last ``a`` days before T:

    own interval  I_uj = (last - first) / (n - 1)                    (n >= 2)
    item median   M_j  = median of I over the item's repeat buyers, shrunk toward the
                         shop-wide median with ``item_prior`` buyers' worth of weight
    cycle         c_uj = ((n - 1) I_uj + user_prior M_j) / (n - 1 + user_prior)
    due ratio     r    = (a + lead_days) / c_uj       (1: due at the message, <1: early)
    timing        g(r) = floor + (1 - floor) exp(-(ln r)^2 / (2 width^2))
    score         n * g(r) + recency tie-break

So an item bought every ~14 days and last bought 13 days ago is due now (r near 1)
and outranks a more frequent item bought yesterday, whose next purchase is two weeks
away; an item the shopper used to buy but stopped (r far above 1) fades the same way.
With a wide ``width`` (or ``floor`` 1) the ranking is plain buy-again: distinct
orders, ties by the latest purchase.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse

from campaign.recommend.scoring import row_max_one

# One day in the recency tie-break: far below one order's worth of score.
_TIE = 1e-6


@dataclass(frozen=True)
class Orders:
    """Distinct (user row, item column, order) purchases as of a time.

    Attributes:
        rows, cols: the user's row and the item's column of each order line.
        days: the order's time in days before ``as_of`` (>= 0).
        shape: users × items of the matrices built from it.
    """

    rows: np.ndarray
    cols: np.ndarray
    days: np.ndarray
    shape: tuple[int, int]

    def take(self, user_rows: np.ndarray) -> Orders:
        """The orders of ``user_rows`` (in that order, as rows 0..n-1; -1: nobody)."""
        position = np.full(self.shape[0], -1, dtype=np.int64)
        known = user_rows >= 0
        position[user_rows[known]] = np.flatnonzero(known)
        new_rows = position[self.rows]
        keep = new_rows >= 0
        return Orders(
            new_rows[keep], self.cols[keep], self.days[keep], (len(user_rows), self.shape[1])
        )


def order_lines(
    user_rows: np.ndarray,
    cols: np.ndarray,
    age_days: np.ndarray,
    order_keys: np.ndarray,
    shape: tuple[int, int],
) -> Orders:
    """Purchase events reduced to one line per (user, item, order): a basket holding
    an item twice counts once, as plain buy-again counts distinct orders."""
    frame = pd.DataFrame({"r": user_rows, "c": cols, "o": order_keys, "a": age_days})
    lines = frame.groupby(["r", "c", "o"], sort=False)["a"].min().reset_index()
    return Orders(
        lines["r"].to_numpy(np.int64),
        lines["c"].to_numpy(np.int64),
        lines["a"].to_numpy(np.float64),
        shape,
    )


class Replenishment:
    """Ranks each user's bought items by frequency and where they are in their cycle.

    Parameters:
        horizon_days: the days the list is for: an item whose next purchase falls
            inside them is due.
        width: how fast an item not due within the horizon fades, in cycles.
        lapse_cycles: cycles past due after which an item counts as dropped.
        lapse_rate: how fast a dropped item fades, per cycle beyond ``lapse_cycles``.
        floor: the timing factor's minimum (1: no timing, plain frequency).
        half_life_days: orders older than this count half (None: every order counts 1).
        repeat_share: weight of the item's repeat rate (the share of its buyers who
            bought it again, shrunk toward the shop's): staples before one-offs.
        user_prior: orders' worth of weight of the item's median cycle in a user's own.
        item_prior: buyers' worth of weight of the shop-wide median in an item's median.
        default_cycle_days: the cycle when nobody ever bought anything twice.

    Fitted attributes:
        item_cycle_: shrunk median repurchase interval per item (days).
        repeat_rate_: shrunk share of each item's buyers who bought it twice or more.
        shop_cycle_: shop-wide median interval (days).
    """

    def __init__(
        self,
        horizon_days: float = 28.0,
        width: float = 0.5,
        lapse_cycles: float = 2.0,
        lapse_rate: float = 0.5,
        floor: float = 0.0,
        half_life_days: float | None = 60.0,
        repeat_share: float = 0.5,
        user_prior: float = 2.0,
        item_prior: float = 3.0,
        default_cycle_days: float = 30.0,
    ) -> None:
        self.horizon_days = horizon_days
        self.width = width
        self.lapse_cycles = lapse_cycles
        self.lapse_rate = lapse_rate
        self.floor = floor
        self.half_life_days = half_life_days
        self.repeat_share = repeat_share
        self.user_prior = user_prior
        self.item_prior = item_prior
        self.default_cycle_days = default_cycle_days

    def fit(self, orders: Orders) -> Replenishment:
        """Learn each item's population repurchase interval and repeat rate."""
        stats = _pair_stats(orders)
        repeat = stats.loc[stats["n"] >= 2]
        shop = float(np.median(repeat["interval"])) if len(repeat) else self.default_cycle_days
        self.shop_cycle_ = max(shop, 1.0)
        by_item = repeat.groupby("c")["interval"].agg(["median", "size"])
        cycle = np.full(orders.shape[1], self.shop_cycle_, dtype=np.float64)
        if len(by_item):
            m = by_item["size"].to_numpy(np.float64)
            shrunk = (m * by_item["median"].to_numpy() + self.item_prior * self.shop_cycle_) / (
                m + self.item_prior
            )
            cycle[by_item.index.to_numpy(np.int64)] = shrunk
        self.item_cycle_ = np.maximum(cycle, 1.0)
        cols = stats["c"].to_numpy(np.int64)
        buyers = np.bincount(cols, minlength=orders.shape[1]).astype(np.float64)
        repeaters = np.bincount(repeat["c"].to_numpy(np.int64), minlength=orders.shape[1])
        prior = repeaters.sum() / buyers.sum() if buyers.sum() else 0.0
        self.repeat_rate_ = (repeaters + self.item_prior * prior) / (buyers + self.item_prior)
        return self

    def score(self, orders: Orders) -> sparse.csr_matrix:
        """Users × items scores of the items each user bought (row max 1)."""
        stats = _pair_stats(orders, self.half_life_days)
        if stats.empty:
            return sparse.csr_matrix(orders.shape, dtype=np.float64)
        cols = stats["c"].to_numpy(np.int64)
        n = stats["n"].to_numpy(np.float64)
        own = stats["interval"].to_numpy(np.float64)
        repeats = np.maximum(n - 1.0, 0.0)
        cycle = (repeats * np.nan_to_num(own) + self.user_prior * self.item_cycle_[cols]) / (
            repeats + self.user_prior
        )
        cycle = np.maximum(cycle, 1.0)
        age = stats["last"].to_numpy(np.float64)
        # Cycles still to wait after the horizon ends (0: due within it) ...
        early = np.maximum(cycle - age - self.horizon_days, 0.0) / cycle
        # ... and cycles overdue beyond what a shopper's irregularity explains.
        late = np.maximum(age / cycle - self.lapse_cycles, 0.0)
        timing = np.exp(-np.square(early) / (2.0 * self.width**2) - self.lapse_rate * late)
        timing = self.floor + (1.0 - self.floor) * timing
        frequency = stats["weight"].to_numpy(np.float64)
        if self.repeat_share:
            frequency = frequency * (
                1.0 - self.repeat_share + self.repeat_share * self.repeat_rate_[cols]
            )
        value = frequency * timing + _TIE / (1.0 + age)
        matrix = sparse.csr_matrix(
            (value, (stats["r"].to_numpy(np.int64), cols)), shape=orders.shape
        )
        return row_max_one(matrix)


def buy_again_scores(orders: Orders) -> sparse.csr_matrix:
    """Plain buy-again: distinct orders, ties by the latest purchase (row max 1)."""
    stats = _pair_stats(orders)
    value = stats["n"].to_numpy(np.float64) + _TIE / (1.0 + stats["last"].to_numpy(np.float64))
    matrix = sparse.csr_matrix(
        (value, (stats["r"].to_numpy(np.int64), stats["c"].to_numpy(np.int64))),
        shape=orders.shape,
    )
    return row_max_one(matrix)


def _pair_stats(orders: Orders, half_life_days: float | None = None) -> pd.DataFrame:
    """Per (user, item): ``n`` distinct orders, ``weight`` (their count, each order
    halved every ``half_life_days`` when given), ``last`` and ``first`` (days before T)
    and the mean ``interval`` between orders (NaN for a single order)."""
    weight = (
        np.ones(orders.days.size)
        if half_life_days is None
        else np.power(0.5, orders.days / half_life_days)
    )
    frame = pd.DataFrame({"r": orders.rows, "c": orders.cols, "a": orders.days, "w": weight})
    stats = frame.groupby(["r", "c"], sort=True).agg(
        n=("a", "size"), weight=("w", "sum"), last=("a", "min"), first=("a", "max")
    )
    stats = stats.reset_index()
    spread = (stats["first"] - stats["last"]).to_numpy(np.float64)
    n = stats["n"].to_numpy(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        stats["interval"] = np.where(n >= 2, spread / np.maximum(n - 1.0, 1.0), np.nan)
    return stats
