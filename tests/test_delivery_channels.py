"""Each channel adapter against a real local server: headers, payloads, error mapping."""

from __future__ import annotations

import asyncio
import base64
import json
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from email import message_from_bytes
from email.utils import format_datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import pytest

from campaign.common import signing
from campaign.common.errors import PermanentDeliveryError, TransientDeliveryError
from campaign.delivery.channels.base import (
    HttpLanes,
    OutgoingMessage,
    SendResult,
    check_response,
)
from campaign.delivery.channels.file import FileChannel
from campaign.delivery.channels.sendgrid import SendGridChannel, parse_payload
from campaign.delivery.channels.smtp import SmtpChannel
from campaign.delivery.channels.twilio import TwilioChannel
from campaign.delivery.channels.webhook import WebhookChannel
from tests.http_sink import HttpSink

NOW = datetime(2026, 6, 1, 4, 0, tzinfo=UTC)


def clock() -> datetime:
    return NOW


def outgoing(n: int = 1, **overrides: Any) -> OutgoingMessage:
    values: dict[str, Any] = {
        "message_id": n,
        "idempotency_key": f"winback:2026-06-01:{n}:email",
        "channel": "email",
        "medium": "email",
        "to": f"u{n}@example.com",
        "campaign": "winback",
        "subject": f"Subject {n}",
        "html": f"<p>Hello {n}</p>",
        "text": f"Hello {n}",
        "unsubscribe_url": f"https://shop.test/unsubscribe?u=u{n}",
        "unsubscribe_mailto": "mailto:unsubscribe@shop.test",
    }
    values.update(overrides)
    return OutgoingMessage(**values)


@pytest.fixture
def sink() -> Iterator[HttpSink]:
    with HttpSink(hang_seconds=1.0) as server:
        yield server


def run(coro: Any) -> Any:
    async def main() -> Any:
        lanes = HttpLanes(clients=1, connections_per_client=2, timeout_seconds=0.4)
        try:
            return await coro(lanes)
        finally:
            await lanes.aclose()

    return asyncio.run(main())


