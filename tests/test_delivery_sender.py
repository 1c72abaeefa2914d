"""The drain loop against a real HTTP server, on SQLite and PostgreSQL."""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from campaign.common.contacts import address_hash
from campaign.config import QuietHours
from campaign.db.models import Message, Suppression, User
from campaign.delivery import outbox
from campaign.delivery.sender import drain_outbox
from tests.delivery_helpers import (
    NOON_SHANGHAI,
    Clock,
    delivery_config,
    make_run,
    make_user,
    queue_message,
    seed,
    statuses,
    suppress,
    webhook,
)
from tests.http_sink import HttpSink


@pytest.fixture
def sink() -> Iterator[HttpSink]:
    with HttpSink(hang_seconds=1.5) as server:
        yield server


def drain(engine: Engine, sink: HttpSink, clock: Clock, **delivery: object):
    config = delivery_config({"hook": webhook(sink.url)}, **delivery)
    return drain_outbox(engine, config, once=True, now=clock, rng=random.Random(0))


def message(engine: Engine, message_id: int) -> Message:
    with Session(engine) as session:
        found = session.get(Message, message_id)
        assert found is not None
        return found


def test_every_queued_message_is_sent_once_with_its_idempotency_key(
    engine: Engine, sink: HttpSink
) -> None:
    ids = seed(engine, 30)
    report = drain(engine, sink, Clock())
    assert report.sent == 30
    assert {s for s, _, _ in statuses(engine).values()} == {"sent"}
    keys = Counter(r.key for r in sink.requests)
    assert len(keys) == 30 and set(keys.values()) == {1}
    first = message(engine, ids[0])
    assert first.provider_message_id and first.provider_message_id.startswith("xmsg-")
    assert first.sent_at == NOON_SHANGHAI
    request = next(r for r in sink.requests if r.key == first.idempotency_key)
    assert request.headers["webhook-id"] == first.idempotency_key
    body = request.json()
    assert body["to"] == "u0@example.com" and body["message_id"] == first.id
    unsubscribe = body["headers"]["List-Unsubscribe"]
    assert unsubscribe.startswith("<http://127.0.0.1:8080/unsubscribe?u=u0&c=hook&t=")
    assert body["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    # A second drain finds nothing to do: never twice.
    assert drain(engine, sink, Clock()).claimed == 0
    assert len(sink.requests) == 30


def test_server_errors_timeouts_and_dropped_connections_are_retried_with_the_same_key(
    engine: Engine, sink: HttpSink
) -> None:
    ids = seed(engine, 4)
    keys = [message(engine, i).idempotency_key for i in ids]
    sink.plan(keys[0], "500")
    sink.plan(keys[1], "hang")
    sink.plan(keys[2], "drop")
    clock = Clock()
    report = drain(engine, sink, clock)
    assert report.sent == 1 and report.retried == 3
    for i in ids[:3]:
        row = message(engine, i)
        assert row.status == "queued" and row.attempts == 1 and row.last_error
        # Exponential backoff from 30 s with jitter: between 15 and 30 s.
        assert (
            clock() + timedelta(seconds=15)
            <= row.next_attempt_at
            <= clock() + timedelta(seconds=30)
        )
    assert "timeout" in (message(engine, ids[1]).last_error or "")
    # Not due yet: nothing happens.
    assert drain(engine, sink, clock).claimed == 0
    clock.advance(seconds=31)
    assert drain(engine, sink, clock).sent == 3
    assert {s for s, _, _ in statuses(engine).values()} == {"sent"}
    for key in keys[:3]:
        assert [r.key for r in sink.requests].count(key) == 2


def test_throttling_is_transient_and_honours_retry_after(engine: Engine, sink: HttpSink) -> None:
    ids = seed(engine, 1)
    sink.plan(message(engine, ids[0]).idempotency_key, "429:600")
    clock = Clock()
    drain(engine, sink, clock)
    row = message(engine, ids[0])
    assert row.status == "queued"
    assert row.next_attempt_at >= clock() + timedelta(seconds=600)
    clock.advance(seconds=601)
    drain(engine, sink, clock)
    assert message(engine, ids[0]).status == "sent"


def test_client_errors_are_permanent_and_dead_messages_can_be_requeued(
    engine: Engine, sink: HttpSink
) -> None:
    ids = seed(engine, 2)
    sink.plan(message(engine, ids[0]).idempotency_key, "400")
    clock = Clock()
    report = drain(engine, sink, clock)
    assert report.dead == 1
    dead = message(engine, ids[0])
    assert dead.status == "dead" and "HTTP 400" in (dead.last_error or "")
    assert drain(engine, sink, clock).claimed == 0
    assert outbox.requeue_dead(engine, now=clock(), campaign="other") == 0
    assert outbox.requeue_dead(engine, now=clock(), campaign="winback") == 1
    drain(engine, sink, clock)
    assert message(engine, ids[0]).status == "sent"


def test_a_message_is_dead_after_the_configured_attempts(engine: Engine, sink: HttpSink) -> None:
    ids = seed(engine, 1)
    sink.plan(message(engine, ids[0]).idempotency_key, *["500"] * 10)
    clock = Clock()
    for _ in range(5):
        drain(engine, sink, clock, max_attempts=3)
        clock.advance(hours=1)
    row = message(engine, ids[0])
    assert row.status == "dead" and row.attempts == 3
    assert "attempts exhausted" in (row.last_error or "")
    assert len(sink.requests) == 3


def test_opted_out_suppressed_and_addressless_users_are_skipped_at_send_time(
    engine: Engine, sink: HttpSink
) -> None:
    with Session(engine) as session:
        run = make_run(session)
        users = [make_user(session, i) for i in range(5)]
        messages = [queue_message(session, run, u) for u in users]
        users[0].consent_email = False  # opted out after planning
        suppress(session, users[1], "email")
        users[2].email = None
        suppress(session, users[3], "sms")  # another medium: still sent
        session.commit()
        ids = [m.id for m in messages]
    report = drain(engine, sink, Clock())
    found = statuses(engine)
    assert found[ids[0]][:2] == ("skipped", "no_consent")
    assert found[ids[1]][:2] == ("skipped", "suppressed")
    assert found[ids[2]][:2] == ("skipped", "no_address")
    assert found[ids[3]][0] == "sent" and found[ids[4]][0] == "sent"
    assert report.skipped == Counter({"no_consent": 1, "suppressed": 1, "no_address": 1})
    assert {r.json()["to"] for r in sink.requests} == {"u3@example.com", "u4@example.com"}


def test_a_suppressed_address_is_skipped_whoever_it_belongs_to(
    engine: Engine, sink: HttpSink
) -> None:
    with Session(engine) as session:
        run = make_run(session)
        users = [make_user(session, i) for i in range(3)]
        messages = [queue_message(session, run, u) for u in users]
        # A bounce list entry by address only (no user), stored hashed and normalised.
        session.add(
            Suppression(
                user_id=None,
                address_hash=address_hash("u0@example.com"),
                channel="email",
                reason="bounced",
                source="test",
                created_at=NOON_SHANGHAI,
            )
        )
        session.commit()
        ids = [m.id for m in messages]
    report = drain(engine, sink, Clock())
    found = statuses(engine)
    assert found[ids[0]][:2] == ("skipped", "suppressed")
    assert [found[i][0] for i in ids[1:]] == ["sent", "sent"]
    assert report.skipped == Counter({"suppressed": 1})


def test_frequency_caps_are_rechecked_at_send_time_against_sent_messages(
    engine: Engine, sink: HttpSink
) -> None:
    clock = Clock()
    with Session(engine) as session:
        run = make_run(session)
        other = make_run(session, campaign="care")
        users = [make_user(session, i) for i in range(4)]
        # u0 got another campaign's email yesterday (sent after this one was planned).
        queue_message(session, other, users[0], status="sent", sent_at=clock() - timedelta(days=1))
        # u1's was sent eight days ago: outside the 7-day window.
        queue_message(session, other, users[1], status="sent", sent_at=clock() - timedelta(days=8))
        capped = queue_message(session, run, users[0]).id
        old_enough = queue_message(session, run, users[1]).id
        # u2 has two messages due in the same claim: only the first may go.
        first = queue_message(session, run, users[2]).id
        second = queue_message(session, other, users[2]).id
        # A seed-list test send to u3 never counts and is never capped.
        queue_message(
            session,
            other,
            users[3],
            status="sent",
            is_test=True,
            address_override="qa@shop.test",
            sent_at=clock() - timedelta(hours=1),
            idempotency_key="test-send-u3",
        )
        fresh = queue_message(session, run, users[3]).id
        session.commit()
    report = drain(engine, sink, clock, frequency_cap={"email": 1}, frequency_window_days=7)
    found = statuses(engine)
    assert found[capped][:2] == ("skipped", "frequency_capped")
    assert found[second][:2] == ("skipped", "frequency_capped")
    assert [found[i][0] for i in (old_enough, first, fresh)] == ["sent", "sent", "sent"]
    assert report.skipped == Counter({"frequency_capped": 2})
    assert len(sink.requests) == 3


def test_messages_on_an_uncapped_medium_are_not_rechecked(engine: Engine, sink: HttpSink) -> None:
    clock = Clock()
    with Session(engine) as session:
        run = make_run(session)
        user = make_user(session, 1)
        queue_message(
            session,
            make_run(session, campaign="care"),
            user,
            status="sent",
            sent_at=clock() - timedelta(hours=1),
        )
        again = queue_message(session, run, user).id
        session.commit()
    drain(engine, sink, clock, frequency_cap={"sms": 1})
    assert statuses(engine)[again][0] == "sent"


def test_a_batch_channel_fills_its_requests_beyond_the_claim_batch_size(
    engine: Engine, sink: HttpSink
) -> None:
    from campaign.config import ChannelConfig
    from campaign.delivery.channels.sendgrid import parse_payload

    ids = seed(engine, 30, channel="grid")
    grid = ChannelConfig(
        kind="sendgrid", url=sink.url + "/v3/mail/send", batch_size=30, rate_per_second=1000
    )
    config = delivery_config({"grid": grid}, batch_size=10)
    report = drain_outbox(engine, config, once=True, now=Clock(), rng=random.Random(0))
    assert report.sent == 30 and report.requests == 1
    [request] = sink.requests
    assert sorted(int(p["custom_args"]["message_id"]) for p in parse_payload(request.json())) == ids


def test_quiet_hours_defer_to_the_recipients_next_morning(engine: Engine, sink: HttpSink) -> None:
    with Session(engine) as session:
        run = make_run(session)
        night = make_user(session, 1, timezone="America/New_York")  # 00:00 there
        bad_tz = make_user(session, 2, timezone="Not/AZone")  # falls back to the shop's
        m1 = queue_message(session, run, night).id
        m2 = queue_message(session, run, bad_tz).id
        session.commit()
    clock = Clock()
    report = drain(engine, sink, clock)
    assert report.deferred == 1 and report.sent == 1
    row = message(engine, m1)
    assert row.status == "queued" and row.attempts == 0
    # 08:00 in New York on 2026-06-01 is 12:00 UTC.
    assert row.next_attempt_at == datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    assert message(engine, m2).status == "sent"
    clock.value = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
    drain(engine, sink, clock)
    assert message(engine, m1).status == "sent"


def test_progress_counts_a_deferred_message_as_done_for_this_drain(
    engine: Engine, sink: HttpSink
) -> None:
    # The bar's total is what was due; a message deferred to the morning leaves that
    # set, so a drain at night must still fill its bar instead of stopping at 1/2.
    with Session(engine) as session:
        run = make_run(session)
        queue_message(session, run, make_user(session, 1, timezone="America/New_York"))
        queue_message(session, run, make_user(session, 2))
        session.commit()
    done: list[int] = []
    config = delivery_config({"hook": webhook(sink.url)})
    report = drain_outbox(
        engine, config, once=True, now=Clock(), rng=random.Random(0), progress=done.append
    )
    assert report.deferred == 1 and report.sent == 1
    assert sum(done) == 2


def test_messages_past_expiry_are_skipped_not_sent_late(engine: Engine, sink: HttpSink) -> None:
    with Session(engine) as session:
        run = make_run(session)
        late = queue_message(session, run, make_user(session, 1), expires_at=NOON_SHANGHAI).id
        night = make_user(session, 2, timezone="America/New_York")
        short = queue_message(session, run, night, expires_at=NOON_SHANGHAI + timedelta(hours=2)).id
        retried = queue_message(
            session, run, make_user(session, 3), expires_at=NOON_SHANGHAI + timedelta(seconds=10)
        )
        session.commit()
        sink.plan(retried.idempotency_key, "503")
        retried_id = retried.id
    drain(engine, sink, Clock())
    found = statuses(engine)
    assert found[late][:2] == ("skipped", "expired")
    assert found[short][:2] == ("skipped", "expired")  # quiet until after expiry
    assert found[retried_id][:2] == ("skipped", "expired")  # next try after expiry
    assert len(sink.requests) == 1


def test_an_expired_lease_is_reclaimed_and_a_live_one_is_left_alone(
    engine: Engine, sink: HttpSink
) -> None:
    ids = seed(engine, 2)
    clock = Clock()
    with engine.begin() as connection:
        connection.execute(
            update(Message)
            .where(Message.id == ids[0])
            .values(status="sending", lease_until=clock() - timedelta(seconds=1), attempts=1)
        )
        connection.execute(
            update(Message)
            .where(Message.id == ids[1])
            .values(status="sending", lease_until=clock() + timedelta(seconds=60), attempts=1)
        )
    drain(engine, sink, clock)
    assert message(engine, ids[0]).status == "sent"
    assert message(engine, ids[0]).attempts == 2
    assert message(engine, ids[1]).status == "sending"


def test_sms_messages_go_to_the_phone_and_test_sends_to_the_override(
    engine: Engine, sink: HttpSink
) -> None:
    with Session(engine) as session:
        run = make_run(session)
        user = make_user(session, 7, consent_email=False, timezone="America/New_York")
        sms = queue_message(session, run, user, "text").id
        test = queue_message(
            session,
            run,
            user,
            "hook",
            address_override="qa@shop.test",
            is_test=True,
            idempotency_key="test-send-1",
        ).id
        session.commit()
    clock = Clock(datetime(2026, 6, 1, 16, 0, tzinfo=UTC))  # 12:00 in New York
    config = delivery_config(
        {"hook": webhook(sink.url), "text": webhook(sink.url + "/sms", medium="sms")}
    )
    drain_outbox(engine, config, once=True, now=clock)
    assert statuses(engine)[sms][0] == "sent" and statuses(engine)[test][0] == "sent"
    by_path = {r.path: r.json() for r in sink.requests}
    assert by_path["/sms"]["to"] == "+15550000007" and by_path["/sms"]["text"] == "Hello User 7"
    assert by_path["/"]["to"] == "qa@shop.test" and by_path["/"]["test"] is True


def test_sms_quiet_hours_default_applies_to_sms_channels(engine: Engine, sink: HttpSink) -> None:
    with Session(engine) as session:
        run = make_run(session)
        user = make_user(session, 1, timezone="America/New_York")
        sms = queue_message(session, run, user, "text").id
        session.commit()
    clock = Clock(datetime(2026, 6, 2, 1, 30, tzinfo=UTC))  # 21:30 in New York
    config = delivery_config(
        {"text": webhook(sink.url, medium="sms")},
        quiet_hours=QuietHours(start=datetime.min.time(), end=datetime.min.time()),
    )
    drain_outbox(engine, config, once=True, now=clock)
    assert message(engine, sms).next_attempt_at == datetime(2026, 6, 2, 12, 0, tzinfo=UTC)


def test_an_unconfigured_channel_makes_the_message_dead(engine: Engine, sink: HttpSink) -> None:
    ids = seed(engine, 1, channel="gone")
    drain(engine, sink, Clock())
    row = message(engine, ids[0])
    assert row.status == "dead" and "not configured" in (row.last_error or "")


def test_concurrent_claims_never_overlap(engine: Engine) -> None:
    seed(engine, 200)
    now = NOON_SHANGHAI
    results: list[list[int]] = []
    barrier = threading.Barrier(4)

    def claim(owner: str) -> None:
        barrier.wait()
        mine: list[int] = []
        while batch := outbox.claim_batch(engine, owner=owner, now=now, lease_seconds=60, limit=7):
            mine += [m.id for m in batch]
        results.append(mine)

    threads = [threading.Thread(target=claim, args=(f"w{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    claimed = [i for r in results for i in r]
    assert len(claimed) == 200 and len(set(claimed)) == 200
    with Session(engine) as session:
        owners = session.scalars(select(Message.lease_owner).distinct()).all()
        assert set(owners) <= {"w0", "w1", "w2", "w3"}
        assert session.scalar(select(User.id).limit(1)) is not None
