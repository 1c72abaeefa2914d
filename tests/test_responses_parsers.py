"""Pure parts of response intake: types, engagement rules, provider parsers, tokens."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from campaign.common.errors import InputError, SignatureError
from campaign.common.links import (
    unsubscribe_query,
    unsubscribe_token,
    verify_unsubscribe_token,
)
from campaign.db.models import Engagement
from campaign.responses.events import (
    FORWARD_ORDER,
    TERMINAL,
    ResponseType,
    canonical_type,
    is_stop_word,
    message_number,
    next_engagement,
    reachable_from,
)
from campaign.responses.pages import page_language, render_page
from campaign.responses.providers import generic, sendgrid, twilio

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
ENGAGEMENTS = list(Engagement)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("opened", ResponseType.OPENED),
        ("message.opened", ResponseType.OPENED),
        ("Open", ResponseType.OPENED),
        ("spamreport", ResponseType.COMPLAINED),
        ("hard-bounce", ResponseType.BOUNCED),
        ("soft_bounce", ResponseType.SOFT_BOUNCED),
        ("redeemed", ResponseType.REDEEMED),
        ("purchased", ResponseType.PURCHASED),
        ("processed", None),
    ],
)
def test_provider_spellings_map_to_one_response_type(
    text: str, expected: ResponseType | None
) -> None:
    assert canonical_type(text) == expected


@pytest.mark.parametrize(
    "body",
    [
        "STOP",
        " stop ",
        "Quit",
        "END",
        "revoke",
        "opt out",
        "OPT  OUT",
        "Cancel",
        "UNSUBSCRIBE",
        "END NOW",
        "stop sending",
    ],
)
def test_sms_stop_words_are_recognised_trimmed_and_in_any_case(body: str) -> None:
    assert is_stop_word(body)


@pytest.mark.parametrize("body", ["please stop sending", "stopp", "hello", ""])
def test_other_sms_texts_are_not_stop_words(body: str) -> None:
    assert not is_stop_word(body)


def test_a_late_delivered_never_overwrites_clicked() -> None:
    assert next_engagement("clicked", Engagement.DELIVERED) is None
    assert next_engagement("delivered", Engagement.CLICKED) == Engagement.CLICKED


def test_terminal_states_are_never_left() -> None:
    for terminal in TERMINAL:
        for incoming in ENGAGEMENTS:
            assert next_engagement(terminal.value, incoming) is None


def _rank(state: str | None) -> int:
    if state is None:
        return -1
    if Engagement(state) in TERMINAL:
        return 100
    return FORWARD_ORDER.index(Engagement(state))


@given(st.lists(st.sampled_from(ENGAGEMENTS), max_size=12))
def test_engagement_only_moves_forward_whatever_the_order(stream: list[Engagement]) -> None:
    state: str | None = None
    for incoming in stream:
        new = next_engagement(state, incoming)
        if new is not None:
            assert _rank(new.value) > _rank(state) or Engagement(new) in TERMINAL
            assert state is None or Engagement(state) not in TERMINAL
            state = new.value
    # Applying a stream twice (replays) ends where applying it once did.
    replayed = state
    for incoming in stream:
        new = next_engagement(replayed, incoming)
        if new is not None:
            replayed = new.value
    assert replayed == state


@given(st.sampled_from([None, *[e.value for e in ENGAGEMENTS]]), st.sampled_from(ENGAGEMENTS))
def test_the_sql_guard_agrees_with_the_rule(current: str | None, incoming: Engagement) -> None:
    allowed = current is None or current in reachable_from(incoming)
    assert allowed == (next_engagement(current, incoming) is not None)


@given(st.one_of(st.integers(), st.text(max_size=25), st.booleans(), st.none()))
def test_message_numbers_are_positive_bigints_or_none(value: object) -> None:
    number = message_number(value)
    assert number is None or 0 < number < 2**63


# -- generic -------------------------------------------------------------------------


def test_generic_events_verify_with_any_rotated_secret_and_refuse_stale_ones() -> None:
    from campaign.common import signing

    body = b'{"type":"opened","message_id":5}'
    headers = signing.sign_headers("old", "evt-1", int(NOW.timestamp()), body)
    assert generic.verify(["new", "old"], headers, body, now=NOW) == "evt-1"
    with pytest.raises(SignatureError):
        generic.verify(["new"], headers, body, now=NOW)
    with pytest.raises(SignatureError, match="from now"):
        generic.verify(["old"], headers, body, now=NOW.replace(minute=6))
    with pytest.raises(SignatureError):
        generic.verify(["old"], headers, body + b" ", now=NOW)


def test_generic_event_fields_are_normalised() -> None:
    body = json.dumps(
        {
            "type": "email.bounced",
            "bounce": "soft",
            "message_id": "42",
            "timestamp": 1793000000,
            "address": "A@Example.com",
            "data": {"reason": "mailbox full", "email": "a@example.com"},
        }
    ).encode()
    (event,) = generic.parse(body, "evt-9", received=NOW)
    assert event.type is ResponseType.SOFT_BOUNCED
    assert event.message_id == 42
    assert event.ts == datetime.fromtimestamp(1793000000, UTC)
    assert event.address == "A@Example.com"
    # No raw address is ever stored in the payload.
    assert "a@example.com" not in json.dumps(event.payload).lower()
    assert "address_hash" in event.payload


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "not JSON"),
        (b"[1,2]", "JSON object"),
        (b"{}", "type is required"),
        (b'{"type":"opened","timestamp":"yesterday"}', "timestamp"),
        (b'{"type":"opened","data":[1]}', "data must be"),
    ],
)
def test_malformed_generic_bodies_are_refused_with_a_reason(body: bytes, reason: str) -> None:
    with pytest.raises(InputError, match=reason):
        generic.parse(body, "evt", received=NOW)


def test_untracked_generic_types_are_acknowledged_without_events() -> None:
    assert generic.parse(b'{"type":"message.processed"}', "evt", received=NOW) == []


# -- twilio --------------------------------------------------------------------------


def test_twilio_signature_matches_the_providers_published_example() -> None:
    params = [
        ("Digits", "1234"),
        ("CallSid", "CA1234567890ABCDE"),
        ("To", "+18005551212"),
        ("Caller", "+14158675309"),
        ("From", "+14158675309"),
    ]
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    assert twilio.signature("12345", url, params) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    twilio.verify("12345", ["https://other/", url], params, "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
    with pytest.raises(SignatureError):
        twilio.verify("12345", [url], params[:-1], "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
    with pytest.raises(SignatureError, match="no Twilio auth token"):
        twilio.verify(None, [url], params, "x")


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        ("delivered", "", ResponseType.DELIVERED),
        ("undelivered", "30006", ResponseType.BOUNCED),
        ("failed", "30003", ResponseType.SOFT_BOUNCED),
    ],
)
def test_twilio_status_callbacks_map_to_types(
    status: str, code: str, expected: ResponseType
) -> None:
    params = [
        ("MessageSid", "SM1"),
        ("MessageStatus", status),
        ("ErrorCode", code),
        ("To", "+1555"),
    ]
    (event,) = twilio.parse(params, received=NOW)
    assert event.type is expected
    assert event.event_id == f"SM1:{status}"
    assert event.provider_message_id == "SM1"


def test_twilio_interim_statuses_store_nothing() -> None:
    assert twilio.parse([("MessageSid", "SM1"), ("MessageStatus", "sent")], received=NOW) == []


def test_an_inbound_stop_is_an_unsubscribe_of_the_sender() -> None:
    params = [
        ("MessageSid", "SM9"),
        ("From", "+15550001"),
        ("Body", " Stop "),
        ("SmsStatus", "received"),
    ]
    (event,) = twilio.parse(params, received=NOW)
    assert event.type is ResponseType.UNSUBSCRIBED
    assert event.address == "+15550001"
    assert event.medium == "sms"


def test_twilio_bodies_without_a_sid_are_malformed() -> None:
    with pytest.raises(InputError, match="MessageSid"):
        twilio.parse([("MessageStatus", "delivered")], received=NOW)


# -- sendgrid ------------------------------------------------------------------------


def test_sendgrid_batches_map_each_event() -> None:
    body = json.dumps(
        [
            {
                "event": "delivered",
                "sg_event_id": "e1",
                "message_id": "7",
                "timestamp": 1793000000,
                "email": "a@x.io",
            },
            {
                "event": "bounce",
                "type": "blocked",
                "sg_event_id": "e2",
                "sg_message_id": "abc.filter1",
            },
            {"event": "bounce", "sg_event_id": "e3"},
            {"event": "processed", "sg_event_id": "e4"},
            {"event": "spamreport", "sg_event_id": "e5"},
            {"event": "group_unsubscribe", "sg_event_id": "e6"},
        ]
    ).encode()
    events = sendgrid.parse(body, received=NOW)
    assert [(e.event_id, e.type) for e in events] == [
        ("e1", ResponseType.DELIVERED),
        ("e2", ResponseType.SOFT_BOUNCED),
        ("e3", ResponseType.BOUNCED),
        ("e5", ResponseType.COMPLAINED),
        ("e6", ResponseType.UNSUBSCRIBED),
    ]
    assert events[0].message_id == 7
    assert events[1].provider_message_id == "abc"


@pytest.mark.parametrize(
    ("body", "reason"),
    [(b"{}", "JSON array"), (b"[1]", "JSON object"), (b'[{"event":"open"}]', "sg_event_id")],
)
def test_malformed_sendgrid_batches_are_refused(body: bytes, reason: str) -> None:
    with pytest.raises(InputError, match=reason):
        sendgrid.parse(body, received=NOW)


def test_sendgrid_basic_auth_checks_the_password() -> None:
    good = "Basic " + base64.b64encode(b"sendgrid:s3cret").decode()
    bad = "Basic " + base64.b64encode(b"sendgrid:nope").decode()
    assert sendgrid.verify_basic("s3cret", good)
    assert not sendgrid.verify_basic("s3cret", bad)
    assert not sendgrid.verify_basic(None, good)
    assert not sendgrid.verify_basic("s3cret", "Basic !!!")


# -- unsubscribe tokens --------------------------------------------------------------


@given(st.text(min_size=1, max_size=40), st.sampled_from(["email", "sms", "bulk-mail"]))
def test_unsubscribe_tokens_verify_only_for_their_user_and_channel(user: str, channel: str) -> None:
    token = unsubscribe_token(b"key", user, channel)
    assert verify_unsubscribe_token(b"key", user, channel, token)
    assert not verify_unsubscribe_token(b"other", user, channel, token)
    assert not verify_unsubscribe_token(b"key", user + "x", channel, token)
    assert not verify_unsubscribe_token(b"key", user, channel, token[:-1] + "é")


def test_the_planners_links_use_the_same_token() -> None:
    from campaign.common.links import unsubscribe_url

    url = unsubscribe_url("https://shop.example", b"key", "u 1", "email")
    assert url == "https://shop.example/unsubscribe?" + unsubscribe_query(b"key", "u 1", "email")


def test_unsubscribe_pages_are_localised_and_escaped() -> None:
    assert page_language("zh_CN").lang == "zh-CN"
    assert page_language(None, "zh-Hans;q=0.9, en;q=0.8").lang == "zh-CN"
    assert page_language("fr", None).lang == "en"
    page = render_page(page_language("en"), "<script>", form_action="/u?a=1&b=2", button="Go")
    assert "<script>" not in page
    assert 'action="/u?a=1&amp;b=2"' in page


@given(
    st.sampled_from([None, *[e.value for e in ENGAGEMENTS]]),
    st.lists(st.tuples(st.sampled_from(list(ResponseType)), st.integers(0, 5)), max_size=8),
)
def test_a_batch_reduced_to_one_target_per_message_ends_where_the_events_one_by_one_would(
    current: str | None, stream: list[tuple[ResponseType, int]]
) -> None:
    from campaign.responses.events import ENGAGEMENT_OF
    from campaign.responses.recording import _Effect, _reduce

    effects = [
        _Effect(kind, NOW.replace(minute=minute), 1, 1, "email", "email", None, f"s{i}")
        for i, (kind, minute) in enumerate(stream)
    ]
    state = current
    for effect in sorted(effects, key=lambda e: e.ts):
        target = ENGAGEMENT_OF.get(effect.type)
        if target is not None and (new := next_engagement(state, target)) is not None:
            state = new.value
    reduced = _reduce(effects).get(1)
    batch = current
    if reduced is not None and next_engagement(current, reduced[0]) is not None:
        batch = reduced[0].value
    assert batch == state
