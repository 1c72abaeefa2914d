"""Fresh data without hands: CSV and Parquet drops from a folder and queries against
the shop's DB.

Both go through :func:`campaign.ingest.import_file` with ``skip_invalid=True``, so the
same validation applies as for ``campaign import`` and bad rows are kept with their
reasons in a ``*.rejects.csv`` beside the file instead of blocking the good ones.

Folder drops: a file ``<kind>*.csv`` (users, products, events, responses), or
``events*.parquet``, is imported once (a Parquet drop waits while pyarrow, the
``parquet`` extra, is missing): its SHA-256 is recorded in ``ingest_files``, and it
moves to ``done/`` (rows imported, maybe some rejected) or ``rejected/`` (unreadable
as its kind). Within one pass users go first, then products, events and responses, so
events can refer to users of the same drop. If the process dies between the import's
commit and the record, the next pass imports the file again, which changes nothing
(imports are idempotent).
"""

from __future__ import annotations

import csv
import hashlib
import logging
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import create_engine, event, select, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError

from campaign.common.errors import CampaignError, DatabaseError, InputError
from campaign.daemon.logging import log_event
from campaign.db.base import table_of
from campaign.db.engine import mask_url
from campaign.db.models import IngestFile
from campaign.ingest import ImportReport, import_file
from campaign.ingest.parquet import PARQUET_SUFFIX, parquet_available
from campaign.ingest.readers import Kind

log = logging.getLogger("campaign.daemon")

KIND_ORDER: tuple[Kind, ...] = ("users", "products", "events", "responses")


def kind_of(name: str) -> Kind | None:
    """The import kind a drop's file name announces (``events-2026-11-28.csv`` or
    ``events-2026-11-28.parquet`` → events; ``users.parquet`` → users, which the import
    then refuses: only events import from Parquet)."""
    lower = name.lower()
    if lower.endswith(".rejects.csv") or not lower.endswith((".csv", PARQUET_SUFFIX)):
        return None
    for kind in KIND_ORDER:
        if lower.startswith(kind):
            return kind
    return None


