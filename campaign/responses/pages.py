"""The unsubscribe pages ``campaign serve`` shows, in English and Chinese (pure).

The token behind the link is :mod:`campaign.common.links`; this module only words and
draws the confirmation and result pages.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape


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
