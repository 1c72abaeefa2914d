"""The console's tables: accounts, the record of every write, template versions.

* ``console_users``: who may log in to ``campaign console``, with a role and an argon2
  password hash (never the password); a disabled account keeps its row (and its name
  in the record) but cannot log in.
* ``console_audit``: every write made through the console or the ``campaign users`` and
  ``campaign pause/resume`` commands: who, when, what (a dotted action such as
  ``template.saved``), on what, and a small JSON detail. Rows are only ever added.
* ``template_versions``: every saved version of a template file, numbered per file,
  so a marketer can see what changed (a diff) and go back (a revert is a new version).

Read and written through the helpers below only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Index,
    Integer,
    String,
    UniqueConstraint,
    func,
    select,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Mapped, mapped_column

from campaign.db.base import Base, BigId, LongText, UTCDateTime, table_of


class ConsoleUser(Base):
    """An account of the console: a name, a role, a password hash, enabled or not."""

    __tablename__ = "console_users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(255))
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Changes with every password reset, so the sessions signed before it end.
    password_changed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class AuditEntry(Base):
    """One write: who (an account name, or ``cli:<os user>``), when, what, on what."""

    __tablename__ = "console_audit"
    __table_args__ = (Index("ix_console_audit_at", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(500))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class TemplateVersion(Base):
    """One saved version of one template file (``winback/en/email.html``)."""

    __tablename__ = "template_versions"
    __table_args__ = (UniqueConstraint("path", "version"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    path: Mapped[str] = mapped_column(String(500))
    version: Mapped[int] = mapped_column(Integer)
    content: Mapped[str] = mapped_column(LongText)
    author: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # "saved", "revert of 3", "on disk before the first save".
    note: Mapped[str] = mapped_column(String(200))


_users = table_of(ConsoleUser)
_audit = table_of(AuditEntry)
_versions = table_of(TemplateVersion)


@dataclass(frozen=True)
class Account:
    """A console account as read from the database (the hash stays inside)."""

    id: int
    name: str
    role: str
    password_hash: str
    disabled: bool
    created_at: datetime
    password_changed_at: datetime
    last_login_at: datetime | None


def _account(row: Any) -> Account:
    return Account(
        row.id, row.name, row.role, row.password_hash, bool(row.disabled), row.created_at,
        row.password_changed_at, row.last_login_at,
    )


def find_account(connection: Connection, name: str) -> Account | None:
    """The account called ``name``, or None; read-only."""
    row = connection.execute(select(_users).where(_users.c.name == name)).first()
    return _account(row) if row is not None else None


def account_by_id(connection: Connection, account_id: int) -> Account | None:
    """The account with id ``account_id``, or None; read-only."""
    row = connection.execute(select(_users).where(_users.c.id == account_id)).first()
    return _account(row) if row is not None else None


def all_accounts(connection: Connection) -> list[Account]:
    """Every account, by name; read-only."""
    return [_account(r) for r in connection.execute(select(_users).order_by(_users.c.name))]


def insert_account(
    connection: Connection, name: str, role: str, password_hash: str, *, now: datetime
) -> int:
    """Add an account; returns its id (the caller checks the name is free)."""
    result = connection.execute(
        _users.insert().values(
            name=name, role=role, password_hash=password_hash, disabled=False,
            created_at=now, password_changed_at=now,
        )
    )
    return int(result.inserted_primary_key[0])  # type: ignore[index]


def update_account(connection: Connection, account_id: int, **values: Any) -> None:
    """Change columns of one account (``role``, ``disabled``, ``password_hash``...)."""
    connection.execute(update(_users).where(_users.c.id == account_id).values(**values))


def record(
    connection: Connection,
    actor: str,
    action: str,
    target: str,
    *,
    now: datetime,
    detail: dict[str, Any] | None = None,
) -> None:
    """Append one entry to the record of writes (in the caller's transaction)."""
    connection.execute(
        _audit.insert().values(
            at=now, actor=actor, action=action, target=target[:500], detail=detail or {}
        )
    )


@dataclass(frozen=True)
class Entry:
    """One recorded write."""

    at: datetime
    actor: str
    action: str
    target: str
    detail: dict[str, Any]


def recent_entries(connection: Connection, limit: int = 100, offset: int = 0) -> list[Entry]:
    """The newest recorded writes, newest first; read-only."""
    rows = connection.execute(
        select(_audit).order_by(_audit.c.at.desc(), _audit.c.id.desc()).limit(limit).offset(offset)
    )
    return [Entry(r.at, r.actor, r.action, r.target, dict(r.detail or {})) for r in rows]


@dataclass(frozen=True)
class Version:
    """One stored version of a template file."""

    path: str
    version: int
    content: str
    author: str
    created_at: datetime
    note: str


def _version(row: Any) -> Version:
    return Version(row.path, row.version, row.content, row.author, row.created_at, row.note)


def add_version(
    connection: Connection, path: str, content: str, author: str, note: str, *, now: datetime
) -> int:
    """Store ``content`` as the next version of ``path``; returns its number."""
    latest = connection.execute(
        select(func.max(_versions.c.version)).where(_versions.c.path == path)
    ).scalar()
    number = int(latest or 0) + 1
    connection.execute(
        _versions.insert().values(
            path=path, version=number, content=content, author=author, created_at=now,
            note=note,
        )
    )
    return number


def versions_of(connection: Connection, path: str) -> list[Version]:
    """Every stored version of ``path``, newest first; read-only."""
    rows = connection.execute(
        select(_versions).where(_versions.c.path == path).order_by(_versions.c.version.desc())
    )
    return [_version(r) for r in rows]


def get_version(connection: Connection, path: str, number: int) -> Version | None:
    """Version ``number`` of ``path``, or None; read-only."""
    row = connection.execute(
        select(_versions).where(_versions.c.path == path, _versions.c.version == number)
    ).first()
    return _version(row) if row is not None else None
