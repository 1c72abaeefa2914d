"""Money in the shop's currency: integer minor units, parsed and printed exactly.

Every amount the product stores or computes is an integer count of the currency's
minor unit (the ``*_cents`` columns keep their historic name but mean *minor units*):
a yen for JPY, a fils (1/1000 dinar) for KWD, a fen for CNY, a cent for USD. How
many decimals a currency has comes from babel's CLDR data, which follows ISO 4217
except where CLDR records that a currency is used without its minor unit (IDR, HUF,
IQD... are whole units there). Parsing and printing use the same figure, so
``"1200"`` JPY is stored as 1200 and printed as ``¥1,200``.

Pure: no I/O, no floats on the way in, no rounding anywhere.
"""

from __future__ import annotations

import re
from decimal import Decimal
from functools import lru_cache

from babel import Locale
from babel.numbers import format_currency, get_currency_precision, is_currency

# The largest amount one value may hold, in minor units. Far above any real price or
# order line, and far enough below 2**63 that sums of many such values still fit the
# databases' BIGINT and numpy's int64 (and stay exact as float64 in reports).
MAX_MINOR_UNITS = 10**15 - 1
_MAX_DIGITS = len(str(MAX_MINOR_UNITS))
_AMOUNT = re.compile(r"([0-9]+)(?:\.([0-9]+))?")
# Values are quoted in error messages; a 10 MB cell must not become a 10 MB message.
_SHOWN = 40


def shown(text: str) -> str:
    """``text`` quoted for an error message, cut to a readable length."""
    if len(text) <= _SHOWN:
        return repr(text)
    return f"{text[:_SHOWN]!r}... ({len(text)} characters)"


@lru_cache(maxsize=256)
def minor_digits(currency: str) -> int:
    """How many decimals ``currency`` (an ISO 4217 code) has: JPY 0, CNY 2, KWD 3.

    Raises:
        ValueError: babel knows no such currency.
    """
    if not is_currency(currency):
        raise ValueError(f"{currency!r} is not an ISO 4217 currency code")
    return int(get_currency_precision(currency))


def parse_amount(text: str, currency: str) -> int:
    """Integer minor units of ``currency`` for a non-negative decimal string.

    ``"1200"`` JPY → 1200, ``"12.5"`` KWD → 12500, ``"129.50"`` CNY → 12950. Exact:
    trailing zeros are fine (``"1200.00"`` JPY), a digit beyond the currency's
    decimals is refused rather than rounded. No signs, exponents, spaces inside or
    thousands separators; at most :data:`MAX_MINOR_UNITS`.

    Raises:
        ValueError: the text is not such an amount (the message says why).
    """
    digits = minor_digits(currency)
    cleaned = text.strip()
    match = _AMOUNT.fullmatch(cleaned)
    if match is None:
        example = format_amount(12950 if digits else 129, currency)
        raise ValueError(f"not a decimal amount like {example}: {shown(text)}")
    whole, fraction = match.groups()
    fraction = (fraction or "").rstrip("0")
    if len(fraction) > digits:
        decimals = f"{digits} decimal{'s' if digits != 1 else ''}" if digits else "no decimals"
        raise ValueError(f"more decimals than {currency} has ({decimals}): {shown(text)}")
    whole = whole.lstrip("0")
    # Count digits before int(): Python refuses to convert very long digit strings.
    if len(whole) + digits > _MAX_DIGITS:
        raise _too_large(text, currency)
    value = int(whole or "0") * 10**digits + int(fraction.ljust(digits, "0") or "0")
    if value > MAX_MINOR_UNITS:
        raise _too_large(text, currency)
    return value


def _too_large(text: str, currency: str) -> ValueError:
    limit = format_amount(MAX_MINOR_UNITS, currency)
    return ValueError(f"over the largest amount accepted ({limit} {currency}): {shown(text)}")


def format_amount(minor: int, currency: str) -> str:
    """Plain decimal text of ``minor`` units, as CSV files and webhooks carry it.

    ``1200`` JPY → ``"1200"``, ``12500`` KWD → ``"12.500"``, ``9900`` CNY → ``"99.00"``.
    The inverse of :func:`parse_amount`.
    """
    digits = minor_digits(currency)
    sign = "-" if minor < 0 else ""
    minor = abs(int(minor))
    if digits == 0:
        return f"{sign}{minor}"
    whole, fraction = divmod(minor, 10**digits)
    return f"{sign}{whole}.{fraction:0{digits}d}"


def to_major(minor: int | float, currency: str) -> Decimal:
    """``minor`` units as a Decimal in the currency's major unit (exact for integers)."""
    digits = minor_digits(currency)
    if isinstance(minor, float):
        return Decimal(repr(minor)).scaleb(-digits)
    return Decimal(int(minor)).scaleb(-digits)


def format_money(minor: int | float, currency: str, locale: Locale | str = "en") -> str:
    """``minor`` units for people, in ``locale``'s style: ``¥1,200``, ``KWD 12.500``.

    Floats (averages in reports) are rounded to the currency's decimals for display.
    """
    amount = to_major(minor, currency)
    return str(format_currency(amount, currency, locale=locale))


def format_plain(minor: int | float, currency: str, *, signed: bool = False) -> str:
    """``minor`` units as a grouped number without symbol: ``1,200``, ``12.500``,
    ``-3.50``; ``signed`` writes ``+`` before positive values. For report tables."""
    digits = minor_digits(currency)
    amount = to_major(minor, currency)
    text = f"{amount:{'+' if signed else ''},.{digits}f}"
    return text
