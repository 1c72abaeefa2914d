"""SendGrid-compatible v3 mail send, with up to 1000 recipients per request.

Each message is one *personalization*. Our bodies are rendered per recipient, so the
request's shared ``content`` is a placeholder and each personalization fills it through
``substitutions``. SendGrid caps substitutions at 10,000 bytes per personalization, so
a larger message goes in a request of its own with its body as the content.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from campaign.common.errors import DeliveryError, PermanentDeliveryError
from campaign.delivery.channels.base import (
    IDEMPOTENCY_HEADER,
    HttpLanes,
    Outcome,
    OutgoingMessage,
    SendResult,
    check_response,
    map_http_errors,
)

SUBSTITUTION_LIMIT_BYTES = 10_000
TEXT_TAG = "-campaign-text-"
HTML_TAG = "-campaign-html-"


class SendGridChannel:
    """POSTs v3 ``mail/send`` JSON with a bearer API key.

    A 2xx answer accepts every message of the request; its ``X-Message-Id`` header is
    stored as each message's provider id (SendGrid's event ids start with it), and
    ``custom_args`` carry our message id and idempotency key back in events. A 4xx on a
    request of several messages is retried in halves, so one bad address does not sink
    the other 999.
    """

    def __init__(
        self,
        name: str,
        *,
        url: str,
        api_key: str | None,
        from_address: str | None,
        batch_size: int,
        lanes: HttpLanes,
        clock: Callable[[], datetime],
    ) -> None:
        self.name = name
        self.medium = "email"
        self.max_batch = batch_size
        self._url = url
        self._api_key = api_key
        self._from = from_address or "no-reply@localhost"
        self._lanes = lanes
        self._clock = clock

    async def send(self, messages: Sequence[OutgoingMessage], lane: int = 0) -> list[Outcome]:
        """Send ``messages`` in as few requests as the substitution limit allows."""
        small = [m for m in messages if _fits(m)]
        large = [m for m in messages if not _fits(m)]
        results: dict[int, Outcome] = {}
        if small:
            results.update(await self._send_group(small, lane, shared=True))
        for message in large:
            results.update(await self._send_group([message], lane, shared=False))
        return [results[m.message_id] for m in messages]

    async def _send_group(
        self, group: Sequence[OutgoingMessage], lane: int, *, shared: bool
    ) -> dict[int, Outcome]:
        try:
            provider_id = await self._post(group, lane, shared=shared)
        except PermanentDeliveryError as exc:
            if len(group) == 1:
                return {group[0].message_id: exc}
            middle = len(group) // 2
            left = await self._send_group(group[:middle], lane, shared=shared)
            right = await self._send_group(group[middle:], lane, shared=shared)
            return left | right
        except DeliveryError as exc:
            return {m.message_id: exc for m in group}
        return {m.message_id: SendResult(m.message_id, provider_id) for m in group}

    async def _post(
        self, group: Sequence[OutgoingMessage], lane: int, *, shared: bool
    ) -> str | None:
        payload = build_payload(group, self._from, shared=shared)
        headers = {IDEMPOTENCY_HEADER: batch_idempotency_key(group)}
        if self._api_key:
            headers["Authorization"] = f"Bearer {self._api_key}"
        message_id = group[0].message_id if len(group) == 1 else None
        with map_http_errors(self.name, message_id):
            response = await self._lanes.client(lane).post(
                self._url,
                content=json.dumps(payload).encode(),
                headers=headers | {"Content-Type": "application/json"},
            )
        check_response(response, self.name, message_id, self._clock())
        return response.headers.get("X-Message-Id")

    async def aclose(self) -> None:
        """The HTTP lanes are closed by their owner."""


def _fits(message: OutgoingMessage) -> bool:
    size = len((message.text or "").encode()) + len((message.html or "").encode())
    return size <= SUBSTITUTION_LIMIT_BYTES


def batch_idempotency_key(group: Sequence[OutgoingMessage]) -> str:
    """One message's own key, or a digest of the members' keys for a batch request."""
    if len(group) == 1:
        return group[0].idempotency_key
    digest = hashlib.sha256("\n".join(sorted(m.idempotency_key for m in group)).encode())
    return f"batch-{digest.hexdigest()[:40]}"


def build_payload(
    group: Sequence[OutgoingMessage], from_address: str, *, shared: bool
) -> dict[str, Any]:
    """The v3 ``mail/send`` JSON for ``group`` (one personalization per message).

    With ``shared`` the bodies travel as substitutions of a placeholder content;
    otherwise ``group`` must hold one message whose body is the content itself.
    """
    personalizations = []
    has_html = any(m.html for m in group)
    for m in group:
        personalization: dict[str, Any] = {
            "to": [{"email": m.to}],
            "subject": m.subject or "",
            "headers": m.email_headers(),
            "custom_args": {
                "message_id": str(m.message_id),
                "idempotency_key": m.idempotency_key,
                "campaign": m.campaign,
            },
        }
        if shared:
            substitutions = {TEXT_TAG: m.text or ""}
            if has_html:
                substitutions[HTML_TAG] = m.html or (m.text or "")
            personalization["substitutions"] = substitutions
        personalizations.append(personalization)
    if shared:
        content = [{"type": "text/plain", "value": TEXT_TAG}]
        if has_html:
            content.append({"type": "text/html", "value": HTML_TAG})
    else:
        only = group[0]
        content = [{"type": "text/plain", "value": only.text or ""}]
        if only.html:
            content.append({"type": "text/html", "value": only.html})
    return {
        "personalizations": personalizations,
        "from": {"email": from_address},
        "content": content,
    }


def parse_payload(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """Expand a ``build_payload`` request back into one dict per recipient (for sinks)."""
    content = {c["type"]: c["value"] for c in payload.get("content", [])}
    out = []
    for p in payload.get("personalizations", []):
        subs = p.get("substitutions", {})
        text = content.get("text/plain", "")
        html = content.get("text/html")
        for tag, value in subs.items():
            text = text.replace(tag, value)
            html = html.replace(tag, value) if html is not None else None
        out.append(
            {
                "to": p["to"][0]["email"],
                "subject": p.get("subject"),
                "headers": p.get("headers", {}),
                "custom_args": p.get("custom_args", {}),
                "text": text,
                "html": html,
            }
        )
    return out

