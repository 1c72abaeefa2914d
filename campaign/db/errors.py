"""Database failures in the operator's words: what failed and what to do.

A raw driver error carries the SQL statement and, in SQLAlchemy's rendering, its
parameters: rendered customer text and addresses. :func:`explain` turns any such
error into one short sentence built from the driver's error code and the first line
of its message only (a constraint's ``DETAIL`` line, which quotes row values, is
dropped), so the command line can say what happened without leaking what was being
written; it passes the sentence through ``daemon.logging.redact`` before printing.

Pure: no database access; the driver modules are looked up only when already loaded.
"""

from __future__ import annotations

import sqlite3
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class DatabaseProblem:
    """One database failure: ``what`` happened and ``advice`` on what to do."""

    what: str
    advice: str

    def __str__(self) -> str:
        return f"{self.what}; {self.advice}"


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0].strip() if lines else type(exc).__name__


def _driver_error(exc: BaseException) -> BaseException | None:
    """The DBAPI exception behind ``exc`` (itself, SQLAlchemy's ``orig``, or a cause)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, sqlite3.Error):
            return current
        psycopg = sys.modules.get("psycopg")
        if psycopg is not None and isinstance(current, psycopg.Error):
            return current
        pymysql = sys.modules.get("pymysql")
        if pymysql is not None and isinstance(current, pymysql.err.Error):
            return current
        orig = getattr(current, "orig", None)
        if isinstance(orig, BaseException):
            current = orig
            continue
        current = current.__cause__ or current.__context__
    return None


def _sqlalchemy_timeout(exc: BaseException) -> bool:
    sa_exc = sys.modules.get("sqlalchemy.exc")
    return sa_exc is not None and isinstance(exc, sa_exc.TimeoutError)


def explain(exc: BaseException) -> DatabaseProblem | None:
    """A :class:`DatabaseProblem` when ``exc`` is (or wraps) a database driver error.

    Anything else (a bug, a ``CampaignError``) gives None and keeps its own handling.
    """
    if _sqlalchemy_timeout(exc):
        return DatabaseProblem(
            "no database connection became free in time",
            "too many commands or threads share the pool; retry, or lower the concurrency",
        )
    driver = _driver_error(exc)
    if driver is None:
        return None
    if isinstance(driver, sqlite3.Error):
        return _explain_sqlite(driver)
    if type(driver).__module__.startswith("pymysql"):
        return _explain_mysql(driver)
    return _explain_postgresql(driver)


def _explain_sqlite(exc: sqlite3.Error) -> DatabaseProblem:
    name = getattr(exc, "sqlite_errorname", "") or ""
    text = _first_line(exc)
    lowered = text.lower()
    if name.startswith("SQLITE_BUSY") or name.startswith("SQLITE_LOCKED") or "locked" in lowered:
        return DatabaseProblem(
            "the SQLite database is locked by another process (a daemon, a worker or "
            "another command) and stayed locked past the busy timeout",
            "let that process finish (or stop it) and run the command again; nothing of "
            "the failed transaction was kept",
        )
    if name.startswith("SQLITE_FULL") or "database or disk is full" in lowered:
        return DatabaseProblem(
            "the disk holding the SQLite database is full",
            "free space there (or move the database) and run the command again; the "
            "failed transaction was rolled back",
        )
    if name.startswith("SQLITE_IOERR") or "disk i/o error" in lowered:
        return DatabaseProblem(
            "a disk I/O error while writing the SQLite database (a full disk, a file size "
            "limit or a failing disk)",
            "check free space and the filesystem, then run the command again; the failed "
            "transaction was rolled back",
        )
    if name.startswith("SQLITE_READONLY") or "readonly" in lowered:
        return DatabaseProblem(
            "the SQLite database is read-only for this user",
            "check the permissions of the file and of its folder (SQLite writes -wal and "
            "-shm files beside it)",
        )
    if name.startswith("SQLITE_CANTOPEN") or "unable to open" in lowered:
        return DatabaseProblem(
            "the SQLite database file cannot be opened",
            "check the path in [database] url (or CAMPAIGN_DATABASE_URL) and that its "
            "folder exists and is writable",
        )
    if name.startswith(("SQLITE_CORRUPT", "SQLITE_NOTADB")) or "malformed" in lowered:
        return DatabaseProblem(
            "the SQLite database file is damaged or not a database",
            "restore it from a backup (docs/operations.md)",
        )
    return DatabaseProblem(
        f"the SQLite database failed: {text}",
        "run the command again with --debug for the details",
    )


# PostgreSQL SQLSTATE classes and codes worth their own advice.
_PG_CONNECTION = "08"
_PG_ADVICE: dict[str, tuple[str, str]] = {
    "53100": ("the PostgreSQL server's disk is full",
              "free space on the database server, then run the command again"),
    "53200": ("the PostgreSQL server ran out of memory",
              "run the command again when the server is less busy"),
    "53300": ("PostgreSQL refused the connection: too many connections",
              "stop idle clients or raise max_connections, then run the command again"),
    "40001": ("the transaction conflicted with another process (serialization failure)",
              "run the command again"),
    "40P01": ("the transaction deadlocked with another process",
              "run the command again"),
    "55P03": ("a row or table lock was not available in time",
              "let the other process finish, then run the command again"),
    "57014": ("the statement was cancelled (statement timeout or an operator)",
              "run the command again; raise statement_timeout if it keeps happening"),
    "57P01": ("the PostgreSQL server shut down during the command",
              "run the command again once the server is back"),
    "42501": ("the database user lacks a privilege this command needs",
              "grant it (docs/operations.md lists what campaign needs) and run again"),
    "25006": ("the database is read-only (a standby or a read-only transaction)",
              "point [database] url at the primary server"),
}


def _explain_postgresql(exc: BaseException) -> DatabaseProblem:
    sqlstate = str(getattr(exc, "sqlstate", "") or "")
    text = _first_line(exc)
    if sqlstate in _PG_ADVICE:
        what, advice = _PG_ADVICE[sqlstate]
        return DatabaseProblem(what, advice)
    lowered = text.lower()
    if sqlstate.startswith(_PG_CONNECTION) or not sqlstate and (
        "connection" in lowered or "server closed" in lowered or "timeout" in lowered
    ):
        return DatabaseProblem(
            f"cannot reach PostgreSQL ({text})",
            "check that the server runs and accepts connections, and the host, port "
            "and credentials in [database] url (or CAMPAIGN_DATABASE_URL)",
        )
    return DatabaseProblem(
        f"PostgreSQL failed: {text}",
        "run the command again with --debug for the details",
    )


# MariaDB/MySQL error numbers worth their own advice (server and client errors).
_MYSQL_ADVICE: dict[int, tuple[str, str]] = {
    1040: ("MariaDB/MySQL refused the connection: too many connections",
           "stop idle clients or raise max_connections, then run the command again"),
    1044: ("the database user may not use this database",
           "GRANT it the privileges docs/operations.md lists, then run again"),
    1045: ("MariaDB/MySQL refused the user name or password",
           "check the credentials in [database] url (or CAMPAIGN_DATABASE_URL)"),
    1049: ("the database named in the URL does not exist",
           "create it (CREATE DATABASE ... CHARACTER SET utf8mb4 COLLATE utf8mb4_bin; "
           "docs/operations.md), then run 'campaign db upgrade'"),
    1142: ("the database user lacks a privilege this command needs",
           "grant it (docs/operations.md lists what campaign needs) and run again"),
    1205: ("a row lock was not available in time (lock wait timeout)",
           "let the other process finish, then run the command again"),
    1213: ("the transaction deadlocked with another process",
           "run the command again"),
    1114: ("a table is full (the server's disk or tablespace)",
           "free space on the database server, then run the command again"),
    1792: ("the database is read-only here (a read-only transaction)",
           "point [database] url at the primary server, or give the query a read"),
    1290: ("the server runs read-only (a replica, or --read-only)",
           "point [database] url at the primary server"),
}
# Client-side connection failures (CR_*): cannot connect, server gone, lost.
_MYSQL_CONNECTION = {2002, 2003, 2005, 2006, 2013, 2055}


def _explain_mysql(exc: BaseException) -> DatabaseProblem:
    args: tuple[object, ...] = tuple(exc.args)
    code = args[0] if args and isinstance(args[0], int) else 0
    text = str(args[1]).strip().splitlines()[0] if len(args) > 1 else _first_line(exc)
    if code in _MYSQL_ADVICE:
        what, advice = _MYSQL_ADVICE[code]
        return DatabaseProblem(what, advice)
    if code in _MYSQL_CONNECTION:
        return DatabaseProblem(
            f"cannot reach MariaDB/MySQL ({text})",
            "check that the server runs and accepts connections, and the host, port "
            "and credentials in [database] url (or CAMPAIGN_DATABASE_URL)",
        )
    return DatabaseProblem(
        f"MariaDB/MySQL failed: {text}",
        "run the command again with --debug for the details",
    )
