"""Whom a message changes: the demo shop's hidden responsiveness, and its past A/B test.

Every customer has a hidden draw (uniform, in ``truth.csv``) that, with what the data
shows at the moment a message arrives (days since the last purchase, orders so far),
makes them one of the four classic types (docs/uplift.md):

========================  ===============================================================
type                      who, and what a message does
========================  ===============================================================
``sure thing``            bought in the last 30 days: buys anyway, the message changes
                          nothing
``sleeping dog``          half of those recent buyers with 3+ orders: chased, they are put
                          off (each order they would have placed in the next 14 days is
                          lost with probability ``put_off``)
``persuadable``           80% of those whose last order is 30-120 days old: the message
                          brings one extra purchase with probability ``persuadable_lift``
``lost cause``            the other 20% of those, everyone gone longer, and non-buyers:
                          nothing helps
========================  ===============================================================

Churn risk is not responsiveness: the riskiest customers are mostly lost causes, the
persuadables sit at middling risk. Because the type follows observable features, an
uplift model trained on a randomized test can find it; a churn model cannot.

:func:`past_experiment` is the shop's own earlier A/B test of a reminder e-mail (the
``retain`` campaign), in three waves: customers who existed then, split 50/50, and
whether each one bought within 14 days, with the effect above applied to the treated
half. Pure: numpy and pandas.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

PERSUADABLE, SURE_THING, LOST_CAUSE, SLEEPING_DOG = (
    "persuadable", "sure thing", "lost cause", "sleeping dog")
# The campaign the shop tested before, and that the demo's second run targets by uplift.
EXPERIMENT_CAMPAIGN = "retain"
EXPERIMENT_COLUMNS = ("user_id", "campaign", "group", "assigned_at", "converted")
# The past test ran in three waves, this many days before the as-of date (every window
# closed well before it): one wave of a 3,000-customer shop is too few rows for a tree.
EXPERIMENT_DAYS_BEFORE = (300, 210, 120)
RESPONSE_WINDOW_DAYS = 14


@dataclass(frozen=True)
class PlantedResponse:
    """How each type answers a reminder (see the module docstring)."""

    recent_days: float = 30.0
    lapsing_days: float = 120.0
    sleeping_dog_min_orders: int = 3
    sleeping_dog_share: float = 0.5
    persuadable_share: float = 0.8
    persuadable_lift: float = 0.40
    put_off: float = 0.6


def purchase_state(events: pd.DataFrame, user_ids: pd.Series, at: datetime) -> pd.DataFrame:
    """Each user's days since the last purchase (inf: none) and orders before ``at``.

    ``events``: events CSV rows (type, user_id, ts UTC, order_id). Returns a frame
    indexed like ``user_ids`` with days_since_last_purchase, orders.
    """
    when = pd.Timestamp(at)
    buys = events[events["type"] == "purchase"]
    ts = pd.to_datetime(buys["ts"], utc=True)
    before = buys[ts < when].assign(ts=ts[ts < when])
    last = before.groupby("user_id")["ts"].max()
    orders = before.drop_duplicates(["user_id", "order_id"]).groupby("user_id").size()
    days = (when - last.reindex(user_ids.to_numpy())).dt.total_seconds() / 86_400
    return pd.DataFrame({
        "days_since_last_purchase": days.fillna(np.inf).to_numpy(),
        "orders": orders.reindex(user_ids.to_numpy()).fillna(0).astype(int).to_numpy(),
    }, index=user_ids.index)


def responsiveness_types(state: pd.DataFrame, draw: np.ndarray,
                         planted: PlantedResponse = PlantedResponse()) -> np.ndarray:
    """Pure: each user's type (object array) from :func:`purchase_state` and the hidden
    uniform ``draw``."""
    days = state["days_since_last_purchase"].to_numpy(dtype=float)
    orders = state["orders"].to_numpy()
    recent = days <= planted.recent_days
    lapsing = (days > planted.recent_days) & (days <= planted.lapsing_days)
    out = np.full(len(state), LOST_CAUSE, dtype=object)
    out[recent] = SURE_THING
    out[recent & (orders >= planted.sleeping_dog_min_orders)
        & (draw < planted.sleeping_dog_share)] = SLEEPING_DOG
    out[lapsing & (draw < planted.persuadable_share)] = PERSUADABLE
    return out


def bought_within(events: pd.DataFrame, user_ids: pd.Series, start: datetime,
                  days: float = RESPONSE_WINDOW_DAYS) -> np.ndarray:
    """Pure: whether each user has a purchase in (start, start + days]."""
    buys = events[events["type"] == "purchase"]
    ts = pd.to_datetime(buys["ts"], utc=True)
    begin = pd.Timestamp(start)
    inside = buys[(ts > begin) & (ts <= begin + pd.Timedelta(days=days))]
    return user_ids.isin(set(inside["user_id"])).to_numpy()


def past_experiment(users: pd.DataFrame, events: pd.DataFrame, draw: np.ndarray,
                    rng: np.random.Generator, as_of: datetime,
                    planted: PlantedResponse = PlantedResponse()) -> pd.DataFrame:
    """Pure: the shop's past 50/50 test of the reminder, :data:`EXPERIMENT_COLUMNS`.

    In each wave (:data:`EXPERIMENT_DAYS_BEFORE`) everyone signed up by then takes
    part; ``converted`` is a purchase in the 14 days after assignment, with the planted
    effect on the treated half (a put-off sleeping dog does not buy). ``draw`` is
    aligned with ``users``.
    """
    waves = [_wave(users, events, draw, rng, as_of - timedelta(days=days), planted)
             for days in EXPERIMENT_DAYS_BEFORE]
    return pd.concat(waves, ignore_index=True).loc[:, list(EXPERIMENT_COLUMNS)]


def _wave(users: pd.DataFrame, events: pd.DataFrame, draw: np.ndarray,
          rng: np.random.Generator, assigned: datetime, planted: PlantedResponse
          ) -> pd.DataFrame:
    created = pd.to_datetime(users["created_at"], utc=True)
    member = (created <= pd.Timestamp(assigned)).to_numpy()
    ids = users["user_id"][member].reset_index(drop=True)
    n = len(ids)
    treated = rng.random(n) < 0.5
    u = rng.random(n)
    kinds = responsiveness_types(purchase_state(events, ids, assigned), draw[member], planted)
    converted = bought_within(events, ids, assigned).copy()
    converted |= treated & (kinds == PERSUADABLE) & (u < planted.persuadable_lift)
    converted &= ~(treated & (kinds == SLEEPING_DOG) & (u < planted.put_off))
    return pd.DataFrame({
        "user_id": ids,
        "campaign": EXPERIMENT_CAMPAIGN,
        "group": np.where(treated, "treatment", "control"),
        "assigned_at": pd.Timestamp(assigned),
        "converted": converted,
    })
