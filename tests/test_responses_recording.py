"""Recording responses on both dialects: dedupe, forward-only engagement, suppression."""

from __future__ import annotations

import threading
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from campaign.db.models import Response
from campaign.db.queries import address_hash, is_suppressed
from campaign.responses.events import InboundEvent, ResponseType
from campaign.responses.recording import record_events
from tests.factories import make_user
from tests.responses_helpers import (
    NOW,
    count_responses,
    engagement_of,
    make_sent_message,
    suppressions,
)

MEDIA = {"email": "email", "sms": "sms"}


def _event(event_id: str, kind: ResponseType, minutes: int = 0, **fields: object) -> InboundEvent:
    return InboundEvent(
        provider="test",
        event_id=event_id,
        type=kind,
        ts=NOW + timedelta(minutes=minutes),
        **fields,  # type: ignore[arg-type]
    )


def _record(engine: Engine, *events: InboundEvent):  # type: ignore[no-untyped-def]
    with engine.begin() as connection:
        return record_events(connection, list(events), now=NOW, media=MEDIA)


def test_replayed_events_are_stored_once(
    engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    with session_factory() as session:
        message = make_sent_message(session, make_user(session))
        session.commit()
        mid = message.id
    first = _record(
        engine,
        _event("e1", ResponseType.OPENED, message_id=mid),
        _event("e1", ResponseType.OPENED, message_id=mid),
    )
    again = _record(engine, _event("e1", ResponseType.OPENED, message_id=mid))
    assert (first.stored, first.duplicates) == (1, 1)
    assert first.statuses == ["stored", "duplicate"]
    assert (again.stored, again.duplicates) == (0, 1)
    assert count_responses(engine) == 1
    assert engagement_of(engine, mid) == "opened"


def test_events_match_by_id_key_or_provider_id_and_unknown_ones_are_kept_unmatched(
    engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    with session_factory() as session:
        user = make_user(session)
        by_key = make_sent_message(session, user)
        by_pid = make_sent_message(session, user)
        session.commit()
        key, pid, pid_id, key_id = (
            by_key.idempotency_key,
            by_pid.provider_message_id,
            by_pid.id,
            by_key.id,
        )
    result = _record(
        engine,
        _event("k", ResponseType.DELIVERED, idempotency_key=key),
        _event("p", ResponseType.CLICKED, provider_message_id=pid),
        _event("u", ResponseType.OPENED, message_id=999_999),
    )
    assert result.statuses == ["stored", "stored", "unmatched"]
    with engine.connect() as connection:
        stored = {
            r.provider_event_id: r.message_id
            for r in connection.execute(select(Response.provider_event_id, Response.message_id))
        }
    assert stored == {"k": key_id, "p": pid_id, "u": None}
    assert engagement_of(engine, key_id) == "delivered"
    assert engagement_of(engine, pid_id) == "clicked"


def test_a_late_delivered_never_overwrites_clicked_and_terminal_states_stay(
    engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    with session_factory() as session:
        user = make_user(session)
        first, second = make_sent_message(session, user), make_sent_message(session, user)
        session.commit()
        a, b = first.id, second.id
    _record(engine, _event("a1", ResponseType.CLICKED, 5, message_id=a))
    _record(
        engine,
        _event("a2", ResponseType.DELIVERED, 1, message_id=a),
        _event("a3", ResponseType.OPENED, 2, message_id=a),
    )
    assert engagement_of(engine, a) == "clicked"
    _record(engine, _event("a4", ResponseType.PURCHASED, 9, message_id=a))
    assert engagement_of(engine, a) == "converted"
    # In one batch, the earliest terminal event wins and nothing moves it afterwards.
    _record(
        engine,
        _event("b2", ResponseType.UNSUBSCRIBED, 3, message_id=b),
        _event("b1", ResponseType.COMPLAINED, 2, message_id=b),
        _event("b3", ResponseType.CLICKED, 4, message_id=b),
    )
    assert engagement_of(engine, b) == "complained"
    _record(engine, _event("b4", ResponseType.BOUNCED, 5, message_id=b))
    assert engagement_of(engine, b) == "complained"


def test_unsubscribes_complaints_and_hard_bounces_suppress_at_once_but_soft_bounces_do_not(
    engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    with session_factory() as session:
        soft_user, hard_user, spam_user = make_user(session), make_user(session), make_user(session)
        soft = make_sent_message(session, soft_user)
        hard = make_sent_message(session, hard_user, channel="sms")
        spam = make_sent_message(session, spam_user)
        session.commit()
        ids = soft_user.id, hard_user.id, spam_user.id
        hard_phone, spam_email = hard_user.phone, spam_user.email
        messages = soft.id, hard.id, spam.id
    result = _record(
        engine,
        _event("s", ResponseType.SOFT_BOUNCED, message_id=messages[0]),
        _event("h", ResponseType.BOUNCED, message_id=messages[1]),
        _event("c", ResponseType.COMPLAINED, message_id=messages[2]),
    )
    assert result.suppressions == 2
    assert suppressions(engine) == [
        (ids[1], address_hash(hard_phone), "sms", "hard_bounce"),
        (ids[2], address_hash(spam_email), "email", "complained"),
    ]
    with engine.connect() as connection:
        assert not is_suppressed(connection, ids[0], "email")
        assert is_suppressed(connection, ids[1], "sms")
        assert not is_suppressed(connection, ids[1], "email")
        assert is_suppressed(connection, ids[2], "email")
    # A replay adds nothing.
    _record(engine, _event("c2", ResponseType.COMPLAINED, message_id=messages[2]))
    assert len(suppressions(engine)) == 2


def test_an_sms_stop_from_a_known_number_suppresses_that_user_without_a_message(
    engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    with session_factory() as session:
        user = make_user(session, phone="+15550009999")
        session.commit()
        uid = user.id
    result = _record(
        engine,
        _event("SM1", ResponseType.UNSUBSCRIBED, address=" +15550009999", medium="sms"),
        _event("SM2", ResponseType.UNSUBSCRIBED, address="+15550000000", medium="sms"),
    )
    assert result.unmatched == 2
    assert suppressions(engine) == [
        (uid, address_hash("+15550009999"), "sms", "unsubscribed"),
        (None, address_hash("+15550000000"), "sms", "unsubscribed"),
    ]


def test_an_unsubscribe_link_names_the_user_and_lands_on_their_latest_message(
    engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    with session_factory() as session:
        user = make_user(session)
        make_sent_message(session, user, sent_at=NOW - timedelta(days=3))
        latest = make_sent_message(session, user)
        session.commit()
        uid, external, latest_id, email = user.id, user.external_id, latest.id, user.email
    _record(
        engine,
        _event(
            "link1", ResponseType.UNSUBSCRIBED, user_ref=external, channel="email", medium="email"
        ),
    )
    assert engagement_of(engine, latest_id) == "unsubscribed"
    assert suppressions(engine) == [(uid, address_hash(email), "email", "unsubscribed")]


def test_concurrent_duplicates_never_fail(
    engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    with session_factory() as session:
        message = make_sent_message(session, make_user(session))
        session.commit()
        mid = message.id
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def post() -> None:
        try:
            barrier.wait()
            for n in range(20):
                _record(engine, _event(f"race-{n}", ResponseType.OPENED, message_id=mid))
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=post) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert count_responses(engine) == 20
