"""The words of a recommendation's reason, in every language the templates speak.

The recommender writes reasons in English: the CSV contract and analysts read them.
A message shows them in its recipient's language. Both come from :data:`PHRASES`, so
every reason the recommender writes can be translated: :func:`localize_reason`
recognises the English phrase and puts the same product or category into the other
language's phrase. Pure; no I/O.
"""

from __future__ import annotations

import re
from functools import cache

# kind → language → phrase; ``{item}`` is a product name, ``{category}`` a category.
PHRASES: dict[str, dict[str, str]] = {
    "bought": {"en": "because you bought {item}", "zh": "因为您买过{item}"},
    "viewed": {"en": "because you viewed {item}", "zh": "因为您看过{item}"},
    "similar_bought": {"en": "similar to {item} you bought", "zh": "与您买过的{item}相似"},
    "similar_viewed": {"en": "similar to {item} you viewed", "zh": "与您看过的{item}相似"},
    "popular_in": {"en": "popular in {category}", "zh": "{category}热卖"},
    "popular": {"en": "popular now", "zh": "当下热卖"},
    "buy_again": {"en": "buy again", "zh": "再次购买"},
    # The sequence model: the pick usually comes next after this purchase.
    "follows": {"en": "follows your purchase of {item}", "zh": "接着您买过的{item}"},
}


def phrase(kind: str, language: str = "en", **values: str) -> str:
    """The reason of ``kind`` in ``language`` (falls back to English)."""
    by_language = PHRASES[kind]
    return by_language.get(language, by_language["en"]).format(**values)


@cache
def _patterns() -> tuple[tuple[str, re.Pattern[str]], ...]:
    compiled = []
    for kind, by_language in PHRASES.items():
        english = re.escape(by_language["en"])
        english = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>.+)", english)
        compiled.append((kind, re.compile(rf"^{english}$", re.DOTALL)))
    # Longer phrases first, so "similar to X you bought" never reads as another kind.
    compiled.sort(key=lambda item: -len(PHRASES[item[0]]["en"]))
    return tuple(compiled)


def localize_reason(text: str, locale: str | None) -> str:
    """``text`` (an English reason from the recommender) in ``locale``'s language.

    Unknown locales, English, and texts that are no known phrase come back unchanged.
    """
    language = (locale or "en").replace("_", "-").split("-")[0].lower()
    if language == "en" or not text:
        return text
    for kind, pattern in _patterns():
        match = pattern.match(text)
        if match is not None:
            if language not in PHRASES[kind]:
                return text
            return phrase(kind, language, **match.groupdict())
    return text
