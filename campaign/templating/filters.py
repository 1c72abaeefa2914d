"""The locale-aware filters of templates: ``money``, ``date``, ``datetime``, ``percent``,
``number``; formatted with babel in the recipient's locale and time zone, cached."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_datetime
from babel.numbers import format_decimal, format_percent
from jinja2 import pass_context
from jinja2.runtime import Context

from campaign.common.money import format_money


@lru_cache(maxsize=256)
def _parse_locale(value: str) -> Locale:
    try:
        return Locale.parse(value.replace("-", "_"))
    except (UnknownLocaleError, ValueError, TypeError):
        return Locale.parse("en")


def _to_datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"not an ISO 8601 date: {value!r}") from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise TypeError(f"expected a date, got {type(value).__name__}")


def _zone_name(context: Context) -> str:
    """The reader's timezone name: the user's, else the shop's, else UTC."""
    for owner in ("user", "shop"):
        value = context.get(owner)
        if isinstance(value, dict) and isinstance(value.get("timezone"), str):
            if _zone(value["timezone"]) is not None:
                return str(value["timezone"])
    return "UTC"


@lru_cache(maxsize=1024)
def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _locale_name(context: Context) -> str:
    value = context.get("locale")
    return value if isinstance(value, str) else "en"


@pass_context
def money_filter(context: Context, cents: Any, currency: str | None = None) -> str:
    """``{{ price_cents|money }}``: integer minor units → ``¥129.00`` / ``CN¥129.00``.

    The currency defaults to ``shop.currency``; the format follows ``locale``.
    """
    if isinstance(cents, bool) or not isinstance(cents, int | Decimal):
        raise TypeError(f"money expects integer cents, got {type(cents).__name__}")
    if currency is None:
        shop = context.get("shop")
        currency = shop.get("currency", "CNY") if isinstance(shop, dict) else "CNY"
    return _format_money(int(cents), currency, _locale_name(context))


# Prices repeat across thousands of messages (one catalogue); babel is the slow part.
@lru_cache(maxsize=65_536)
def _format_money(cents: int, currency: str, locale: str) -> str:
    return format_money(cents, currency, _parse_locale(locale))


@pass_context
def date_filter(context: Context, value: Any, format: str = "long") -> str:
    """``{{ coupon.expires_at|date }}``: a date in the reader's locale and timezone.

    ``format`` is ``short``, ``medium``, ``long`` or ``full``.
    """
    if format not in ("short", "medium", "long", "full"):
        raise ValueError("date format must be short, medium, long or full")
    if not isinstance(value, str | date):
        raise TypeError(f"expected a date, got {type(value).__name__}")
    return _format_date(value, _zone_name(context), _locale_name(context), format)


# Every coupon of a run expires on the same few days: format each once.
@lru_cache(maxsize=16_384)
def _format_date(value: str | date, zone: str, locale: str, format: str) -> str:
    moment = _to_datetime(value).astimezone(_zone(zone))
    return format_date(moment.date(), format=format, locale=_parse_locale(locale))


@pass_context
def datetime_filter(context: Context, value: Any, format: str = "medium") -> str:
    """``{{ ts|datetime }}``: date and time in the reader's locale and timezone."""
    if format not in ("short", "medium", "long", "full"):
        raise ValueError("datetime format must be short, medium, long or full")
    moment = _to_datetime(value).astimezone(_zone(_zone_name(context)))
    return format_datetime(moment, format=format, locale=_parse_locale(_locale_name(context)))


@pass_context
def percent_filter(context: Context, value: Any) -> str:
    """``{{ coupon.percent_off|percent }}``: percentage points → ``20%`` in the locale."""
    if isinstance(value, bool):
        raise TypeError("percent expects a number")
    return _format_percent(str(value), _locale_name(context))


@lru_cache(maxsize=4096)
def _format_percent(value: str, locale: str) -> str:
    try:
        fraction = Decimal(value) / 100
    except InvalidOperation:
        raise TypeError(f"percent expects a number, got {value!r}") from None
    return format_percent(fraction, locale=_parse_locale(locale))


@pass_context
def number_filter(context: Context, value: Any) -> str:
    """``{{ n|number }}``: a number with the locale's grouping and decimal signs."""
    return format_decimal(Decimal(str(value)), locale=_parse_locale(_locale_name(context)))
