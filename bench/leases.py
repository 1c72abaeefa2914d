"""Never twice: a SIGKILL loop, a slow channel and a stalled database, counted at the provider.

Three scenarios through the real sender against a local HTTP server (tests/http_sink.py)
that records every request, on SQLite and (with ``CAMPAIGN_TEST_DATABASE_URL``)
PostgreSQL, each on a fresh database:

* ``kill``: ``--kills`` sender processes SIGKILLed at random points of one drain (some
  requests hang past the timeout, so kills land mid-request too), then one that
  finishes. Counts messages delivered twice, and how many of those straddle a kill
  (the only way a repeat may happen), dead messages, and requests per message.
* ``slow``: a channel far slower than concurrency ÷ lease (default: the figures that
  used to deliver 27 of 66 twice: 1 message/s, 16 workers, 10 s lease).
* ``stall``: a lock that blocks every write to ``messages`` for longer than the lease.

Prints ``name: value unit`` lines::

    .venv/bin/python bench/leases.py            # all three, issue-sized (~10 minutes)
    .venv/bin/python bench/leases.py --smoke    # small and quick
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, select, text  # noqa: E402
from sqlalchemy.engine import Engine, make_url  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from campaign.db.engine import make_engine  # noqa: E402
from campaign.db.migrate import upgrade  # noqa: E402
from campaign.db.models import Message  # noqa: E402
from campaign.delivery.sender import drain_outbox  # noqa: E402
from tests.delivery_helpers import ALWAYS_OPEN, delivery_config, seed, webhook  # noqa: E402
from tests.http_sink import HttpSink  # noqa: E402

CHILD = "from tests.delivery_helpers import crash_child; crash_child()"


def out(name: str, value: float | int, unit: str) -> None:
    print(f"{name}: {value:g} {unit}" if isinstance(value, float) else f"{name}: {value} {unit}")
    sys.stdout.flush()


@contextmanager
def fresh_database(dialect: str) -> Iterator[str]:
    """A migrated, empty database URL; removed afterwards."""
    if dialect == "sqlite":
        with tempfile.TemporaryDirectory() as folder:
            url = f"sqlite:///{folder}/bench.db"
            engine = make_engine(url)
            upgrade(engine)
            engine.dispose()
            yield url
        return
    base = make_url(os.environ["CAMPAIGN_TEST_DATABASE_URL"].replace(
        "postgresql://", "postgresql+psycopg://", 1))
    name = f"bench_leases_{uuid.uuid4().hex[:8]}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = base.set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    try:
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _key_counts(sink: HttpSink) -> Counter[str]:
    return Counter(r.key for r in sink.accepted() if r.key)


def _statuses(engine: Engine) -> Counter[str]:
    with Session(engine) as session:
        return Counter(session.scalars(select(Message.status)))


def kill_loop(dialect: str, messages: int, kills: int, rng: random.Random) -> None:
    with fresh_database(dialect) as url, HttpSink(hang_seconds=0.8) as sink:
        engine = make_engine(url)
        # Planned messages always expire (delivery.message_expiry_hours).
        seed(engine, messages, channel="text", expires_at=datetime.now(UTC) + timedelta(hours=48))
        with Session(engine) as session:
            keys = list(session.scalars(select(Message.idempotency_key)))
        for key in rng.sample(keys, max(1, messages // 20)):
            sink.plan(key, "hang")  # kills land mid-request too
        marks: list[int] = []
        offset = 0.0
        started = time.perf_counter()
        for _ in range(kills):
            child = subprocess.Popen(
                [sys.executable, "-c", CHILD, url, sink.url, str(offset)],
                cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            target = len(sink.requests) + rng.randint(1, max(2, messages // kills))
            deadline = time.monotonic() + 60
            while len(sink.requests) < target and child.poll() is None:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.002)
            if child.poll() is None:
                os.kill(child.pid, signal.SIGKILL)
            child.wait()
            marks.append(len(sink.requests))
            offset += 10  # past the child's 5 s lease
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, url, sink.url, str(offset)], cwd=ROOT,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        child.wait(timeout=600)
        elapsed = time.perf_counter() - started
        arrivals: dict[str, list[int]] = {}
        for index, request in enumerate(sink.requests):
            if request.key and request.action in ("ok", "hang"):
                arrivals.setdefault(request.key, []).append(index)
        twice = {k: v for k, v in arrivals.items() if len(v) > 1}
        straddling = sum(
            1 for v in twice.values()
            if all(any(a < m <= b for m in marks) for a, b in zip(v, v[1:], strict=False))
        )
        found = _statuses(engine)
        with Session(engine) as session:
            rows = session.execute(select(Message.attempts, Message.claims)).all()
        engine.dispose()
    prefix = f"kill_{dialect}"
    out(f"{prefix}_messages", messages, "messages")
    out(f"{prefix}_kills", kills, "SIGKILLs")
    out(f"{prefix}_sent", found.get("sent", 0), "messages")
    out(f"{prefix}_not_sent", messages - found.get("sent", 0), "messages")
    out(f"{prefix}_dead", found.get("dead", 0), "messages")
    out(f"{prefix}_delivered", len(arrivals), "messages")
    out(f"{prefix}_delivered_twice", len(twice), "messages")
    out(f"{prefix}_repeats_straddling_a_kill", straddling, "messages")
    out(f"{prefix}_requests", len(sink.requests), "requests")
    out(f"{prefix}_max_attempts_recorded", max(a for a, _ in rows), "attempts")
    out(f"{prefix}_max_claims", max(c for _, c in rows), "claims")
    out(f"{prefix}_elapsed", round(elapsed, 1), "s")


def _drain(url: str, sink: HttpSink, *, rate: float, lease: int, concurrency: int,
           batch: int, timeout: float) -> object:
    engine = make_engine(url)
    channel = webhook(sink.url, medium="sms").model_copy(update={"rate_per_second": rate})
    config = delivery_config(
        {"text": channel}, quiet_hours=ALWAYS_OPEN, quiet_hours_by_medium={},
        frequency_cap={}, lease_seconds=lease, timeout_seconds=timeout,
        concurrency=concurrency, batch_size=batch,
    )
    try:
        return drain_outbox(engine, config, once=True, now=lambda: datetime.now(UTC))
    finally:
        engine.dispose()


def _report(prefix: str, url: str, sink: HttpSink, messages: int, elapsed: float,
            report: object) -> None:
    counts = _key_counts(sink)
    engine = make_engine(url)
    found = _statuses(engine)
    engine.dispose()
    out(f"{prefix}_messages", messages, "messages")
    out(f"{prefix}_sent", found.get("sent", 0), "messages")
    out(f"{prefix}_not_sent", messages - found.get("sent", 0), "messages")
    out(f"{prefix}_delivered", len(counts), "messages")
    out(f"{prefix}_delivered_twice", sum(1 for n in counts.values() if n > 1), "messages")
    out(f"{prefix}_stale_outcomes", getattr(report, "stale", 0), "messages")
    out(f"{prefix}_released_for_later", getattr(report, "released", 0), "claims")
    out(f"{prefix}_elapsed", round(elapsed, 1), "s")
    out(f"{prefix}_rate", round(len(counts) / elapsed, 2), "messages/s")


def slow_channel(dialect: str, messages: int, rate: float, lease: int, concurrency: int) -> None:
    with fresh_database(dialect) as url, HttpSink() as sink:
        engine = make_engine(url)
        seed(engine, messages, channel="text", expires_at=None)
        engine.dispose()
        started = time.perf_counter()
        report = _drain(url, sink, rate=rate, lease=lease, concurrency=concurrency,
                        batch=200, timeout=1.0)
        _report(f"slow_{dialect}", url, sink, messages, time.perf_counter() - started, report)
    out(f"slow_{dialect}_configured_rate", rate, "messages/s")
    out(f"slow_{dialect}_lease", lease, "s")
    out(f"slow_{dialect}_concurrency", concurrency, "workers")


def stalled_database(dialect: str, messages: int, stall: float, lease: int) -> None:
    with fresh_database(dialect) as url, HttpSink() as sink:
        engine = make_engine(url)
        seed(engine, messages, channel="text", expires_at=None)
        engine.dispose()

        def hold() -> None:
            while len(sink.requests) < messages // 5:
                time.sleep(0.01)
            lock = make_engine(url)
            with lock.connect() as connection:
                if dialect == "sqlite":
                    connection.exec_driver_sql("BEGIN EXCLUSIVE")
                else:
                    connection.begin()
                    connection.execute(text("LOCK TABLE messages IN ACCESS EXCLUSIVE MODE"))
                time.sleep(stall)
                connection.rollback()
            lock.dispose()

        holder = threading.Thread(target=hold, daemon=True)
        holder.start()
        started = time.perf_counter()
        report = _drain(url, sink, rate=50.0, lease=lease, concurrency=8, batch=20, timeout=1.0)
        holder.join()
        _report(f"stall_{dialect}", url, sink, messages, time.perf_counter() - started, report)
    out(f"stall_{dialect}_lock_held", stall, "s")
    out(f"stall_{dialect}_lease", lease, "s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="small and quick")
    parser.add_argument("--only", choices=["kill", "slow", "stall"], action="append")
    parser.add_argument("--db", choices=["sqlite", "postgresql"], action="append")
    args = parser.parse_args()
    dialects = args.db or (
        ["sqlite", "postgresql"] if os.environ.get("CAMPAIGN_TEST_DATABASE_URL") else ["sqlite"]
    )
    only = set(args.only or ["kill", "slow", "stall"])
    rng = random.Random(11)
    for dialect in dialects:
        if "kill" in only:
            kill_loop(dialect, 60 if args.smoke else 300, 3 if args.smoke else 20, rng)
        if "slow" in only:
            if args.smoke:
                slow_channel(dialect, 20, rate=4.0, lease=5, concurrency=16)
            else:
                slow_channel(dialect, 66, rate=1.0, lease=10, concurrency=16)
        if "stall" in only:
            if args.smoke:
                stalled_database(dialect, 60, stall=7.0, lease=5)
            else:
                stalled_database(dialect, 400, stall=20.0, lease=15)


if __name__ == "__main__":
    main()
