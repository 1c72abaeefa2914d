"""Provider signatures: SendGrid's signed event webhook (ECDSA P-256) and Twilio's
URL and repeated-parameter rules, through the real app on both dialects."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Iterator
from urllib.parse import urlencode

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker
from starlette.testclient import TestClient

from campaign.common.errors import ConfigError
from campaign.config import Config
from campaign.responses.app import create_app
from tests.factories import make_user
from tests.responses_helpers import (
    NOW,
    SENDGRID_SECRET,
    TWILIO_TOKEN,
    count_responses,
    engagement_of,
    make_config,
    make_sent_message,
)

PRIVATE = ec.generate_private_key(ec.SECP256R1())
PUBLIC_DER = PRIVATE.public_key().public_bytes(
    serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
)
VERIFICATION_KEY = base64.b64encode(PUBLIC_DER).decode()  # as SendGrid shows it


def _client(config: Config, engine: Engine) -> Iterator[TestClient]:
    app = create_app(config, engine, clock=lambda: NOW)
    with TestClient(app, base_url="https://shop.example") as client:
        yield client


@pytest.fixture
def client(engine: Engine) -> Iterator[TestClient]:
    yield from _client(make_config(sendgrid_verification_key=VERIFICATION_KEY), engine)


@pytest.fixture
def message_id(session_factory: sessionmaker[Session]) -> int:
    with session_factory() as session:
        message = make_sent_message(session, make_user(session))
        session.commit()
        return message.id


def _batch(message_id: int) -> bytes:
    return json.dumps(
        [
            {"event": "delivered", "sg_event_id": "ec1", "message_id": str(message_id)},
            {"event": "open", "sg_event_id": "ec2", "message_id": str(message_id)},
        ]
    ).encode()


def _sendgrid_headers(
    body: bytes, key: ec.EllipticCurvePrivateKey = PRIVATE, timestamp: str = "1793610000"
) -> dict[str, str]:
    der = key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {
        "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(der).decode(),
        "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
        "Content-Type": "application/json",
    }


def test_a_batch_signed_by_sendgrid_is_stored(
    client: TestClient, engine: Engine, message_id: int
) -> None:
    body = _batch(message_id)
    response = client.post("/webhooks/sendgrid", content=body, headers=_sendgrid_headers(body))
    assert response.status_code == 200 and response.json()["stored"] == 2
    assert engagement_of(engine, message_id) == "opened"
    # The channel's own endpoint takes the same signature.
    again = client.post("/webhooks/bulkmail", content=body, headers=_sendgrid_headers(body))
    assert again.status_code == 200 and again.json()["duplicates"] == 2


@pytest.mark.parametrize("forgery", ["body", "timestamp", "key", "garbage", "no-timestamp"])
def test_a_forged_sendgrid_signature_gets_401_and_stores_nothing(
    client: TestClient, engine: Engine, message_id: int, forgery: str
) -> None:
    body = _batch(message_id)
    headers = _sendgrid_headers(body)
    if forgery == "body":
        body = body.replace(b"open", b"click")
    elif forgery == "timestamp":
        headers["X-Twilio-Email-Event-Webhook-Timestamp"] = "1793610001"
    elif forgery == "key":
        headers = _sendgrid_headers(body, key=ec.generate_private_key(ec.SECP256R1()))
    elif forgery == "garbage":
        headers["X-Twilio-Email-Event-Webhook-Signature"] = "not base64!"
    else:
        del headers["X-Twilio-Email-Event-Webhook-Timestamp"]
    response = client.post("/webhooks/sendgrid", content=body, headers=headers)
    assert response.status_code == 401, response.text
    assert "X-Twilio-Email-Event-Webhook" in response.json()["error"]
    assert count_responses(engine) == 0


def test_basic_auth_still_works_beside_the_signature(client: TestClient, message_id: int) -> None:
    token = base64.b64encode(f"sendgrid:{SENDGRID_SECRET}".encode()).decode()
    response = client.post(
        "/webhooks/sendgrid",
        content=_batch(message_id),
        headers={"Authorization": f"Basic {token}", "Content-Type": "application/json"},
    )
    assert response.status_code == 200 and response.json()["stored"] == 2


def test_a_signed_batch_without_a_configured_key_is_refused(
    engine: Engine, message_id: int
) -> None:
    for client in _client(make_config(), engine):
        body = _batch(message_id)
        response = client.post("/webhooks/sendgrid", content=body, headers=_sendgrid_headers(body))
        assert response.status_code == 401
        assert "sendgrid_verification_key" in response.json()["error"]


def test_the_key_may_be_pem_and_a_bad_key_is_a_config_error(
    engine: Engine, message_id: int
) -> None:
    pem = PRIVATE.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    for client in _client(make_config(sendgrid_verification_key=pem), engine):
        body = _batch(message_id)
        response = client.post("/webhooks/sendgrid", content=body, headers=_sendgrid_headers(body))
        assert response.status_code == 200
    other_curve = ec.generate_private_key(ec.SECP384R1()).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    for bad in ("bm90IGEga2V5", base64.b64encode(other_curve).decode()):
        with pytest.raises(ConfigError, match="server.sendgrid_verification_key"):
            create_app(make_config(sendgrid_verification_key=bad), engine, clock=lambda: NOW)


# -- twilio --------------------------------------------------------------------------


def twilio_reference_signature(token: str, url: str, params: dict[str, list[str]]) -> str:
    """Twilio's RequestValidator.compute_signature, for a multi-valued form."""
    data = url
    for name in sorted(set(params)):
        for value in sorted(params[name]):
            data += name + value
    digest = hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def _post_twilio(client: TestClient, signed_url: str, pairs: list[tuple[str, str]]):  # type: ignore[no-untyped-def]
    grouped: dict[str, list[str]] = {}
    for name, value in pairs:
        grouped.setdefault(name, []).append(value)
    headers = {
        "X-Twilio-Signature": twilio_reference_signature(TWILIO_TOKEN, signed_url, grouped),
        "Content-Type": "application/x-www-form-urlencoded",
    }
    return client.post("/webhooks/sms", content=urlencode(pairs).encode(), headers=headers)


