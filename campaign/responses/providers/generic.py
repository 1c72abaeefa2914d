"""Generic provider events signed with Standard Webhooks (our own documented format).

One event per request. Headers ``webhook-id`` (the event id, the dedupe key),
``webhook-timestamp`` and ``webhook-signature`` (see :mod:`campaign.common.signing`).
Body: a JSON object::

    {"type": "opened",                 # or "message.opened", "open", ... (required)
     "message_id": 123,                # our messages.id (as sent in the delivery payload)
     "idempotency_key": "...",         # or our key (the delivery webhook's "id")
     "provider_message_id": "...",     # or the provider's own id
     "timestamp": "2026-11-01T10:00:00Z",  # ISO 8601 or Unix seconds; default: header
     "bounce": "hard" | "soft",        # for type bounced; default hard
     "address": "a@b.example",         # optional: the recipient, stored only hashed
     "medium": "email" | "sms",        # optional
     "data": {...}}                    # optional, stored in responses.payload
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from campaign.common import signing
from campaign.responses.events import InboundEvent, ResponseType, canonical_type, message_number
from campaign.responses.providers.common import (
    MAX_EVENT_ID,
    bad,
    check_text,
    load_json,
    parse_ts,
    scrubbed,
    text_field,
)

SOURCE = "webhook"


def verify(
    secrets: Iterable[str | bytes],
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: datetime,
    tolerance_seconds: int = signing.DEFAULT_TOLERANCE_SECONDS,
) -> str:
    """The verified ``webhook-id`` of a request.

    Raises:
        SignatureError: missing headers, stale timestamp, or no secret matches.
    """
    return signing.verify(
        secrets, headers, body, now=int(now.timestamp()), tolerance_seconds=tolerance_seconds
    )


def parse(
    body: bytes, event_id: str, *, received: datetime, provider: str = SOURCE
) -> list[InboundEvent]:
    """The event of one verified request; ``received`` (UTC) is the default time.

    Returns an empty list for a type we do not track (it is acknowledged, not stored).

    Raises:
        InputError: not a JSON object, no or unknown-shaped ``type``, a bad field.
    """
    data = load_json(provider, body)
    if not isinstance(data, dict):
        raise bad(provider, "body must be a JSON object")
    if len(event_id) > MAX_EVENT_ID:
        raise bad(provider, f"webhook-id is longer than {MAX_EVENT_ID} characters")
    check_text(provider, event_id)
    raw_type = data.get("type")
    if not isinstance(raw_type, str) or not raw_type.strip():
        raise bad(provider, "type is required")
    kind = canonical_type(raw_type)
    if kind is None:
        return []
    if kind is ResponseType.BOUNCED and str(data.get("bounce", "hard")).lower() == "soft":
        kind = ResponseType.SOFT_BOUNCED
    message_ref = data.get("message_id")
    # A message_id that cannot be ours is kept as unmatched, not refused: refusing
    # would only make the provider retry it forever.
    message_id = message_number(message_ref) if message_ref is not None else None
    address = text_field(provider, data, "address", 320)
    medium = text_field(provider, data, "medium", 16)
    extra = data.get("data")
    if extra is not None and not isinstance(extra, dict):
        raise bad(provider, "data must be a JSON object")
    payload: dict[str, Any] = {"type": raw_type}
    if message_ref is not None:
        payload["message_id"] = message_ref
    if extra:
        payload["data"] = scrubbed(extra, None)
    return [
        InboundEvent(
            provider=provider,
            event_id=event_id,
            type=kind,
            ts=parse_ts(provider, data.get("timestamp", data.get("ts")), received.astimezone(UTC)),
            message_id=message_id,
            idempotency_key=text_field(provider, data, "idempotency_key", 255),
            provider_message_id=text_field(provider, data, "provider_message_id", 200),
            address=address,
            medium=medium if medium in ("email", "sms") else None,
            payload=scrubbed(payload, address),
        )
    ]
