"""A run's outbox and coupon rows, written in bulk through the database driver.

A 100,000-user run writes 100,000 ``messages`` rows and as many ``coupons``;
SQLAlchemy's per-row bind processing would be half of that cost, so rows go to the
driver as plain tuples, like :mod:`campaign.ingest.loaders`: one ``executemany`` on
SQLite and MariaDB/MySQL (PyMySQL sends it as multi-row ``INSERT`` statements),
``COPY`` on PostgreSQL. Values are converted here the way the ORM types would
convert them (:class:`campaign.db.base.UTCDateTime`: naive UTC text on SQLite,
aware UTC elsewhere; JSON as ``json.dumps`` text; booleans as 0/1 on SQLite). Driver
errors come out as SQLAlchemy's (``IntegrityError`` for a unique key), the same
family the rest of the run raises.

Coupon codes are unique in ``coupons``: :func:`insert_coupons` writes them under a
SAVEPOINT and, when codes collide (with stored ones or with each other), reports
which, so the caller can draw new codes and try again; a code is never reused.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, IntegrityError

from campaign.db.dialect import driver_mark, is_postgresql

MESSAGE_COLUMNS: tuple[str, ...] = (
    "run_id", "user_id", "campaign", "channel", "variant", "template", "subject", "body",
    "text_body", "products", "coupon_code", "address_override", "is_test",
    "idempotency_key", "status", "skip_reason", "attempts", "next_attempt_at",
    "expires_at", "last_error", "created_at", "updated_at", "p_treatment", "learning",
)
COUPON_COLUMNS: tuple[str, ...] = (
    "code", "user_id", "message_id", "campaign", "percent_off", "min_order_cents",
    "issued_at", "expires_at",
)
_LOOKUP_BATCH = 500


def db_time(connection: Connection, value: datetime | None) -> Any:
    """A timestamp as the driver should receive it (what ``UTCDateTime`` binds)."""
    if value is None:
        return None
    value = (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC)
    if connection.dialect.name == "sqlite":
        return value.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
    return value


def db_bool(connection: Connection, value: bool) -> Any:
    """A boolean as the driver should receive it (0/1 on SQLite)."""
    return int(value) if connection.dialect.name == "sqlite" else value


def insert_rows(
    connection: Connection, table: str, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> None:
    """Insert ``rows`` (tuples in ``columns`` order, driver-ready values) in bulk.

    Runs in the caller's transaction.

    Raises:
        IntegrityError: a unique or foreign key was violated (nothing of this call
            should be kept: roll back, or roll back to a savepoint).
    """
    if not rows:
        return
    names = ", ".join(columns)
    if not is_postgresql(connection):
        marks = ", ".join(driver_mark(connection) for _ in columns)
        connection.exec_driver_sql(f"INSERT INTO {table} ({names}) VALUES ({marks})", list(rows))
        return
    statement = f"COPY {table} ({names}) FROM STDIN"
    dbapi: Any = connection.dialect.dbapi
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        with cursor.copy(statement) as copy:
            write_row = copy.write_row
            for row in rows:
                write_row(row)
    except dbapi.Error as exc:
        raise DBAPIError.instance(
            statement, None, exc, dbapi.Error, dialect=connection.dialect
        ) from exc
    finally:
        cursor.close()


def new_message_ids(connection: Connection, run_id: int, after_id: int) -> dict[int, int]:
    """``user_id → id`` of the run's messages with an id above ``after_id`` (one
    message per user per run), read through the driver."""
    mark = driver_mark(connection)
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(
            f"SELECT user_id, id FROM messages WHERE run_id = {mark} AND id > {mark}",
            (run_id, after_id),
        )
        return dict(cursor.fetchall())
    finally:
        cursor.close()


def existing_codes(connection: Connection, codes: Iterable[str]) -> set[str]:
    """Which of ``codes`` are already in ``coupons``."""
    wanted = list(codes)
    found: set[str] = set()
    if is_postgresql(connection):
        result = connection.exec_driver_sql(
            "SELECT code FROM coupons WHERE code = ANY(%(codes)s)", {"codes": wanted}
        )
        return {row[0] for row in result}
    for start in range(0, len(wanted), _LOOKUP_BATCH):
        part = wanted[start : start + _LOOKUP_BATCH]
        marks = ", ".join(driver_mark(connection) for _ in part)
        result = connection.exec_driver_sql(
            f"SELECT code FROM coupons WHERE code IN ({marks})", tuple(part)
        )
        found.update(row[0] for row in result)
    return found


def insert_coupons(connection: Connection, rows: Sequence[tuple[Any, ...]]) -> set[int]:
    """Insert coupon rows (``COUPON_COLUMNS`` order, code first) under a SAVEPOINT.

    Returns the positions of the rows whose code collides (is already stored, or
    repeats an earlier row of ``rows``); then nothing was inserted and the caller
    draws new codes for those rows and calls again. An empty set means every row is
    stored.

    Raises:
        IntegrityError: a violation that is not a code collision (e.g. a missing
            user or message).
    """
    if not rows:
        return set()
    seen: set[str] = set()
    repeated: set[int] = set()
    for position, row in enumerate(rows):
        if row[0] in seen:
            repeated.add(position)
        seen.add(row[0])
    if repeated:
        return repeated
    try:
        with connection.begin_nested():
            insert_rows(connection, "coupons", COUPON_COLUMNS, rows)
    except IntegrityError:
        taken = existing_codes(connection, (row[0] for row in rows))
        if not taken:
            raise
        return {position for position, row in enumerate(rows) if row[0] in taken}
    return set()
