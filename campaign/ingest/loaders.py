"""Validated rows → database: one transaction per file, batched upserts, dedupe, progress.

A file imports all or nothing: it is streamed in chunks inside one transaction, and
any invalid row makes the whole transaction roll back (the database is exactly as
before) while the first errors are reported. With ``skip_invalid`` the good rows are
committed and the bad ones written, with a ``reason`` column, to a side file.

Memory stays flat whatever the file size: only one chunk of rows is held, plus the
external-id → id lookups of users and products. Duplicate ``event_id`` values across
chunks are found through the database (an id already stored by *this* import, i.e.
above the table's max id before it started, is a duplicate within the file), so no
per-row set grows with the file.

Events, the big table, bypass the ORM: rows go through the DBAPI connection directly
(``sqlite3`` ``executemany``; PostgreSQL ``COPY`` into a temporary staging table, then
``INSERT ... SELECT ... ON CONFLICT DO NOTHING``).
"""

from __future__ import annotations

import csv
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from itertools import islice
from pathlib import Path
from queue import Full, Queue
from typing import Any, TypeVar

from sqlalchemy import Table, bindparam, func, insert, select, update
from sqlalchemy.engine import Connection, Engine

from campaign.common.contacts import normalize_phone, region_of_locale
from campaign.common.errors import InputError, InputErrors
from campaign.db.base import table_of
from campaign.db.models import Event, Message, Product, Response, User
from campaign.ingest.readers import (
    EVENT_COLUMNS,
    HASH_PREFIX,
    CellError,
    CsvFile,
    EventChunk,
    Kind,
    event_chunks,
    open_csv,
    product_record,
    response_record,
    user_record,
)
from campaign.responses.ingest import apply_stored_responses

MAX_REPORTED_ERRORS = 20
CHUNK_ROWS = 20_000
_LOOKUP_BATCH = 5_000

Progress = Callable[[int], None]
T = TypeVar("T")


@dataclass(frozen=True)
class ImportReport:
    """What one import did. ``unchanged`` counts rows already in the database (or
    repeated in the file by content); ``unmatched`` counts responses whose
    ``message_id`` names no message (kept with ``message_id`` NULL)."""

    kind: str
    source: str
    rows_read: int
    inserted: int
    updated: int
    unchanged: int
    rejected: int
    rejects_path: Path | None
    unmatched: int = 0
    suppressions: int = 0
    # One line per extra column that looks like a mistyped contract column.
    warnings: tuple[str, ...] = ()

    @property
    def all_rejected(self) -> bool:
        """Every row of the file was rejected (nothing of it is in the database)."""
        return self.rejected > 0 and self.rejected == self.rows_read

    def summary(self) -> str:
        """One line for people: ``events.csv: 366,226 rows, 366,100 inserted, ...``."""
        text = (
            f"{self.source}: {self.rows_read:,} rows, {self.inserted:,} inserted, "
            f"{self.updated:,} updated, {self.unchanged:,} unchanged, "
            f"{self.rejected:,} rejected"
        )
        if self.unmatched:
            text += f" ({self.unmatched:,} unmatched)"
        if self.suppressions:
            text += f", {self.suppressions:,} suppression(s) added"
        if self.rejects_path is not None:
            text += f"; rejected rows in {self.rejects_path}"
        return text


@dataclass
class _Counts:
    rows: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    unmatched: int = 0
    suppressions: int = 0


class _Rejects:
    """Keeps the first errors for the report; with ``skip_invalid`` also writes every
    rejected row, plus ``line`` and ``reason`` columns, to the side file (lazily)."""

    def __init__(self, csv_file: CsvFile, skip_invalid: bool, path: Path) -> None:
        self.csv_file = csv_file
        self.skip_invalid = skip_invalid
        self.path = path
        self.errors: list[InputError] = []
        self.total = 0
        self._handle: Any = None
        self._writer: Any = None

    def add(self, error: InputError, row: list[str]) -> None:
        self.total += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(error)
        if self.skip_invalid:
            if self._writer is None:
                self._handle = self.path.open("w", encoding="utf-8", newline="")
                self._writer = csv.writer(self._handle)
                self._writer.writerow([*self.csv_file.header, "line", "reason"])
            reason = f"{error.column}: {error.reason}" if error.column else error.reason
            self._writer.writerow([*row, error.line, reason])

    def written(self) -> Path | None:
        return self.path if self._writer is not None else None

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()

    def discard(self) -> None:
        """Remove a half-written side file after a fatal error (nothing was imported)."""
        self.close()
        if self._writer is not None:
            self.path.unlink(missing_ok=True)
            self._writer = None


