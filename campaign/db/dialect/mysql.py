"""What only MariaDB and MySQL need: engine options and the session every connection gets.

Every connection is set up alike, whatever the server's defaults:

* ``utf8mb4``, the only MySQL character set that holds every Unicode character
  (Chinese names, emoji in templates); ``utf8``/``utf8mb3`` stops at three bytes.
  The tables themselves are ``utf8mb4`` with the binary collation
  (:data:`TABLE_OPTIONS`), so text compares, groups and is unique exactly as on
  SQLite and PostgreSQL (the server default ``utf8mb4_general_ci`` would take
  ``Anna`` and ``anna`` for one key).
* ``time_zone = '+00:00'``: ``DATETIME`` has no time zone; campaign stores naive UTC
  there, and a UTC session keeps ``NOW()``, ``CURRENT_TIMESTAMP`` and
  ``UNIX_TIMESTAMP()`` in the same zone instead of the server's local time.
* ``sql_mode``: strict (a too-long or malformed value is an error, never truncated),
  ``ONLY_FULL_GROUP_BY`` (as PostgreSQL), no zero dates, no engine substitution.
* Aware ``datetime`` parameters are converted to UTC before PyMySQL writes them:
  PyMySQL drops the zone and would store the wall-clock time of any other zone.
* ``READ COMMITTED``, PostgreSQL's default and what the code is written for: each
  statement sees what is committed, and locking reads lock the rows they return,
  not the gaps between index entries. Under MySQL's default ``REPEATABLE READ`` the
  gap locks of concurrent ``FOR UPDATE SKIP LOCKED`` claims deadlock with the updates
  that follow them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

SQL_MODE = ",".join(
    (
        "STRICT_TRANS_TABLES",
        "STRICT_ALL_TABLES",
        "ONLY_FULL_GROUP_BY",
        "NO_ZERO_DATE",
        "NO_ZERO_IN_DATE",
        "ERROR_FOR_DIVISION_BY_ZERO",
        "NO_ENGINE_SUBSTITUTION",
    )
)
CHARSET = "utf8mb4"
COLLATION = "utf8mb4_bin"
# Keyword arguments of every table campaign creates (SQLAlchemy's ``mysql_*`` options).
TABLE_OPTIONS: dict[str, str] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": CHARSET,
    "mysql_collate": COLLATION,
}


def mysql_engine_options(query: Mapping[str, Any]) -> dict[str, Any]:
    """``create_engine`` keyword arguments for a ``mysql+pymysql`` URL with ``query``.

    ``local_infile`` lets the event import use ``LOAD DATA LOCAL INFILE`` where the
    server allows it; the URL may turn it off with ``local_infile=0``.
    """
    local_infile = str(query.get("local_infile", "1")).lower() not in ("0", "false", "no")
    return {
        "isolation_level": "READ COMMITTED",
        "pool_pre_ping": True,
        # Servers close idle connections after wait_timeout (8 h by default).
        "pool_recycle": 3600,
        "connect_args": {
            "connect_timeout": 10,
            "charset": CHARSET,
            "local_infile": local_infile,
        },
    }


def _escape_utc_datetime(value: datetime, mapping: Any = None) -> str:
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return "'" + value.isoformat(" ", "microseconds") + "'"


def mysql_session_setup(dbapi_connection: Any, _record: Any) -> None:
    """Set a new PyMySQL connection's session (a SQLAlchemy ``connect`` listener)."""
    encoders = getattr(dbapi_connection, "encoders", None)
    if isinstance(encoders, dict):
        encoders[datetime] = _escape_utc_datetime
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute(
            f"SET time_zone = '+00:00', sql_mode = '{SQL_MODE}', "
            f"NAMES {CHARSET} COLLATE {COLLATION}"
        )
    finally:
        cursor.close()
