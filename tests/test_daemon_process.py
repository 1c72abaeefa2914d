"""The daemon as a process on SQLite: one per database file, graceful SIGTERM, health."""

from __future__ import annotations

import signal
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import select

from campaign.daemon.leader import AlreadyRunning, FileLeadership, make_leadership, sqlite_lock_path
from campaign.db.models import Message
from tests.daemon_helpers import free_port, healthz, output, start, wait_for, write_config
from tests.delivery_helpers import seed
from tests.http_sink import HttpSink


def test_a_second_daemon_on_the_same_sqlite_file_refuses_with_a_clear_message(
    sqlite_url: str, tmp_path: Path
) -> None:
    from campaign.db.engine import make_engine

    write_config(tmp_path, sqlite_url, campaigns=())
    engine = make_engine(sqlite_url)
    first = make_leadership(engine)  # this process plays the running daemon
    try:
        with pytest.raises(AlreadyRunning):
            make_leadership(engine)
        second = start(["daemon"], tmp_path)
        assert second.wait(60) == 1
        assert "another campaign daemon is already running" in output(second)
    finally:
        first.release()
        engine.dispose()
    # Released (or its holder died): the next daemon gets it.
    lock = FileLeadership(sqlite_lock_path(make_engine(sqlite_url)))
    lock.acquire()
    lock.release()


def test_first_sigterm_finishes_in_flight_sends_and_releases_the_rest(
    sqlite_url: str, tmp_path: Path
) -> None:
    from campaign.db.engine import make_engine

    engine = make_engine(sqlite_url)
    port = free_port()
    with HttpSink(hang_seconds=1.5) as sink:
        sink.script(*["hang"] * 200)
        write_config(
            tmp_path, sqlite_url, campaigns=(), sink_url=sink.url, health_port=port,
            delivery={"concurrency": 4, "batch_size": 8},
        )
        ids = seed(engine, 40, channel="email", expires_at=None)
        daemon = start(["daemon"], tmp_path)
        try:
            wait_for(lambda: len(sink.requests) >= 4, 60)
            body = healthz(port)
            assert body is not None and body["status"] == "ok" and body["scheduler"]["leader"]
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                metrics = r.read().decode()
            assert "campaign_outbox_depth" in metrics and "campaign_database_up 1.0" in metrics
            daemon.send_signal(signal.SIGTERM)
            in_flight = len(sink.requests)
            assert daemon.wait(30) == 0, output(daemon)
        finally:
            if daemon.poll() is None:
                daemon.kill()
        log = output(daemon)
        assert "daemon.stopping" in log and "daemon.stopped" in log
        with engine.connect() as connection:
            rows = connection.execute(
                select(Message.id, Message.status, Message.lease_owner, Message.idempotency_key)
            ).all()
        status = {row.id: row.status for row in rows}
        assert set(status) == set(ids)
        # Nothing is left leased: every message was sent or went back to the queue.
        assert {row.status for row in rows} <= {"sent", "queued"}
        # Queued rows hold no lease; sent ones keep who sent them.
        assert all(row.lease_owner is None for row in rows if row.status == "queued")
        sent_keys = {row.idempotency_key for row in rows if row.status == "sent"}
        accepted = [r.key for r in sink.accepted()]
        # The sends in flight at the signal finished and were recorded, once each.
        assert len(sent_keys) >= in_flight
        assert sorted(accepted) == sorted(sent_keys)
    engine.dispose()


def _schedule_line(log: str, job: str, after: int = 0) -> str | None:
    for line in log[after:].splitlines():
        if "daemon.schedule" in line and f"job={job}" in line:
            return line
    return None


def test_sighup_reloads_schedules_and_a_broken_config_keeps_the_old_one(
    sqlite_url: str, tmp_path: Path
) -> None:
    import re
    from datetime import UTC, datetime

    port = free_port()
    write_config(tmp_path, sqlite_url, campaigns=("c",), cron="0 10 * * *", health_port=port)
    daemon = start(["daemon"], tmp_path)
    try:
        first = wait_for(lambda: _schedule_line(output(daemon), "campaign:c"), 60)
        assert "hour='10'" in first, first
        # /metrics carries the process and build series besides the product's own.
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            metrics = r.read().decode()
        assert "process_start_time_seconds" in metrics
        assert "process_resident_memory_bytes" in metrics
        assert re.search(r'campaign_build_info\{.*version="[^"]+".*\} 1\.0', metrics)

        write_config(tmp_path, sqlite_url, campaigns=("c",), cron="*/5 * * * *",
                     health_port=port)
        mark = len(output(daemon))
        daemon.send_signal(signal.SIGHUP)
        wait_for(lambda: "daemon.reload.done" in output(daemon)[mark:], 60)
        line = wait_for(lambda: _schedule_line(output(daemon), "campaign:c", mark), 10)
        assert "minute='*/5'" in line, line
        next_run = datetime.fromisoformat(line.split("next_run=")[1].split()[0])
        assert (next_run - datetime.now(UTC)).total_seconds() <= 300

        good = (tmp_path / "config.toml").read_text()
        broken = good.replace("[delivery]", "[delivery]\nconcurency = 3")
        (tmp_path / "config.toml").write_text(broken)
        mark = len(output(daemon))
        daemon.send_signal(signal.SIGHUP)
        wait_for(lambda: "daemon.reload.failed" in output(daemon)[mark:], 60)
        failed = [ln for ln in output(daemon)[mark:].splitlines() if ln.strip()]
        assert len([ln for ln in failed if "daemon.reload" in ln]) == 1, failed
        assert "did you mean 'concurrency'?" in failed[0]
        assert _schedule_line(output(daemon), "campaign:c", mark) is None  # nothing replaced
        body = healthz(port)
        assert body is not None and body["status"] == "ok", body
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(30) == 0, output(daemon)
    finally:
        if daemon.poll() is None:
            daemon.kill()
