"""HMAC signatures in the Standard Webhooks format (pure; shared by sender and server).

A signed request carries three headers:

* ``webhook-id``: a unique message id (we use the message's idempotency key),
* ``webhook-timestamp``: integer Unix seconds,
* ``webhook-signature``: ``v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">``;
  several space-separated signatures are allowed (secret rotation).

A secret in the Standard Webhooks form ``whsec_<base64>`` is used as the decoded
bytes; any other secret is used as its UTF-8 bytes. Verification compares in
constant time and refuses timestamps outside a tolerance (replay protection).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable, Mapping

from campaign.common.errors import SignatureError

SIGNATURE_VERSION = "v1"
DEFAULT_TOLERANCE_SECONDS = 300
ID_HEADER = "webhook-id"
TIMESTAMP_HEADER = "webhook-timestamp"
SIGNATURE_HEADER = "webhook-signature"


def secret_bytes(secret: str | bytes) -> bytes:
    """The HMAC key of ``secret`` (``whsec_`` secrets are base64-decoded)."""
    if isinstance(secret, bytes):
        return secret
    if secret.startswith("whsec_"):
        try:
            return base64.b64decode(secret[len("whsec_") :], validate=True)
        except (binascii.Error, ValueError):
            raise SignatureError("webhook secret starts with whsec_ but is not base64") from None
    return secret.encode("utf-8")


def signature(secret: str | bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The base64 HMAC-SHA256 of ``<msg_id>.<timestamp>.<body>`` (no version prefix)."""
    content = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_bytes(secret), content, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def sign(secret: str | bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value: ``v1,<base64 signature>``."""
    return f"{SIGNATURE_VERSION},{signature(secret, msg_id, timestamp, body)}"


def sign_headers(secret: str | bytes, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """All three Standard Webhooks headers for one request body."""
    return {
        ID_HEADER: msg_id,
        TIMESTAMP_HEADER: str(timestamp),
        SIGNATURE_HEADER: sign(secret, msg_id, timestamp, body),
    }


def verify(
    secrets: Iterable[str | bytes],
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: int,
    tolerance_seconds: int = DEFAULT_TOLERANCE_SECONDS,
) -> str:
    """Check a request against any of ``secrets``; returns its ``webhook-id``.

    ``headers`` is matched case-insensitively; ``now`` is Unix seconds (the caller's
    clock).

    Raises:
        SignatureError: a header is missing, the timestamp is malformed or outside
            ``tolerance_seconds`` of ``now``, or no signature matches any secret.
    """
    lowered = {key.lower(): value for key, value in headers.items()}
    msg_id = lowered.get(ID_HEADER)
    raw_timestamp = lowered.get(TIMESTAMP_HEADER)
    raw_signatures = lowered.get(SIGNATURE_HEADER)
    if not msg_id or not raw_timestamp or not raw_signatures:
        raise SignatureError("missing webhook-id, webhook-timestamp or webhook-signature header")
    try:
        timestamp = int(raw_timestamp)
    except ValueError:
        raise SignatureError("webhook-timestamp is not an integer") from None
    if abs(now - timestamp) > tolerance_seconds:
        raise SignatureError(f"webhook-timestamp is more than {tolerance_seconds} s from now")
    offered = []
    for item in raw_signatures.split():
        version, _, value = item.partition(",")
        if version == SIGNATURE_VERSION and value:
            offered.append(value.encode("ascii", "replace"))
    keys = list(secrets)
    if not keys:
        raise SignatureError("no webhook secret is configured")
    for key in keys:
        expected = signature(key, msg_id, timestamp, body).encode("ascii")
        if any(hmac.compare_digest(expected, candidate) for candidate in offered):
            return msg_id
    raise SignatureError("webhook-signature does not match")
