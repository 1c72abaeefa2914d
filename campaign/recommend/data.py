"""I/O of the recommender: event and product frames read from SQL.

Read-only. Everything returned uses internal ids (``users.id``, ``products.id``);
the external-id helpers are for the edges (CLI, CSV).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime

import numpy as np
import pandas as pd
from sqlalchemy import String, func, select, type_coerce
from sqlalchemy.engine import Connection

from campaign.db.frames import frame_of, plain_columns
from campaign.db.models import Event, Product, User

EVENT_COLUMNS = ["user_id", "product_id", "type", "ts", "quantity", "order_id"]
PRODUCT_COLUMNS = [
    "product_id",
    "external_id",
    "name",
    "category",
    "brand",
    "price_cents",
    "tags",
    "in_stock",
    "url",
]


def load_events(
    connection: Connection,
    end: datetime,
    *,
    start: datetime | None = None,
    types: Collection[str] | None = None,
) -> pd.DataFrame:
    """Events with a product in ``[start, end)``, optionally of some types only.

    Returns:
        Columns ``user_id``, ``product_id`` (int64), ``type`` (str objects), ``ts``
        (UTC-aware datetime64), ``quantity`` (int64, at least 1), ``order_id`` (str or
        None).
    """
    # The timestamps come as the driver gives them (text on SQLite) and are parsed in
    # one vectorised pass below: the column type's per-row conversion took seconds for
    # a million events.
    raw_ts = type_coerce(Event.ts, String).label("ts")
    query = select(
        Event.user_id, Event.product_id, Event.type, raw_ts, Event.quantity, Event.order_id
    ).where(
        Event.product_id.is_not(None), Event.ts < end
    )
    if start is not None:
        query = query.where(Event.ts >= start)
    if types is not None:
        query = query.where(Event.type.in_(sorted(types)))
    # Every column is an integer or text as the driver returns it: read column-wise
    # from the cursor, each column typed in one pass (a few event types: categories).
    values = plain_columns(connection.execute(query), EVENT_COLUMNS)
    quantity = pd.Series(np.asarray(values["quantity"], dtype=np.float64))
    # Kept as Python strings (each event type is one object, shared by its events):
    # pandas' text arrays would convert and copy every value.
    type_codes, type_names = pd.factorize(np.asarray(values["type"], dtype=object))
    types_of = np.asarray([str(name) for name in type_names], dtype=object)
    return pd.DataFrame(
        {
            "user_id": np.asarray(values["user_id"], dtype=np.int64),
            "product_id": np.asarray(values["product_id"], dtype=np.int64),
            "type": pd.Series(types_of[type_codes], dtype=object),
            "ts": pd.Series(
                pd.to_datetime(np.asarray(values["ts"], dtype=object), utc=True, format="ISO8601")
            ),
            "quantity": quantity.fillna(1).astype("int64").clip(lower=1),
            "order_id": pd.Series(np.asarray(values["order_id"], dtype=object), dtype=object),
        },
        columns=EVENT_COLUMNS,
    )


def load_products(connection: Connection) -> pd.DataFrame:
    """The whole catalogue, ordered by internal id.

    Returns:
        Columns ``product_id`` (internal), ``external_id``, ``name``, ``category``,
        ``brand``, ``price_cents`` (nullable Int64), ``tags`` (list of str),
        ``in_stock`` (bool), ``url``.
    """
    rows = connection.execute(
        select(
            Product.id,
            Product.external_id,
            Product.name,
            Product.category,
            Product.brand,
            Product.price_cents,
            Product.tags,
            Product.in_stock,
            Product.url,
        ).order_by(Product.id)
    )
    frame = frame_of(rows, PRODUCT_COLUMNS)
    frame["product_id"] = frame["product_id"].astype("int64")
    frame["price_cents"] = frame["price_cents"].astype("Int64")
    frame["tags"] = [list(t) if isinstance(t, list) else [] for t in frame["tags"]]
    frame["in_stock"] = frame["in_stock"].astype("object").fillna(True).astype(bool)
    return frame


def active_user_ids(connection: Connection, end: datetime) -> np.ndarray:
    """Sorted internal ids of users with any event before ``end``."""
    rows = connection.execute(
        select(Event.user_id).where(Event.ts < end).distinct().order_by(Event.user_id)
    ).scalars()
    return np.fromiter(rows, dtype=np.int64)


def newest_event_time(connection: Connection) -> datetime | None:
    """The time of the newest event (UTC), or None when there are no events."""
    value = connection.execute(select(func.max(Event.ts))).scalar()
    if value is None:
        return None
    # max() bypasses the column type's result processing: SQLite returns text.
    stamp = pd.Timestamp(value)
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return stamp.to_pydatetime()


def user_ids_by_external(connection: Connection, external_ids: Sequence[str]) -> dict[str, int]:
    """Map shop user ids to internal ids; unknown ids are absent from the result."""
    if not external_ids:
        return {}
    rows = connection.execute(
        select(User.external_id, User.id).where(User.external_id.in_(list(external_ids)))
    ).all()
    return {str(external): int(internal) for external, internal in rows}


def user_external_ids(connection: Connection, user_ids: Sequence[int]) -> pd.Series:
    """Internal user id → shop user id, for the given users (index: internal id)."""
    ids = [int(u) for u in user_ids]
    mapping: dict[int, str] = {}
    # Chunked so that PostgreSQL and SQLite parameter limits are never hit.
    for start in range(0, len(ids), 5000):
        chunk = ids[start : start + 5000]
        rows = connection.execute(select(User.id, User.external_id).where(User.id.in_(chunk)))
        mapping.update({int(i): str(e) for i, e in rows})
    return pd.Series(mapping, dtype=object, name="external_id")
