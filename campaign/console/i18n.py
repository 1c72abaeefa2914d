"""The console's languages: English and Simplified Chinese, from gettext catalogs.

The words are marked in the pages (``_()`` and ``{% trans %}``, Jinja2's i18n
extension) and in the console's Python (:func:`N_` for words named before a request
has a language); ``pybabel extract`` collects them (``babel.cfg``), the translations
live in ``locale/zh_CN/LC_MESSAGES/console.po`` and are compiled to ``console.mo``
beside it, which the package ships (docs/console.md, "Languages").

A request's language is the ``campaign_lang`` cookie (the header's links set it,
without JavaScript), else the best match of the browser's ``Accept-Language``, else
English. Dates are shown in UTC, numbers and money in the language's style (babel).
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from babel import Locale
from babel.dates import format_date
from babel.numbers import format_decimal, format_percent
from babel.support import NullTranslations, Translations

from campaign.common.money import format_money, minor_digits

LOCALE_DIR = Path(__file__).resolve().parent / "locale"
DOMAIN = "console"
COOKIE = "campaign_lang"
# (the ``<html lang>`` tag, the catalog's folder, the name shown in the switch)
LANGUAGES = {"en": ("en", "English"), "zh-CN": ("zh_CN", "中文")}
DEFAULT = "en"


def N_(message: str) -> str:
    """Mark ``message`` for the catalog without translating it now (translated when shown)."""
    return message


# Words the core hands over as data (roles, states, statuses, decisions, record
# actions): shown through the pages' ``word`` filter, translated when known.
WORDS = frozenset({
    N_("marketer"), N_("analyst"), N_("operator"),
    N_("running"), N_("paused"), N_("paused by pause-all"), N_("paused in config.toml"),
    N_("queued"), N_("held_out"), N_("skipped"), N_("sent"), N_("sending"), N_("failed"),
    N_("dead"), N_("delivered"), N_("opened"), N_("clicked"), N_("bounced"),
    N_("finished"), N_("started"), N_("planned"), N_("error"), N_("test"),
    N_("pause"), N_("resume"), N_("email"), N_("sms"), N_("high"), N_("medium"), N_("low"),
    N_("enabled"), N_("disabled"), N_("done"), N_("missed"), N_("converted"),
    N_("complained"), N_("unsubscribed"),
    # why a customer got no message (SkipReason)
    N_("suppressed"), N_("no_consent"), N_("no_address"), N_("frequency_capped"),
    N_("cooldown"), N_("template_error"), N_("expired"), N_("budget"), N_("recipient_cap"),
    N_("invalid_timezone"),
    # the uplift model's segments
    N_("persuadable"), N_("sure thing"), N_("lost cause"), N_("sleeping dog"),
})


def word_in(value: Any, language: str) -> str:
    """A data word of the core (a role, a status) in ``language``; other text as is."""
    text = "" if value is None else str(value)
    if text in WORDS:
        return str(translations(language).gettext(text))
    parts = text.split(".")
    # A run's counts name a skip with its reason: ``skipped.no_consent``.
    if len(parts) > 1 and all(part in WORDS for part in parts):
        return ": ".join(word_in(part, language) for part in parts)
    return text


@lru_cache(maxsize=len(LANGUAGES))
def translations(language: str) -> NullTranslations:
    """The compiled catalog of ``language`` (English: the words as written)."""
    folder = LANGUAGES.get(language, LANGUAGES[DEFAULT])[0]
    if language == DEFAULT:
        return NullTranslations()
    return Translations.load(str(LOCALE_DIR), [folder], domain=DOMAIN)


def _accepted(header: str) -> list[tuple[float, str]]:
    """The tags of an ``Accept-Language`` header with their weights, best first."""
    found: list[tuple[float, str]] = []
    for position, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        weight = 1.0
        if params.strip().startswith("q="):
            try:
                weight = float(params.strip()[2:])
            except ValueError:
                weight = 0.0
        if tag and weight > 0:
            # The position breaks ties so equal weights keep the browser's order.
            found.append((weight - position * 1e-6, tag.strip()))
    return sorted(found, reverse=True)


def _match(tag: str) -> str | None:
    """The console's language for one browser tag: any ``zh`` but the traditional
    scripts and regions is Simplified Chinese; any ``en`` is English."""
    lowered = tag.lower().replace("_", "-")
    if lowered in ("zh", "zh-cn", "zh-sg", "zh-hans") or lowered.startswith("zh-hans-"):
        return "zh-CN"
    if lowered == "en" or lowered.startswith("en-"):
        return "en"
    return None


def choose_language(cookie: str | None, accept_language: str | None) -> str:
    """The language of a request: the cookie's when it names one, else the browser's
    first known language, else English."""
    if cookie in LANGUAGES:
        return str(cookie)
    for _, tag in _accepted(accept_language or ""):
        matched = _match(tag)
        if matched is not None:
            return matched
    return DEFAULT


def gettext_for(language: str) -> Any:
    """``gettext`` of ``language`` for messages built in Python."""
    return translations(language).gettext


@lru_cache(maxsize=len(LANGUAGES))
def _locale(language: str) -> Locale:
    return Locale.parse(LANGUAGES.get(language, LANGUAGES[DEFAULT])[0])


def format_when(value: Any, language: str) -> str:
    """A UTC time for people: ``2026-12-03 09:00 UTC`` in English (unambiguous in
    every English-speaking country), ``2026年12月3日 09:00 UTC`` in Chinese."""
    if not isinstance(value, datetime):
        return ""
    moment = value if value.tzinfo else value.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    if language == DEFAULT:
        return f"{moment:%Y-%m-%d %H:%M} UTC"
    day = format_date(moment.date(), format="long", locale=_locale(language))
    return f"{day} {moment:%H:%M} UTC"


def format_number(value: Any, language: str, decimals: int | None = None) -> str:
    """A count or measure in the language's digits grouping (``12,345``)."""
    if value is None:
        return ""
    if decimals is None:
        return str(format_decimal(value, locale=_locale(language)))
    pattern = "#,##0" + ("." + "0" * decimals if decimals else "")
    return str(format_decimal(value, format=pattern, locale=_locale(language)))


def format_share(value: Any, language: str, decimals: int = 1) -> str:
    """A share (0.123) as a percentage in the language's style (``12.3%``)."""
    if value is None:
        return ""
    pattern = "#,##0" + ("." + "0" * decimals if decimals else "") + "%"
    return str(format_percent(value, format=pattern, locale=_locale(language)))


def format_money_for(minor: Any, currency: str, language: str) -> str:
    """Integer minor units of ``currency`` for people (``¥1,200``, ``US$12.50``)."""
    if minor is None:
        return ""
    return format_money(minor, currency, _locale(language))


def format_points(share: Any, language: str, decimals: int = 1) -> str:
    """A difference of two shares in percentage points, signed: ``+6.0 pts``."""
    if share is None:
        return ""
    number = format_decimal(
        float(share) * 100, format="+#,##0." + "0" * decimals + ";-#,##0." + "0" * decimals,
        locale=_locale(language),
    )
    return str(translations(language).gettext(N_("%(value)s pts")) % {"value": number})


def format_uplift(value: Any, outcome: str, currency: str, language: str) -> str:
    """An uplift model's estimate for people: percentage points for a rate outcome
    (converted, visited), signed money in the shop currency for revenue (major units)."""
    if value is None:
        return ""
    if outcome != "revenue":
        return format_points(value, language)
    minor = round(float(value) * 10 ** minor_digits(currency))
    text = format_money_for(abs(minor), currency, language)
    return ("+" if minor >= 0 else "-") + text
