"""Failures an operator meets are one line on stderr, through the real CLI process.

Each case runs ``python -m campaign`` in a subprocess and checks that stderr is exactly
one ``error: ...`` line saying what failed and what to do, with no traceback, no SQL
and nothing of a customer's (addresses, names, message texts).
"""

from __future__ import annotations

import os
import socket
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from campaign.db.engine import make_engine
from tests.delivery_helpers import seed
from tests.test_planner import add_user, make_config

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow

# Nothing of a customer's, and nothing of the SQL, may reach the terminal.
LEAKS = ("Traceback", "INSERT", "UPDATE", "SELECT", "@example.com", "Name c0", "User 0",
         "Hello", "parameters")

# Loaded by the child Python (PYTHONPATH): caps every SQLite connection of the process
# at the database's current page count, so the next page it needs is "disk full".
DISK_FULL = """
import sqlite3
from sqlalchemy import event
from sqlalchemy.engine import Engine

@event.listens_for(Engine, "connect")
def _cap(dbapi_connection, _record):
    if isinstance(dbapi_connection, sqlite3.Connection):
        pages = dbapi_connection.execute("PRAGMA page_count").fetchone()[0]
        dbapi_connection.execute(f"PRAGMA max_page_count={max(pages, 1)}")
"""


def campaign(
    root: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``python -m campaign --config root/config.toml ARGS`` in ``root``."""
    extra = dict(env or {})
    prepend = extra.pop("PREPEND", None)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CAMPAIGN_")}
    environ["PYTHONPATH"] = os.pathsep.join(p for p in (prepend, str(REPO)) if p)
    environ.update(extra)
    return subprocess.run(
        [sys.executable, "-m", "campaign", "--config", str(root / "config.toml"), *args],
        cwd=root, capture_output=True, text=True, env=environ, timeout=timeout,
    )


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The single ``error:`` line of a failed command (asserting it is exactly that)."""
    assert result.returncode == 1, (result.returncode, result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), result.stderr
    for leak in LEAKS:
        assert leak not in result.stderr + result.stdout, (leak, result.stderr)
    return lines[0]


@pytest.fixture
def shop(sqlite_url: str, tmp_path: Path) -> Path:
    """A shop in ``tmp_path``: campaign ``c`` with five scored users, queued messages,
    and a users.csv to import."""
    make_config(tmp_path, sqlite_url)
    with (tmp_path / "config.toml").open("a") as config:
        config.write("[delivery.quiet_hours]\nstart = 00:00:00\nend = 00:00:00\n")
    engine = make_engine(sqlite_url)
    for n in range(60):
        add_user(engine, f"c{n}", risk=0.9 - n * 0.005)
    seed(engine, 100, channel="email", expires_at=None)
    engine.dispose()
    # Packed pages and no free ones: claiming a message makes its row grow, a page
    # splits, and the database needs a new page (which DISK_FULL refuses).
    database = sqlite3.connect(next(tmp_path.glob("*.db")))
    database.execute("VACUUM")
    database.close()
    rows = [f"n{i},n{i}@example.com,Name n{i} {'x' * 150},true" for i in range(400)]
    (tmp_path / "users.csv").write_text(
        "user_id,email,name,consent_email\n" + "\n".join(rows) + "\n"
    )
    return tmp_path


COMMANDS = {
    "import": ("import", "users", "users.csv"),
    "run": ("run", "c", "--as-of", "2026-11-01"),
    "send": ("send", "--once"),
}


def _database(root: Path) -> Path:
    return next(root.glob("*.db"))


@pytest.fixture
def locked(shop: Path) -> Iterator[Path]:
    """The shop's database with another process's write transaction open."""
    holder = sqlite3.connect(_database(shop), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    yield shop
    holder.execute("ROLLBACK")
    holder.close()


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_locked_sqlite_database_is_one_line(locked: Path, command: str) -> None:
    result = campaign(
        locked, *COMMANDS[command], env={"CAMPAIGN_DATABASE__BUSY_TIMEOUT_SECONDS": "0.2"}
    )
    line = one_line(result)
    assert f"campaign {COMMANDS[command][0]}" in line
    assert "locked by another process" in line and "run the command again" in line


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_full_disk_is_one_line(shop: Path, command: str, tmp_path_factory: pytest.TempPathFactory
                                 ) -> None:
    hook = tmp_path_factory.mktemp("diskfull")
    (hook / "sitecustomize.py").write_text(DISK_FULL)
    result = campaign(shop, *COMMANDS[command], env={"PREPEND": str(hook)})
    line = one_line(result)
    assert "disk holding the SQLite database is full" in line and "free space" in line


def test_debug_shows_the_details_but_never_the_parameters(locked: Path) -> None:
    result = campaign(
        locked, "--debug", *COMMANDS["import"],
        env={"CAMPAIGN_DATABASE__BUSY_TIMEOUT_SECONDS": "0.2"},
    )
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "database is locked" in result.stderr
    assert "@example.com" not in result.stderr


def test_postgresql_refusing_connections_is_one_line(shop: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again: nothing listens there
    env = {"CAMPAIGN_DATABASE_URL": f"postgresql://postgres@127.0.0.1:{port}/campaign"}
    for command in sorted(COMMANDS):
        line = one_line(campaign(shop, *COMMANDS[command], env=env))
        assert f"127.0.0.1:{port}" in line and "refused" in line.lower(), line
        assert "check that the server runs" in line


def test_a_schema_newer_than_the_code_says_so_and_db_upgrade_does_not_crash(
    shop: Path,
) -> None:
    database = sqlite3.connect(_database(shop))
    database.execute("UPDATE alembic_version SET version_num = '9999'")
    database.commit()
    database.close()
    for args in (("report",), ("status",), COMMANDS["run"], ("db", "upgrade")):
        line = one_line(campaign(shop, *args))
        assert "revision 9999" in line and "newer campaign" in line, line
        assert "run 'campaign db upgrade'" not in line


@pytest.mark.parametrize(
    "url,named",
    [
        ("mysql+mysqldb://root@127.0.0.1:3306/campaign", "driver 'mysqldb'"),
        ("mssql://sa@127.0.0.1/campaign", "unsupported database 'mssql'"),
        ("postgresql+psycopg2://postgres@127.0.0.1/campaign", "driver 'psycopg2'"),
        ("oracle://scott@127.0.0.1/orcl", "unsupported database 'oracle'"),
        ("nonsense", "invalid database URL"),
    ],
)
def test_an_unsupported_database_url_names_what_is_supported(
    shop: Path, url: str, named: str
) -> None:
    for args in (("db", "upgrade"), ("report",)):
        line = one_line(campaign(shop, *args, env={"CAMPAIGN_DATABASE_URL": url}))
        assert named in line, line
        assert "SQLite" in line and "PostgreSQL" in line and "psycopg 3" in line, line
        assert "MariaDB" in line and "mysql+pymysql://" in line, line
    line = one_line(campaign(shop, "db", "upgrade", "--url", url))
    assert named in line


def test_a_health_port_in_use_is_one_line(shop: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = campaign(shop, "daemon", "--health-port", str(port), timeout=60)
    line = one_line(result)
    assert f"127.0.0.1:{port}" in line and "--health-port" in line, line


def test_a_server_port_in_use_is_one_line(shop: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = campaign(shop, "serve", "--port", str(port), timeout=60)
    line = one_line(result)
    assert f"127.0.0.1:{port}" in line and "--port" in line, line
