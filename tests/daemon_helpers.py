"""Config files and subprocess helpers for the daemon, leader and worker tests."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from campaign.config import Config, load_config
from tests.test_planner import write_templates

REPO = Path(__file__).resolve().parent.parent
CAMPAIGN = [sys.executable, "-m", "campaign"]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(
    root: Path,
    url: str,
    *,
    campaigns: tuple[str, ...] = ("c",),
    cron: str = "0 10 * * *",
    sink_url: str | None = None,
    health_port: int = 0,
    daemon: dict[str, Any] | None = None,
    delivery: dict[str, Any] | None = None,
    broken: tuple[str, ...] = (),
    rate: float = 10000.0,
) -> Config:
    """``root/config.toml``: fast daemon settings, one channel, campaigns on ``cron``.

    The channel ``email`` posts to ``sink_url`` (webhook) or writes files. A campaign
    named in ``broken`` uses a template set whose HTML does not parse.
    """
    daemon_values: dict[str, Any] = {
        "health_port": health_port,
        "shutdown_grace_seconds": 10.0,
        "leader_poll_seconds": 0.5,
        "heartbeat_seconds": 0.5,
        "missed_slot_grace_seconds": 600.0,
        "retrain": False,
    }
    daemon_values.update(daemon or {})
    delivery_values: dict[str, Any] = {
        "poll_interval_seconds": 0.2,
        "lease_seconds": 30,
        "timeout_seconds": 5.0,
        "batch_size": 50,
        "concurrency": 16,
        "quiet_hours": {"start": "00:00:00", "end": "00:00:00"},
        "quiet_hours_by_medium": {},
        "frequency_cap": {"email": 1000},
    }
    delivery_values.update(delivery or {})

    def toml_value(value: Any) -> str:
        if isinstance(value, dict):
            return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
        return json.dumps(value)

    lines = [
        "[shop]", 'name = "Test Shop"', 'base_url = "https://shop.test"', 'default_locale = "en"',
        "[database]", f"url = {json.dumps(url)}",
        "[daemon]", *(f"{k} = {toml_value(v)}" for k, v in daemon_values.items()),
        "[delivery]", *(f"{k} = {toml_value(v)}" for k, v in delivery_values.items()),
        "[channels.email]",
    ]
    if sink_url:
        lines += ['kind = "webhook"', f'url = "{sink_url}/hook"', f"rate_per_second = {rate}"]
    else:
        lines += ['kind = "file"', 'path = "out/email"']
    for name in campaigns:
        lines += [
            "[[campaigns]]", f'name = "{name}"', 'channels = ["email"]', "holdout_share = 0.0",
            "cooldown_days = 0",
            "[campaigns.schedule]", f'cron = "{cron}"', 'timezone = "UTC"',
            "[campaigns.audience]", "min_risk = 0.5",
            "[[campaigns.variants]]", 'name = "v"',
            f'template = "{"bad" if name in broken else "t"}"', "offer = false",
        ]
    (root / "config.toml").write_text("\n".join(lines) + "\n")
    write_templates(root)
    write_templates(root, "bad", html="<p>{% if %}</p>")
    return load_config(root / "config.toml", environ={})


def start(args: list[str], root: Path, **env: str) -> subprocess.Popen[bytes]:
    """``python -m campaign <args>`` in ``root`` with its config; output to a log file
    whose path is ``process.log_path`` (read it with :func:`output`)."""
    environ = {**os.environ, "PYTHONPATH": str(REPO), **env}
    environ.pop("CAMPAIGN_CONFIG", None)
    path = root / f"{args[0]}-{time.monotonic_ns()}.log"
    with path.open("wb") as log:
        process = subprocess.Popen(
            [*CAMPAIGN, "--config", str(root / "config.toml"), *args],
            cwd=root, env=environ, stdout=log, stderr=subprocess.STDOUT,
        )
    process.log_path = path  # type: ignore[attr-defined]
    return process


def output(process: subprocess.Popen[bytes]) -> str:
    """What a process started by :func:`start` wrote so far."""
    return str(process.log_path.read_text(errors="replace"))  # type: ignore[attr-defined]


def healthz(port: int, timeout: float = 2.0) -> dict[str, Any] | None:
    """The /healthz body of a daemon, or None when it does not answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=timeout) as r:
            return dict(json.loads(r.read()))
    except urllib.error.HTTPError as exc:
        return dict(json.loads(exc.read()))
    except OSError:
        return None


def wait_for(predicate: Any, timeout: float, interval: float = 0.1) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


def stop(process: subprocess.Popen[bytes], timeout: float = 15.0) -> int:
    """SIGTERM, wait; SIGKILL if it does not exit. Returns the exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise
    return int(process.returncode)


def seed_bulk(engine: Any, n: int, channel: str = "email", campaign: str = "bulk") -> list[str]:
    """``n`` consenting users with one queued, never-expiring message each (bulk inserts);
    returns the messages' idempotency keys."""
    from datetime import UTC, datetime

    from sqlalchemy import insert, select

    from campaign.db.models import CampaignRun, Message, User

    now = datetime.now(UTC)
    with engine.begin() as connection:
        run_id = connection.execute(
            insert(CampaignRun)
            .values(campaign=campaign, slot=now, as_of=now, status="done", counts={})
            .returning(CampaignRun.id)
        ).scalar_one()
        connection.execute(
            insert(User),
            [
                # Users are per campaign, so several bulks (bench/workers.py) can share a database.
                {"external_id": f"{campaign}-b{i}", "email": f"{campaign}-b{i}@example.com",
                 "consent_email": True, "consent_sms": False, "attributes": {}}
                for i in range(n)
            ],
        )
        ids = connection.execute(
            select(User.id).where(User.external_id.like(f"{campaign}-b%")).order_by(User.id)
        ).scalars().all()
        keys = [f"{campaign}/{user_id}/{channel}" for user_id in ids]
        connection.execute(
            insert(Message),
            [
                {"run_id": run_id, "user_id": user_id, "campaign": campaign, "channel": channel,
                 "subject": "Hello", "body": "<p>Hi</p>", "text_body": "Hi", "products": [],
                 "idempotency_key": key, "status": "queued", "attempts": 0, "created_at": now}
                for user_id, key in zip(ids, keys, strict=True)
            ],
        )
    return keys
