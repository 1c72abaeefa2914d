"""The shop-database ingest: the shop's database itself refuses every write.

A look at the query text cannot tell ``WITH d AS (DELETE ... RETURNING id) SELECT``
from a read, so these tests send writing statements straight to the real SQLite file
and the real PostgreSQL and check that the database refused them and kept its rows.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine

from campaign.common.errors import CampaignError
from campaign.daemon.ingest_jobs import ingest_query
from campaign.db.engine import make_engine
from campaign.db.models import User

NOW = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)
ROWS = [("s1", "s1@example.com"), ("s2", "s2@example.com")]


@dataclass
class Shop:
    url: str
    table: str
    dialect: str

    def rows(self) -> list[tuple[str, str]]:
        engine = create_engine(self.url)
        try:
            with engine.connect() as connection:
                query = text(f"SELECT id, mail FROM {self.table} ORDER BY id")
                return [(r[0], r[1]) for r in connection.execute(query)]
        finally:
            engine.dispose()

    def tables(self) -> set[str]:
        engine = create_engine(self.url)
        query = {
            "sqlite": "SELECT name FROM sqlite_master WHERE type = 'table'",
            "postgresql": "SELECT tablename FROM pg_tables WHERE schemaname = 'public'",
            "mysql": "SELECT table_name FROM information_schema.tables "
            "WHERE table_schema = DATABASE()",
        }[self.dialect]
        try:
            with engine.connect() as connection:
                return {r[0] for r in connection.execute(text(query))}
        finally:
            engine.dispose()


@pytest.fixture
def engine(sqlite_url: str) -> Iterator[Engine]:
    """Our own database (SQLite: the dialect under test here is the shop's)."""
    engine = make_engine(sqlite_url)
    yield engine
    engine.dispose()


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.postgres),
        pytest.param("mysql", marks=pytest.mark.mysql),
    ]
)
def shop(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Shop]:
    """The shop's own database with a ``customers`` table, on each dialect."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'shop.db'}"
        table = "customers"
    else:
        fixture = "pg_url" if request.param == "postgresql" else "mysql_url"
        url = str(request.getfixturevalue(fixture))
        table = f"shop_customers_{uuid.uuid4().hex[:8]}"
    key = "VARCHAR(32)" if request.param == "mysql" else "TEXT"
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text(f"CREATE TABLE {table} (id {key} PRIMARY KEY, mail TEXT)"))
        for id_, mail in ROWS:
            connection.execute(text(f"INSERT INTO {table} VALUES (:i, :m)"), {"i": id_, "m": mail})
    engine.dispose()
    try:
        yield Shop(url, table, request.param)
    finally:
        engine = create_engine(url)
        with engine.begin() as connection:
            connection.execute(text(f"DROP TABLE IF EXISTS {table}"))
            connection.execute(text("DROP TABLE IF EXISTS stolen"))
        engine.dispose()


WRITES = [
    "WITH x AS (SELECT 1) DELETE FROM {t}",
    "DELETE FROM {t}",
    "INSERT INTO {t} VALUES ('s9', 's9@example.com')",
    "WITH x AS (SELECT 1) INSERT INTO {t} SELECT 's9', 's9@example.com' FROM x",
    "UPDATE {t} SET mail = 'attacker@example.com'",
    "WITH x AS (SELECT 1) UPDATE {t} SET mail = 'attacker@example.com'",
    "CREATE TABLE stolen (id TEXT)",
    "DROP TABLE {t}",
    "ALTER TABLE {t} ADD COLUMN extra TEXT",
]
PG_WRITES = [
    # PostgreSQL runs data-modifying statements inside WITH even when a SELECT follows.
    "WITH d AS (DELETE FROM {t} RETURNING id) SELECT id AS user_id FROM d",
    "SELECT set_config('transaction_read_only', 'off', false) AS user_id",
]
SQLITE_WRITES = [
    "PRAGMA query_only = OFF",
    "ATTACH DATABASE 'stolen.db' AS stolen",
]


def _assert_refused(shop: Shop, engine: Engine, statement: str, tmp_path: Path) -> None:
    before = shop.rows()
    tables = shop.tables()
    with pytest.raises(CampaignError) as caught:
        ingest_query(engine, "users", shop.url, statement, now=lambda: NOW)
    message = str(caught.value)
    assert "\n" not in message
    assert message.startswith("daemon.ingest.queries (users): the shop database refused the query")
    refusals = ("read-only", "readonly", "read only", "read-write", "not authorized")
    assert any(word in message.lower() for word in refusals), message
    assert shop.rows() == before == ROWS
    assert shop.tables() == tables
    assert not (tmp_path / "stolen.db").exists()


@pytest.mark.parametrize("statement", WRITES)
def test_the_shop_database_itself_refuses_every_writing_statement(
    shop: Shop, engine: Engine, statement: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    if shop.dialect == "mysql" and statement.startswith("WITH"):
        pytest.skip("MariaDB has no WITH before DELETE, INSERT or UPDATE (a syntax error)")
    _assert_refused(shop, engine, statement.format(t=shop.table), tmp_path)


@pytest.mark.parametrize("shop", [pytest.param("mysql", marks=pytest.mark.mysql)], indirect=True)
def test_a_mysql_query_cannot_lift_read_only_for_the_next_one(
    shop: Shop, engine: Engine, tmp_path: Path
) -> None:
    # A statement that returns no rows is refused in one line; and even after it
    # changed the session's default, each transaction starts READ ONLY again.
    with pytest.raises(CampaignError, match="returns no rows"):
        ingest_query(engine, "users", shop.url, "SET SESSION TRANSACTION READ WRITE",
                     now=lambda: NOW)
    _assert_refused(shop, engine, f"DELETE FROM {shop.table}", tmp_path)


@pytest.mark.parametrize("shop", [pytest.param("postgresql", marks=pytest.mark.postgres)],
                         indirect=True)
@pytest.mark.parametrize("statement", PG_WRITES)
def test_postgresql_refuses_writes_hidden_behind_a_select(
    shop: Shop, engine: Engine, statement: str, tmp_path: Path
) -> None:
    _assert_refused(shop, engine, statement.format(t=shop.table), tmp_path)


@pytest.mark.parametrize("shop", ["sqlite"], indirect=True)
@pytest.mark.parametrize("statement", SQLITE_WRITES)
def test_sqlite_refuses_pragmas_and_attach(
    shop: Shop, engine: Engine, statement: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A sneaked-in ATTACH would create its file in the working directory.
    monkeypatch.chdir(tmp_path)
    _assert_refused(shop, engine, statement, tmp_path)


def test_a_plain_select_on_the_read_only_shop_database_still_imports(
    shop: Shop, engine: Engine
) -> None:
    report = ingest_query(
        engine, "users", shop.url,
        f"WITH c AS (SELECT id, mail FROM {shop.table}) SELECT id AS user_id, mail AS email FROM c",
        now=lambda: NOW,
    )
    assert (report.inserted, report.rejected) == (2, 0)
    with engine.connect() as connection:
        stored = connection.execute(
            text(f"SELECT external_id, email FROM {User.__tablename__} ORDER BY external_id")
        ).all()
    assert [tuple(r) for r in stored] == ROWS
    assert shop.rows() == ROWS


def test_two_statements_in_one_query_are_refused_by_the_database(
    shop: Shop, engine: Engine
) -> None:
    with pytest.raises(CampaignError, match="refused the query"):
        ingest_query(
            engine, "users", shop.url,
            f"SELECT id AS user_id FROM {shop.table}; DELETE FROM {shop.table}",
            now=lambda: NOW,
        )
    assert shop.rows() == ROWS
