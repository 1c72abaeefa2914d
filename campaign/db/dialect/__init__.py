"""Every difference between SQLite, PostgreSQL and MariaDB/MySQL in one place.

MariaDB and MySQL share SQLAlchemy's ``mysql`` dialect; what only they need (session
settings, SQL fragments, the bulk event writer, the leader lock) is in
:mod:`campaign.db.dialect.mysql`.

* Claims: PostgreSQL locks candidate rows with ``FOR UPDATE SKIP LOCKED`` so any number
  of workers claim disjoint batches without waiting on each other. SQLite has one
  writer at a time; a single ``UPDATE ... WHERE id IN (SELECT ...) RETURNING`` runs
  atomically under its write lock, which gives the same guarantee for one host.
* Claims go through :func:`claim_rows`, the one place that knows how a database
  claims rows atomically. With ``UPDATE ... RETURNING`` (SQLite, PostgreSQL) it is
  one statement; a database without it (MariaDB, MySQL) takes the two-step variant:
  ``SELECT ... FOR UPDATE SKIP LOCKED``, then ``UPDATE ... WHERE id IN`` those ids and
  read them back, all in the caller's transaction (the row locks make it atomic).
* Lists of values: on PostgreSQL ``column = ANY(:array)`` sends one array parameter,
  where ``IN (...)`` would render, bind and parse one placeholder per value (for
  thousands of ids that costs more client CPU than the query itself). SQLite and
  MySQL have no arrays and keep ``IN``.
* Driver SQL: ``sqlite3`` marks parameters ``?``, psycopg and PyMySQL ``%s``
  (:func:`driver_mark`).
* Conflicts: ``INSERT ... ON CONFLICT DO NOTHING`` on SQLite and PostgreSQL; MySQL has
  no ``ON CONFLICT`` and ignores the duplicate with ``INSERT IGNORE`` instead
  (:func:`insert_ignoring`).
* SQL text: epoch seconds, integer casts and materialised CTEs are spelled per
  dialect (:func:`epoch_sql`, :func:`bigint_sql`, :func:`materialized`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import (
    CTE,
    ColumnElement,
    Insert,
    Select,
    Table,
    any_,
    bindparam,
    insert,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection, CursorResult, Engine, RowMapping

MYSQL = "mysql"


def dialect_name(bind: Engine | Connection) -> str:
    """``"sqlite"``, ``"postgresql"`` or ``"mysql"`` (SQLAlchemy's dialect name; MariaDB
    is ``"mysql"`` too)."""
    return bind.dialect.name


def is_postgresql(bind: Engine | Connection) -> bool:
    """True on PostgreSQL."""
    return dialect_name(bind) == "postgresql"


def is_mysql(bind: Engine | Connection) -> bool:
    """True on MariaDB and MySQL."""
    return dialect_name(bind) == MYSQL


def is_server(bind: Engine | Connection) -> bool:
    """True on a database server (PostgreSQL, MariaDB, MySQL): several hosts and
    processes may share it, and it has row locks; False on SQLite (one file)."""
    return dialect_name(bind) != "sqlite"


def driver_mark(bind: Engine | Connection) -> str:
    """The DBAPI parameter marker for driver-level SQL: ``?`` (sqlite3) or ``%s``."""
    return "?" if dialect_name(bind) == "sqlite" else "%s"


def skip_locked(select: Select[Any], bind: Engine | Connection) -> Select[Any]:
    """``select`` locking its rows and skipping rows other transactions hold
    (PostgreSQL, MariaDB ≥ 10.6, MySQL 8).

    On SQLite the statement is returned unchanged: the enclosing single UPDATE
    statement already holds the database's only write lock.
    """
    if is_server(bind):
        return select.with_for_update(skip_locked=True)
    return select


def insert_ignoring(bind: Engine | Connection, table: Table, key: Sequence[str]) -> Insert:
    """``INSERT`` into ``table`` that skips rows whose unique ``key`` is already stored.

    ``ON CONFLICT (key) DO NOTHING`` on SQLite and PostgreSQL; ``INSERT IGNORE`` on
    MySQL, so callers only use it for rows whose other columns cannot fail (IGNORE
    would turn their errors into warnings).
    """
    name = dialect_name(bind)
    if name == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing(index_elements=list(key))
    if name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(index_elements=list(key))
    return insert(table).prefix_with("IGNORE", dialect=MYSQL)


def inserted_id(result: CursorResult[Any]) -> int:
    """The key of the one row an ``INSERT`` stored, from the driver on every database
    (MySQL has no ``INSERT ... RETURNING``; SQLAlchemy reads its last insert id)."""
    key = result.inserted_primary_key
    if key is None or key[0] is None:
        raise RuntimeError("the INSERT stored no row")
    return int(key[0])


def epoch_sql(dialect: str, expression: str) -> str:
    """SQL for the Unix epoch seconds (integer, truncated) of a UTC timestamp expression."""
    if dialect == "sqlite":
        # SQLite rounds fractional seconds to milliseconds (…59.9996 becomes the next
        # second); cutting the stored text to whole seconds truncates like PostgreSQL.
        return f"CAST(strftime('%s', substr({expression}, 1, 19)) AS INTEGER)"
    if dialect == MYSQL:
        # Whole seconds since the epoch of the stored naive-UTC value, whatever the
        # session time zone (UNIX_TIMESTAMP would read it in that zone).
        return f"TIMESTAMPDIFF(SECOND, '1970-01-01 00:00:00', {expression})"
    return f"CAST(FLOOR(EXTRACT(EPOCH FROM {expression})) AS BIGINT)"


def bigint_sql(dialect: str, expression: str) -> str:
    """SQL casting ``expression`` to a 64-bit integer (MySQL spells it ``SIGNED``).

    Sums need it on PostgreSQL (``SUM(bigint)`` is ``numeric``) and on MySQL (every
    integer ``SUM`` is ``DECIMAL``), so each dialect returns plain integers.
    """
    return f"CAST({expression} AS {'SIGNED' if dialect == MYSQL else 'BIGINT'})"


def materialized(dialect: str) -> str:
    """``MATERIALIZED`` for a CTE that must be computed once (PostgreSQL ≥ 12 would
    inline it into every reference); MySQL has no such keyword."""
    return "" if dialect == MYSQL else "MATERIALIZED"


def array_param(values: Sequence[Any], item_type: Any) -> Any:
    """One PostgreSQL array bind parameter holding ``values`` (items of ``item_type``)."""
    return bindparam(None, list(values), type_=ARRAY(item_type))


def in_values(
    column: ColumnElement[Any], values: Sequence[Any], bind: Engine | Connection
) -> ColumnElement[bool]:
    """``column IN values``: ``= ANY(:array)`` on PostgreSQL, ``IN (...)`` elsewhere.

    SQLite callers keep ``values`` under its bound-parameter limit (32,766); MySQL
    callers keep the statement under ``max_allowed_packet``.
    """
    if is_postgresql(bind):
        return column == any_(array_param(values, column.type))
    return column.in_(list(values))


def has_update_returning(bind: Engine | Connection) -> bool:
    """Whether the database can return rows from an ``UPDATE`` (not MariaDB/MySQL)."""
    return bool(bind.dialect.update_returning) and not is_mysql(bind)


def claim_rows(
    connection: Connection,
    table: Table,
    *,
    candidates: Select[Any],
    values: Mapping[str, Any],
    returning: Sequence[Any],
    joined: Callable[[CTE], Select[Any]] | None = None,
    two_step: bool | None = None,
) -> tuple[Sequence[RowMapping], bool]:
    """Atomically apply ``values`` to the rows ``candidates`` selects (by ``id``) and
    return ``returning`` of each, in the caller's transaction.

    ``candidates`` selects the ``id`` column; it is locked with ``FOR UPDATE SKIP
    LOCKED`` where the database has it, so concurrent claimers take disjoint rows.
    ``joined`` (PostgreSQL only) wraps the claim as a data-modifying CTE and selects
    from it, so the claim and a join over its rows are one round trip; the second
    value returned says whether it was used. ``two_step`` forces (True) or forbids
    (False) the variant for databases without ``UPDATE ... RETURNING``; by default it
    is chosen from the dialect (tests force it to check the MariaDB path on the others).
    """
    if two_step is None:
        two_step = not has_update_returning(connection)
    if not two_step and not has_update_returning(connection):
        raise ValueError(f"{dialect_name(connection)} has no UPDATE ... RETURNING")
    if two_step:
        if dialect_name(connection) == "sqlite":
            # Only a test runs this variant here: take the write lock before reading
            # (SQLite has no FOR UPDATE), so the read and the update see one state.
            connection.execute(update(table).where(table.c.id.is_(None)).values(id=table.c.id))
        ids = list(connection.execute(skip_locked(candidates, connection)).scalars())
        if not ids:
            return [], False
        connection.execute(
            update(table).where(in_values(table.c.id, ids, connection)).values(**values)
        )
        rows = connection.execute(
            select(*returning).where(in_values(table.c.id, ids, connection))
        ).mappings().all()
        return rows, False
    claim = (
        update(table)
        .where(table.c.id.in_(skip_locked(candidates, connection).scalar_subquery()))
        .values(**values)
        .returning(*returning)
    )
    if joined is not None and is_postgresql(connection):
        return connection.execute(joined(claim.cte("claimed"))).mappings().all(), True
    return connection.execute(claim).mappings().all(), False
