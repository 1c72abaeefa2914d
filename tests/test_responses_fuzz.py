"""Signed but hostile input never crashes the webhook server: a 400 with a reason, never
a 500 (a provider retries a 500 forever). Extreme cases first, then generated JSON and
forms to every endpoint, on both dialects."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine
from starlette.testclient import TestClient

from campaign.responses.app import create_app
from campaign.responses.providers import twilio
from tests.responses_helpers import (
    NOW,
    SENDGRID_SECRET,
    TWILIO_TOKEN,
    count_responses,
    make_config,
    signed,
)


@pytest.fixture
def client(engine: Engine) -> Iterator[TestClient]:
    app = create_app(make_config(max_body_bytes=200_000), engine, clock=lambda: NOW)
    # Server exceptions propagate: a crash fails the test with its traceback.
    with TestClient(app, base_url="https://shop.example") as test_client:
        yield test_client


_ids = iter(range(10**9))


def post_event(client: TestClient, body: bytes) -> Any:
    raw, headers = signed(body, f"fuzz-{next(_ids)}")
    return client.post("/webhooks/events", content=raw, headers=headers)


def post_sendgrid(client: TestClient, body: bytes) -> Any:
    token = base64.b64encode(f"sendgrid:{SENDGRID_SECRET}".encode()).decode()
    headers = {"Authorization": f"Basic {token}", "Content-Type": "application/json"}
    return client.post("/webhooks/sendgrid", content=body, headers=headers)


def post_twilio(client: TestClient, pairs: list[tuple[str, str]]) -> Any:
    url = "https://shop.example/webhooks/twilio"
    headers = {
        "X-Twilio-Signature": twilio.signature(TWILIO_TOKEN, url, pairs),
        "Content-Type": "application/x-www-form-urlencoded",
    }
    return client.post("/webhooks/twilio", content=urlencode(pairs).encode(), headers=headers)


def _nested(depth: int) -> bytes:
    return ("[" * depth + "]" * depth).encode()


EXTREME_TIMES = [
    "9999-12-31T23:59:59-05:00",
    "0001-01-01T00:00:00+05:00",
    "9999-12-31T23:59:59.999999-00:01",
    "0001-01-01T00:00:00+23:59",
]


@pytest.mark.parametrize("when", EXTREME_TIMES)
def test_timestamps_past_the_calendar_after_their_offset_get_400(
    client: TestClient, engine: Engine, when: str
) -> None:
    for response in (
        post_event(client, json.dumps({"type": "opened", "timestamp": when}).encode()),
        post_sendgrid(
            client, json.dumps([{"event": "open", "sg_event_id": "t1", "timestamp": when}]).encode()
        ),
    ):
        assert response.status_code == 400, response.text
        assert "timestamp" in response.json()["error"] and "range" in response.json()["error"]
    assert count_responses(engine) == 0


@pytest.mark.parametrize("depth", [100, 5_000])
def test_deeply_nested_json_gets_400(client: TestClient, engine: Engine, depth: int) -> None:
    data = b'{"type": "opened", "data": {"x": ' + _nested(depth) + b"}}"
    response = post_event(client, data)
    assert response.status_code == 400 and "nested" in response.json()["error"]
    batch = b'[{"event": "open", "sg_event_id": "n", "x": ' + _nested(depth) + b"}]"
    response = post_sendgrid(client, batch)
    assert response.status_code == 400 and "nested" in response.json()["error"]
    assert count_responses(engine) == 0


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_non_finite_numbers_in_event_data_get_400(
    client: TestClient, engine: Engine, literal: str
) -> None:
    body = f'{{"type": "opened", "data": {{"score": {literal}}}}}'.encode()
    response = post_event(client, body)
    assert response.status_code == 400 and "finite" in response.json()["error"]
    batch = f'[{{"event": "open", "sg_event_id": "f", "status": {literal}}}]'.encode()
    response = post_sendgrid(client, batch)
    assert response.status_code == 400 and "finite" in response.json()["error"]
    assert count_responses(engine) == 0


@pytest.mark.parametrize("text", ["a\u0000b", "\ud800", "x\udfff"])
def test_text_postgresql_cannot_store_gets_400(
    client: TestClient, engine: Engine, text: str
) -> None:
    body = json.dumps({"type": "opened", "data": {"note": text}}).encode()
    response = post_event(client, body)
    assert response.status_code == 400 and "character" in response.json()["error"]
    batch = json.dumps([{"event": "open", "sg_event_id": text, "reason": text}]).encode()
    response = post_sendgrid(client, batch)
    assert response.status_code == 400 and "character" in response.json()["error"]
    if "\x00" in text:  # a form is UTF-8 bytes: it can carry NUL, never a lone surrogate
        response = post_twilio(client, [("MessageSid", "SM1"), ("Body", text), ("From", "+1")])
        assert response.status_code == 400 and "character" in response.json()["error"]
    assert count_responses(engine) == 0


# -- generated input ---------------------------------------------------------------

# Every code point, surrogates and NUL included, and the values known to hurt.
any_text = st.text(alphabet=st.characters(blacklist_categories=()), max_size=20) | st.sampled_from(
    ["", " ", "a\x00b", "\ud800", "x" * 300]
)
times = st.sampled_from(EXTREME_TIMES + ["2026-11-02T09:00:00Z", "1793610000", "-1", "1e20"])
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | any_text
    | times
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(any_text, children, max_size=4),
    max_leaves=12,
)
objects = st.dictionaries(any_text, json_values, max_size=4)
tracked = st.sampled_from(
    ["opened", "delivered", "clicked", "bounced", "unsubscribed", "spamreport", "open", "x"]
)
sendgrid_events = st.sampled_from(
    ["open", "delivered", "click", "bounce", "deferred", "unsubscribe", "processed"]
)
ids = st.integers(min_value=-1, max_value=2**64) | any_text | st.none()
generic_events = st.fixed_dictionaries(
    {"type": tracked},
    optional={
        "timestamp": times | json_values,
        "data": objects,
        "message_id": ids,
        "idempotency_key": any_text | json_values,
        "provider_message_id": any_text | json_values,
        "bounce": st.sampled_from(["hard", "soft"]) | json_values,
        "address": any_text | json_values,
        "medium": st.sampled_from(["email", "sms"]) | json_values,
    },
)
sendgrid_batch = st.lists(
    st.fixed_dictionaries(
        {"event": sendgrid_events, "sg_event_id": any_text},
        optional={
            "timestamp": times | json_values,
            "message_id": ids,
            "sg_message_id": any_text | json_values,
            "email": any_text | json_values,
            "type": st.sampled_from(["bounce", "blocked"]) | json_values,
            "reason": json_values,
            "status": json_values,
            "url": json_values,
            "category": json_values,
            "idempotency_key": any_text | json_values,
        },
    ),
    max_size=4,
)


def _body(value: Any) -> bytes:
    # Lone surrogates travel as \\ud800 escapes (ASCII JSON), as a provider could send.
    return json.dumps(value, allow_nan=True).encode()


FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@FUZZ
@given(value=generic_events | json_values)
def test_generated_events_never_get_a_500(client: TestClient, value: Any) -> None:
    assert post_event(client, _body(value)).status_code < 500


@FUZZ
@given(value=sendgrid_batch | json_values)
def test_generated_sendgrid_batches_never_get_a_500(client: TestClient, value: Any) -> None:
    assert post_sendgrid(client, _body(value)).status_code < 500


form_text = st.text(max_size=30) | st.sampled_from(
    ["SM1", "delivered", "failed", "STOP", "received", "a\x00b", "30005"]
)


@FUZZ
@given(
    pairs=st.lists(
        st.tuples(
            st.sampled_from(
                ["MessageSid", "SmsSid", "MessageStatus", "SmsStatus", "Body", "From", "To",
                 "ErrorCode", "Other"]
            ),
            form_text,
        ),
        max_size=8,
    )
)
def test_generated_twilio_forms_never_get_a_500(
    client: TestClient, pairs: list[tuple[str, str]]
) -> None:
    assert post_twilio(client, pairs).status_code < 500


@FUZZ
@given(body=st.binary(max_size=300), params=st.dictionaries(st.sampled_from("uct"), form_text))
def test_generated_unsubscribe_posts_never_get_a_500(
    client: TestClient, body: bytes, params: dict[str, str]
) -> None:
    response = client.post(f"/unsubscribe?{urlencode(params)}", content=body)
    assert response.status_code < 500
