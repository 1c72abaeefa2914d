"""Every SQLite/PostgreSQL difference in one place.

* Claims: PostgreSQL locks candidate rows with ``FOR UPDATE SKIP LOCKED`` so any number
  of workers claim disjoint batches without waiting on each other. SQLite has one
  writer at a time; a single ``UPDATE ... WHERE id IN (SELECT ...) RETURNING`` runs
  atomically under its write lock, which gives the same guarantee for one host.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select
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
