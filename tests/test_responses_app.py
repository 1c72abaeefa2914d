"""The webhook routes through starlette's TestClient, on both dialects."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import timedelta
from urllib.parse import urlencode

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker
from starlette.testclient import TestClient

from campaign.common.links import unsubscribe_query
from campaign.config import Config
from campaign.db.models import Response
from campaign.db.queries import is_suppressed, unsubscribe_key
from campaign.responses.app import create_app
from campaign.responses.providers import twilio
from tests.factories import make_user
from tests.responses_helpers import (
    NOW,
    OLD_SECRET,
    SECRET,
    SENDGRID_SECRET,
    TWILIO_TOKEN,
    count_responses,
    engagement_of,
    make_config,
    make_sent_message,
    suppressions,
)


@pytest.fixture
def config() -> Config:
    return make_config()


@pytest.fixture
def client(config: Config, engine: Engine) -> Iterator[TestClient]:
    app = create_app(config, engine, clock=lambda: NOW)
    with TestClient(app, base_url="https://shop.example") as test_client:
        yield test_client


@pytest.fixture
def message_id(session_factory: sessionmaker[Session]) -> int:
    with session_factory() as session:
        message = make_sent_message(session, make_user(session, locale="zh-CN"))
        session.commit()
        return message.id


def _post_event(client: TestClient, body: dict[str, object] | bytes, event_id: str, **sign: object):  # type: ignore[no-untyped-def]
    from tests.responses_helpers import signed

    raw, headers = signed(body, event_id, **sign)  # type: ignore[arg-type]
    return client.post("/webhooks/events", content=raw, headers=headers)


def test_a_signed_event_is_stored_and_its_replay_is_harmless(
    client: TestClient, engine: Engine, message_id: int
) -> None:
    body = {"type": "opened", "message_id": message_id}
    first = _post_event(client, body, "evt-1")
    again = _post_event(client, body, "evt-1")
    assert first.status_code == 200 and first.json() == {
        "stored": 1,
        "duplicates": 0,
        "unmatched": 0,
    }
    assert again.status_code == 200 and again.json()["duplicates"] == 1
    assert count_responses(engine) == 1
    assert engagement_of(engine, message_id) == "opened"


def test_a_rotated_out_secret_still_verifies(
    client: TestClient, engine: Engine, message_id: int
) -> None:
    response = _post_event(
        client, {"type": "clicked", "message_id": message_id}, "evt-2", secret=OLD_SECRET
    )
    assert response.status_code == 200
    assert engagement_of(engine, message_id) == "clicked"


@pytest.mark.parametrize(
    "sign",
    [
        {"secret": "wrong"},
        {"at": NOW - timedelta(minutes=6)},
        {"at": NOW + timedelta(minutes=6)},
    ],
    ids=["bad-signature", "stale", "future"],
)
def test_bad_signatures_and_stale_timestamps_get_401_and_store_nothing(
    client: TestClient, engine: Engine, message_id: int, sign: dict[str, object]
) -> None:
    response = _post_event(client, {"type": "opened", "message_id": message_id}, "evt-x", **sign)
    assert response.status_code == 401
    assert count_responses(engine) == 0
    assert engagement_of(engine, message_id) is None


def test_unsigned_requests_get_401(client: TestClient, engine: Engine) -> None:
    response = client.post("/webhooks/events", json={"type": "opened"})
    assert response.status_code == 401
    assert count_responses(engine) == 0


def test_a_malformed_body_gets_400_with_a_reason(client: TestClient, engine: Engine) -> None:
    response = _post_event(client, b'{"type": ', "evt-3")
    assert response.status_code == 400
    assert "not JSON" in response.json()["error"]
    assert count_responses(engine) == 0


def test_an_unknown_message_is_accepted_as_unmatched(client: TestClient, engine: Engine) -> None:
    response = _post_event(client, {"type": "delivered", "message_id": 123456789}, "evt-4")
    assert response.status_code == 200 and response.json()["unmatched"] == 1
    with engine.connect() as connection:
        assert connection.execute(select(Response.message_id)).scalar_one() is None


def test_bodies_over_the_limit_get_413_even_without_a_content_length(
    client: TestClient, engine: Engine
) -> None:
    big = b"x" * 5000
    assert client.post("/webhooks/events", content=big).status_code == 413

    def chunks() -> Iterator[bytes]:
        for _ in range(5):
            yield b"y" * 1000

    response = client.post("/webhooks/events", content=chunks())
    assert response.status_code == 413
    assert count_responses(engine) == 0


def test_unknown_endpoints_are_404(client: TestClient) -> None:
    assert client.post("/webhooks/nope", content=b"{}").status_code == 404
    assert client.get("/healthz").json() == {"status": "ok"}


# -- twilio --------------------------------------------------------------------------


def _twilio_post(
    client: TestClient, path: str, params: list[tuple[str, str]], token: str = TWILIO_TOKEN
):  # type: ignore[no-untyped-def]
    url = "https://shop.example" + path
    headers = {
        "X-Twilio-Signature": twilio.signature(token, url, params),
        "Content-Type": "application/x-www-form-urlencoded",
    }
    return client.post(path, content=urlencode(params).encode(), headers=headers)


def test_twilio_status_callbacks_verify_and_advance_the_sms(
    client: TestClient, engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    with session_factory() as session:
        message = make_sent_message(
            session, make_user(session), channel="sms", provider_message_id="SMabc"
        )
        session.commit()
        mid = message.id
    params = [("MessageSid", "SMabc"), ("MessageStatus", "delivered"), ("To", "+15550001")]
    response = _twilio_post(client, "/webhooks/sms", params)
    assert response.status_code == 200
    assert "<Response>" in response.text
    assert engagement_of(engine, mid) == "delivered"
    forged = _twilio_post(
        client,
        "/webhooks/twilio",
        [("MessageSid", "SMabc"), ("MessageStatus", "read")],
        token="nope",
    )
    assert forged.status_code == 401
    assert count_responses(engine) == 1


def test_an_inbound_stop_suppresses_the_number(
    client: TestClient, engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    with session_factory() as session:
        user = make_user(session, phone="+15557654321")
        session.commit()
        uid = user.id
    params = [
        ("MessageSid", "SMin1"),
        ("From", "+15557654321"),
        ("Body", "opt out"),
        ("SmsStatus", "received"),
    ]
    assert _twilio_post(client, "/webhooks/twilio", params).status_code == 200
    with engine.connect() as connection:
        assert is_suppressed(connection, uid, "sms")
        assert not is_suppressed(connection, uid, "email")


# -- sendgrid ------------------------------------------------------------------------


def _basic(password: str) -> dict[str, str]:
    token = base64.b64encode(f"sendgrid:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}", "Content-Type": "application/json"}


def test_sendgrid_batches_need_the_shared_secret(
    client: TestClient, engine: Engine, message_id: int
) -> None:
    batch = json.dumps(
        [
            {
                "event": "delivered",
                "sg_event_id": "sg1",
                "message_id": str(message_id),
                "timestamp": int(NOW.timestamp()),
            },
            {"event": "open", "sg_event_id": "sg2", "message_id": str(message_id)},
            {"event": "processed", "sg_event_id": "sg3"},
        ]
    ).encode()
    assert (
        client.post("/webhooks/sendgrid", content=batch, headers=_basic("wrong")).status_code == 401
    )
    assert client.post("/webhooks/sendgrid", content=batch).status_code == 401
    response = client.post("/webhooks/sendgrid", content=batch, headers=_basic(SENDGRID_SECRET))
    assert response.status_code == 200 and response.json()["stored"] == 2
    assert engagement_of(engine, message_id) == "opened"
    from tests.responses_helpers import signed

    raw, headers = signed(batch, "batch-1", secret=SECRET)
    again = client.post("/webhooks/bulkmail", content=raw, headers=headers)
    assert again.status_code == 200 and again.json()["duplicates"] == 2


# -- unsubscribe links ---------------------------------------------------------------


def _link(config: Config, engine: Engine, user: str, channel: str = "email") -> str:
    secrets = [s.get_secret_value() for s in config.server.link_secrets]
    with engine.begin() as connection:
        key = unsubscribe_key(connection, secrets)
    return "/unsubscribe?" + unsubscribe_query(key, user, channel)


def test_opening_the_link_only_shows_a_localised_confirmation(
    client: TestClient, config: Config, engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    with session_factory() as session:
        user = make_user(session, locale="zh-CN")
        session.commit()
        uid, external = user.id, user.external_id
    page = client.get(_link(config, engine, external))
    assert page.status_code == 200
    assert "确认退订" in page.text and 'method="post"' in page.text
    assert suppressions(engine) == []
    with engine.connect() as connection:
        assert not is_suppressed(connection, uid, "email")
    english = client.get(_link(config, engine, external), headers={"Accept-Language": "en"})
    assert "确认退订" in english.text  # the user's own locale beats the browser's


def test_posting_the_form_unsubscribes(
    client: TestClient, config: Config, engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    with session_factory() as session:
        user = make_user(session, locale="en")
        message = make_sent_message(session, user)
        session.commit()
        uid, external, mid = user.id, user.external_id, message.id
    response = client.post(_link(config, engine, external), data={"confirm": "1"})
    assert response.status_code == 200 and "You are unsubscribed" in response.text
    with engine.connect() as connection:
        assert is_suppressed(connection, uid, "email")
    assert engagement_of(engine, mid) == "unsubscribed"


def test_rfc8058_one_click_posts_unsubscribe(
    client: TestClient, config: Config, engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    with session_factory() as session:
        user = make_user(session)
        session.commit()
        uid, external = user.id, user.external_id
    response = client.post(
        _link(config, engine, external, "sms"),
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200
    with engine.connect() as connection:
        assert is_suppressed(connection, uid, "sms")
        assert not is_suppressed(connection, uid, "email")


def test_a_forged_link_neither_shows_a_form_nor_unsubscribes(
    client: TestClient, config: Config, engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    with session_factory() as session:
        user = make_user(session)
        session.commit()
        external = user.external_id
    forged = _link(config, engine, external).replace("&t=", "&t=A")
    page = client.get(forged)
    assert page.status_code == 400 and "<form" not in page.text
    assert client.post(forged, content=b"List-Unsubscribe=One-Click").status_code == 400
    assert suppressions(engine) == []
