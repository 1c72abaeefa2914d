"""Declarative base, naming convention, the UTC-aware timestamp type and the column
types that need a larger MySQL spelling."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Integer, LargeBinary, MetaData, Table, Text
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator, TypeEngine

# Constraint names must be identical on every database so Alembic can drop them.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite only auto-increments a column declared exactly INTEGER PRIMARY KEY.
BigId = BigInteger().with_variant(Integer(), "sqlite")
# MySQL's TEXT and BLOB stop at 64 KiB (a rendered HTML e-mail, a model artifact can
# be larger); elsewhere text and bytes have no such limit.
LongText = Text().with_variant(mysql.MEDIUMTEXT(), "mysql")
LongBinary = LargeBinary().with_variant(mysql.LONGBLOB(), "mysql")
# MySQL's DATETIME keeps whole seconds unless asked for microseconds.
_MYSQL_DATETIME = mysql.DATETIME(fsp=6)


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every dialect.

    PostgreSQL stores ``timestamptz``. SQLite and MySQL have no time zones, so values
    are stored as naive UTC (text on SQLite, ``DATETIME(6)`` on MySQL) and made aware
    again when read. Naive input is taken as UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "mysql":
            return dialect.type_descriptor(_MYSQL_DATETIME)
        return dialect.type_descriptor(self.impl)

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        if dialect.name in ("sqlite", "mysql"):
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = datetime.fromisoformat(value)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    """Base of every ORM class; its ``metadata`` is what Alembic compares against."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)



def table_of(model: type[Base]) -> Table:
    """The Core :class:`~sqlalchemy.Table` behind an ORM class.

    ``Model.__table__`` is typed as a generic ``FromClause``, which has no
    ``insert()``/``update()`` for a type checker; every declarative class here maps
    exactly one table, so this narrows it once, in one place.
    """
    table = model.__table__
    if not isinstance(table, Table):  # pragma: no cover - every model maps a Table
        raise TypeError(f"{model.__name__} is not mapped to a single table")
    return table
