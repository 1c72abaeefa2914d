"""The splits, fixed here before any tuning, and how a shop is cut at one of them.

Forward split (T, h): the product sees the events before T (only those are imported);
the targets are what happened in (T, T + h]. Leave-last-N (MovieLens): each user's
last N ratings (by time, then product id) are the targets, the rest is imported.

The two earliest splits of every dataset are ``tuning`` (later work may choose its
settings on them); the others are ``report``. A tuning split's targets never overlap a
report split's: forward tuning windows end by the first report T (tests check it), and
the MovieLens tuning splits never see each user's last 20 ratings, which hold every
report split's targets.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal

import pandas as pd

from .datasets import INSTACART_LAST_DAY, MINI_START, Shop

Role = Literal["tuning", "report"]
Task = Literal["recommend", "churn"]


@dataclass(frozen=True)
class Split:
    """One split: forward (``as_of`` + ``horizon_days``) or leave-last-N."""

    role: Role
    as_of: datetime | None = None
    horizon_days: int | None = None
    leave_last: int | None = None
    # Leave-last only: each user's newest ``drop_last`` ratings are removed first.
    drop_last: int = 0

    @property
    def name(self) -> str:
        """``2017-10-02+28d`` or ``last-10`` / ``drop20-last-10``."""
        if self.leave_last is not None:
            prefix = f"drop{self.drop_last}-" if self.drop_last else ""
            return f"{prefix}last-{self.leave_last}"
        assert self.as_of is not None
        return f"{self.as_of:%Y-%m-%d}+{self.horizon_days}d"

    @property
    def end(self) -> datetime | None:
        """T + h for forward splits."""
        if self.as_of is None or self.horizon_days is None:
            return None
        return self.as_of + timedelta(days=self.horizon_days)


def _day(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def _forward(role: Role, day: str | datetime, horizon: int) -> Split:
    at = _day(day) if isinstance(day, str) else day
    return Split(role, as_of=at, horizon_days=horizon)


_IC = INSTACART_LAST_DAY + timedelta(days=1)  # the day after every user's last order

SPLITS: dict[tuple[str, Task], tuple[Split, ...]] = {
    # Complete Journey baskets: 2017-01-01 .. 2018-01-01 04:01.
    ("cj", "recommend"): (
        _forward("tuning", "2017-08-07", 28),
        _forward("tuning", "2017-09-04", 28),
        _forward("report", "2017-10-02", 28),
        _forward("report", "2017-10-30", 14),
        _forward("report", "2017-11-13", 42),
        _forward("report", "2017-12-04", 28),
    ),
    # Instacart: every user's last order falls on INSTACART_LAST_DAY.
    ("instacart", "recommend"): (
        _forward("tuning", _IC - timedelta(days=120), 30),
        _forward("tuning", _IC - timedelta(days=90), 30),
        _forward("report", _IC - timedelta(days=60), 30),
        _forward("report", _IC - timedelta(days=45), 45),
        _forward("report", _IC - timedelta(days=30), 30),
        _forward("report", _IC - timedelta(days=14), 14),
    ),
    ("movielens", "recommend"): (
        Split("tuning", leave_last=10, drop_last=20),
        Split("tuning", leave_last=5, drop_last=20),
        Split("report", leave_last=5),
        Split("report", leave_last=10),  # the headline
        Split("report", leave_last=15),
        Split("report", leave_last=20),
    ),
    # CDNOW: purchases 1997-01-01 .. 1998-06-30 (a cohort that first bought in Q1 1997).
    ("cdnow", "churn"): (
        _forward("tuning", "1997-07-01", 90),
        _forward("tuning", "1997-08-01", 60),
        _forward("report", "1997-10-01", 90),
        _forward("report", "1997-12-01", 90),
        _forward("report", "1998-02-01", 90),
        _forward("report", "1998-03-01", 120),
        _forward("report", "1998-04-01", 90),
    ),
    # Complete Journey household-days; the product wants 180 days of history first.
    ("cj-days", "churn"): (
        _forward("tuning", "2017-07-01", 60),
        _forward("tuning", "2017-07-16", 45),
        _forward("report", "2017-09-01", 90),
        _forward("report", "2017-09-16", 90),
        _forward("report", "2017-10-02", 90),
        _forward("report", "2017-11-01", 60),
    ),
    # The generated miniature shop (smoke test): 240 days from MINI_START.
    ("mini", "recommend"): (
        _forward("tuning", MINI_START + timedelta(days=150), 30),
        _forward("report", MINI_START + timedelta(days=180), 30),
    ),
    ("mini", "churn"): (
        _forward("tuning", MINI_START + timedelta(days=120), 60),
        _forward("report", MINI_START + timedelta(days=180), 60),
    ),
}

# The one MovieLens split the goals are stated on.
HEADLINE = {("movielens", "recommend"): "last-10"}


def tasks_of(dataset: str) -> list[Task]:
    """The tasks a dataset has splits for."""
    return [task for (name, task) in SPLITS if name == dataset]


@dataclass(frozen=True)
class Cut:
    """A shop cut at one split: what the product may see and what it is judged on."""

    split: Split
    train: pd.DataFrame  # events the product sees (imported)
    future: pd.DataFrame  # target events: (T, T + h] or the held-out ratings
    # The time the product is asked to act at: T, or (leave-last) just after the
    # newest imported event.
    as_of: datetime


def cut(shop: Shop, split: Split) -> Cut:
    """Split a shop's events without letting any target event into ``train``."""
    events = shop.events
    if split.leave_last is None:
        assert split.as_of is not None and split.end is not None
        at = pd.Timestamp(split.as_of)
        train = events.loc[events["ts"] < at]
        future = events.loc[(events["ts"] > at) & (events["ts"] <= pd.Timestamp(split.end))]
        return Cut(split, train.reset_index(drop=True), future.reset_index(drop=True), split.as_of)
    ordered = events.sort_values(["user_id", "ts", "product_id"], kind="stable")
    back = ordered.groupby("user_id").cumcount(ascending=False)  # 0 = the user's newest
    kept = ordered.loc[back >= split.drop_last]
    back = back.loc[kept.index] - split.drop_last
    future = kept.loc[back < split.leave_last]
    train = kept.loc[back >= split.leave_last].sort_values("ts", kind="stable")
    newest = train["ts"].max().to_pydatetime()
    return Cut(
        split,
        train.reset_index(drop=True),
        future.reset_index(drop=True),
        newest + timedelta(seconds=1),
    )
