"""Engine and session factory: SQLite pragmas, MySQL session settings, reachability
check, unit-of-work scope."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from campaign.common.errors import DatabaseError
from campaign.db.dialect.mysql import mysql_engine_options, mysql_session_setup
from campaign.db.errors import explain

SUPPORTED = (
    "campaign runs on SQLite (sqlite:///PATH, Python's own driver), PostgreSQL "
    "(postgresql://USER@HOST:PORT/DB, through psycopg 3, which installs with campaign: "
    "no extra to add) and MariaDB or MySQL (mysql+pymysql://USER@HOST:PORT/DB, through "
    "PyMySQL: install campaign[mysql])"
)
# Backend → the one driver each is tested with (SQLAlchemy's driver names).
DRIVERS = {"sqlite": "pysqlite", "postgresql": "psycopg", "mysql": "pymysql"}


def mask_url(url: str) -> str:
    """The URL with its password hidden, safe to print and log."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<invalid url>"


def _normalise(url: str) -> str:
    # Plain postgresql:// means psycopg 3 here: it is the driver we install; plain
    # mysql:// (and mariadb://) means PyMySQL, the one the mysql extra installs.
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    if url.startswith(("mysql://", "mariadb://", "mariadb+pymysql://")):
        return "mysql+pymysql://" + url.split("://", 1)[1]
    return url


def _sqlite_pragmas(busy_timeout_ms: int) -> Any:
    def set_pragmas(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        # WAL lets readers (reports, previews) run while the sender writes.
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms:d}")
        cursor.close()

    return set_pragmas


def check_supported(url: str) -> None:
    """Refuse a URL of a database or driver campaign does not run on, naming those it does.

    Raises:
        DatabaseError: malformed URL, unsupported database or driver.
    """
    try:
        parsed = make_url(_normalise(url))
    except ArgumentError as exc:
        raise DatabaseError(mask_url(url), f"invalid database URL ({exc}); {SUPPORTED}") from None
    # From the URL's text alone: asking SQLAlchemy for the driver would import it.
    backend, _, driver = parsed.drivername.partition("+")
    driver = driver or DRIVERS.get(backend, "")
    if backend not in DRIVERS:
        raise DatabaseError(mask_url(url), f"unsupported database {backend!r}: {SUPPORTED}")
    if driver != DRIVERS[backend]:
        raise DatabaseError(
            mask_url(url), f"unsupported {backend} driver {driver!r}: {SUPPORTED}"
        )


def make_engine(
    url: str,
    *,
    echo: bool = False,
    check: bool = True,
    busy_timeout_seconds: float = 30.0,
    create: bool = True,
) -> Engine:
    """Create an engine for ``url`` (SQLite, PostgreSQL, MariaDB or MySQL).

    With ``check`` a connection is opened at once so a wrong or unreachable URL fails
    here with one clear line rather than deep inside a command. SQL parameters never
    appear in error messages (they hold customer text and addresses).
    ``busy_timeout_seconds`` is how long SQLite waits for another writer's lock.

    Any SQLAlchemy database works here (the shop's own database for ingest queries);
    the product's database is checked by :func:`check_supported` first.
    With ``create=False`` a SQLite file that does not exist is an error instead of a
    new empty database (only ``campaign db upgrade`` and the demo create one; a
    failing command must not leave an empty ``campaign.db`` behind).

    Raises:
        DatabaseError: the URL is malformed, the driver is missing, the server is
            unreachable, or (``create=False``) the SQLite file does not exist.
    """
    url = _normalise(url)
    try:
        parsed = make_url(url)
        if not create and parsed.get_backend_name() == "sqlite":
            path = parsed.database
            if path and path != ":memory:" and not path.startswith("file:"):
                if not Path(path).exists():
                    raise DatabaseError(
                        mask_url(url),
                        "no such database file; run 'campaign db upgrade' to create it",
                    )
        kwargs: dict[str, Any] = {"echo": echo, "hide_parameters": True}
        if parsed.get_backend_name() == "postgresql":
            kwargs["pool_pre_ping"] = True
            kwargs["connect_args"] = {"connect_timeout": 10}
        if parsed.get_backend_name() == "mysql":
            kwargs.update(mysql_engine_options(parsed.query))
        engine = create_engine(url, **kwargs)
    except (ArgumentError, NoSuchModuleError, ImportError, ValueError) as exc:
        if isinstance(exc, ImportError) and "pymysql" in str(exc).lower():
            raise DatabaseError(
                mask_url(url),
                "the MySQL driver PyMySQL is not installed: pip install 'campaign[mysql]'",
            ) from None
        raise DatabaseError(mask_url(url), f"invalid database URL ({exc}); {SUPPORTED}") from None
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas(int(busy_timeout_seconds * 1000)))
    if engine.dialect.name == "mysql":
        event.listen(engine, "connect", mysql_session_setup)
    if check:
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except OperationalError as exc:
            engine.dispose()
            problem = explain(exc)
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            raise DatabaseError(
                mask_url(url), f"cannot connect: {problem or reason}"
            ) from None
    return engine


def make_session_factory(engine: Engine) -> sessionmaker[Session]:
    """A session factory whose objects stay readable after commit."""
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any exception."""
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
