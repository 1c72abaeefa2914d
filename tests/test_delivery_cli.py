"""``campaign send`` through the real command line."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.orm import Session
from typer.testing import CliRunner

from campaign.cli import app
from campaign.db.engine import make_engine
from tests.delivery_helpers import seed, statuses
from tests.http_sink import HttpSink


def write_config(tmp_path: Path, url: str, sink_url: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f"""
[database]
url = "{url}"

[delivery]
timeout_seconds = 2.0

[delivery.quiet_hours]
start = 00:00:00
end = 00:00:00

[delivery.quiet_hours_by_medium]

[channels.hook]
kind = "webhook"
url = "{sink_url}"
rate_per_second = 1000.0

[[campaigns]]
name = "winback"
channels = ["hook"]
""",
        encoding="utf-8",
    )
    return path


def test_send_once_delivers_and_requeue_dead_retries(sqlite_url: str, tmp_path: Path) -> None:
    engine = make_engine(sqlite_url)
    ids = seed(engine, 5, expires_at=None)
    runner = CliRunner()
    with HttpSink() as sink:
        with Session(engine) as session:
            from campaign.db.models import Message

            key = session.get(Message, ids[0]).idempotency_key  # type: ignore[union-attr]
        sink.plan(key, "400")
        config = write_config(tmp_path, sqlite_url, sink.url)
        result = runner.invoke(app, ["--config", str(config), "send", "--once"])
        assert result.exit_code == 0, result.output
        assert "sent" in result.output and "dead" in result.output
        found = statuses(engine)
        assert [found[i][0] for i in ids] == ["dead", "sent", "sent", "sent", "sent"]

        result = runner.invoke(
            app, ["--config", str(config), "send", "--requeue-dead", "--campaign", "winback"]
        )
        assert result.exit_code == 0, result.output
        assert "requeued 1 dead message(s)" in result.output
        result = runner.invoke(app, ["--config", str(config), "send", "--once"])
        assert result.exit_code == 0, result.output
        assert statuses(engine)[ids[0]][0] == "sent"
        assert [r.key for r in sink.requests].count(key) == 2

        result = runner.invoke(
            app, ["--config", str(config), "send", "--requeue-dead", "--campaign", "nope"]
        )
        assert result.exit_code == 1
    engine.dispose()


def test_campaign_option_needs_requeue_dead(sqlite_url: str, tmp_path: Path) -> None:
    config = write_config(tmp_path, sqlite_url, "http://127.0.0.1:9")
    result = CliRunner().invoke(app, ["--config", str(config), "send", "--campaign", "winback"])
    assert result.exit_code == 2