def file_hash(path: Path) -> str:
    """SHA-256 hex of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _move(path: Path, folder: Path, digest: str) -> Path:
    folder.mkdir(exist_ok=True)
    target = folder / path.name
    if target.exists():
        target = folder / f"{path.stem}.{digest[:12]}{path.suffix}"
    shutil.move(str(path), target)
    return target


def _record(
    engine: Engine, digest: str, name: str, kind: str, status: str, report: dict[str, Any],
    now: datetime,
) -> None:
    try:
        with engine.begin() as connection:
            connection.execute(
                table_of(IngestFile).insert().values(
                    content_hash=digest, name=name, kind=kind, status=status, report=report,
                    processed_at=now,
                )
            )
    except IntegrityError:
        pass  # another daemon recorded the same content first


def ingest_folder(
    engine: Engine,
    folder: Path,
    *,
    now: Callable[[], datetime],
    settle_seconds: float = 5.0,
    media: Mapping[str, str] | None = None,
    currency: str = "CNY",
    phone_region: str | None = None,
) -> list[tuple[str, str]]:
    """Import every new drop in ``folder``; returns ``(file name, status)`` per file seen.

    Status is ``imported``, ``duplicate`` (same content already imported, moved to
    ``done/``), ``rejected`` (unreadable, moved to ``rejected/`` with a ``.reason.txt``),
    ``unknown`` (no kind in the name, left alone) or ``waiting`` (younger than
    ``settle_seconds``: maybe still being written; or a Parquet file while pyarrow is
    not installed). Database outages raise and leave the file for the next pass.
    """
    if not folder.is_dir():
        log.warning("ingest.folder.missing folder=%s", folder)
        return []
    done, rejected = folder / "done", folder / "rejected"
    seen: list[tuple[str, str]] = []
    files = [p for p in folder.iterdir() if p.is_file()]
    files.sort(key=lambda p: (KIND_ORDER.index(kind_of(p.name) or "responses"), p.name))
    for path in files:
        kind = kind_of(path.name)
        if kind is None:
            if not path.name.startswith("."):
                seen.append((path.name, "unknown"))
            continue
        clock = now()
        if clock.timestamp() - path.stat().st_mtime < settle_seconds:
            seen.append((path.name, "waiting"))
            continue
        if path.suffix.lower() == PARQUET_SUFFIX and not parquet_available():
            # Not the file's fault: it imports once the extra is installed.
            log_event(log, "ingest.file.needs_pyarrow", logging.WARNING, file=path.name,
                      hint="pip install 'campaign[parquet]'")
            seen.append((path.name, "waiting"))
            continue
        digest = file_hash(path)
        with engine.connect() as connection:
            known = connection.execute(
                select(IngestFile.status).where(IngestFile.content_hash == digest)
            ).scalar()
        if known is not None:
            _move(path, done, digest)
            log_event(log, "ingest.file.duplicate", file=path.name, kind=kind)
            seen.append((path.name, "duplicate"))
            continue
        rejects = rejected / f"{path.stem}.rejects.csv"
        rejected.mkdir(exist_ok=True)
        try:
            report = import_file(
                engine, kind, path, skip_invalid=True, rejects_path=rejects, now=clock,
                media=media, currency=currency, phone_region=phone_region,
            )  # type: ignore[arg-type]
        except InputError as exc:
            target = _move(path, rejected, digest)
            target.with_name(target.name + ".reason.txt").write_text(str(exc) + "\n", "utf-8")
            _record(engine, digest, path.name, kind, "rejected", {"error": str(exc)[:2000]}, clock)
            log_event(log, "ingest.file.rejected", logging.WARNING, file=path.name, kind=kind,
                      reason=str(exc).splitlines()[0])
            seen.append((path.name, "rejected"))
            continue
        _move(path, done, digest)
        _record(engine, digest, path.name, kind, "done", _report_json(report), clock)
        for warning in report.warnings:
            log_event(log, "ingest.file.column", logging.WARNING, file=path.name, kind=kind,
                      warning=warning)
        log_event(
            log, "ingest.file.imported", file=path.name, kind=kind, rows=report.rows_read,
            inserted=report.inserted, updated=report.updated, rejected=report.rejected,
        )
        seen.append((path.name, "imported"))
    return seen


def _report_json(report: ImportReport) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(report).items()}


# Statements a read-only SQLite connection may prepare: reading tables, calling
# functions, recursive CTEs. Everything else (writes, DDL, ATTACH, PRAGMA, ...) is
# refused by SQLite itself while it compiles the statement.
_SQLITE_READ_ACTIONS = frozenset(
    {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION, sqlite3.SQLITE_RECURSIVE}
)


def _sqlite_reads_only(action: int, *_args: object) -> int:
    return sqlite3.SQLITE_OK if action in _SQLITE_READ_ACTIONS else sqlite3.SQLITE_DENY


def _mysql_reads_only(connection: Any) -> None:
    # Runs as each transaction begins, before its first statement, so it applies to it
    # and to the implicit transaction of a DDL statement alike.
    connection.exec_driver_sql("SET SESSION TRANSACTION READ ONLY")


def open_shop_database(url: str) -> Engine:
    """An engine on the shop's database ``url`` that the database keeps read-only.

    The guard is the database's, not a look at the query text (which cannot tell
    ``WITH d AS (DELETE ... RETURNING id) SELECT ...`` from a read):

    * SQLite: the file is opened ``mode=ro`` and an authorizer denies every statement
      that is not a read, so ``INSERT``, ``UPDATE``, ``DELETE`` (also behind ``WITH``),
      DDL, ``ATTACH`` and ``PRAGMA`` fail when SQLite compiles them.
    * PostgreSQL: every transaction starts ``READ ONLY`` (``BEGIN READ ONLY``), which a
      statement inside it cannot lift; give the URL a read-only role too.
    * MariaDB/MySQL: ``SET SESSION TRANSACTION READ ONLY`` before every transaction,
      so a query that changed the session's default cannot carry it over to the next
      one (PyMySQL sends one statement per query); give the URL a user with only
      ``SELECT`` too.

    Raises:
        DatabaseError: the URL is invalid or the database cannot be reached.
    """
    from campaign.db.engine import make_engine

    parsed = make_url(url)
    if parsed.get_backend_name() == "mysql":
        engine = make_engine(url)
        # The connection that checked the URL was opened before the guard: drop it.
        engine.dispose()
        event.listen(engine, "begin", _mysql_reads_only)
        return engine
    if parsed.get_backend_name() != "sqlite":
        engine = make_engine(url)
        return engine.execution_options(postgresql_readonly=True)
    database = parsed.database or ""
    path = Path(database).resolve()
    if not database or database == ":memory:" or not path.is_file():
        raise DatabaseError(mask_url(url), "the shop database file does not exist")
    uri = f"file:{quote(str(path))}?mode=ro"

    def connect() -> sqlite3.Connection:
        return sqlite3.connect(uri, uri=True, check_same_thread=False)

    def guard(dbapi_connection: sqlite3.Connection, _record: object) -> None:
        # A "connect" listener runs after SQLAlchemy's first-connect PRAGMAs.
        dbapi_connection.set_authorizer(_sqlite_reads_only)

    engine = create_engine("sqlite://", creator=connect)
    event.listen(engine, "connect", guard)
    return engine


def ingest_query(
    engine: Engine,
    target: str,
    url: str,
    query: str,
    *,
    now: Callable[[], datetime],
    rejects_dir: Path | None = None,
    currency: str = "CNY",
    phone_region: str | None = None,
) -> ImportReport:
    """Run ``query`` read-only on the shop's database ``url`` and import it as ``target``.

    The result's column names must follow the CSV contract of ``target`` (users,
    products, events); amounts are in ``currency`` (the shop's), national phone numbers
    in ``phone_region`` (``[shop] phone_region``). Rows are written to a
    temporary CSV and imported with ``skip_invalid=True``; rejects go to
    ``rejects_dir`` when given. The shop's database refuses anything but reading
    (:func:`open_shop_database`).

    Raises:
        CampaignError: the shop database refused the query (a write, several
            statements, a syntax error) or cannot be reached.
    """
    statement = query.strip().rstrip(";").strip()
    source = open_shop_database(url)
    try:
        with source.connect() as connection:
            try:
                result = connection.execute(text(statement))
            except DBAPIError as exc:
                reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
                raise CampaignError(
                    f"daemon.ingest.queries ({target}): the shop database refused the query: "
                    f"{reason}"
                ) from None
            if not result.returns_rows:
                raise CampaignError(
                    f"daemon.ingest.queries ({target}): the shop database refused the query: "
                    "it returns no rows (a query must be one SELECT)"
                )
            columns = list(result.keys())
            with tempfile.TemporaryDirectory(prefix="campaign-ingest-") as tmp:
                path = Path(tmp) / f"{target}.csv"
                rows = 0
                with path.open("w", newline="", encoding="utf-8") as handle:
                    writer = csv.writer(handle)
                    writer.writerow(columns)
                    for row in result:
                        writer.writerow(["" if v is None else _csv_value(v) for v in row])
                        rows += 1
                connection.rollback()
                rejects = None
                if rejects_dir is not None:
                    rejects_dir.mkdir(parents=True, exist_ok=True)
                    rejects = rejects_dir / f"query-{target}-{now():%Y%m%dT%H%M%S}.rejects.csv"
                report = import_file(
                    engine, target, path, skip_invalid=True,  # type: ignore[arg-type]
                    rejects_path=rejects or Path(tmp) / "rejects.csv", now=now(),
                    currency=currency, phone_region=phone_region,
                )
    finally:
        source.dispose()
    for warning in report.warnings:
        log_event(log, "ingest.query.column", logging.WARNING, target=target, warning=warning)
    log_event(
        log, "ingest.query.imported", target=target, rows=rows, inserted=report.inserted,
        updated=report.updated, rejected=report.rejected,
    )
    return report


def _csv_value(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
