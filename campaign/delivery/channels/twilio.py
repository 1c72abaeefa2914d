"""Twilio-compatible SMS: a form POST with HTTP basic auth and a status callback URL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import httpx

from campaign.common.errors import PermanentDeliveryError
from campaign.delivery.channels.base import (
    IDEMPOTENCY_HEADER,
    HttpLanes,
    OutgoingMessage,
    SendResult,
    SingleChannel,
    check_response,
    map_http_errors,
)


class TwilioChannel(SingleChannel):
    """POSTs ``To``, ``From``, ``Body`` and ``StatusCallback`` to ``url``.

    ``url`` is the full Messages endpoint (Twilio: ``.../Accounts/{sid}/Messages.json``);
    the account SID and auth token are the basic-auth username and password. The
    provider's ``sid`` in the JSON answer becomes the provider message id.
    """

    def __init__(
        self,
        name: str,
        *,
        url: str,
        from_number: str | None,
        username: str | None,
        password: str | None,
        status_callback_url: str | None,
        lanes: HttpLanes,
        clock: Callable[[], datetime],
    ) -> None:
        self.name = name
        self.medium = "sms"
        self._url = url
        self._from = from_number
        self._auth = httpx.BasicAuth(username, password or "") if username else None
        self._callback = status_callback_url
        self._lanes = lanes
        self._clock = clock

    async def send_one(self, message: OutgoingMessage, lane: int) -> SendResult:
        """Send one SMS; the text body is the message."""
        body = message.text or ""
        if not body:
            raise PermanentDeliveryError(self.name, "empty SMS body", message.message_id)
        form = {"To": message.to, "Body": body}
        if self._from:
            form["From"] = self._from
        if self._callback:
            form["StatusCallback"] = self._callback
        headers = {IDEMPOTENCY_HEADER: message.idempotency_key}
        client = self._lanes.client(lane)
        with map_http_errors(self.name, message.message_id):
            response = await client.post(
                self._url, data=form, headers=headers,
                auth=self._auth or httpx.USE_CLIENT_DEFAULT,
            )
        check_response(response, self.name, message.message_id, self._clock())
        return SendResult(message.message_id, _sid(response))


def _sid(response: httpx.Response) -> str | None:
    try:
        data = response.json()
    except ValueError:
        return None
    sid = data.get("sid") if isinstance(data, dict) else None
    return str(sid) if sid is not None else None