def default_rejects_path(path: Path) -> Path:
    """``<file>.rejected.csv`` next to the imported file."""
    return path.with_name(path.name + ".rejected.csv")


def import_csv(
    engine: Engine,
    kind: Kind,
    path: Path,
    *,
    skip_invalid: bool = False,
    rejects_path: Path | None = None,
    progress: Progress | None = None,
    now: datetime | None = None,
    chunk_rows: int = CHUNK_ROWS,
    media: Mapping[str, str] | None = None,
    phone_region: str | None = None,
    currency: str = "CNY",
    strict: bool = False,
) -> ImportReport:
    """Import one CSV file of ``kind`` (users, products, events, responses).

    Streams the file in chunks of ``chunk_rows`` inside one transaction. Users and
    products are upserted on their external id; events dedupe on ``event_id`` (stored
    as ``source_event_id``) or a content hash; responses dedupe on the provider event
    id and keep an unknown ``message_id`` as unmatched. Re-importing a file changes
    nothing. Suppressions are never touched. ``progress(n)`` is called with the rows
    read after each chunk; ``now`` (UTC) stamps ``updated_at``/``received_at``.
    Imported responses have the same effects as webhook ones (engagement moves
    forward; unsubscribes, complaints and hard bounces suppress), for which ``media``
    maps channel names to ``email``/``sms`` (``config.channels``). Phones are stored
    in E.164 (national numbers read in ``phone_region``, else the country of the
    row's locale) with the file's own text in ``phone_original``. Amounts (product
    prices, event amounts) are read in ``currency`` (``[shop] currency``) and stored
    as its minor units (:mod:`campaign.common.money`).

    An extra column that looks like a mistyped contract column (``e_mail``) is kept as
    an attribute and reported in ``warnings``; with ``strict`` it is an error instead.

    Raises:
        InputError: the file cannot be read as this kind of CSV, or ``strict`` and a
            column looks mistyped (nothing imported).
        InputErrors: some rows are invalid and ``skip_invalid`` is off (nothing
            imported; the first :data:`MAX_REPORTED_ERRORS` are listed).
    """
    if kind not in ("users", "products", "events", "responses"):
        raise InputError(str(path), f"unknown kind of file {kind!r}")
    now = now or datetime.now(UTC)
    advance = progress or (lambda n: None)
    with open_csv(path, kind, currency) as csv_file:
        if strict and csv_file.lookalikes:
            raise InputError(
                csv_file.source,
                "unknown column(s) "
                + ", ".join(f"{name} (did you mean {meant!r}?)"
                            for name, meant in csv_file.lookalikes)
                + "; nothing imported (--strict)",
                line=csv_file.header_line,
            )
        rejects = _Rejects(csv_file, skip_invalid, rejects_path or default_rejects_path(path))
        try:
            with engine.connect() as connection, connection.begin():
                if kind == "responses":
                    counts = _load_responses(
                        connection, csv_file, rejects, advance, now, chunk_rows, media
                    )
                elif kind == "users":
                    counts = _load_entities(
                        table_of(User), "user_id", connection, csv_file, rejects, advance,
                        now, chunk_rows, phone_region=phone_region,
                    )
                else:
                    counts = _LOADERS[kind](
                        connection, csv_file, rejects, advance, now, chunk_rows
                    )
                if rejects.total and not skip_invalid:
                    raise InputErrors(csv_file.source, rejects.errors, rejects.total)
        except BaseException:
            rejects.discard()
            raise
        rejects.close()
    return ImportReport(
        kind=kind,
        source=csv_file.source,
        rows_read=counts.rows,
        inserted=counts.inserted,
        updated=counts.updated,
        unchanged=counts.unchanged,
        rejected=rejects.total,
        rejects_path=rejects.written(),
        unmatched=counts.unmatched,
        suppressions=counts.suppressions,
        warnings=tuple(csv_file.lookalike_warnings()),
    )


