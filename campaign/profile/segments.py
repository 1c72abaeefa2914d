"""Behaviour segments stored per user and as-of time (the ``segments`` table).

The clustering and naming are pure (:mod:`campaign.profile.clustering`); this module
adds the I/O: :func:`update_segments` profiles, clusters and stores one snapshot,
:func:`latest_segments` reads the newest snapshot at or before a time (for audience
rules and templates).
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd
from sqlalchemy import delete, func, insert, select
from sqlalchemy.engine import Connection, Engine

from campaign.db.models import Segment
from campaign.profile import profile_frame
from campaign.profile.clustering import (
    BROWSERS,
    FALLBACK,
    NAMING_RULES,
    SEGMENT_NAMES,
    Segmentation,
    segment_customers,
)
from campaign.profile.queries import as_utc

__all__ = [
    "BROWSERS",
    "FALLBACK",
    "NAMING_RULES",
    "SEGMENT_NAMES",
    "Segmentation",
    "latest_segments",
    "segment_customers",
    "store_segments",
    "update_segments",
]

_BATCH = 50_000


def store_segments(connection: Connection, as_of: datetime, names: pd.Series) -> int:
    """Replace the snapshot at ``as_of`` by ``names`` (Series ``user_id`` → segment name).

    Runs in the caller's transaction; returns the number of rows written.
    """
    as_of = as_utc(as_of)
    connection.execute(delete(Segment).where(Segment.as_of == as_of))
    rows = [
        {"user_id": int(user_id), "as_of": as_of, "name": str(name)}
        for user_id, name in names.items()
    ]
    for start in range(0, len(rows), _BATCH):
        connection.execute(insert(Segment), rows[start : start + _BATCH])
    return len(rows)


def latest_segments(connection: Connection, as_of: datetime) -> pd.Series:
    """Segment names of the newest snapshot stored at or before ``as_of``. Read-only.

    Returns a Series ``user_id`` → name (named ``segment``, index ``user_id``); empty
    when no snapshot exists yet. Users absent from that snapshot (no event before it)
    have no segment.
    """
    as_of = as_utc(as_of)
    newest = connection.execute(
        select(func.max(Segment.as_of)).where(Segment.as_of <= as_of)
    ).scalar()
    index = pd.Index([], dtype="int64", name="user_id")
    if newest is None:
        return pd.Series([], index=index, dtype="object", name="segment")
    rows = connection.execute(
        select(Segment.user_id, Segment.name)
        .where(Segment.as_of == newest)
        .order_by(Segment.user_id)
    ).all()
    return pd.Series(
        [name for _, name in rows],
        index=pd.Index([user_id for user_id, _ in rows], dtype="int64", name="user_id"),
        dtype="object",
        name="segment",
    )


def update_segments(
    engine: Engine,
    as_of: datetime,
    *,
    n_segments: int = 5,
    random_state: int = 0,
    lookback_days: int | None = None,
) -> Segmentation:
    """Profile every user as of ``as_of``, cluster, and store the snapshot in one transaction.

    Returns the :class:`~campaign.profile.clustering.Segmentation` (names and named
    centroids, for reports).
    """
    as_of = as_utc(as_of)
    with engine.connect() as connection:
        features = profile_frame(connection, as_of, lookback_days=lookback_days)
    result = segment_customers(features, n_segments=n_segments, random_state=random_state)
    with engine.begin() as connection:
        store_segments(connection, as_of, result.names)
    return result
