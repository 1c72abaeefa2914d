"""Generic signed webhook: a JSON POST with Standard Webhooks headers.

Headers: ``webhook-id`` (the message's idempotency key, the same on every retry, as the
spec asks), ``webhook-timestamp`` (Unix seconds), ``webhook-signature`` (``v1,<base64
HMAC-SHA256 of "id.timestamp.body">``, see :mod:`campaign.common.signing`) and
``Idempotency-Key``. Without a configured secret the request goes unsigned.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import httpx

from campaign.common import signing
from campaign.delivery.channels.base import (
    IDEMPOTENCY_HEADER,
    HttpLanes,
    OutgoingMessage,
    SendResult,
    SingleChannel,
    check_response,
    map_http_errors,
)


def webhook_payload(message: OutgoingMessage) -> dict[str, Any]:
    """The JSON body of one webhook request (documented in docs/delivery.md)."""
    return {
        "type": "message.send",
        "id": message.idempotency_key,
        "message_id": message.message_id,
        "campaign": message.campaign,
        "variant": message.variant,
        "channel": message.channel,
        "medium": message.medium,
        "to": message.to,
        "subject": message.subject,
        "text": message.text,
        "html": message.html,
        "coupon_code": message.coupon_code,
        "headers": message.email_headers() if message.medium == "email" else {},
        "test": message.is_test,
    }


class WebhookChannel(SingleChannel):
    """POSTs :func:`webhook_payload` to ``url``; a 2xx answer accepts the message.

    A JSON answer's ``id`` (or an ``X-Message-Id`` header) becomes the provider id.
    """

    def __init__(
        self,
        name: str,
        *,
        medium: str,
        url: str,
        secret: str | None,
        lanes: HttpLanes,
        clock: Callable[[], datetime],
    ) -> None:
        self.name = name
        self.medium = medium
        self._url = url
        self._secret = secret
        self._lanes = lanes
        self._clock = clock

    def headers(self, message: OutgoingMessage, body: bytes) -> dict[str, str]:
        """Request headers for ``body``: content type, key and Standard Webhooks."""
        timestamp = int(self._clock().timestamp())
        headers = {
            "Content-Type": "application/json",
            IDEMPOTENCY_HEADER: message.idempotency_key,
            "webhook-id": message.idempotency_key,
            "webhook-timestamp": str(timestamp),
        }
        if self._secret:
            headers[signing.SIGNATURE_HEADER] = signing.sign(
                self._secret, message.idempotency_key, timestamp, body
            )
        return headers

    async def send_one(self, message: OutgoingMessage, lane: int) -> SendResult:
        """Send one message."""
        body = json.dumps(webhook_payload(message), ensure_ascii=False).encode()
        headers = self.headers(message, body)
        with map_http_errors(self.name, message.message_id):
            response = await self._lanes.client(lane).post(self._url, content=body, headers=headers)
        check_response(response, self.name, message.message_id, self._clock())
        return SendResult(message.message_id, _provider_id(response))


def _provider_id(response: httpx.Response) -> str | None:
    header = response.headers.get("X-Message-Id")
    if header:
        return header
    if "json" not in response.headers.get("Content-Type", ""):
        return None
    try:
        data = response.json()
    except ValueError:
        return None
    value = data.get("id") if isinstance(data, dict) else None
    return str(value) if value is not None else None
