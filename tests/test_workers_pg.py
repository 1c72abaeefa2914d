"""Several ``campaign worker`` processes on one PostgreSQL or MariaDB database: never
twice, nothing lost."""

from __future__ import annotations

import signal
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select

from campaign.db.engine import make_engine
from campaign.db.models import Message
from tests.daemon_helpers import output, seed_bulk, start, stop, wait_for, write_config
from tests.http_sink import HttpSink


@pytest.fixture(
    params=[
        pytest.param("pg_url", marks=pytest.mark.postgres, id="postgresql"),
        pytest.param("mysql_url", marks=pytest.mark.mysql, id="mysql"),
    ]
)
def server_url(request: pytest.FixtureRequest) -> str:
    """A database server several workers share."""
    return str(request.getfixturevalue(request.param))


def _statuses(engine: object) -> dict[str, int]:
    with engine.connect() as connection:  # type: ignore[attr-defined]
        return dict(
            connection.execute(select(Message.status, func.count()).group_by(Message.status)).all()
        )


def test_three_workers_drain_two_thousand_messages_and_each_arrives_exactly_once(
    server_url: str, tmp_path: Path
) -> None:
    engine = make_engine(server_url)
    keys = seed_bulk(engine, 2000)
    with HttpSink() as sink:
        write_config(
            tmp_path,
            server_url,
            campaigns=(),
            sink_url=sink.url,
            delivery={"concurrency": 16, "batch_size": 100},
        )
        workers = [start(["worker"], tmp_path) for _ in range(3)]
        try:
            wait_for(lambda: _statuses(engine).get("sent", 0) == 2000, 90, interval=0.5)
        finally:
            codes = [stop(worker) for worker in workers]
        arrived = Counter(r.key for r in sink.accepted())
    assert codes == [0, 0, 0], [output(w) for w in workers]
    assert set(arrived) == set(keys)
    assert max(arrived.values()) == 1, "a message arrived twice"
    # The work was shared: every worker sent some (the rows record who held them last
    # only while leased, so look at the logs' sent counts).
    sent = [int(output(w).rsplit("sent=", 1)[1].split()[0]) for w in workers]
    assert sum(sent) == 2000 and all(n > 0 for n in sent), sent
    engine.dispose()


def test_a_worker_killed_mid_batch_loses_nothing_and_repeats_carry_the_same_key(
    server_url: str, tmp_path: Path
) -> None:
    engine = make_engine(server_url)
    keys = seed_bulk(engine, 150)
    with HttpSink(hang_seconds=0.3) as sink:
        sink.script(*["hang"] * 1000)
        write_config(
            tmp_path,
            server_url,
            campaigns=(),
            sink_url=sink.url,
            delivery={
                "concurrency": 8,
                "batch_size": 40,
                "lease_seconds": 5,
                "timeout_seconds": 2.0,
            },
        )
        first = start(["worker"], tmp_path)
        wait_for(lambda: len(sink.requests) >= 30, 60)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        before = _statuses(engine)
        assert before.get("sending", 0) > 0, "the kill left claimed work behind"
        second = start(["worker"], tmp_path)
        try:
            # The dead worker's leases expire after 5 s; the second worker finishes.
            wait_for(lambda: _statuses(engine).get("sent", 0) == 150, 60, interval=0.5)
        finally:
            assert stop(second) == 0, output(second)
        arrived = Counter(r.key for r in sink.requests if r.action != "incomplete")
    assert set(arrived) == set(keys), "every message arrived"
    repeats = {key for key, n in arrived.items() if n > 1}
    # Only messages whose outcome the crash left unknown went again, with their own key.
    assert len(repeats) <= 8 + 40
    with engine.connect() as connection:
        claims = dict(connection.execute(select(Message.idempotency_key, Message.claims)).all())
    # Each repeat was claimed twice; attempts count only the request whose outcome landed.
    assert all(claims[key] >= 2 for key in repeats)
    engine.dispose()


def test_two_workers_on_a_channel_slower_than_their_leases_send_each_message_once(
    server_url: str, tmp_path: Path
) -> None:
    # 4 messages/s shared by two workers (2 each), 16 in flight each, 5 s leases: far
    # more claimed than a lease lets the rate send (it used to send many twice).
    engine = make_engine(server_url)
    keys = seed_bulk(engine, 24)
    with HttpSink() as sink:
        write_config(
            tmp_path,
            server_url,
            campaigns=(),
            sink_url=sink.url,
            rate=4.0,
            delivery={
                "concurrency": 16,
                "batch_size": 50,
                "lease_seconds": 5,
                "timeout_seconds": 0.5,
            },
        )
        workers = [start(["worker"], tmp_path) for _ in range(2)]
        try:
            wait_for(lambda: _statuses(engine).get("sent", 0) == 24, 90, interval=0.5)
        finally:
            for worker in workers:
                assert stop(worker) == 0, output(worker)
        delivered = Counter(r.key for r in sink.accepted())
    assert set(delivered) == set(keys)
    assert [key for key, n in delivered.items() if n > 1] == []
    engine.dispose()
