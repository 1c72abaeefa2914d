"""Signed unsubscribe links (pure).

A link is ``{base_url}/unsubscribe?u=<shop user id>&c=<channel>&t=<token>`` where the
token is ``HMAC-SHA256(secret, "unsubscribe:<user>:<channel>")``, URL-safe base64
without padding, truncated to 22 characters (128 bits). Whoever serves the link
recomputes it with :func:`verify_unsubscribe_token`; nothing is stored per link.

The secret is the first webhook signing secret of ``[server] secret_envs`` (see
:func:`unsubscribe_secret`). Without one (the demo, tests) a development key derived
from the shop name and the database URL is used: links still work but can be forged
by anyone who knows both, so production configs must set a server secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import quote

_TOKEN_CHARS = 22


def unsubscribe_secret(server_secrets: tuple[str, ...], shop_name: str, database_url: str) -> bytes:
    """The key that signs unsubscribe links: the first server secret, else a dev key."""
    if server_secrets:
        return server_secrets[0].encode()
    return hashlib.sha256(f"campaign-dev-unsubscribe:{shop_name}:{database_url}".encode()).digest()


def unsubscribe_token(secret: bytes, user_key: str, channel: str) -> str:
    """The token proving an unsubscribe link for (user, channel) was issued by us."""
    digest = hmac.new(secret, f"unsubscribe:{user_key}:{channel}".encode(), hashlib.sha256)
    return base64.urlsafe_b64encode(digest.digest()).decode()[:_TOKEN_CHARS]


def verify_unsubscribe_token(secret: bytes, user_key: str, channel: str, token: str) -> bool:
    """Whether ``token`` is the valid token for (user, channel); constant-time."""
    return hmac.compare_digest(unsubscribe_token(secret, user_key, channel), token)


def unsubscribe_url(base_url: str, secret: bytes, user_key: str, channel: str) -> str:
    """The absolute, signed unsubscribe URL of one user on one channel."""
    token = unsubscribe_token(secret, user_key, channel)
    return f"{base_url.rstrip('/')}/unsubscribe?u={quote(user_key, safe='')}&c={quote(channel, safe='')}&t={token}"
