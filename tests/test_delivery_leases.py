"""Leases that cannot run out under a live sender, and outcomes that re-check them.

Through the real sender against a real HTTP server on 127.0.0.1 that counts every
delivery, on SQLite and PostgreSQL: a channel far slower than concurrency ÷ lease, a
database that stalls for longer than the lease, and a graceful stop during a slow
channel's token-bucket wait each deliver every message exactly once.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from campaign.db.engine import make_engine
from campaign.db.models import Message
from campaign.delivery import outbox
from campaign.delivery.sender import DrainReport, drain_outbox
from tests.delivery_helpers import (
    ALWAYS_OPEN,
    NOON_SHANGHAI,
    delivery_config,
    seed,
    statuses,
    webhook,
)
from tests.http_sink import HttpSink


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _drain(
    engine: Engine, sink: HttpSink, *, rate: float, stop: threading.Event | None = None,
    **delivery: object,
) -> DrainReport:
    channel = webhook(sink.url, medium="sms").model_copy(update={"rate_per_second": rate})
    values: dict[str, object] = {
        "quiet_hours": ALWAYS_OPEN, "quiet_hours_by_medium": {}, "frequency_cap": {},
        "lease_seconds": 5, "timeout_seconds": 2.0,
    }
    values.update(delivery)
    config = delivery_config({"text": channel}, **values)
    return drain_outbox(
        engine, config, once=True, now=_utcnow, rng=random.Random(0), stop=stop
    )


def _exactly_once(sink: HttpSink, engine: Engine, ids: list[int]) -> None:
    delivered = Counter(r.key for r in sink.accepted())
    twice = {key: n for key, n in delivered.items() if n > 1}
    assert not twice, f"{len(twice)} of {len(ids)} messages delivered more than once"
    found = statuses(engine)
    unsent = {i: found[i] for i in ids if found[i][0] != "sent"}
    assert not unsent, f"not sent (id: status, skip reason, attempts): {unsent}"
    assert len(delivered) == len(ids)


@pytest.mark.timeout(120)
def test_a_channel_slower_than_concurrency_over_lease_delivers_each_message_once(
    engine: Engine,
) -> None:
    # 6 messages/s with 5 s leases and 32 workers: one claim holds 40 messages, more
    # than the rate sends within a lease (the sender used to send the late ones after
    # their lease expired, while claiming them again).
    ids = seed(engine, 40, channel="text", expires_at=None)
    with HttpSink() as sink:
        report = _drain(engine, sink, rate=6.0, concurrency=32, batch_size=50)
        _exactly_once(sink, engine, ids)
    assert report.duplicates == 0 and report.stale == 0
    with Session(engine) as session:
        rows = session.scalars(select(Message)).all()
        # Attempts count requests: one each; claims may be more (work handed back).
        assert {m.attempts for m in rows} == {1}
        assert all(m.claims >= 1 for m in rows)


def _stall(url: str, seconds: float, started: threading.Event) -> None:
    """Hold a lock that blocks every write to ``messages`` for ``seconds``."""
    engine = make_engine(url)
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            connection.exec_driver_sql("BEGIN EXCLUSIVE")
        elif engine.dialect.name == "mysql":
            connection.exec_driver_sql("LOCK TABLES messages WRITE")
        else:
            connection.begin()
            connection.execute(text("LOCK TABLE messages IN ACCESS EXCLUSIVE MODE"))
        started.set()
        time.sleep(seconds)
        if engine.dialect.name == "mysql":
            connection.exec_driver_sql("UNLOCK TABLES")
        connection.rollback()
    engine.dispose()


@pytest.mark.timeout(120)
def test_outcomes_committed_while_a_renewal_runs_are_not_taken_for_lost_leases(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The recorder's commit lands while the renewer's statement runs on the other
    # database thread: the renewal no longer finds those rows "sending" under us. They
    # were being recorded, not taken by another sender; taking them for lost would
    # drop a handed-back row when this drain claims it again (stuck until restart).
    real = outbox.record_outcomes

    def slow_to_return(*args: Any, **kwargs: Any) -> list[outbox.StaleOutcome]:
        stale = real(*args, **kwargs)
        time.sleep(1.4)  # committed; longer than the renewer's 1.25 s interval
        return stale

    monkeypatch.setattr(outbox, "record_outcomes", slow_to_return)
    ids = seed(engine, 30, channel="text", expires_at=None)
    with HttpSink() as sink:
        report = _drain(engine, sink, rate=40.0, concurrency=4, batch_size=5)
        _exactly_once(sink, engine, ids)
    assert report.lost == 0 and report.stale == 0


@pytest.mark.timeout(120)
def test_a_database_stalled_longer_than_the_lease_delivers_each_message_once(
    db_url: str, engine: Engine
) -> None:
    ids = seed(engine, 60, channel="text", expires_at=None)
    started = threading.Event()
    with HttpSink() as sink:
        staller = threading.Thread(target=_stall, args=(db_url, 7.0, started))

        def watch() -> None:
            # Stall once the drain is under way (some sent, most still to go).
            deadline = time.monotonic() + 60
            while len(sink.requests) < 10 and time.monotonic() < deadline:
                time.sleep(0.01)
            staller.start()

        watcher = threading.Thread(target=watch)
        watcher.start()
        # Small claims: the producer is inside a claim when the stall starts, and that
        # claim runs first when it ends (it used to take the rows just sent again).
        report = _drain(engine, sink, rate=20.0, concurrency=4, batch_size=10)
        watcher.join()
        staller.join()
        assert started.is_set()
        _exactly_once(sink, engine, ids)
    assert report.duplicates == 0


@pytest.mark.timeout(60)
def test_a_graceful_stop_does_not_wait_out_a_slow_buckets_sleep(engine: Engine) -> None:
    ids = seed(engine, 8, channel="text", expires_at=None)
    stop = threading.Event()
    with HttpSink() as sink:
        timer = threading.Timer(1.0, stop.set)
        timer.start()
        # One request every 5 s: without an interruptible wait every queued worker
        # would still send after the stop, one by one.
        report = _drain(engine, sink, rate=0.2, stop=stop, concurrency=8, lease_seconds=60)
        timer.join()
        sent_by_stop = len(sink.requests)
    assert sent_by_stop <= 1
    assert report.sent == sent_by_stop and report.released == len(ids) - sent_by_stop
    found = statuses(engine)
    # Handed back unsent, with nothing charged: the next sender has every try left.
    assert sorted(s for s, _, _ in found.values()).count("queued") == len(ids) - sent_by_stop
    assert {a for s, _, a in found.values() if s == "queued"} <= {0}


# -- the outbox's lease rules, directly ------------------------------------------------


def _claim(engine: Engine, owner: str, now: datetime, **kw: object) -> list[int]:
    return [
        m.id
        for m in outbox.claim_batch(
            engine, owner=owner, now=now, lease_seconds=10, limit=100, **kw  # type: ignore[arg-type]
        )
    ]


def test_a_sender_never_claims_again_a_row_it_holds(engine: Engine) -> None:
    ids = seed(engine, 3)
    assert _claim(engine, "a", NOON_SHANGHAI) == ids
    later = NOON_SHANGHAI + timedelta(seconds=30)  # past the 10 s lease
    # Its outcome may still be on the way: the holder does not take it again...
    assert _claim(engine, "a", later) == []
    # ...another sender does (the holder may be dead).
    assert _claim(engine, "b", later) == ids


def test_a_sent_recorded_after_the_lease_was_lost_is_a_stale_outcome(engine: Engine) -> None:
    first, second = seed(engine, 2)
    _claim(engine, "a", NOON_SHANGHAI)
    later = NOON_SHANGHAI + timedelta(seconds=30)
    assert _claim(engine, "b", later) == [first, second]
    # b sends `second` first; then a's late outcomes of both arrive.
    assert outbox.record_outcomes(
        engine, [outbox.Sent(second, "pb")], owner="b", now=later
    ) == []
    stale = outbox.record_outcomes(
        engine, [outbox.Sent(first, "pa1"), outbox.Sent(second, "pa2")], owner="a", now=later
    )
    assert {(s.id, s.duplicate) for s in stale} == {(first, False), (second, True)}
    with Session(engine) as session:
        a_first, b_second = session.get(Message, first), session.get(Message, second)
        assert a_first is not None and b_second is not None
        # `first` is sent (the provider has it): b must drop it, and does at renewal.
        assert a_first.status == "sent" and a_first.provider_message_id == "pa1"
        assert "stale outcome" in (a_first.last_error or "")
        # `second` keeps b's "sent", with the repeat written down.
        assert b_second.provider_message_id == "pb"
        assert "stale duplicate" in (b_second.last_error or "")
    renewed = outbox.renew_leases(
        engine, [first, second], owner="b", now=later, lease_seconds=10
    )
    assert renewed == set()


def test_renewals_keep_a_lease_and_outcomes_of_a_lost_one_change_nothing(
    engine: Engine,
) -> None:
    (only,) = seed(engine, 1)
    _claim(engine, "a", NOON_SHANGHAI)
    for step in range(1, 6):  # renewed every 5 s, well past the first 10 s lease
        now = NOON_SHANGHAI + timedelta(seconds=5 * step)
        assert outbox.renew_leases(engine, [only], owner="a", now=now, lease_seconds=10) == {
            only
        }
        assert _claim(engine, "b", now) == []
    later = NOON_SHANGHAI + timedelta(seconds=60)
    assert _claim(engine, "b", later) == [only]
    outbox.record_outcomes(
        engine, [outbox.Retry(only, later, "boom", attempted=True)], owner="a", now=later
    )
    assert statuses(engine)[only] == ("sending", None, 0)


@pytest.mark.parametrize("two_step", [False, True], ids=["returning", "select-then-update"])
def test_both_claim_variants_never_overlap(engine: Engine, two_step: bool) -> None:
    # The second variant is MariaDB's (no UPDATE ... RETURNING), run here on the others.
    if not two_step and engine.dialect.name == "mysql":
        pytest.skip("MariaDB/MySQL have no UPDATE ... RETURNING: only the two-step claim")
    seed(engine, 120)
    results: list[list[int]] = []
    barrier = threading.Barrier(4)

    def claim(owner: str) -> None:
        barrier.wait()
        mine: list[int] = []
        while batch := _claim(engine, owner, NOON_SHANGHAI, two_step=two_step):
            mine += batch
            if len(batch) < 100:
                break
        results.append(mine)

    threads = [threading.Thread(target=claim, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    claimed = [i for r in results for i in r]
    assert len(claimed) == 120 and len(set(claimed)) == 120
    with Session(engine) as session:
        claims = session.scalars(select(Message.claims)).all()
        assert set(claims) == {1}


def test_a_claim_killed_before_sending_charges_no_attempt(engine: Engine) -> None:
    (only,) = seed(engine, 1)
    for n in range(3):  # three senders die between claim and send
        _claim(engine, f"dead{n}", NOON_SHANGHAI + timedelta(seconds=60 * n))
    with Session(engine) as session:
        row = session.get(Message, only)
        assert row is not None and (row.attempts, row.claims) == (0, 3)

