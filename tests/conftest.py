"""Shared fixtures: real SQLite files, a real PostgreSQL and a real MariaDB, all built
by Alembic."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import Session, sessionmaker

from campaign.db.base import Base
from campaign.db.engine import make_engine, make_session_factory
from campaign.db.migrate import upgrade
from tests.demo_helpers import DemoShop, build_demo

PG_ENV = "CAMPAIGN_TEST_DATABASE_URL"
PG_SKIP_REASON = (
    f"PostgreSQL tests need {PG_ENV}, e.g. "
    f"{PG_ENV}=postgresql://postgres@127.0.0.1:5432/test (.ci/run sets it)"
)
MYSQL_ENV = "CAMPAIGN_TEST_MYSQL_URL"
MYSQL_SKIP_REASON = (
    f"MariaDB/MySQL tests need {MYSQL_ENV}, e.g. "
    f"{MYSQL_ENV}=mysql+pymysql://root@127.0.0.1:3306/test?charset=utf8mb4 (.ci/run sets it)"
)
# Set by .ci/run: there a service test that would skip fails instead, so the
# PostgreSQL and MariaDB parts of the suite can never vanish silently.
REQUIRE_ENV = "CAMPAIGN_REQUIRE_SERVICES"


def skip_or_fail(reason: str) -> None:
    """Skip a test whose service is absent, or fail it where services are required."""
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason}; {REQUIRE_ENV}=1 requires it", pytrace=False)
    pytest.skip(reason)


def pg_admin_url() -> str | None:
    """The PostgreSQL URL the environment names, or None."""
    return os.environ.get(PG_ENV) or None


def mysql_admin_url() -> str | None:
    """The MariaDB/MySQL URL the environment names, or None."""
    return os.environ.get(MYSQL_ENV) or None


def _mysql_admin_engine(admin: str) -> Engine:
    try:
        import pymysql  # noqa: F401
    except ImportError:
        skip_or_fail(f"{MYSQL_ENV} is set but PyMySQL is not installed (pip install -e '.[mysql]')")
    return create_engine(make_url(admin).set(drivername="mysql+pymysql"))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (migrating once is much faster)."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    with engine.connect() as connection:
        connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def console_template(sqlite_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file with one console account per role (tests/console_helpers.py)."""
    from tests.console_helpers import add_role_accounts

    path = tmp_path_factory.mktemp("console") / "console.db"
    shutil.copyfile(sqlite_template, path)
    add_role_accounts(path)
    return path


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A private, migrated PostgreSQL database for this test session, dropped at the end.

    Private so that several test sessions can share one server without interfering.
    """
    admin = pg_admin_url()
    if admin is None:
        skip_or_fail(PG_SKIP_REASON)
    name = f"campaign_test_{uuid.uuid4().hex[:12]}"
    admin_engine = create_engine(
        make_url(admin).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT"
    )
    with admin_engine.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(admin).set(drivername="postgresql+psycopg", database=name)
    url_text = url.render_as_string(hide_password=False)
    engine = make_engine(url_text)
    upgrade(engine)
    engine.dispose()
    try:
        yield url_text
    finally:
        with admin_engine.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin_engine.dispose()


@pytest.fixture(scope="session")
def mysql_database() -> Iterator[str]:
    """A private, migrated MariaDB/MySQL database for this test session (one per xdist
    worker), dropped at the end."""
    admin = mysql_admin_url()
    if admin is None:
        skip_or_fail(MYSQL_SKIP_REASON)
    assert admin is not None
    name = f"campaign_test_{uuid.uuid4().hex[:12]}"
    admin_engine = _mysql_admin_engine(admin)
    with admin_engine.begin() as connection:
        connection.execute(
            text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
        )
    url_text = make_url(admin).set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url_text)
    upgrade(engine)
    engine.dispose()
    try:
        yield url_text
    finally:
        with admin_engine.begin() as connection:
            connection.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
        admin_engine.dispose()


def _truncate_all(url: str) -> None:
    engine = create_engine(url)
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


def _empty_mysql(url: str) -> None:
    # MySQL cannot roll DDL back: a test that downgraded and then failed would leave
    # the shared database behind for every later test, so bring it back to head first.
    # TRUNCATE restarts AUTO_INCREMENT, as RESTART IDENTITY does on PostgreSQL; the
    # foreign keys are off for this session only, so the order does not matter.
    engine = make_engine(url)
    upgrade(engine)
    with engine.connect() as connection:
        connection.exec_driver_sql("SET FOREIGN_KEY_CHECKS = 0")
        for table in Base.metadata.sorted_tables:
            connection.exec_driver_sql(f"TRUNCATE TABLE `{table.name}`")
        connection.exec_driver_sql("SET FOREIGN_KEY_CHECKS = 1")
    engine.dispose()


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    """URL of a fresh migrated SQLite file for this test."""
    path = tmp_path / "campaign.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def pg_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """URL of the session's PostgreSQL database, emptied after the test."""
    url: str = request.getfixturevalue("pg_database")
    try:
        yield url
    finally:
        _truncate_all(url)


@pytest.fixture
def mysql_url(request: pytest.FixtureRequest) -> Iterator[str]:
    """URL of the session's MariaDB/MySQL database, emptied after the test."""
    url: str = request.getfixturevalue("mysql_database")
    try:
        yield url
    finally:
        _empty_mysql(url)


# The three databases campaign runs on, as fixture parameters.
DIALECTS = [
    "sqlite",
    pytest.param("postgresql", marks=pytest.mark.postgres),
    pytest.param("mysql", marks=pytest.mark.mysql),
]
_URL_FIXTURES = {"sqlite": "sqlite_url", "postgresql": "pg_url", "mysql": "mysql_url"}


@pytest.fixture(params=DIALECTS)
def db_url(request: pytest.FixtureRequest) -> str:
    """A migrated, empty database: each test runs once per dialect."""
    return str(request.getfixturevalue(_URL_FIXTURES[request.param]))


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """An engine on ``db_url``; the test fails if it leaves a connection checked out."""
    engine = make_engine(db_url)
    yield engine
    checked_out = engine.pool.checkedout()  # type: ignore[attr-defined]
    engine.dispose()
    assert checked_out == 0, f"{checked_out} connection(s) left checked out"


@pytest.fixture
def session_factory(engine: Engine) -> sessionmaker[Session]:
    """A session factory on the test database."""
    return make_session_factory(engine)


@pytest.fixture(scope="session")
def demo_shop(tmp_path_factory: pytest.TempPathFactory) -> DemoShop:
    """One real ``campaign demo`` for the session; copy its folder before changing it."""
    return build_demo(tmp_path_factory.mktemp("demo") / "campaign-demo")


@pytest.fixture(scope="session")
def spark() -> Iterator[object]:
    """One local[2] SparkSession for the whole test run (start-up takes seconds)."""
    from tests.spark_helpers import require_pyspark

    require_pyspark()
    from campaign.config import EngineConfig
    from campaign.engine.session import spark_session

    # The executors' Python workers import test helpers shipped in broadcasts.
    root = str(Path(__file__).resolve().parents[1])
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (root, os.environ.get("PYTHONPATH")) if p
    )
    session = spark_session(EngineConfig(kind="spark", master="local[2]", partitions=2))
    yield session
    session.stop()


@pytest.fixture(scope="session")
def spark_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small real demo shop's SQLite file for the Spark tests; copy before writing."""
    from tests.spark_helpers import small_demo

    return small_demo(tmp_path_factory.mktemp("spark-demo") / "shop")
