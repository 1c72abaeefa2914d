"""Events, the big table, bypass the ORM: rows go through the DBAPI connection directly
(``sqlite3`` ``executemany``; PostgreSQL ``COPY`` into a temporary staging table, then
``INSERT ... SELECT ... ON CONFLICT DO NOTHING``; MariaDB/MySQL PyMySQL's
``executemany`` (multi-row ``INSERT``) into a temporary staging table, then
``INSERT IGNORE ... SELECT``).

Duplicate ``event_id`` values across chunks are found through the database (an id
already stored by *this* import, i.e. above the table's max id before it started, is
a duplicate within the file), so no per-row set grows with the file.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from datetime import datetime
from queue import Full, Queue
from typing import Any, TypeVar

from sqlalchemy import Table, func, select
from sqlalchemy.engine import Connection

from campaign.db.base import table_of
from campaign.db.dialect import is_mysql, is_postgresql
from campaign.db.models import Event, Product, User
from campaign.ingest.batches import LOOKUP_BATCH, Counts, Progress, Rejects
from campaign.ingest.files import RowSource
from campaign.ingest.readers import EVENT_COLUMNS, HASH_PREFIX, EventChunk, event_chunks

T = TypeVar("T")

_INSERT_COLUMNS = ", ".join(EVENT_COLUMNS)


class _SqliteEvents:
    """Events through the ``sqlite3`` connection: one ``executemany`` per chunk."""

    def __init__(self, dbapi_connection: Any) -> None:
        self.cursor = dbapi_connection.cursor()
        marks = ", ".join("?" for _ in EVENT_COLUMNS)
        self.sql = (
            f"INSERT INTO events ({_INSERT_COLUMNS}) VALUES ({marks}) "
            "ON CONFLICT (source_event_id) DO NOTHING"
        )

    def max_id(self) -> int:
        self.cursor.execute("SELECT max(id) FROM events")
        return int(self.cursor.fetchone()[0] or 0)

    def ids_of(self, ids: list[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        for start in range(0, len(ids), LOOKUP_BATCH):
            part = ids[start : start + LOOKUP_BATCH]
            marks = ",".join("?" * len(part))
            self.cursor.execute(
                f"SELECT source_event_id, id FROM events WHERE source_event_id IN ({marks})", part
            )
            found.update(self.cursor.fetchall())
        return found

    def insert(self, records: list[tuple[Any, ...]]) -> int:
        self.cursor.executemany(self.sql, records)
        return int(self.cursor.rowcount)


class _PostgresEvents:
    """Events through psycopg: ``COPY`` into a temporary staging table, then one
    ``INSERT ... SELECT ... ON CONFLICT DO NOTHING`` per chunk (safe against a
    concurrent import of the same rows, which a ``COPY`` straight into ``events``
    would turn into a failure)."""

    STAGING = "campaign_ingest_events"

    def __init__(self, dbapi_connection: Any) -> None:
        self.cursor = dbapi_connection.cursor()
        # Dropped with the transaction, committed or not.
        self.cursor.execute(
            f"CREATE TEMP TABLE {self.STAGING} (user_id bigint, product_id bigint, type text, "
            "ts timestamp, order_id text, quantity integer, amount_cents bigint, "
            "coupon_code text, source_event_id text) ON COMMIT DROP"
        )
        select_columns = ", ".join(
            "ts AT TIME ZONE 'UTC'" if name == "ts" else name for name in EVENT_COLUMNS
        )
        self.sql = (
            f"INSERT INTO events ({_INSERT_COLUMNS}) SELECT {select_columns} "
            f"FROM {self.STAGING} ON CONFLICT (source_event_id) DO NOTHING"
        )

    def max_id(self) -> int:
        self.cursor.execute("SELECT max(id) FROM events")
        row = self.cursor.fetchone()
        return int(row[0] or 0)

    def ids_of(self, ids: list[str]) -> dict[str, int]:
        self.cursor.execute(
            "SELECT source_event_id, id FROM events WHERE source_event_id = ANY(%s)", (ids,)
        )
        return dict(self.cursor.fetchall())

    def insert(self, records: list[tuple[Any, ...]]) -> int:
        with self.cursor.copy(f"COPY {self.STAGING} ({_INSERT_COLUMNS}) FROM STDIN") as copy:
            write_row = copy.write_row
            for record in records:
                write_row(record)
        self.cursor.execute(self.sql)
        inserted = int(self.cursor.rowcount)
        self.cursor.execute(f"TRUNCATE {self.STAGING}")
        return inserted


class _MysqlEvents:
    """Events through PyMySQL: ``executemany`` (sent as multi-row ``INSERT`` statements)
    into a temporary staging table, then one ``INSERT IGNORE ... SELECT`` per chunk.

    The staging table has the columns' own types, so a value that does not fit fails
    there under the strict ``sql_mode`` (never truncated); from it, ``IGNORE`` can only
    skip rows whose ``source_event_id`` is already stored (the ``ON CONFLICT DO
    NOTHING`` of the others, safe against a concurrent import of the same rows).
    A temporary table lives as long as the connection, not the transaction: it is
    dropped before it is created and when the import ends.
    """

    STAGING = "campaign_ingest_events"

    def __init__(self, dbapi_connection: Any) -> None:
        self.cursor = dbapi_connection.cursor()
        self.cursor.execute(f"DROP TEMPORARY TABLE IF EXISTS {self.STAGING}")
        self.cursor.execute(
            f"CREATE TEMPORARY TABLE {self.STAGING} (user_id BIGINT, product_id BIGINT, "
            "type VARCHAR(32), ts DATETIME(6), order_id VARCHAR(128), quantity INTEGER, "
            "amount_cents BIGINT, coupon_code VARCHAR(64), source_event_id VARCHAR(128)) "
            "ENGINE=InnoDB CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
        )
        marks = ", ".join("%s" for _ in EVENT_COLUMNS)
        self.stage = f"INSERT INTO {self.STAGING} ({_INSERT_COLUMNS}) VALUES ({marks})"
        self.sql = (
            f"INSERT IGNORE INTO events ({_INSERT_COLUMNS}) "
            f"SELECT {_INSERT_COLUMNS} FROM {self.STAGING}"
        )

    def max_id(self) -> int:
        self.cursor.execute("SELECT max(id) FROM events")
        row = self.cursor.fetchone()
        return int(row[0] or 0)

    def ids_of(self, ids: list[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        for start in range(0, len(ids), LOOKUP_BATCH):
            part = ids[start : start + LOOKUP_BATCH]
            marks = ",".join("%s" for _ in part)
            self.cursor.execute(
                f"SELECT source_event_id, id FROM events WHERE source_event_id IN ({marks})", part
            )
            found.update(self.cursor.fetchall())
        return found

    def insert(self, records: list[tuple[Any, ...]]) -> int:
        self.cursor.executemany(self.stage, records)
        self.cursor.execute(self.sql)
        inserted = int(self.cursor.rowcount)
        # DELETE, not TRUNCATE: TRUNCATE would commit the import's transaction.
        self.cursor.execute(f"DELETE FROM {self.STAGING}")
        return inserted

    def close(self) -> None:
        self.cursor.execute(f"DROP TEMPORARY TABLE IF EXISTS {self.STAGING}")
        self.cursor.close()


_Writer = _SqliteEvents | _PostgresEvents | _MysqlEvents


def _lookup(connection: Connection, table: Table) -> dict[str, int]:
    rows = connection.execute(select(table.c.external_id, table.c.id))
    return {external_id: id_ for external_id, id_ in rows}


def load_events(
    connection: Connection,
    csv_file: RowSource,
    rejects: Rejects,
    advance: Progress,
    now: datetime,
    chunk_rows: int,
) -> Counts:
    counts = Counts()
    users = _lookup(connection, table_of(User))
    products = _lookup(connection, table_of(Product))
    # Every id this import stores is above this, which tells "earlier in this file"
    # from "imported before" without remembering the ids of the file.
    before = connection.execute(select(func.max(Event.id))).scalar() or 0
    dbapi_connection = connection.connection.dbapi_connection
    writer: _Writer
    if is_postgresql(connection):
        writer = _PostgresEvents(dbapi_connection)
    elif is_mysql(connection):
        writer = _MysqlEvents(dbapi_connection)
    else:
        writer = _SqliteEvents(dbapi_connection)
    chunks = event_chunks(csv_file, users, products, chunk_rows)
    # sqlite3 gives the GIL back for every row it steps, so a validating thread next to
    # it only slows both down; psycopg waits on the server with the GIL released for
    # a whole statement, so there reading ahead overlaps the two.
    ahead = _prefetched(chunks) if isinstance(writer, _PostgresEvents) else nullcontext(chunks)
    with ahead as chunks:
        for chunk in chunks:
            _store_chunk(csv_file, chunk, writer, before, rejects, counts)
            advance(chunk.rows)
    if isinstance(writer, _MysqlEvents):
        writer.close()
    return counts


def _store_chunk(
    csv_file: RowSource,
    chunk: EventChunk,
    writer: _Writer,
    before: int,
    rejects: Rejects,
    counts: Counts,
) -> None:
    """Write one validated chunk: report its errors, insert it, sort out conflicts.

    The insert skips ids already stored; only when it skipped some (a re-import, or a
    duplicate across chunks) are the chunk's ids looked up, so a fresh import pays
    nothing for deduplication.
    """
    counts.rows += chunk.rows
    counts.unchanged += chunk.collapsed
    for error, row in chunk.errors:
        rejects.add(error, row)
    records = chunk.records
    if not records:
        return
    ceiling = writer.max_id()
    inserted = writer.insert(records)
    counts.inserted += inserted
    if inserted == len(records):
        return
    stored = writer.ids_of([record[-1] for record in records])
    for record, line, raw in zip(records, chunk.lines, chunk.raws, strict=True):
        source_id = record[-1]
        found = stored.get(source_id, 0)
        if found > ceiling:
            continue  # stored by this very chunk
        if found > before and not source_id.startswith(HASH_PREFIX):
            reason = f"duplicate event_id {source_id!r} (earlier in the file)"
            rejects.add(csv_file.error(line, "event_id", reason), raw)
        else:
            counts.unchanged += 1


_DONE = object()


@contextmanager
def _prefetched(items: Iterator[T], depth: int = 2) -> Iterator[Iterator[T]]:
    """Iterate ``items`` in a worker thread, at most ``depth`` items ahead.

    Reading and validating the next chunk then overlaps the database writing this
    one: ``sqlite3`` and psycopg release the GIL while the database works. The bounded
    queue keeps memory flat. Errors of the worker are raised in the caller; leaving
    the block early stops the worker before the file is closed.
    """
    queue: Queue[tuple[bool, Any]] = Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry: tuple[bool, Any]) -> bool:
        while not stop.is_set():
            try:
                queue.put(entry, timeout=0.05)
                return True
            except Full:
                continue
        return False

    def work() -> None:
        try:
            for item in items:
                if not put((True, item)):
                    return
            put((True, _DONE))
        except BaseException as exc:  # handed to the caller, who re-raises it
            put((False, exc))

    def consume() -> Iterator[T]:
        while True:
            ok, item = queue.get()
            if not ok:
                raise item
            if item is _DONE:
                return
            yield item

    worker = threading.Thread(target=work, name="campaign-ingest-reader", daemon=True)
    worker.start()
    try:
        yield consume()
    finally:
        stop.set()
        worker.join()

