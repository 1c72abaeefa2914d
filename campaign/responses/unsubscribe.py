"""Signed unsubscribe links and their pages (pure; the one implementation of the token).

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

A GET only shows a confirmation page (mail scanners open every link); the page's form
POSTs back, and so do RFC 8058 one-click clients (body ``List-Unsubscribe=One-Click``).
"""

from __future__ import annotations

import base64
import hmac
import json
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from urllib.parse import quote

_TOKEN_CHARS = 22
_VERSION = "1."
ONE_CLICK_BODY = "List-Unsubscribe=One-Click"


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


@dataclass(frozen=True)
class PageText:
    """The words of the unsubscribe pages in one language."""

    lang: str
    title: str
    confirm: str
    button: str
    done: str
    invalid: str


PAGES: dict[str, PageText] = {
    "en": PageText(
        lang="en",
        title="Unsubscribe",
        confirm="Stop receiving marketing messages from {shop} on this channel ({channel})?",
        button="Unsubscribe",
        done="You are unsubscribed. {shop} will not send you marketing messages here again.",
        invalid="This unsubscribe link is not valid. Please use the link from the message.",
    ),
    "zh-CN": PageText(
        lang="zh-CN",
        title="退订",
        confirm="确定不再通过此渠道（{channel}）接收 {shop} 的营销消息吗？",
        button="确认退订",
        done="您已成功退订。{shop} 不会再通过此渠道向您发送营销消息。",
        invalid="此退订链接无效，请使用消息中的链接。",
    ),
}


def page_language(*candidates: str | None) -> PageText:
    """The page text for the first candidate locale we have (``zh``, ``zh-Hans``,
    ``zh_CN`` → zh-CN; other languages → en); an Accept-Language header works too."""
    for candidate in candidates:
        if not candidate:
            continue
        for part in candidate.split(","):
            tag = part.split(";")[0].strip().replace("_", "-").lower()
            if tag.startswith("zh"):
                return PAGES["zh-CN"]
            if tag.startswith("en"):
                return PAGES["en"]
    return PAGES["en"]


def render_page(
    text: PageText, body: str, *, form_action: str | None = None, button: str = ""
) -> str:
    """A small, self-contained HTML page; ``body`` is escaped; with ``form_action`` a
    POST form with one button (the confirmation)."""
    form = ""
    if form_action is not None:
        form = (
            f'<form method="post" action="{escape(form_action)}">'
            f'<input type="hidden" name="confirm" value="1">'
            f'<button type="submit">{escape(button)}</button></form>'
        )
    return (
        f'<!doctype html><html lang="{text.lang}"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width,initial-scale=1">'
        f'<meta name="robots" content="noindex"><title>{escape(text.title)}</title>'
        "<style>body{font-family:sans-serif;max-width:32rem;margin:3rem auto;padding:0 1rem}"
        "button{font-size:1rem;padding:.5rem 1.25rem}</style></head>"
        f"<body><h1>{escape(text.title)}</h1><p>{escape(body)}</p>{form}</body></html>"
    )
