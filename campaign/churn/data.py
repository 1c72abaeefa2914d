"""I/O: the frames churn training and scoring read from the database. Read-only.

Features come from :func:`campaign.profile.profile_frame` (one GROUP BY pass in SQL);
labels from one more GROUP BY over the purchase events of the label window.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from campaign.churn.labels import LABEL
from campaign.churn.summary import summary_from_profile
from campaign.db.models import Event, EventType, User
from campaign.profile import profile_frame


def load_summary(
    connection: Connection,
    as_of: datetime,
    *,
    lookback_days: int,
    horizon_days: int | None = None,
) -> pd.DataFrame:
    """Purchase summary (plus behaviour columns) of the customers at ``as_of``.

    Customers: users with an order in the ``lookback_days`` before ``as_of``. Only
    events strictly before ``as_of`` are read. Columns: see
    :func:`campaign.churn.summary.summary_from_profile` (with ``horizon_days``, also
    the BG/NBD expectation fitted on this snapshot's buyers).
    """
    # The profile is built over all history: the model needs the first order too.
    return summary_from_profile(
        profile_frame(connection, as_of), lookback_days=lookback_days, horizon_days=horizon_days
    )


def load_buyers(connection: Connection, start: datetime, end: datetime) -> pd.Index:
    """Users with a purchase event in ``(start, end]`` (a GROUP BY in SQL)."""
    statement = (
        select(Event.user_id)
        .where(Event.type == EventType.PURCHASE, Event.ts > start, Event.ts <= end)
        .group_by(Event.user_id)
    )
    return pd.Index([row[0] for row in connection.execute(statement)], name="user_id")


def load_labels(
    connection: Connection, customers: pd.Index, as_of: datetime, horizon_days: int
) -> pd.Series:
    """Churn label (1 = no purchase in ``(as_of, as_of + horizon]``) for ``customers``.

    The SQL twin of :func:`campaign.churn.labels.churn_labels`.
    """
    buyers = load_buyers(connection, as_of, as_of + timedelta(days=horizon_days))
    labels = pd.Series((~customers.isin(buyers)).astype("int8"), index=customers, name=LABEL)
    labels.index.name = "user_id"
    return labels


def event_span(connection: Connection) -> tuple[datetime | None, datetime | None]:
    """Time of the first and of the newest event (None, None when there are none)."""
    first, last = connection.execute(select(func.min(Event.ts), func.max(Event.ts))).one()
    return first, last


def load_user_info(connection: Connection, user_ids: Iterable[int] | None = None) -> pd.DataFrame:
    """``external_id`` and ``locale`` per user, indexed by ``user_id``."""
    statement = select(User.id, User.external_id, User.locale)
    ids = None if user_ids is None else list(user_ids)
    if ids is not None and len(ids) < 5000:
        statement = statement.where(User.id.in_(ids))
    rows = connection.execute(statement).all()
    frame = pd.DataFrame.from_records(rows, columns=["user_id", "external_id", "locale"])
    frame = frame.set_index("user_id")
    if ids is not None:
        frame = frame.reindex(ids)
    return frame


def count_customers(connection: Connection, as_of: datetime, lookback_days: int) -> int:
    """How many users bought in ``[as_of - lookback_days, as_of)`` (for progress bars)."""
    statement = select(func.count(func.distinct(Event.user_id))).where(
        Event.type == EventType.PURCHASE,
        Event.ts >= as_of - timedelta(days=lookback_days),
        Event.ts < as_of,
    )
    return int(connection.execute(statement).scalar() or 0)
