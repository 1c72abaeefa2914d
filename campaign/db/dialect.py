"""Every SQLite/PostgreSQL difference in one place.

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
  thousands of ids that costs more client CPU than the query itself). SQLite has no
  arrays and keeps ``IN``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import CTE, ColumnElement, Select, Table, any_, bindparam, select, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection, Engine, RowMapping


def dialect_name(bind: Engine | Connection) -> str:
    """``"sqlite"`` or ``"postgresql"`` (the SQLAlchemy dialect name)."""
    return bind.dialect.name


def is_postgresql(bind: Engine | Connection) -> bool:
    """True on PostgreSQL."""
    return dialect_name(bind) == "postgresql"


def skip_locked(select: Select[Any], bind: Engine | Connection) -> Select[Any]:
    """``select`` locking its rows and skipping rows other transactions hold (PostgreSQL).

    On SQLite the statement is returned unchanged: the enclosing single UPDATE
    statement already holds the database's only write lock.
    """
    if is_postgresql(bind):
        return select.with_for_update(skip_locked=True)
    return select


def array_param(values: Sequence[Any], item_type: Any) -> Any:
    """One PostgreSQL array bind parameter holding ``values`` (items of ``item_type``)."""
    return bindparam(None, list(values), type_=ARRAY(item_type))


def in_values(
    column: ColumnElement[Any], values: Sequence[Any], bind: Engine | Connection
) -> ColumnElement[bool]:
    """``column IN values``: ``= ANY(:array)`` on PostgreSQL, ``IN (...)`` on SQLite.

    SQLite callers keep ``values`` under its bound-parameter limit (32,766).
    """
    if is_postgresql(bind):
        return column == any_(array_param(values, column.type))
    return column.in_(list(values))


def has_update_returning(bind: Engine | Connection) -> bool:
    """Whether the database can return rows from an ``UPDATE`` (not MariaDB/MySQL)."""
    return bool(bind.dialect.update_returning) and dialect_name(bind) not in ("mysql", "mariadb")


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