def _chunks(
    rows: Iterator[tuple[int, list[str]]], size: int
) -> Iterator[list[tuple[int, list[str]]]]:
    while chunk := list(islice(rows, size)):
        yield chunk


# -- users and products: upsert on external id ----------------------------------------

_USER_DEFAULTS = {"consent_email": False, "consent_sms": False, "attributes": {}}
_PRODUCT_DEFAULTS = {"tags": [], "in_stock": True, "attributes": {}}


def _load_entities(
    table: Table,
    id_column: str,
    connection: Connection,
    csv_file: CsvFile,
    rejects: _Rejects,
    advance: Progress,
    now: datetime,
    chunk_rows: int,
    *,
    phone_region: str | None = None,
) -> _Counts:
    is_users = table.name == "users"
    to_record = user_record if is_users else product_record
    defaults = _USER_DEFAULTS if is_users else _PRODUCT_DEFAULTS
    counts = _Counts()
    # External ids of one entity file: small next to events, so a set is fine here.
    seen: dict[str, int] = {}
    for chunk in _chunks(csv_file.rows(), min(chunk_rows, _LOOKUP_BATCH)):
        counts.rows += len(chunk)
        records: list[dict[str, Any]] = []
        for line, row in chunk:
            try:
                record = to_record(csv_file, row)
            except CellError as exc:
                rejects.add(csv_file.error(line, exc.column or None, exc.reason), row)
                continue
            if is_users and "phone" in record:
                # Matched in E.164 everywhere (campaign.common.contacts); the original is kept.
                raw = record["phone"]
                region = phone_region or region_of_locale(record.get("locale"))
                record["phone_original"] = raw
                record["phone"] = normalize_phone(raw, region)
            external_id = record["external_id"]
            if external_id in seen:
                first = seen[external_id]
                reason = f"duplicate {id_column} {external_id!r} (first on line {first})"
                rejects.add(csv_file.error(line, id_column, reason), row)
                continue
            seen[external_id] = line
            records.append(record)
        _upsert(connection, table, records, defaults, now, counts)
        advance(len(chunk))
    return counts


def _upsert(
    connection: Connection,
    table: Table,
    records: list[dict[str, Any]],
    defaults: dict[str, Any],
    now: datetime,
    counts: _Counts,
) -> None:
    if not records:
        return
    ids = [record["external_id"] for record in records]
    existing = {
        row.external_id: row._mapping
        for row in connection.execute(select(table).where(table.c.external_id.in_(ids)))
    }
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    for record in records:
        old = existing.get(record["external_id"])
        if old is None:
            inserts.append({**defaults, **record, "updated_at": now})
            continue
        # A forgotten person (GDPR erasure) must not come back from an old export.
        if "forgotten_at" in old and old["forgotten_at"] is not None:
            counts.unchanged += 1
            continue
        new = {**record, "attributes": {**(old["attributes"] or {}), **record["attributes"]}}
        # Only columns the file has are compared and written: a partial file
        # never blanks the others.
        if all(old[key] == value for key, value in new.items()):
            counts.unchanged += 1
        else:
            updates.append({**new, "updated_at": now, "b_id": old["id"]})
    if inserts:
        connection.execute(insert(table), inserts)
        counts.inserted += len(inserts)
    if updates:
        statement = update(table).where(table.c.id == bindparam("b_id"))
        connection.execute(statement, updates)
        counts.updated += len(updates)


# -- events: the bulk path --------------------------------------------------------------

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
        for start in range(0, len(ids), _LOOKUP_BATCH):
            part = ids[start : start + _LOOKUP_BATCH]
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


def _lookup(connection: Connection, table: Table) -> dict[str, int]:
    rows = connection.execute(select(table.c.external_id, table.c.id))
    return {external_id: id_ for external_id, id_ in rows}


def _load_events(
    connection: Connection,
    csv_file: CsvFile,
    rejects: _Rejects,
    advance: Progress,
    now: datetime,
    chunk_rows: int,
) -> _Counts:
    counts = _Counts()
    users = _lookup(connection, table_of(User))
    products = _lookup(connection, table_of(Product))
    # Every id this import stores is above this, which tells "earlier in this file"
    # from "imported before" without remembering the ids of the file.
    before = connection.execute(select(func.max(Event.id))).scalar() or 0
    dbapi_connection = connection.connection.dbapi_connection
    writer: _SqliteEvents | _PostgresEvents
    if connection.dialect.name == "postgresql":
        writer = _PostgresEvents(dbapi_connection)
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
    return counts


