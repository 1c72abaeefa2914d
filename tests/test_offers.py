"""Coupon policy, codes, money parsing, the issued-codes webhook body and its signature."""

from __future__ import annotations

import json
import random
import secrets
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from campaign.common import signing
from campaign.common.errors import SignatureError
from campaign.config import OfferConfig
from campaign.coupons.policy import (
    CODE_ALPHABET,
    CODE_LENGTH,
    Offer,
    choose_offer,
    coupons_issued_payload,
    looks_like_code,
    new_coupon_code,
    normalize_code,
)

POLICY = OfferConfig(
    percent_off_by_tier={"high": 20, "medium": 10, "low": 5},
    high_value_bonus_percent=5,
    min_order="99.00",
    valid_days=14,
)


def test_alphabet_has_no_look_alike_characters() -> None:
    assert not set("0O1IL") & set(CODE_ALPHABET)
    assert len(set(CODE_ALPHABET)) == len(CODE_ALPHABET) == 31


@given(seed=st.integers(min_value=0, max_value=2**32), prefix=st.sampled_from(["", "CB", "WB2"]))
def test_codes_use_only_the_alphabet_and_have_the_fixed_length(seed: int, prefix: str) -> None:
    code = new_coupon_code(random.Random(seed), prefix=prefix)
    body = code.split("-", 1)[1] if prefix else code
    assert len(body) == CODE_LENGTH
    assert set(body) <= set(CODE_ALPHABET)
    assert code.startswith(f"{prefix}-") if prefix else "-" not in code
    assert looks_like_code(code)


def test_codes_from_the_system_rng_are_unique_over_many_draws() -> None:
    rng = secrets.SystemRandom()
    codes = [new_coupon_code(rng) for _ in range(50_000)]
    assert len(set(codes)) == len(codes)


def test_codes_are_reproducible_with_a_seeded_rng() -> None:
    assert new_coupon_code(random.Random(7)) == new_coupon_code(random.Random(7))
    assert new_coupon_code(random.Random(7)) != new_coupon_code(random.Random(8))


def test_symbols_are_drawn_roughly_uniformly() -> None:
    rng = random.Random(1)
    counts = dict.fromkeys(CODE_ALPHABET, 0)
    for _ in range(3_000):
        for ch in new_coupon_code(rng, prefix=""):
            counts[ch] += 1
    expected = 30_000 / len(CODE_ALPHABET)
    assert all(abs(n - expected) < expected * 0.15 for n in counts.values())


def test_codes_typed_at_a_checkout_are_normalized() -> None:
    assert normalize_code(" cb-7kq4 m9xh2p ") == "CB-7KQ4M9XH2P"
    assert not looks_like_code("CB-0000000000")


@pytest.mark.parametrize(
    ("tier", "high_value", "percent"),
    [("high", False, 20), ("high", True, 25), ("medium", False, 10), ("low", True, 10)],
)
def test_offer_follows_the_tier_table_plus_the_high_value_bonus(
    tier: str, high_value: bool, percent: int
) -> None:
    assert choose_offer(tier, high_value, POLICY) == Offer(percent, 9900, 14)


def test_an_unlisted_tier_gets_the_smallest_configured_discount() -> None:
    assert choose_offer("unheard-of", False, POLICY).percent_off == 5


def test_the_discount_is_capped_at_ninety_percent() -> None:
    generous = OfferConfig(percent_off_by_tier={"high": 90}, high_value_bonus_percent=50)
    assert choose_offer("high", True, generous).percent_off == 90


def test_an_offer_expires_valid_days_after_issue() -> None:
    issued = datetime(2026, 11, 1, tzinfo=UTC)
    assert Offer(10, 0, 14).expires_at(issued) == issued + timedelta(days=14)


@pytest.mark.parametrize(
    ("currency", "min_order", "minor"),
    [("CNY", "99.00", 9900), ("JPY", "5000", 5000), ("KWD", "5.5", 5500), ("USD", "0", 0)],
)
def test_min_order_is_read_in_the_shop_currency(currency: str, min_order: str, minor: int) -> None:
    policy = POLICY.model_copy(update={"min_order": min_order})
    assert choose_offer("high", False, policy, currency).min_order_cents == minor


def test_min_order_with_more_decimals_than_the_shop_currency_is_a_config_error() -> None:
    from campaign.config import Config

    with pytest.raises(ValueError, match=r"min_order: more decimals than JPY has"):
        Config.model_validate(
            {"shop": {"currency": "JPY"}, "campaigns": [{"name": "c", "channels": [],
                                                         "offer": {"min_order": "99.50"}}]}
        )
    with pytest.raises(ValueError, match="must be an amount"):
        OfferConfig(min_order="9,99")


def test_issued_payload_names_each_code_with_the_shops_ids_and_decimal_amounts() -> None:
    expires = datetime(2026, 11, 15, tzinfo=UTC)
    body = coupons_issued_payload(
        [
            {
                "code": "CB-7KQ4M9XH2P",
                "user_id": "U-1",
                "percent_off": 20,
                "min_order_cents": 9900,
                "expires_at": expires,
            }
        ],
        issued_at=datetime(2026, 11, 1, tzinfo=UTC),
        shop="Demo Shop",
    )
    data = json.loads(body)
    assert data["type"] == "coupons.issued"
    assert data["data"] == [
        {
            "code": "CB-7KQ4M9XH2P",
            "user_id": "U-1",
            "percent_off": 20,
            "min_order": "99.00",
            "expires_at": "2026-11-15T00:00:00+00:00",
        }
    ]


def test_signature_matches_the_standard_webhooks_reference_vector() -> None:
    # The example of the Standard Webhooks specification (and its reference libraries).
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    msg_id = "msg_p5jXN8AQM9LWM0D4loKWxJek"
    body = b'{"test": 2432232314}'
    assert signing.sign(secret, msg_id, 1614265330, body) == (
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    )


def test_a_signed_request_verifies_and_a_tampered_one_does_not() -> None:
    body = b'{"type":"coupons.issued"}'
    headers = signing.sign_headers("s3cret", "evt-1", 1_700_000_000, body)
    assert signing.verify(["old", "s3cret"], headers, body, now=1_700_000_010) == "evt-1"
    with pytest.raises(SignatureError, match="does not match"):
        signing.verify(["s3cret"], headers, body + b" ", now=1_700_000_010)
    with pytest.raises(SignatureError, match="from now"):
        signing.verify(["s3cret"], headers, body, now=1_700_000_000 + 3600)
    with pytest.raises(SignatureError, match="missing"):
        signing.verify(["s3cret"], {"webhook-id": "evt-1"}, body, now=1_700_000_000)


@settings(max_examples=50)
@given(body=st.binary(max_size=200), msg_id=st.text("abc123_-", min_size=1, max_size=20))
def test_any_body_signed_with_a_secret_verifies_with_that_secret(body: bytes, msg_id: str) -> None:
    headers = signing.sign_headers("k", msg_id, 100, body)
    assert signing.verify(["k"], headers, body, now=100) == msg_id
