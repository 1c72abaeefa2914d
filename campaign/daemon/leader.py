"""Who runs the scheduler: one leader among any number of daemons.

PostgreSQL: a *session-level* advisory lock (``pg_try_advisory_lock``) held on a
dedicated connection. The server releases it when that session ends, so a leader that
is killed (SIGKILL, lost host) frees the lock as soon as PostgreSQL notices the dead
connection; followers try again every ``leader_poll_seconds`` and one takes over. The
leader checks its connection on the same beat: if it broke, leadership is gone (the
lock went with the session) and the scheduler must stop.

MariaDB/MySQL: the same with a named lock (``GET_LOCK``/``RELEASE_LOCK``), also held
by the session of a dedicated connection and freed when it ends. Named locks are
server-wide, so the name carries the database's name: two campaign databases on one
server elect their leaders independently.

SQLite: one host, one file. An exclusive ``flock`` on ``<database>.daemon.lock`` is
taken at start; a second daemon on the same file refuses with a clear message. The OS
drops the lock when the process dies, however it dies.
"""

from __future__ import annotations

import fcntl
import logging
import os
import zlib
from pathlib import Path
from typing import Protocol

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError

from campaign.common.errors import CampaignError
from campaign.db.dialect import is_mysql, is_postgresql

log = logging.getLogger("campaign.daemon")

# Advisory lock key: a stable 32-bit number derived from a fixed name, so every
# version of every daemon on one database contends for the same lock.
LOCK_KEY = zlib.crc32(b"campaign.daemon.scheduler")
# MySQL lock names are at most 64 characters.
_MYSQL_NAME_LIMIT = 64


class AlreadyRunning(CampaignError):
    """Raised when a second daemon starts on a SQLite database that already has one."""

    def __init__(self, lock_path: Path, holder: str) -> None:
        self.lock_path = lock_path
        self.holder = holder
        super().__init__(
            f"another campaign daemon is already running on this database ({holder}; "
            f"lock file {lock_path}). SQLite allows one daemon per database file: stop it "
            "first, or use PostgreSQL to run several."
        )


class Leadership(Protocol):
    """A leader lock: ``poll`` tries to take (or confirms it still holds) the lock."""

    def poll(self) -> bool:
        """True while this process is the leader; never raises on a database outage."""

    def release(self) -> None:
        """Give the lock up (idempotent)."""


class PostgresLeadership:
    """Session-level advisory lock on a dedicated connection of ``engine``."""

    TAKE = "SELECT pg_try_advisory_lock(:key)"
    GIVE_UP = "SELECT pg_advisory_unlock(:key)"

    def __init__(self, engine: Engine, key: int | str = LOCK_KEY) -> None:
        self.engine = engine
        self.key = key
        self._connection: Connection | None = None
        self.held = False

    def poll(self) -> bool:
        try:
            if self.held:
                assert self._connection is not None
                # Still our session? If the connection broke, the lock is gone with it.
                self._connection.execute(text("SELECT 1"))
                return True
            if self._connection is None:
                # AUTOCOMMIT: a session lock must not sit inside a transaction that
                # idles open for hours.
                self._connection = self.engine.connect().execution_options(
                    isolation_level="AUTOCOMMIT"
                )
            got = self._connection.execute(text(self.TAKE), {"key": self.key}).scalar()
            self.held = bool(got)
            return self.held
        except DBAPIError as exc:
            if self.held:
                log.warning("daemon.leader.lost reason=%s", str(exc).splitlines()[0])
            self._drop()
            return False

    def _drop(self) -> None:
        self.held = False
        if self._connection is not None:
            try:
                self._connection.invalidate()
                self._connection.close()
            except Exception:  # the connection is already broken; nothing to release
                log.debug("closing a broken leader connection failed", exc_info=True)
            self._connection = None

    def release(self) -> None:
        if self._connection is not None and self.held:
            try:
                self._connection.execute(text(self.GIVE_UP), {"key": self.key})
            except DBAPIError:
                log.debug("advisory unlock failed (session gone)", exc_info=True)
        if self._connection is not None:
            try:
                self._connection.close()
            except Exception:
                log.debug("closing the leader connection failed", exc_info=True)
        self._connection = None
        self.held = False


class MysqlLeadership(PostgresLeadership):
    """A named lock (``GET_LOCK`` with no wait) on a dedicated connection of ``engine``."""

    # 1 when taken, 0 when another session holds it (NULL only on an error).
    TAKE = "SELECT GET_LOCK(:key, 0)"
    GIVE_UP = "SELECT RELEASE_LOCK(:key)"

    def __init__(self, engine: Engine, key: str | None = None) -> None:
        super().__init__(engine, key or mysql_lock_name(engine))


def mysql_lock_name(engine: Engine) -> str:
    """The scheduler's lock name on ``engine``'s database (named locks are server-wide)."""
    name = f"campaign.scheduler.{engine.url.database or ''}"
    if len(name) > _MYSQL_NAME_LIMIT:
        name = f"campaign.scheduler.{zlib.crc32(name.encode()):08x}"
    return name


class FileLeadership:
    """An exclusive ``flock`` on a file next to the SQLite database."""

    def __init__(self, lock_path: Path) -> None:
        self.lock_path = lock_path
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock now.

        Raises:
            AlreadyRunning: another process holds it.
        """
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown pid"
            os.close(fd)
            raise AlreadyRunning(self.lock_path, holder) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()}".encode(), 0)
        self._fd = fd

    def poll(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def sqlite_lock_path(engine: Engine) -> Path:
    """``<database file>.daemon.lock``; raises CampaignError for in-memory databases."""
    database = make_url(str(engine.url)).database
    if not database or database == ":memory:":
        raise CampaignError("campaign daemon needs a database file, not an in-memory SQLite")
    return Path(database).resolve().with_name(Path(database).name + ".daemon.lock")


def make_leadership(engine: Engine) -> Leadership:
    """The leader lock for ``engine``'s dialect; on SQLite it is taken at once.

    Raises:
        AlreadyRunning: SQLite, and another daemon already runs on this file.
    """
    if is_postgresql(engine):
        return PostgresLeadership(engine)
    if is_mysql(engine):
        return MysqlLeadership(engine)
    lock = FileLeadership(sqlite_lock_path(engine))
    lock.acquire()
    return lock
