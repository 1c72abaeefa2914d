"""Every SQLite/PostgreSQL difference in one place.

* Claims: PostgreSQL locks candidate rows with ``FOR UPDATE SKIP LOCKED`` so any number
  of workers claim disjoint batches without waiting on each other. SQLite has one
  writer at a time; a single ``UPDATE ... WHERE id IN (SELECT ...) RETURNING`` runs
  atomically under its write lock, which gives the same guarantee for one host.
* Lists of values: on PostgreSQL ``column = ANY(:array)`` sends one array parameter,
  where ``IN (...)`` would render, bind and parse one placeholder per value (for
  thousands of ids that costs more client CPU than the query itself). SQLite has no
  arrays and keeps ``IN``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Select, any_, bindparam
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection, Engine


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
