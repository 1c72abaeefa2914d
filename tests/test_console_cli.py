"""``campaign users add|list|disable|reset`` and ``campaign console``, through the CLI on
a real SQLite file; every change is recorded with who made it."""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from campaign.app.accounts import authenticate
from campaign.cli import app
from campaign.db.console import AuditEntry
from campaign.db.engine import make_engine
from tests.console_helpers import CONFIG

runner = CliRunner()


def _now() -> datetime:
    return datetime.now(UTC)


PASSWORD = "a long enough password"


@pytest.fixture
def config(sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "templates").mkdir()
    path = tmp_path / "config.toml"
    path.write_text(CONFIG.format(url=sqlite_url), encoding="utf-8")
    return path


def users(config: Path, *args: str, password: str | None = PASSWORD) -> tuple[int, str]:
    env = {"CAMPAIGN_PASSWORD": password} if password is not None else {"CAMPAIGN_PASSWORD": ""}
    result = runner.invoke(app, ["--config", str(config), "users", *args], env=env)
    return result.exit_code, result.output


def test_accounts_are_added_listed_disabled_and_reset(config: Path, sqlite_url: str) -> None:
    assert users(config, "add", "alice", "--role", "operator") == (
        0, "account alice added (operator)\n")
    assert users(config, "add", "bob")[0] == 0
    code, listing = users(config, "list")
    assert code == 0 and "alice" in listing and "operator" in listing and "marketer" in listing
    assert "never" in listing
    engine = make_engine(sqlite_url)
    try:
        assert authenticate(engine, "bob", PASSWORD, now=_now) is not None
        assert users(config, "disable", "bob") == (0, "account bob disabled\n")
        assert "disabled" in users(config, "list")[1]
        assert authenticate(engine, "bob", PASSWORD, now=_now) is None
        code, said = users(config, "reset", "bob", "--role", "analyst",
                           password="another fine password")
        assert (code, said) == (0, "account bob reset (analyst, enabled)\n")
        assert authenticate(engine, "bob", PASSWORD, now=_now) is None
        again = authenticate(engine, "bob", "another fine password", now=_now)
        assert again is not None and again.role == "analyst"
        with engine.connect() as connection:
            rows = connection.execute(
                select(AuditEntry.actor, AuditEntry.action, AuditEntry.target)
                .order_by(AuditEntry.id)
            ).all()
    finally:
        engine.dispose()
    assert [(action, target) for _, action, target in rows] == [
        ("account.added", "alice"), ("account.added", "bob"), ("account.disabled", "bob"),
        ("account.reset", "bob"),
    ]
    assert all(actor.startswith("cli:") for actor, _, _ in rows)


@pytest.mark.parametrize(("args", "password", "said"), [
    (("add", "carol"), "short", "password: is shorter than 10 characters"),
    (("add", "carolcarol"), "carolcarol", "password: is the account name"),
    (("add", "carol", "--role", "admin"), PASSWORD,
     "--role: 'admin' is not one of marketer, analyst, operator"),
    (("add", "../carol"), PASSWORD, "is not an account name"),
    (("disable", "nobody"), PASSWORD, "console account not found: nobody"),
    (("reset", "nobody"), PASSWORD, "console account not found: nobody"),
    (("add", "carol"), None, "no terminal to ask on: set CAMPAIGN_PASSWORD"),
])
def test_bad_input_gets_one_line(
    config: Path, args: tuple[str, ...], password: str | None, said: str
) -> None:
    code, output = users(config, *args, password=password)
    assert code == 1
    lines = output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and said in lines[0], output


def test_a_taken_name_is_refused(config: Path) -> None:
    assert users(config, "add", "dora")[0] == 0
    code, output = users(config, "add", "dora")
    assert code == 1 and "account 'dora' exists (campaign users reset dora)" in output


def test_a_cli_pause_is_recorded_with_who_did_it(config: Path, sqlite_url: str) -> None:
    result = runner.invoke(
        app, ["--config", str(config), "pause", "winback", "--reason", "audit", "--by", "erin"]
    )
    assert result.exit_code == 0, result.output
    engine = make_engine(sqlite_url)
    with engine.connect() as connection:
        row = connection.execute(
            select(AuditEntry.actor, AuditEntry.action, AuditEntry.target, AuditEntry.detail)
        ).one()
    engine.dispose()
    assert tuple(row) == ("erin", "campaign.paused", "winback", {"reason": "audit"})


def test_the_console_refuses_a_taken_port_with_one_line(config: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = runner.invoke(app, ["--config", str(config), "console", "--port", str(port)])
    assert result.exit_code == 1
    assert f"console.port: cannot listen on 127.0.0.1:{port}" in result.output