@pytest.mark.parametrize(
    "signed_url",
    ["https://shop.example/webhooks/sms", "https://shop.example:443/webhooks/sms"],
    ids=["without-port", "with-default-port"],
)
def test_twilio_signatures_over_the_url_with_or_without_port_verify(
    client: TestClient, session_factory: sessionmaker[Session], engine: Engine, signed_url: str
) -> None:
    with session_factory() as session:
        message = make_sent_message(
            session, make_user(session), channel="sms", provider_message_id="SMport"
        )
        session.commit()
        mid = message.id
    pairs = [("MessageSid", "SMport"), ("MessageStatus", "delivered"), ("To", "+15550001")]
    assert _post_twilio(client, signed_url, pairs).status_code == 200
    assert engagement_of(engine, mid) == "delivered"


def test_repeated_form_keys_are_signed_value_by_value_as_twilio_does(
    client: TestClient, engine: Engine
) -> None:
    pairs = [
        ("MessageSid", "SMmedia"),
        ("From", "+15557654321"),
        ("Body", "hello"),
        ("MediaUrl", "https://media.example/b.jpg"),
        ("MediaUrl", "https://media.example/a.jpg"),
        ("SmsStatus", "received"),
    ]
    assert _post_twilio(client, "https://shop.example/webhooks/sms", pairs).status_code == 200
    assert count_responses(engine) == 1
    # Dropping one of the repeated values breaks the signature.
    grouped = {"MessageSid": ["SMmedia2"], "MediaUrl": ["x", "y"]}
    headers = {
        "X-Twilio-Signature": twilio_reference_signature(
            TWILIO_TOKEN, "https://shop.example/webhooks/sms", grouped
        ),
        "Content-Type": "application/x-www-form-urlencoded",
    }
    forged = client.post(
        "/webhooks/sms",
        content=urlencode([("MessageSid", "SMmedia2"), ("MediaUrl", "x")]).encode(),
        headers=headers,
    )
    assert forged.status_code == 401