def _store_chunk(
    csv_file: CsvFile,
    chunk: EventChunk,
    writer: _SqliteEvents | _PostgresEvents,
    before: int,
    rejects: _Rejects,
    counts: _Counts,
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


# -- responses ------------------------------------------------------------------------


def _load_responses(
    connection: Connection,
    csv_file: CsvFile,
    rejects: _Rejects,
    advance: Progress,
    now: datetime,
    chunk_rows: int,
    media: Mapping[str, str] | None = None,
) -> _Counts:
    table = table_of(Response)
    counts = _Counts()
    seen: dict[str, int] = {}
    for chunk in _chunks(csv_file.rows(), min(chunk_rows, _LOOKUP_BATCH)):
        counts.rows += len(chunk)
        records: list[dict[str, Any]] = []
        for line, row in chunk:
            try:
                record = response_record(csv_file, row)
            except CellError as exc:
                rejects.add(csv_file.error(line, exc.column or None, exc.reason), row)
                continue
            event_id = record["provider_event_id"]
            if event_id in seen:
                if record["hashed"]:
                    counts.unchanged += 1
                else:
                    reason = f"duplicate event_id {event_id!r} (first on line {seen[event_id]})"
                    rejects.add(csv_file.error(line, "event_id", reason), row)
                continue
            seen[event_id] = line
            records.append(record)
        _insert_responses(connection, table, records, now, counts, media)
        advance(len(chunk))
    return counts


def _message_number(ref: str) -> int | None:
    # messages.id is a bigint: longer digit strings cannot name one.
    return int(ref) if ref.isdecimal() and ref.isascii() and len(ref) <= 18 else None


def _insert_responses(
    connection: Connection,
    table: Table,
    records: list[dict[str, Any]],
    now: datetime,
    counts: _Counts,
    media: Mapping[str, str] | None,
) -> None:
    if not records:
        return
    numbers = {n for r in records if (n := _message_number(r["message_ref"])) is not None}
    known: set[int] = set()
    if numbers:
        known = set(connection.execute(select(Message.id).where(Message.id.in_(numbers))).scalars())
    event_ids = [record["provider_event_id"] for record in records]
    stored = set(
        connection.execute(
            select(table.c.provider_event_id).where(table.c.provider_event_id.in_(event_ids))
        ).scalars()
    )
    rows: list[dict[str, Any]] = []
    for record in records:
        if record["provider_event_id"] in stored:
            counts.unchanged += 1
            continue
        number = _message_number(record["message_ref"])
        message_id = number if number in known else None
        if message_id is None:
            counts.unmatched += 1
        rows.append(
            {
                "message_id": message_id,
                "type": record["type"],
                "ts": record["ts"],
                "provider": record["provider"],
                "provider_event_id": record["provider_event_id"],
                # Kept so an unmatched response still says what it was about.
                "payload": {"message_id": record["message_ref"], "source": "csv"},
                "received_at": now,
            }
        )
    if rows:
        connection.execute(insert(table), rows)
        counts.inserted += len(rows)
        # The response pipeline owns what a response means (engagement, suppression);
        # a provider export imported here must have the same effects as its webhooks.
        counts.suppressions += apply_stored_responses(connection, rows, now=now, media=media)


_LOADERS: dict[
    str, Callable[[Connection, CsvFile, _Rejects, Progress, datetime, int], _Counts]
] = {
    # Users and products load alike: an upsert on the external id.
    "users": partial(_load_entities, table_of(User), "user_id"),
    "products": partial(_load_entities, table_of(Product), "product_id"),
    "events": _load_events,
}


def count_rows(path: Path) -> int | None:
    """Data lines in ``path`` (newlines minus the header), for a progress bar's total;
    None when the file cannot be read. Cheap: counts bytes, does not parse."""
    try:
        with path.open("rb") as handle:
            newlines = sum(block.count(b"\n") for block in iter(lambda: handle.read(1 << 20), b""))
    except OSError:
        return None
    return max(newlines - 1, 0)

