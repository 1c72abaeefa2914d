"""What ``campaign send`` says and logs about each outcome: reasons, never addresses."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from campaign.cli import app, common
from campaign.db.engine import make_engine
from campaign.db.models import Message
from tests.delivery_helpers import seed, statuses
from tests.http_sink import HttpSink
from tests.test_delivery_cli import write_config

REPO = Path(__file__).resolve().parents[1]
runner = CliRunner()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_send_once_prints_why_it_could_not_send(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(common.console, "width", 200)
    engine = make_engine(sqlite_url)
    ids = seed(engine, 3, expires_at=None)
    with HttpSink() as sink:
        with Session(engine) as session:
            key = session.get(Message, ids[0]).idempotency_key  # type: ignore[union-attr]
        sink.plan(key, "400")
        config = write_config(tmp_path, sqlite_url, sink.url)
        result = runner.invoke(app, ["--config", str(config), "send", "--once"])
    assert result.exit_code == 0, result.output
    assert "why (by channel)" in result.stdout
    assert "HTTP 400" in result.stdout  # the dead one's reason
    engine.dispose()


def test_send_once_to_a_dead_provider_says_retry_later_and_why(
    sqlite_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(common.console, "width", 200)
    engine = make_engine(sqlite_url)
    ids = seed(engine, 2, expires_at=None)
    dead = write_config(tmp_path, sqlite_url, f"http://127.0.0.1:{_closed_port()}")
    result = runner.invoke(app, ["--config", str(dead), "send", "--once"])
    assert result.exit_code == 0, result.output
    lines = [line for line in result.stdout.splitlines() if "retry later" in line]
    assert lines[0].split("│")[2].strip() == "2"  # the summary row: retry later 2
    reason = next(line for line in lines[1:] if "hook" in line)
    assert "│ 2 │" in reason.replace("  ", " ") or " 2 " in reason
    assert "refused" in reason.lower() or "connect" in reason.lower(), reason
    assert "@example.com" not in result.stdout
    assert [statuses(engine)[i][0] for i in ids] == ["queued", "queued"]
    engine.dispose()


@pytest.mark.slow
def test_polling_send_logs_every_outcome_without_addresses(
    sqlite_url: str, tmp_path: Path
) -> None:
    engine = make_engine(sqlite_url)
    ids = seed(engine, 6, expires_at=None)
    with Session(engine) as session:
        keys = [session.get(Message, i).idempotency_key for i in ids]  # type: ignore[union-attr]
    engine.dispose()
    with HttpSink() as sink:
        sink.plan(keys[0], "400")
        sink.plan(keys[1], "503")
        config = write_config(tmp_path, sqlite_url, sink.url)
        env = {k: v for k, v in os.environ.items() if not k.startswith("CAMPAIGN_")}
        env["PYTHONPATH"] = str(REPO)
        process = subprocess.Popen(
            [sys.executable, "-m", "campaign", "send", "--config", str(config)],
            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        try:
            deadline = time.monotonic() + 60
            while len(sink.accepted()) < 4 and time.monotonic() < deadline:
                time.sleep(0.1)
            time.sleep(0.5)  # the recorder commits, the log lines are written
        finally:
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=30)
    lines = stderr.splitlines()
    sent = [line for line in lines if "delivery.message.sent " in line]
    assert len(sent) == 4, stderr
    assert any("delivery.message.dead " in line and "HTTP 400" in line for line in lines)
    assert any("delivery.message.retry " in line and "HTTP 503" in line for line in lines)
    for line in sent:
        assert "campaign=winback" in line and "channel=hook" in line and "attempt=1" in line
    assert "@example.com" not in stderr and "Hello User" not in stderr
