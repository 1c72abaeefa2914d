"""SendGrid-compatible Event Webhook: a JSON array of email events per request.

A request is accepted (docs/responses.md) when it carries any one of:

* SendGrid's own signature (the "Signed Event Webhook"): headers
  ``X-Twilio-Email-Event-Webhook-Signature`` (base64 of a DER ECDSA P-256 signature
  with SHA-256) and ``X-Twilio-Email-Event-Webhook-Timestamp``, over the timestamp
  followed by the raw body, checked with the verification key SendGrid shows for the
  webhook (``[server] sendgrid_verification_key``, base64 DER or PEM);
* valid Standard Webhooks headers signed with the SendGrid secret or a server secret;
* HTTP Basic auth whose password is the SendGrid secret (SendGrid supports
  ``https://user:secret@host/...`` webhook URLs).

Mapping of ``event``: delivered → delivered, open → opened, click → clicked, bounce →
a hard bounce (``type`` ``bounce``) or a soft one (``type`` ``blocked``), deferred → a
soft bounce, spamreport → complained, unsubscribe/group_unsubscribe → unsubscribed;
processed, dropped and group_resubscribe are acknowledged, not stored. The dedupe key
is ``sg_event_id``. The message is matched by the ``message_id`` custom arg our
sender sets, else by ``sg_message_id`` (its part before the first dot is the
``X-Message-Id`` the send returned).
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from campaign.common.errors import SignatureError
from campaign.responses.events import InboundEvent, ResponseType, message_number
from campaign.responses.providers.common import (
    MAX_EVENT_ID,
    bad,
    load_json,
    parse_ts,
    scrubbed,
    text_field,
)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePublicKey

SOURCE = "sendgrid"
MAX_EVENTS = 10_000
SIGNATURE_HEADER = "x-twilio-email-event-webhook-signature"
TIMESTAMP_HEADER = "x-twilio-email-event-webhook-timestamp"
_EVENTS: dict[str, ResponseType] = {
    "delivered": ResponseType.DELIVERED,
    "open": ResponseType.OPENED,
    "click": ResponseType.CLICKED,
    "bounce": ResponseType.BOUNCED,
    "deferred": ResponseType.SOFT_BOUNCED,
    "spamreport": ResponseType.COMPLAINED,
    "unsubscribe": ResponseType.UNSUBSCRIBED,
    "group_unsubscribe": ResponseType.UNSUBSCRIBED,
}
# Stored as given; the rest of a SendGrid event (ip, useragent...) is dropped.
_KEPT = ("event", "type", "reason", "status", "url", "sg_message_id", "category")


def load_verification_key(text: str) -> EllipticCurvePublicKey:
    """The ECDSA P-256 public key of SendGrid's verification key (base64 DER or PEM).

    Raises:
        ValueError: not a public key, or not on the P-256 curve.
    """
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import (
        load_der_public_key,
        load_pem_public_key,
    )

    raw = text.strip()
    try:
        if raw.startswith("-----BEGIN"):
            key = load_pem_public_key(raw.encode("ascii"))
        else:
            key = load_der_public_key(base64.b64decode("".join(raw.split()), validate=True))
    except (ValueError, TypeError, binascii.Error) as exc:
        raise ValueError(f"not a public key in base64 DER or PEM form ({exc})") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise ValueError("not an ECDSA P-256 public key (SendGrid's verification key is one)")
    return key


def verify_ecdsa(
    key: EllipticCurvePublicKey | None, headers: Mapping[str, str], body: bytes
) -> None:
    """Check SendGrid's signature of ``body``: ECDSA P-256 / SHA-256 over timestamp + body.

    Raises:
        SignatureError: no key configured, a header missing or malformed, or the
            signature does not verify.
    """
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    if key is None:
        raise SignatureError(
            "SendGrid signed this request but no [server] sendgrid_verification_key is configured"
        )
    lowered = {name.lower(): value for name, value in headers.items()}
    signature = lowered.get(SIGNATURE_HEADER)
    timestamp = lowered.get(TIMESTAMP_HEADER)
    if not signature or not timestamp:
        raise SignatureError(
            "missing X-Twilio-Email-Event-Webhook-Signature or -Timestamp header"
        )
    try:
        der = base64.b64decode(signature.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError("X-Twilio-Email-Event-Webhook-Signature is not base64") from None
    try:
        key.verify(der, timestamp.encode("utf-8") + body, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        raise SignatureError("X-Twilio-Email-Event-Webhook-Signature does not match") from None


def verify_basic(secret: str | None, authorization: str | None) -> bool:
    """Whether an ``Authorization: Basic`` header carries ``secret`` as its password."""
    if not secret or not authorization or not authorization.lower().startswith("basic "):
        return False
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return False
    _user, _, password = decoded.partition(":")
    return hmac.compare_digest(password.encode(), secret.encode())


def require(ok: bool) -> None:
    """Raise when neither accepted proof was present.

    Raises:
        SignatureError: always when ``ok`` is false.
    """
    if not ok:
        raise SignatureError(
            "SendGrid events need SendGrid's signature, Standard Webhooks headers or Basic auth"
        )


def parse(body: bytes, *, received: datetime, provider: str = SOURCE) -> list[InboundEvent]:
    """The tracked events of one verified batch (untracked kinds are left out).

    Raises:
        InputError: not a JSON array of objects, more than :data:`MAX_EVENTS`, or an
            event without ``event`` or ``sg_event_id``.
    """
    data = load_json(provider, body)
    if not isinstance(data, list):
        raise bad(provider, "body must be a JSON array of events")
    if len(data) > MAX_EVENTS:
        raise bad(provider, f"more than {MAX_EVENTS} events in one request")
    out: list[InboundEvent] = []
    default_ts = received.astimezone(UTC)
    for index, item in enumerate(data):
        where = f"{provider}[{index}]"
        if not isinstance(item, dict):
            raise bad(where, "each event must be a JSON object")
        name = text_field(where, item, "event", 64)
        if name is None:
            raise bad(where, "event is required")
        event_id = text_field(where, item, "sg_event_id", MAX_EVENT_ID)
        if event_id is None:
            raise bad(where, "sg_event_id is required")
        kind = _EVENTS.get(name.lower())
        if kind is None:
            continue
        if kind is ResponseType.BOUNCED and str(item.get("type", "bounce")).lower() == "blocked":
            kind = ResponseType.SOFT_BOUNCED
        sg_message_id = text_field(where, item, "sg_message_id", 255)
        address = text_field(where, item, "email", 320)
        payload: dict[str, Any] = {k: item[k] for k in _KEPT if k in item}
        out.append(
            InboundEvent(
                provider=provider,
                event_id=event_id,
                type=kind,
                ts=parse_ts(where, item.get("timestamp"), default_ts),
                message_id=message_number(item.get("message_id")),
                idempotency_key=text_field(where, item, "idempotency_key", 255),
                provider_message_id=sg_message_id.split(".", 1)[0] if sg_message_id else None,
                address=address,
                medium="email",
                payload=scrubbed(payload, address),
            )
        )
    return out
