"""Twilio-compatible SMS webhooks: status callbacks and inbound messages.

Verification (``X-Twilio-Signature``): base64 of HMAC-SHA1, keyed with the account's
auth token, over the full public URL the provider called (with its query string)
followed by every POST parameter as ``name + value``, sorted by name, and a name sent
several times contributes each of its values, sorted (as Twilio's own
``RequestValidator`` does). The server tries its public URL (``[shop] base_url`` +
path) and the URL it saw, each with and without the port (Twilio signs either form:
``https://host/x`` and ``https://host:443/x``).

* Status callback (``MessageStatus``/``SmsStatus`` + ``MessageSid``): ``delivered`` →
  delivered, ``read`` → opened, ``failed``/``undelivered`` → a hard bounce for the
  permanent error codes in :data:`HARD_ERROR_CODES` (unknown or landline number...),
  else a soft bounce; interim states (queued, sent...) are acknowledged, not stored.
  The event id is ``<MessageSid>:<status>``; the message is matched by its SID.
* Inbound message (``Body`` with status ``received``): an opt-out (``[responses]
  stop_words``, :mod:`campaign.common.optout`: STOP, UNSUBSCRIBE, 退订, T...) is an
  unsubscribe of the sender's number, anything else a ``replied`` event. The event id
  is the inbound ``MessageSid``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from campaign.common.errors import SignatureError
from campaign.common.optout import StopWords
from campaign.responses.events import InboundEvent, ResponseType, is_stop_word
from campaign.responses.providers.common import MAX_EVENT_ID, bad, check_text, scrubbed

SOURCE = "twilio"
SIGNATURE_HEADER = "x-twilio-signature"
# Permanent failures: invalid/unknown number, landline, not a mobile, blocked by carrier
# as unreachable for good. Others (30003 unreachable, 30008 unknown) may pass later.
HARD_ERROR_CODES = frozenset({"21211", "21612", "21614", "30005", "30006", "30007"})
_STATUS_KEPT = ("MessageStatus", "SmsStatus", "ErrorCode", "MessageSid")
_STATUS: dict[str, ResponseType] = {
    "delivered": ResponseType.DELIVERED,
    "read": ResponseType.OPENED,
}


def form_params(body: bytes) -> list[tuple[str, str]]:
    """The ``application/x-www-form-urlencoded`` pairs of ``body`` (order kept).

    Raises:
        InputError: the body is not UTF-8 form data.
    """
    try:
        text = body.decode("utf-8")
        pairs = parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text))
    except (UnicodeDecodeError, ValueError) as exc:
        raise bad(SOURCE, f"body is not form data: {exc}") from None
    return pairs


def signature(auth_token: str, url: str, params: Sequence[tuple[str, str]]) -> str:
    """The ``X-Twilio-Signature`` of a request to ``url`` with POST ``params``.

    Names in order, and each name's values in order: a repeated name keeps every value.
    """
    by_name: dict[str, list[str]] = {}
    for name, value in params:
        by_name.setdefault(name, []).append(value)
    content = url + "".join(
        name + value for name in sorted(by_name) for value in sorted(by_name[name])
    )
    digest = hmac.new(auth_token.encode(), content.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def url_variants(url: str) -> list[str]:
    """``url`` as given, without its port, and with the scheme's default port added."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"  # an IPv6 literal
    userinfo = parts.netloc.rpartition("@")[0]
    prefix = f"{userinfo}@" if userinfo else ""
    without = urlunsplit(parts._replace(netloc=prefix + host))
    variants = [url, without]
    if parts.port is None:
        default = 443 if parts.scheme == "https" else 80
        variants.append(urlunsplit(parts._replace(netloc=f"{prefix}{host}:{default}")))
    return list(dict.fromkeys(variants))


def verify(
    auth_token: str | None,
    urls: Iterable[str],
    params: Sequence[tuple[str, str]],
    offered: str | None,
) -> None:
    """Check ``offered`` against the signature of any candidate URL; constant-time.

    Raises:
        SignatureError: no token configured, no header, or no URL matches.
    """
    if not auth_token:
        raise SignatureError("no Twilio auth token is configured")
    if not offered:
        raise SignatureError("missing X-Twilio-Signature header")
    candidate = offered.strip().encode("ascii", "replace")
    tried: list[str] = []
    for url in urls:
        for variant in url_variants(url):
            if variant in tried:
                continue
            tried.append(variant)
            if hmac.compare_digest(signature(auth_token, variant, params).encode(), candidate):
                return
    raise SignatureError("X-Twilio-Signature does not match")


def parse(
    params: Sequence[tuple[str, str]],
    *,
    received: datetime,
    provider: str = SOURCE,
    stop_words: StopWords | None = None,
) -> list[InboundEvent]:
    """The events of one verified request (zero or one); ``received`` is their time;
    ``stop_words`` reads inbound bodies (default: the built-in lists).

    Raises:
        InputError: no ``MessageSid``, or neither a status nor a message body.
    """
    for name, value in params:
        check_text(f"{provider}: {name[:40]}", name)
        check_text(f"{provider}: {name[:40]}", value)
    data = dict(params)
    sid = data.get("MessageSid") or data.get("SmsSid") or ""
    if not sid:
        raise bad(provider, "MessageSid is required")
    if len(sid) > 200:
        raise bad(provider, "MessageSid is longer than 200 characters")
    status = (data.get("MessageStatus") or data.get("SmsStatus") or "").strip().lower()
    ts = received.astimezone(UTC)
    if "Body" in data and status in ("", "received", "receiving"):
        sender = data.get("From", "").strip() or None
        stop = is_stop_word(data["Body"], stop_words)
        kind = ResponseType.UNSUBSCRIBED if stop else ResponseType.REPLIED
        payload = scrubbed({"Body": data["Body"], "MessageSid": sid}, sender)
        return [
            InboundEvent(
                provider=provider,
                event_id=sid[:MAX_EVENT_ID],
                type=kind,
                ts=ts,
                address=sender,
                medium="sms",
                payload=payload,
            )
        ]
    if not status:
        raise bad(provider, "neither MessageStatus nor an inbound Body")
    kind_or_none = _STATUS.get(status)
    if status in ("failed", "undelivered"):
        code = data.get("ErrorCode", "").strip()
        kind_or_none = (
            ResponseType.BOUNCED if code in HARD_ERROR_CODES else ResponseType.SOFT_BOUNCED
        )
    if kind_or_none is None:
        return []
    recipient = data.get("To", "").strip() or None
    payload = scrubbed(
        {k: v for k, v in data.items() if k in _STATUS_KEPT},
        recipient,
    )
    return [
        InboundEvent(
            provider=provider,
            event_id=f"{sid}:{status}"[:MAX_EVENT_ID],
            type=kind_or_none,
            ts=ts,
            provider_message_id=sid,
            address=recipient,
            medium="sms",
            payload=payload,
        )
    ]
