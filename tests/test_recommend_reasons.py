"""Recommendation reasons: one wording, translatable for every message language."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from campaign.recommend.reasons import PHRASES, localize_reason, phrase


@pytest.mark.parametrize(
    ("english", "chinese"),
    [
        ("because you bought Silk Scarf", "因为您买过Silk Scarf"),
        ("because you viewed Silk Scarf", "因为您看过Silk Scarf"),
        ("similar to Silk Scarf you bought", "与您买过的Silk Scarf相似"),
        ("similar to Silk Scarf you viewed", "与您看过的Silk Scarf相似"),
        ("popular in Beauty", "Beauty热卖"),
        ("popular now", "当下热卖"),
        ("buy again", "再次购买"),
        ("follows your purchase of Silk Scarf", "接着您买过的Silk Scarf"),
    ],
)
def test_every_reason_the_recommender_writes_reads_in_chinese(english: str, chinese: str) -> None:
    assert localize_reason(english, "zh-CN") == chinese
    assert localize_reason(english, "zh_TW") == chinese
    assert localize_reason(english, "en-GB") == english


def test_unknown_text_and_locales_come_back_unchanged() -> None:
    assert localize_reason("hand-picked for you", "zh-CN") == "hand-picked for you"
    assert localize_reason("buy again", "fr") == "buy again"
    assert localize_reason("buy again", None) == "buy again"


@given(st.sampled_from(sorted(PHRASES)), st.text(min_size=1, max_size=40))
def test_any_product_name_survives_translation(kind: str, name: str) -> None:
    english = phrase(kind, item=name, category=name)
    assert localize_reason(english, "zh-CN") == phrase(kind, "zh", item=name, category=name)
