"""Soak: ``campaign daemon`` on the demo database with every campaign on a 1-minute cron.

Runs the daemon for half the time, sends SIGTERM (it must exit 0 after a graceful
drain), restarts it for the other half, SIGTERMs again, then checks:

* every minute slot in the window is in ``campaign_runs`` exactly once (done, or
  missed/failed with a reason) - the unique (campaign, slot) makes "twice" impossible,
  so the check is that nothing was silently skipped either;
* no message was delivered twice (a local HTTP sink counts Idempotency-Keys) and
  every ``sent`` message arrived;
* nothing is left ``sending`` (leases released at shutdown);
* ``/healthz`` answered ok during both halves.

The soak config is ``<demo>/soak.toml``: the demo's config with 1-minute crons, the
file channels replaced by webhooks to the sink, quiet hours off (the real clock may
sit in anyone's night) and scores refreshed as of today so the audiences are real.

    .venv/bin/python bench/soak.py --minutes 30                 # the full soak
    .venv/bin/python bench/soak.py --minutes 6 --demo /tmp/demo # a short one
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.workers import sink_stats, start_sink  # noqa: E402


def campaign(config: Path, *args: str, **kwargs: object) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "campaign", "--config", str(config), *args],
        env=env,
        check=True,
        **kwargs,  # type: ignore[arg-type]
    )


def soak_config(demo: Path, sink_url: str, health_port: int) -> Path:
    text = (demo / "config.toml").read_text()
    text = re.sub(r'(?m)^cron = ".*"$', 'cron = "* * * * *"', text)
    text = re.sub(r'(?m)^kind = "file"$', 'kind = "webhook"', text)
    text = re.sub(
        r'(?m)^path = "outbox/(\w+)"$', lambda m: f'url = "{sink_url}/hook/{m.group(1)}"', text
    )
    text += f"""
[daemon]
health_port = {health_port}
shutdown_grace_seconds = 20.0
missed_slot_grace_seconds = 120.0
retrain = false

[delivery]
quiet_hours = {{ start = "00:00:00", end = "00:00:00" }}
quiet_hours_by_medium = {{}}
"""
    path = demo / "soak.toml"
    path.write_text(text)
    return path


def healthz(port: int) -> dict[str, object] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
            return dict(json.loads(r.read()))
    except Exception:
        return None


def run_half(config: Path, port: int, seconds: float, log: Path) -> tuple[int, int]:
    """Run the daemon ``seconds``, then SIGTERM; (exit code, healthy polls)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with log.open("ab") as out:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "campaign", "--config", str(config), "daemon"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    healthy = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        time.sleep(10)
        body = healthz(port)
        if body and body.get("status") == "ok":
            healthy += 1
    daemon.send_signal(signal.SIGTERM)
    return daemon.wait(60), healthy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--demo", type=Path, default=Path("campaign-demo"))
    parser.add_argument("--health-port", type=int, default=9118)
    args = parser.parse_args()
    demo: Path = args.demo.resolve()
    if not (demo / "config.toml").exists():
        subprocess.run(
            [sys.executable, "-m", "campaign", "demo", "--dir", str(demo)],
            check=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
    sink, sink_url = start_sink(0.01)
    try:
        config = soak_config(demo, sink_url, args.health_port)
        today = datetime.now(UTC).strftime("%Y-%m-%d")
        campaign(config, "score", "--as-of", today, stdout=subprocess.DEVNULL)
        log = demo / "soak.log"
        started = datetime.now(UTC)
        half = args.minutes * 60 / 2
        code_a, healthy_a = run_half(config, args.health_port, half, log)
        code_b, healthy_b = run_half(config, args.health_port, half, log)
        ended = datetime.now(UTC)
        stats = sink_stats(sink_url)
    finally:
        sink.terminate()
        sink.wait()
    ok = check(config, started, ended, stats)
    print(f"soak_minutes: {args.minutes:g} min")
    print(f"exit_codes: {code_a} {code_b}")
    print(f"healthy_polls: {healthy_a} {healthy_b} count")
    print(f"sink_requests: {stats['requests']} count")
    print(f"sink_duplicates: {stats['duplicates']} count")
    ok = ok and code_a == 0 and code_b == 0 and stats["duplicates"] == 0
    print("soak: " + ("ok" if ok else "FAILED"))
    sys.exit(0 if ok else 1)


def check(config_path: Path, started: datetime, ended: datetime, stats: dict[str, int]) -> bool:
    from sqlalchemy import func, select

    from campaign.config import load_config
    from campaign.daemon.slots import make_trigger, slots_between
    from campaign.db.engine import make_engine
    from campaign.db.models import CampaignRun, Message

    config = load_config(config_path, environ={})
    engine = make_engine(config.database_url())
    ok = True
    with engine.connect() as connection:
        for c in config.campaigns:
            expected = slots_between(
                make_trigger(c.schedule),
                started - timedelta(seconds=1),
                ended - timedelta(seconds=5),
            )
            rows = dict(
                connection.execute(
                    select(CampaignRun.slot, CampaignRun.status).where(
                        CampaignRun.campaign == c.name,
                        CampaignRun.slot >= expected[0]
                        if expected
                        else CampaignRun.slot >= started,
                    )
                ).all()
            )
            counts: dict[str, int] = {}
            for status in rows.values():
                counts[status] = counts.get(status, 0) + 1
            absent = [s for s in expected if s not in rows]
            print(f"runs_{c.name}: {json.dumps(counts, sort_keys=True)} of {len(expected)} slots")
            if absent:
                print(
                    f"runs_{c.name}_unrecorded: {len(absent)} slots (first {absent[0].isoformat()})"
                )
                ok = False
        by_status = dict(
            connection.execute(
                select(Message.status, func.count())
                .where(Message.created_at >= started)
                .group_by(Message.status)
            ).all()
        )
        sent = by_status.get("sent", 0)
    print(f"messages_since_start: {json.dumps(by_status, sort_keys=True)}")
    if by_status.get("sending"):
        print("error: messages left sending")
        ok = False
    if stats["distinct"] < sent:
        print(f"error: {sent} sent but only {stats['distinct']} arrived")
        ok = False
    engine.dispose()
    return ok


if __name__ == "__main__":
    main()
