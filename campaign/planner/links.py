"""Signed unsubscribe links (pure).

A link is ``{base_url}/unsubscribe?u=<shop user id>&c=<channel>&t=<token>``. The token
and its secret have one implementation, in :mod:`campaign.responses.unsubscribe`,
shared with ``campaign serve`` which checks the links; see there for the format and
the secret (the first ``[server] secret_envs`` secret, else a development key).
"""

from __future__ import annotations

from urllib.parse import quote

from campaign.responses.unsubscribe import (
    unsubscribe_secret,
    unsubscribe_token,
    verify_unsubscribe_token,
)

__all__ = ["unsubscribe_secret", "unsubscribe_token", "unsubscribe_url", "verify_unsubscribe_token"]


def unsubscribe_url(base_url: str, secret: bytes, user_key: str, channel: str) -> str:
    """The absolute, signed unsubscribe URL of one user on one channel."""
    token = unsubscribe_token(secret, user_key, channel)
    user, medium = quote(user_key, safe=""), quote(channel, safe="")
    return f"{base_url.rstrip('/')}/unsubscribe?u={user}&c={medium}&t={token}"
