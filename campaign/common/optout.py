"""Opt-out words of inbound SMS, and the opt-out instructions SMS templates give (pure).

One matcher serves the webhook server (an inbound "STOP" suppresses the number) and
the template lint (a template's "Reply STOP" / "回T退订" must name a word the
matcher honours). Matching reads the text NFKC-normalized, case-folded, with
punctuation and symbols as spaces (docs/responses.md):

* Latin keywords of three letters or more (STOP, UNSUBSCRIBE, END...) match as the
  whole message or as its first word(s): "Stop please" stops, "stopping by" does not;
* short codes (T, TD) and Chinese words (退订, 取消) only as the whole message, so
  "T恤还有吗" and "取消订单" (cancel my order) unsubscribe nobody.
"""

from __future__ import annotations

import re
import unicodedata

# SMS opt-out keywords by convention. English (CTIA / US carriers): the word opens the
# message ("Stop please" stops). Chinese carriers: the reply codes the templates ask
# for ("回T退订": reply T to unsubscribe), matched only as the whole message so that
# "T恤还有吗" (do you still have T-shirts?) unsubscribes nobody.
STOP_WORDS_BY_LOCALE: dict[str, tuple[str, ...]] = {
    "en": ("STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "OPT OUT",
           "REVOKE"),
    "zh-CN": ("T", "TD", "退订", "回T退订", "回TD退订", "取消", "取消订阅"),
}
DEFAULT_STOP_WORDS: tuple[str, ...] = tuple(
    dict.fromkeys(word for words in STOP_WORDS_BY_LOCALE.values() for word in words)
)


def normalize_sms_text(text: str) -> str:
    """NFKC, case-folded, punctuation and symbols as spaces, whitespace collapsed:
    "ＳＴＯＰ！", "stop." and " Stop " all read "stop"."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    kept = "".join(
        " " if unicodedata.category(ch)[0] in "PSZC" else ch for ch in folded
    )
    return " ".join(kept.split())


def _is_first_word_keyword(word: str) -> bool:
    """Latin keywords of three letters or more also count as a message's first word;
    short codes (T, TD) and CJK words only as the whole message."""
    letters = word.replace(" ", "")
    return len(letters) >= 3 and all("a" <= ch <= "z" for ch in letters)


class StopWords:
    """The opt-out matcher of inbound SMS (``[responses] stop_words``)."""

    def __init__(self, words: tuple[str, ...] = DEFAULT_STOP_WORDS) -> None:
        normalized = [normalize_sms_text(word) for word in words]
        self.words = tuple(w for w in normalized if w)
        self.whole = frozenset(self.words)
        # The whole message without spaces too: "回 T 退订" and "OPT-OUT" still match.
        self.compact = frozenset(w.replace(" ", "") for w in self.words)
        self.leading = tuple(
            sorted((w for w in self.words if _is_first_word_keyword(w)), key=len, reverse=True)
        )

    def matches(self, body: str) -> bool:
        """Whether an inbound SMS body is an opt-out."""
        text = normalize_sms_text(body)
        if not text:
            return False
        if text in self.whole or text.replace(" ", "") in self.compact:
            return True
        tokens = text.split(" ")
        for word in self.leading:
            parts = word.split(" ")
            if tokens[: len(parts)] == parts:
                return True
        return False


DEFAULT_STOP_MATCHER = StopWords()


# "Reply STOP to opt out", "Text END to quit", "回T退订", "回复TD退订", "退订回T".
_INSTRUCTIONS = (
    re.compile(
        r"\b(?:reply|text|txt|send)\s+[\"'\u201c\u2018]?([A-Za-z]+)[\"'\u201d\u2019]?\s+"
        r"(?:to\s+)?(?:opt[\s-]?out|unsubscribe|unsub|stop|cancel|end|quit)",
        re.IGNORECASE,
    ),
    re.compile(r"回(?:复)?\s*[\"'\u201c\u2018]?([A-Za-z0-9]{1,6})[\"'\u201d\u2019]?\s*(?:即可)?(?:退订|取消)"),
    re.compile(r"(?:退订|取消订阅)\s*(?:请)?回(?:复)?\s*[\"'\u201c\u2018]?([A-Za-z0-9\u4e00-\u9fff]{1,6})"),
)


def opt_out_instructions(text: str) -> list[str]:
    """The reply words an SMS tells its reader to send to opt out, in order."""
    found: list[str] = []
    for pattern in _INSTRUCTIONS:
        found.extend(match.group(1) for match in pattern.finditer(text))
    return found
