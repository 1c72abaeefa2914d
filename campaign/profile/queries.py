"""Per-user aggregates as of a time, computed by the database (GROUP BY, never per user).

Five statements, each one pass:

* ``events``: one GROUP BY over all events before T with conditional aggregation
  (``SUM(CASE ...)``) of the activity windows, joined to ``users`` for ``created_at``;
  it reads only ``user_id`` and ``ts``, which the ``(user_id, ts)`` index covers;
* ``orders``: purchases grouped into orders, then per user: windowed order counts and
  spend, coupon orders, inter-order gaps (``LAG``) and distinct purchased categories;
* ``recent``: the last 30 days only, per (user, product): views, carts, abandoned carts;
* ``messages`` and ``coupons``: the user's history with our campaigns.

Dialect neutrality: windows are compared against cut-off timestamps computed in Python
and bound as parameters, and the only timestamps returned are epoch seconds
(fractions truncated) of aggregates, so SQLite, PostgreSQL and MariaDB/MySQL yield
identical integers; day differences are computed in :mod:`campaign.profile.features`.
Sums are cast to 64-bit integers because PostgreSQL's ``SUM(bigint)`` is ``numeric``
and MySQL's ``SUM`` of any integer is ``DECIMAL``; the spellings that differ come from
:mod:`campaign.db.dialect`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pandas as pd
from sqlalchemy import bindparam, func, select, text
from sqlalchemy.engine import Connection

from campaign.common.errors import NotFound
from campaign.db.base import UTCDateTime
from campaign.db.dialect import bigint_sql, epoch_sql, materialized
from campaign.db.frames import frame_of
from campaign.db.models import Engagement, Event, EventType, MessageStatus
from campaign.profile.features import RAW_COLUMNS, TREND_DAYS


@dataclass(frozen=True)
class _Window:
    """Cut-off timestamps of one as-of time; every window is [cut-off, T)."""

    as_of: datetime
    start: datetime | None

    def cutoff(self, days: int) -> datetime:
        return self.as_of - timedelta(days=days)

    def params(self) -> dict[str, datetime]:
        values = {
            "as_of": self.as_of,
            "c7": self.cutoff(7),
            "c30": self.cutoff(30),
            "c90": self.cutoff(TREND_DAYS),
            "c180": self.cutoff(2 * TREND_DAYS),
            "c365": self.cutoff(365),
        }
        if self.start is not None:
            values["start"] = self.start
        return values

    def since(self, column: str = "ts") -> str:
        return f"AND {column} >= :start" if self.start is not None else ""


_TIMESTAMP = UTCDateTime()


def _run(connection: Connection, sql: str, params: dict[str, datetime]) -> pd.DataFrame:
    statement = text(sql).bindparams(
        *(bindparam(name, type_=_TIMESTAMP) for name in params if f":{name}" in sql)
    )
    used = {name: value for name, value in params.items() if f":{name}" in sql}
    result = connection.execute(statement, used)
    columns = list(result.keys())
    frame = frame_of(result, columns)
    if frame.empty:
        frame = pd.DataFrame({c: pd.Series([], dtype="int64") for c in columns})
    return frame.set_index("user_id")


def _events_sql(dialect: str, window: _Window) -> str:
    # Needs only user_id and ts, so on SQLite the (user_id, ts) index covers it: one
    # index-only pass in user order, no sort and no table lookups.
    return f"""
        SELECT a.user_id, a.events_total,
               {epoch_sql(dialect, "a.first_ts")} AS first_event_at_s,
               {epoch_sql(dialect, "a.last_ts")} AS last_event_at_s,
               CASE WHEN u.created_at < :as_of
                    THEN {epoch_sql(dialect, "u.created_at")} END AS created_at_s,
               a.events_90d, a.events_180d - a.events_90d AS events_prev_90d
        FROM (
            SELECT user_id,
                   COUNT(*) AS events_total,
                   MIN(ts) AS first_ts,
                   MAX(ts) AS last_ts,
                   {bigint_sql(dialect, "SUM(CASE WHEN ts >= :c90 THEN 1 ELSE 0 END)")}
                       AS events_90d,
                   {bigint_sql(dialect, "SUM(CASE WHEN ts >= :c180 THEN 1 ELSE 0 END)")}
                       AS events_180d
            FROM events
            WHERE ts < :as_of {window.since()}
            GROUP BY user_id
        ) a
        JOIN users u ON u.id = a.user_id
    """


def _orders_sql(dialect: str, window: _Window) -> str:
    def windowed(days_param: str, value: str) -> str:
        return bigint_sql(dialect, f"SUM(CASE WHEN ts >= :{days_param} THEN {value} ELSE 0 END)")

    def total(expression: str) -> str:
        return bigint_sql(dialect, f"SUM({expression})")

    # A purchase without order_id is its own order: group it by its own id.
    return f"""
        WITH p AS {materialized(dialect)} (
            SELECT id, user_id, order_id, ts, amount_cents, coupon_code, product_id
            FROM events
            WHERE type = '{EventType.PURCHASE}' AND ts < :as_of {window.since()}
        ),
        o AS (
            SELECT user_id,
                   MIN(ts) AS ts,
                   {epoch_sql(dialect, "MIN(ts)")} AS at_s,
                   {total("COALESCE(amount_cents, 0)")} AS value,
                   MAX(CASE WHEN coupon_code IS NOT NULL AND coupon_code <> ''
                            THEN 1 ELSE 0 END) AS coupon
            FROM p
            GROUP BY user_id, order_id, CASE WHEN order_id IS NULL THEN id END
        ),
        g AS (
            SELECT user_id, ts, at_s, value, coupon,
                   at_s - LAG(at_s) OVER (PARTITION BY user_id ORDER BY at_s) AS gap
            FROM o
        ),
        per_user AS (
            SELECT user_id,
                   COUNT(*) AS orders_total,
                   {windowed("c30", "1")} AS orders_30d,
                   {windowed("c90", "1")} AS orders_90d,
                   {total("CASE WHEN ts >= :c180 AND ts < :c90 THEN 1 ELSE 0 END")}
                       AS orders_prev_90d,
                   {windowed("c365", "1")} AS orders_365d,
                   {total("value")} AS spend_total_cents,
                   {windowed("c30", "value")} AS spend_30d_cents,
                   {windowed("c90", "value")} AS spend_90d_cents,
                   {windowed("c365", "value")} AS spend_365d_cents,
                   {total("coupon")} AS coupon_orders,
                   MAX(at_s) AS last_order_at_s,
                   COUNT(gap) AS gap_count,
                   {total("gap")} AS gap_sum_s,
                   {total("gap * gap")} AS gap_sumsq_s
            FROM g
            GROUP BY user_id
        ),
        categories AS (
            SELECT p.user_id, COUNT(DISTINCT pr.category) AS distinct_categories
            FROM p JOIN products pr ON pr.id = p.product_id
            GROUP BY p.user_id
        )
        SELECT per_user.*, COALESCE(categories.distinct_categories, 0) AS distinct_categories
        FROM per_user LEFT JOIN categories ON categories.user_id = per_user.user_id
    """


def _recent_sql(dialect: str, window: _Window) -> str:
    """Views, carts and abandoned carts: only the last 30 days, per (user, product)."""

    def count(condition: str) -> str:
        return bigint_sql(dialect, f"SUM(CASE WHEN {condition} THEN 1 ELSE 0 END)")

    view, cart = f"type = '{EventType.VIEW}'", f"type = '{EventType.CART}'"
    start = "c30" if window.start is None or window.start <= window.cutoff(30) else "start"
    # Only purchases of the same 30 days can follow a cart of the last 30 days.
    return f"""
        SELECT user_id,
               {bigint_sql(dialect, "SUM(views_7d)")} AS views_7d,
               {bigint_sql(dialect, "SUM(views_30d)")} AS views_30d,
               {bigint_sql(dialect, "SUM(carts_7d)")} AS carts_7d,
               {bigint_sql(dialect, "SUM(carts_30d)")} AS carts_30d,
               {count("product_id IS NOT NULL AND last_cart IS NOT NULL "
                      "AND (last_purchase IS NULL OR last_purchase < last_cart)")}
                   AS abandoned_carts_30d
        FROM (
            SELECT user_id, product_id,
                   {count(f"{view} AND ts >= :c7")} AS views_7d,
                   {count(view)} AS views_30d,
                   {count(f"{cart} AND ts >= :c7")} AS carts_7d,
                   {count(cart)} AS carts_30d,
                   MAX(CASE WHEN {cart} THEN ts END) AS last_cart,
                   MAX(CASE WHEN type = '{EventType.PURCHASE}' THEN ts END) AS last_purchase
            FROM events
            WHERE ts >= :{start} AND ts < :as_of
            GROUP BY user_id, product_id
        ) c
        GROUP BY user_id
    """


def _messages_sql(dialect: str) -> str:
    opened = ", ".join(
        f"'{e}'" for e in (Engagement.OPENED, Engagement.CLICKED, Engagement.CONVERTED)
    )
    clicked = ", ".join(f"'{e}'" for e in (Engagement.CLICKED, Engagement.CONVERTED))
    sent_at = "COALESCE(sent_at, created_at)"

    def count(engagements: str) -> str:
        return bigint_sql(
            dialect,
            f"SUM(CASE WHEN engagement IN ({engagements}) AND engagement_at < :as_of "
            "THEN 1 ELSE 0 END)",
        )

    return f"""
        SELECT user_id,
               COUNT(*) AS messages_received,
               {count(opened)} AS messages_opened,
               {count(clicked)} AS messages_clicked,
               {epoch_sql(dialect, f"MAX({sent_at})")} AS last_message_at_s
        FROM messages
        WHERE status = '{MessageStatus.SENT}' AND {sent_at} < :as_of
          AND (is_test IS NULL OR NOT is_test)
        GROUP BY user_id
    """


def _coupons_sql(dialect: str) -> str:
    redeemed = bigint_sql(dialect, "SUM(CASE WHEN redeemed_at < :as_of THEN 1 ELSE 0 END)")
    return f"""
        SELECT user_id,
               COUNT(*) AS coupons_issued,
               {redeemed} AS coupons_redeemed
        FROM coupons
        WHERE issued_at < :as_of
        GROUP BY user_id
    """


def as_utc(moment: datetime) -> datetime:
    """``moment`` as an aware UTC datetime (naive input is taken as UTC)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def load_profile_aggregates(
    connection: Connection, as_of: datetime, *, lookback_days: int | None = None
) -> pd.DataFrame:
    """Raw per-user aggregates from events strictly before ``as_of``. Read-only.

    One row per user with at least one event in ``[as_of - lookback_days, as_of)``
    (all history before ``as_of`` when ``lookback_days`` is None), indexed by
    ``user_id``, with the columns of :data:`campaign.profile.features.RAW_COLUMNS`:
    counts and cents as integers (missing where a side query has no row for the
    user, meaning 0) and ``*_at_s`` as Unix epoch seconds (missing: never happened).
    The look-back limits the events read; messages and coupons use all history.
    """
    as_of = as_utc(as_of)
    start = as_of - timedelta(days=lookback_days) if lookback_days is not None else None
    window = _Window(as_of, start)
    params = window.params()
    dialect = connection.dialect.name

    frame = _run(connection, _events_sql(dialect, window), params)
    for sql in (
        _orders_sql(dialect, window),
        _recent_sql(dialect, window),
        _messages_sql(dialect),
        _coupons_sql(dialect),
    ):
        side = _run(connection, sql, params)
        frame = frame.join(side, how="left")
    frame.index = frame.index.astype("int64")
    frame.index.name = "user_id"
    return frame.reindex(columns=list(RAW_COLUMNS)).sort_index()


def newest_event_at(connection: Connection) -> datetime:
    """The time of the newest event: the default as-of time of the commands. Read-only.

    Raises:
        NotFound: there are no events yet.
    """
    newest = connection.execute(select(func.max(Event.ts))).scalar()
    if newest is None:
        raise NotFound("events", "any (import events first)")
    return as_utc(newest)
