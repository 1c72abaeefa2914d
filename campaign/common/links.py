"""Signed unsubscribe links (pure; the one implementation of the token).

The planner renders ``{base_url}/unsubscribe?u=<shop user id>&c=<channel>&t=<token>``
into every email (and the sender into ``List-Unsubscribe``); ``campaign serve`` checks
the token here. Nothing is stored per link.

The token is ``1.`` + ``HMAC-SHA256(key, JSON ["unsubscribe", user, channel])``,
URL-safe base64 without padding, cut to 22 characters (128 bits). The JSON array
makes the signed text unambiguous whatever the ids contain (``:`` included). Tokens
made before that (22 characters, no ``1.``) signed ``"unsubscribe:<user>:<channel>"``;
they keep verifying under the keys that could have signed them (:class:`LinkKeys`).

The key is the first ``[server] link_secret_envs`` secret, else the database's own
random key (:func:`campaign.db.queries.unsubscribe_keys`): never a secret a provider
holds, so no provider can mint unsubscribe links. Every configured link key verifies,
so a rotated-out key keeps its links working until it is removed from the list.

The pages live in :mod:`campaign.responses.pages`. A GET only shows a confirmation
page (mail scanners open every link); the page's form
POSTs back, and so do RFC 8058 one-click clients (body ``List-Unsubscribe=One-Click``).
"""

from __future__ import annotations

import base64
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote

_TOKEN_CHARS = 22
_VERSION = "1."


@dataclass(frozen=True)
class LinkKeys:
    """The keys that verify links: ``current`` (link keys, the installation key) for
    today's tokens, ``legacy`` for tokens made before the versioned format (the keys
    that signed those then: the installation key or the first server secret)."""

    current: tuple[bytes, ...]
    legacy: tuple[bytes, ...] = ()


def _mac(secret: bytes, text: bytes) -> str:
    # hmac.digest is the one-shot C path: a 100,000-user run makes 100,000 tokens.
    return base64.urlsafe_b64encode(hmac.digest(secret, text, "sha256")).decode()[:_TOKEN_CHARS]


def unsubscribe_token(secret: bytes, user_key: str, channel: str) -> str:
    """The token proving an unsubscribe link for (user, channel) was issued by us."""
    signed = json.dumps(["unsubscribe", user_key, channel], ensure_ascii=False)
    return _VERSION + _mac(secret, signed.encode())


def legacy_unsubscribe_token(secret: bytes, user_key: str, channel: str) -> str:
    """A token as links made before the versioned format carried (still verified)."""
    return _mac(secret, f"unsubscribe:{user_key}:{channel}".encode())


def verify_unsubscribe_token(
    keys: bytes | LinkKeys, user_key: str, channel: str, token: str
) -> bool:
    """Whether ``token`` is a valid token for (user, channel) under any of ``keys``
    (one key: that key, for both formats); constant-time per key."""
    if isinstance(keys, bytes):
        keys = LinkKeys((keys,), (keys,))
    offered = token.encode("utf-8", "replace")
    if token.startswith(_VERSION):
        candidates: Sequence[bytes] = keys.current
        make = unsubscribe_token
    else:
        candidates = keys.legacy
        make = legacy_unsubscribe_token
    valid = False
    for key in candidates:
        # Every key is tried (no early exit): the time does not tell which one matched.
        valid |= hmac.compare_digest(make(key, user_key, channel).encode(), offered)
    return valid


def unsubscribe_query(secret: bytes, user_key: str, channel: str) -> str:
    """The query string of a signed link: ``u=...&c=...&t=...`` (percent-encoded)."""
    token = unsubscribe_token(secret, user_key, channel)
    return f"u={quote(user_key, safe='')}&c={quote(channel, safe='')}&t={token}"


def unsubscribe_url(base_url: str, secret: bytes, user_key: str, channel: str) -> str:
    """The absolute, signed unsubscribe URL of one user (shop id) on one channel; the
    planner renders it into bodies, the sender into ``List-Unsubscribe``."""
    return f"{base_url.rstrip('/')}/unsubscribe?{unsubscribe_query(secret, user_key, channel)}"
