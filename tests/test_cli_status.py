"""``campaign status`` and the pause history, through the CLI, on both databases."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from campaign.cli import app, common
from campaign.db.models import Message
from campaign.measurement.reports.status import FIELDS
from tests.delivery_helpers import seed
from tests.test_planner import add_user

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()


@pytest.fixture
def config(db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "config.toml"
    path.write_text(
        f'[database]\nurl = "{db_url}"\n'
        '[channels.hook]\nkind = "webhook"\nurl = "http://127.0.0.1:9/hook"\n'
        '[[campaigns]]\nname = "winback"\nchannels = ["hook"]\n'
        '[[campaigns]]\nname = "care"\nchannels = ["hook"]\npaused = true\n'
    )
    return path


def cli(config: Path, *args: str) -> str:
    result = runner.invoke(app, [*args, "--config", str(config)])
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.fixture
def busy(engine: Engine, config: Path) -> Engine:
    """Ten queued messages (two retrying, one due later), two dead with reasons naming
    an address, an active model and a run."""
    ids = seed(engine, 14, expires_at=None)
    add_user(engine, "scored")
    later = datetime.now(UTC) + timedelta(hours=3)
    with engine.begin() as connection:
        connection.execute(
            update(Message).where(Message.id.in_(ids[:2])).values(
                attempts=1, next_attempt_at=later,
                last_error=f"hook message {ids[0]}: connect failed: connection refused",
            )
        )
        connection.execute(
            update(Message).where(Message.id.in_(ids[-2:])).values(
                status="dead", updated_at=datetime.now(UTC),
                last_error="hook message 1: rejected u0@example.com (HTTP 400)",
            )
        )
        connection.execute(
            update(Message).where(Message.id.in_(ids[10:12])).values(status="sent")
        )
    return engine


def test_status_shows_outbox_queue_errors_pauses_models_and_runs(
    busy: Engine, config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(common.console, "width", 200)
    cli(config, "pause", "winback", "--reason", "typo in subject", "--by", "alice")
    out = cli(config, "status")
    assert re.search(r"hook\s+│\s+2\s+│\s+10\s+│\s+2", out), out  # dead, queued, sent
    assert "connect failed: connection refused" in out
    assert "rejected u***@example.com (HTTP 400)" in out and "u0@example.com" not in out
    assert "typo in subject" in out and "alice" in out
    assert "paused in config.toml" in out  # care
    assert "churn" in out  # the active model
    assert "winback" in out and "done" in out  # the seeded run


def test_status_json_and_csv_have_the_documented_fields(busy: Engine, config: Path) -> None:
    cli(config, "pause", "--all", "--reason", "provider outage", "--by", "ops")
    data = json.loads(cli(config, "status", "--format", "json"))
    assert list(data) == ["status", *FIELDS]
    for name, fields in FIELDS.items():
        for record in data[name]:
            assert tuple(record) == fields, name
    queue = {r["channel"]: r for r in data["queue"]}["hook"]
    assert (queue["queued"], queue["retrying"], queue["due_now"]) == (10, 2, 8)
    assert queue["next_due_at"] is not None and queue["oldest_queued_at"] is not None
    errors = {r["status"]: r for r in data["errors"]}
    assert errors["queued"]["reason"] == "connect failed: connection refused"
    assert errors["queued"]["messages"] == 2
    assert errors["dead"]["reason"] == "rejected u***@example.com (HTTP 400)"
    assert {(p["campaign"], p["state"], p["by"], p["reason"]) for p in data["pauses"]} == {
        ("*", "paused (all)", "ops", "provider outage"),
        ("care", "paused in config.toml", None, None),
    }
    rows = list(csv.DictReader(io.StringIO(cli(config, "status", "--format", "csv"))))
    header = ["section", "now"] + list(dict.fromkeys(f for fs in FIELDS.values() for f in fs))
    assert list(rows[0]) == header
    assert {r["section"] for r in rows} >= {"status", "outbox", "queue", "errors", "pauses"}


def test_status_of_an_empty_database_says_so_and_keeps_its_csv_header(
    engine: Engine, config: Path
) -> None:
    out = cli(config, "status")
    assert "Outbox: empty" in out and "Active models: none" in out and "Runs: none" in out
    first = cli(config, "status", "--format", "csv").splitlines()[0]
    assert first.split(",")[:4] == ["section", "now", "channel", "status"]


def test_a_second_pause_keeps_the_first_reason_and_records_who_and_when(
    engine: Engine, config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("USER", "night-operator")
    monkeypatch.setenv("LOGNAME", "night-operator")
    before = datetime.now(UTC)
    cli(config, "pause", "winback", "--reason", "wrong coupon")
    cli(config, "pause", "winback", "--reason", "legal review", "--by", "alice")
    cli(config, "resume", "winback", "--reason", "all fixed", "--by", "bob")
    cli(config, "pause", "winback", "--reason", "again")
    data = json.loads(cli(config, "status", "--format", "json"))
    history = [(h["action"], h["reason"], h["by"]) for h in data["pause_history"]]
    assert history == [
        ("pause", "again", "night-operator"),
        ("resume", "all fixed", "bob"),
        ("pause", "legal review", "alice"),
        ("pause", "wrong coupon", "night-operator"),
    ]
    (current,) = [p for p in data["pauses"] if p["campaign"] == "winback"]
    assert current["reason"] == "again" and current["by"] == "night-operator"
    assert datetime.fromisoformat(current["at"]) >= before
    shown = cli(config, "pause", "winback", "--reason", "still")
    assert "still" in shown and "night-operator" in shown


def test_readme_and_operations_list_campaign_status() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "`campaign status [--format table\\|json\\|csv]" in readme
    assert "## Status" in (ROOT / "docs" / "operations.md").read_text()