def test_webhook_requests_are_signed_per_standard_webhooks(sink: HttpSink) -> None:
    secret = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()

    async def send(lanes: HttpLanes) -> list[Any]:
        channel = WebhookChannel(
            "hook", medium="email", url=sink.url, secret=secret, lanes=lanes, clock=clock
        )
        return await channel.send([outgoing(1)])

    [result] = run(send)
    assert isinstance(result, SendResult) and result.provider_message_id == "xmsg-1"
    request = sink.requests[0]
    assert request.key == "winback:2026-06-01:1:email"
    assert request.headers["webhook-id"] == request.key
    assert request.headers["webhook-timestamp"] == str(int(NOW.timestamp()))
    assert signing.verify([secret], request.headers, request.body, now=int(NOW.timestamp())) == (
        request.key
    )
    body = request.json()
    assert body["headers"]["List-Unsubscribe"] == (
        "<https://shop.test/unsubscribe?u=u1>, <mailto:unsubscribe@shop.test>"
    )
    assert body["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


@pytest.mark.parametrize(
    ("action", "error", "retry_after"),
    [
        ("500", TransientDeliveryError, None),
        ("503", TransientDeliveryError, None),
        ("429:120", TransientDeliveryError, 120.0),
        ("400", PermanentDeliveryError, None),
        ("404", PermanentDeliveryError, None),
        ("hang", TransientDeliveryError, None),
        ("drop", TransientDeliveryError, None),
    ],
)
def test_provider_failures_map_to_transient_or_permanent(
    sink: HttpSink, action: str, error: type, retry_after: float | None
) -> None:
    sink.script(action)

    async def send(lanes: HttpLanes) -> list[Any]:
        channel = WebhookChannel(
            "hook", medium="email", url=sink.url, secret=None, lanes=lanes, clock=clock
        )
        return await channel.send([outgoing(1)])

    [result] = run(send)
    assert type(result) is error
    assert result.message_id == 1
    if retry_after is not None:
        assert result.retry_after == retry_after


def test_retry_after_as_an_http_date_is_honoured() -> None:
    request = httpx.Request("POST", "http://x")
    later = format_datetime(datetime(2026, 6, 1, 4, 5, tzinfo=UTC), usegmt=True)
    response = httpx.Response(429, headers={"Retry-After": later}, request=request)
    with pytest.raises(TransientDeliveryError) as caught:
        check_response(response, "hook", 1, NOW)
    assert caught.value.retry_after == 300
    assert caught.value.status == 429


def test_twilio_sms_is_a_form_post_with_basic_auth_and_status_callback(sink: HttpSink) -> None:
    async def send(lanes: HttpLanes) -> list[Any]:
        channel = TwilioChannel(
            "sms",
            url=sink.url + "/2010-04-01/Accounts/AC1/Messages.json",
            from_number="+15550001111",
            username="AC1",
            password="token",
            status_callback_url="https://shop.test/webhooks/sms",
            lanes=lanes,
            clock=clock,
        )
        return await channel.send([outgoing(3, medium="sms", to="+15550003333", html=None)])

    [result] = run(send)
    assert isinstance(result, SendResult) and result.provider_message_id == "SM1"
    request = sink.requests[0]
    assert request.path == "/2010-04-01/Accounts/AC1/Messages.json"
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    assert request.headers["authorization"] == "Basic " + base64.b64encode(b"AC1:token").decode()
    assert request.key == "winback:2026-06-01:3:email"
    form = {k: v[0] for k, v in parse_qs(request.body.decode()).items()}
    assert form == {
        "To": "+15550003333",
        "Body": "Hello 3",
        "From": "+15550001111",
        "StatusCallback": "https://shop.test/webhooks/sms",
    }


def test_sendgrid_batches_recipients_as_personalizations(sink: HttpSink) -> None:
    messages = [outgoing(n) for n in range(1, 6)]
    large = outgoing(9, html="<p>" + "x" * 12_000 + "</p>")

    async def send(lanes: HttpLanes) -> list[Any]:
        channel = SendGridChannel(
            "sg",
            url=sink.url + "/v3/mail/send",
            api_key="SG.key",
            from_address="shop@shop.test",
            batch_size=1000,
            lanes=lanes,
            clock=clock,
        )
        return await channel.send([*messages, large])

    results = run(send)
    assert all(isinstance(r, SendResult) for r in results)
    assert [r.message_id for r in results] == [1, 2, 3, 4, 5, 9]
    assert len(sink.requests) == 2  # five small ones together, the large one alone
    batch = sink.requests[0]
    assert batch.headers["authorization"] == "Bearer SG.key"
    assert batch.key and batch.key.startswith("batch-")
    payload = batch.json()
    assert payload["from"] == {"email": "shop@shop.test"}
    expanded = parse_payload(payload)
    assert [e["to"] for e in expanded] == [f"u{n}@example.com" for n in range(1, 6)]
    assert expanded[1]["text"] == "Hello 2" and expanded[1]["html"] == "<p>Hello 2</p>"
    assert expanded[1]["subject"] == "Subject 2"
    assert expanded[1]["custom_args"]["idempotency_key"] == "winback:2026-06-01:2:email"
    headers = expanded[1]["headers"]
    assert headers["Idempotency-Key"] == "winback:2026-06-01:2:email"
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    alone = sink.requests[1]
    assert alone.key == large.idempotency_key
    assert parse_payload(alone.json())[0]["html"] == large.html


def test_sendgrid_isolates_a_rejected_recipient_by_splitting_the_batch(sink: HttpSink) -> None:
    sink.script("400", "ok", "400", "ok", "400")  # 4 -> [2 ok] [2 -> 1 ok, 1 bad]

    async def send(lanes: HttpLanes) -> list[Any]:
        channel = SendGridChannel(
            "sg", url=sink.url, api_key=None, from_address=None, batch_size=1000,
            lanes=lanes, clock=clock,
        )
        return await channel.send([outgoing(n) for n in range(1, 5)])

    results = run(send)
    kinds = [type(r).__name__ for r in results]
    assert kinds == ["SendResult", "SendResult", "SendResult", "PermanentDeliveryError"]


def test_sendgrid_transient_failure_fails_the_whole_batch_for_retry(sink: HttpSink) -> None:
    sink.script("503")

    async def send(lanes: HttpLanes) -> list[Any]:
        channel = SendGridChannel(
            "sg", url=sink.url, api_key=None, from_address=None, batch_size=1000,
            lanes=lanes, clock=clock,
        )
        return await channel.send([outgoing(n) for n in range(1, 4)])

    assert all(isinstance(r, TransientDeliveryError) for r in run(send))
    assert len(sink.requests) == 1


def test_file_sink_appends_one_json_line_per_message(tmp_path: Path) -> None:
    channel = FileChannel("email", medium="email", path=tmp_path / "out")

    async def send() -> list[Any]:
        first = await channel.send([outgoing(1), outgoing(2)])
        second = await channel.send([outgoing(3)])
        return first + second

    results = asyncio.run(send())
    assert [r.provider_message_id for r in results] == ["file:1", "file:2", "file:3"]
    lines = (tmp_path / "out" / "email.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    assert [r["to"] for r in records] == ["u1@example.com", "u2@example.com", "u3@example.com"]
    assert records[0]["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


class _Collect:
    def __init__(self) -> None:
        self.envelopes: list[Any] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if "reject" in envelope.rcpt_tos[0]:
            return "550 mailbox unavailable"
        if "later" in envelope.rcpt_tos[0]:
            return "451 try again later"
        self.envelopes.append(envelope)
        return "250 OK"


def test_smtp_delivers_to_a_real_server_with_unsubscribe_headers() -> None:
    from aiosmtpd.controller import Controller

    handler = _Collect()
    with socket.socket() as probe:  # aiosmtpd's start-up self-check cannot use port 0
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        channel = SmtpChannel(
            "smtp",
            url=f"smtp://127.0.0.1:{port}",
            from_address="shop@shop.test",
            username=None,
            password=None,
            starttls=False,
            timeout_seconds=5,
            clock=clock,
        )

        async def send() -> list[Any]:
            try:
                return await channel.send(
                    [
                        outgoing(1),
                        outgoing(2, to="reject@example.com"),
                        outgoing(3, to="later@example.com"),
                        outgoing(4),
                    ]
                )
            finally:
                await channel.aclose()

        results = asyncio.run(send())
    finally:
        controller.stop()
    assert isinstance(results[0], SendResult) and isinstance(results[3], SendResult)
    assert isinstance(results[1], PermanentDeliveryError)
    assert isinstance(results[2], TransientDeliveryError)
    assert [e.rcpt_tos for e in handler.envelopes] == [["u1@example.com"], ["u4@example.com"]]
    mail = message_from_bytes(handler.envelopes[0].content)
    assert mail["Subject"] == "Subject 1"
    assert mail["Idempotency-Key"] == "winback:2026-06-01:1:email"
    assert mail["List-Unsubscribe"] == (
        "<https://shop.test/unsubscribe?u=u1>, <mailto:unsubscribe@shop.test>"
    )
    assert mail["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert mail.is_multipart()
    assert results[0].provider_message_id == mail["Message-ID"]
