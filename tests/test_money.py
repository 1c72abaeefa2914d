"""Money in the shop's currency: JPY has no decimals, KWD three, CNY and USD two.

Parsing and printing use the same number of decimals, so an amount survives a round
trip through text exactly, and over-precise text is refused rather than rounded.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from campaign.common.money import (
    MAX_MINOR_UNITS,
    format_amount,
    format_money,
    format_plain,
    minor_digits,
    parse_amount,
    to_major,
)
from campaign.coupons.policy import coupons_issued_payload

DIGITS = {"JPY": 0, "KWD": 3, "CNY": 2, "USD": 2}
CURRENCIES = st.sampled_from(sorted(DIGITS))


def test_each_currency_has_its_iso_4217_minor_unit() -> None:
    assert {code: minor_digits(code) for code in DIGITS} == DIGITS


def test_an_unknown_currency_is_refused() -> None:
    with pytest.raises(ValueError, match="not an ISO 4217 currency"):
        minor_digits("ZZZ")


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [
        ("1200", "JPY", 1200),
        ("1200.00", "JPY", 1200),
        ("12.5", "KWD", 12500),
        ("12.345", "KWD", 12345),
        ("129.5", "CNY", 12950),
        (" 7.05 ", "USD", 705),
        ("0", "USD", 0),
    ],
)
def test_amounts_parse_to_the_currencys_minor_units(text: str, currency: str, minor: int) -> None:
    assert parse_amount(text, currency) == minor


@pytest.mark.parametrize(
    ("text", "currency", "reason"),
    [
        ("1200.5", "JPY", "more decimals than JPY has (no decimals)"),
        ("12.3456", "KWD", "more decimals than KWD has (3 decimals)"),
        ("9.999", "CNY", "more decimals than CNY has (2 decimals)"),
        ("-1", "USD", "not a decimal amount"),
        ("1e3", "USD", "not a decimal amount"),
        ("1,5", "USD", "not a decimal amount"),
        ("NaN", "USD", "not a decimal amount"),
        ("", "USD", "not a decimal amount"),
        ("99999999999999999999999.00", "USD", "over the largest amount accepted"),
        ("9" * 10_000, "JPY", "over the largest amount accepted"),
    ],
)
def test_over_precise_or_malformed_amounts_are_refused_not_rounded(
    text: str, currency: str, reason: str
) -> None:
    with pytest.raises(ValueError, match=re.escape(reason)) as caught:
        parse_amount(text, currency)
    assert len(str(caught.value)) < 200  # a huge cell never becomes a huge message


@given(currency=CURRENCIES, minor=st.integers(min_value=0, max_value=MAX_MINOR_UNITS))
def test_minor_units_round_trip_through_their_text(currency: str, minor: int) -> None:
    text = format_amount(minor, currency)
    assert parse_amount(text, currency) == minor
    assert Decimal(text) == to_major(minor, currency)


@given(
    currency=CURRENCIES,
    whole=st.integers(min_value=0, max_value=10**9),
    fraction=st.text("0123456789", min_size=0, max_size=6),
)
def test_text_parses_exactly_or_is_refused_for_its_extra_precision(
    currency: str, whole: int, fraction: str
) -> None:
    digits = DIGITS[currency]
    text = f"{whole}.{fraction}" if fraction else str(whole)
    value = Decimal(text)
    significant = fraction.rstrip("0")
    if len(significant) > digits:
        with pytest.raises(ValueError, match="more decimals"):
            parse_amount(text, currency)
        return
    minor = parse_amount(text, currency)
    # No precision lost: the minor units are the decimal value exactly.
    assert Decimal(minor) == value.scaleb(digits)
    assert parse_amount(format_amount(minor, currency), currency) == minor


@pytest.mark.parametrize(
    ("minor", "currency", "locale", "shown"),
    [
        (1200, "JPY", "en", "¥1,200"),
        (1200, "JPY", "ja_JP", "￥1,200"),
        (12500, "KWD", "en", "KWD12.500"),
        (12950, "CNY", "zh_CN", "¥129.50"),
        (705, "USD", "en_US", "$7.05"),
    ],
)
def test_money_is_shown_with_the_currencys_own_decimals(
    minor: int, currency: str, locale: str, shown: str
) -> None:
    assert format_money(minor, currency, locale) == shown


def test_report_numbers_use_the_currencys_decimals() -> None:
    assert format_plain(120000, "JPY") == "120,000"
    assert format_plain(12500, "KWD") == "12.500"
    assert format_plain(-350.0, "USD", signed=True) == "-3.50"
    assert format_plain(350, "CNY", signed=True) == "+3.50"


@pytest.mark.parametrize(
    ("currency", "minor", "text"), [("JPY", 5000, "5000"), ("KWD", 5500, "5.500"),
                                    ("CNY", 9900, "99.00")]
)
def test_the_shops_webhook_names_the_minimum_order_in_its_currency(
    currency: str, minor: int, text: str
) -> None:
    body = coupons_issued_payload(
        [{"code": "CB-7KQ4M9XH2P", "user_id": "U-1", "percent_off": 20,
          "min_order_cents": minor, "expires_at": datetime(2026, 11, 15, tzinfo=UTC)}],
        issued_at=datetime(2026, 11, 1, tzinfo=UTC), shop="Demo Shop", currency=currency,
    )
    data = json.loads(body)
    assert data["currency"] == currency
    assert data["data"][0]["min_order"] == text
