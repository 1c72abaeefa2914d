"""The console in English and Simplified Chinese: the catalog is complete and compiled,
no page carries words outside it, every page renders in both languages, the browser's
language and the switch choose it, and numbers, money and dates follow it."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po
from jinja2 import Environment

from campaign.console import i18n
from campaign.console.pages import PAGES_DIR
from campaign.measurement.reports import tables
from tests.console_helpers import Shop, client_for, make_shop
from tests.test_console_app import ROUTES

LOCALE = Path(i18n.__file__).resolve().parent / "locale"
PO = LOCALE / "zh_CN" / "LC_MESSAGES" / "console.po"
MO = LOCALE / "zh_CN" / "LC_MESSAGES" / "console.mo"
ZH = {"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"}


@pytest.fixture
def shop(tmp_path: Path, console_template: Path) -> Iterator[Shop]:
    made = make_shop(tmp_path, console_template)
    yield made
    made.engine.dispose()


def _extracted() -> set[str]:
    """Every message the console marks, extracted as ``babel.cfg`` says."""
    method_map = [("**.py", "python"), ("pages/**.html", "jinja2")]
    options = {"pages/**.html": {"extensions": "jinja2.ext.i18n", "trimmed": "true"}}
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None, "say": (2,)}
    reports = Path(tables.__file__).resolve().parent  # the report tables' labels
    found = [
        *extract_from_dir(str(PAGES_DIR.parent), method_map, options, keywords=keywords),
        *extract_from_dir(str(reports), [("**.py", "python")], keywords=keywords),
    ]
    return {m[2] if isinstance(m[2], str) else m[2][0] for m in found}


def test_every_marked_message_has_a_chinese_translation() -> None:
    with PO.open("rb") as source:
        catalog = read_po(source, locale="zh_CN")
    translated = {m.id: m.string for m in catalog if m.id}
    missing = sorted(m for m in _extracted() if not translated.get(m))
    assert not missing, f"untranslated (run pybabel extract, then edit {PO.name}): {missing}"
    assert not [m.id for m in catalog if m.id and m.fuzzy]


def test_the_compiled_catalog_matches_its_source() -> None:
    with PO.open("rb") as source:
        po = {m.id: m.string for m in read_po(source, locale="zh_CN") if m.id}
    with MO.open("rb") as compiled:
        mo = {m.id: m.string for m in read_mo(compiled) if m.id}
    assert mo == po, "console.mo is stale: pybabel compile -d campaign/console/locale -D console"


# Text a page may show outside the catalog: names of things, not words.
_NOT_WORDS = re.compile(r"&[a-z]+;|\bv\b|\bUTC\b")
_ATTRIBUTES = re.compile(r'\b(?:placeholder|title|aria-label|alt)="([^"{]*)"')


def _literal_text(source: str) -> str:
    """A page's own text: every ``{{ }}``, ``{% %}`` and ``{% trans %}`` block replaced
    by a NUL, so tags and attributes stay whole around them."""
    env = Environment(extensions=["jinja2.ext.i18n"])
    parts: list[str] = []
    depth = 0
    for _, kind, value in env.lex(source):
        if kind == "name" and value == "trans":
            depth += 1
        elif kind == "name" and value == "endtrans":
            depth -= 1
        if kind == "data" and depth == 0:
            parts.append(value)
        elif not parts or parts[-1] != "\0":
            parts.append("\0")
    return "".join(parts)


def test_no_page_has_words_outside_the_catalog() -> None:
    """The literal text of every page (outside ``{{ }}``, ``{% %}`` and tags), and its
    placeholders and titles, hold no English word: all of it goes through ``_()``."""
    bare: list[str] = []
    for page in sorted(PAGES_DIR.glob("*.html")):
        text = _literal_text(page.read_text(encoding="utf-8"))
        shown = _ATTRIBUTES.findall(text)
        shown.append(re.sub(r"<[^>]*>", " ", re.sub(r"<(script|style)\b.*?</\1>", " ", text)))
        for piece in shown:
            for word in re.findall(r"[A-Za-z]{2,}", _NOT_WORDS.sub(" ", piece)):
                bare.append(f"{page.name}: {word!r}")
    assert not bare, "\n".join(bare)


def test_the_language_is_the_cookie_else_the_browser_else_english() -> None:
    assert i18n.choose_language(None, None) == "en"
    assert i18n.choose_language(None, "zh-CN,zh;q=0.9") == "zh-CN"
    assert i18n.choose_language(None, "fr-FR, zh-Hans;q=0.8, en;q=0.7") == "zh-CN"
    assert i18n.choose_language(None, "en-GB,zh-CN;q=0.9") == "en"
    assert i18n.choose_language(None, "zh-TW") == "en"  # traditional: not this catalog
    assert i18n.choose_language(None, "de, zh;q=0") == "en"
    assert i18n.choose_language("en", "zh-CN") == "en"
    assert i18n.choose_language("zh-CN", "en-US") == "zh-CN"
    assert i18n.choose_language("klingon", "zh") == "zh-CN"


def test_numbers_money_and_dates_follow_the_language() -> None:
    at = datetime(2026, 12, 3, 9, 5, tzinfo=UTC)
    assert i18n.format_when(at, "en") == "2026-12-03 09:05 UTC"
    assert i18n.format_when(at, "zh-CN") == "2026年12月3日 09:05 UTC"
    assert i18n.format_number(1234567, "zh-CN") == "1,234,567"
    assert i18n.format_share(0.1234, "en") == "12.3%"
    assert i18n.format_money_for(129950, "CNY", "zh-CN") == "¥1,299.50"
    assert i18n.format_money_for(129950, "CNY", "en") == "CN¥1,299.50"
    assert i18n.format_money_for(1200, "JPY", "en") == "¥1,200"


@pytest.mark.parametrize("language", ["en", "zh-CN"])
def test_every_page_renders_in_both_languages(shop: Shop, language: str) -> None:
    pages = [path for method, path, _, roles in ROUTES if method == "GET"]
    header = {"Accept-Language": language}
    with client_for(shop, "operator") as client:
        for path in pages:
            answer = client.get(path, headers=header)
            # This shop has no churn model and no saved version: those two pages are
            # the "not possible" page, which speaks the language as well.
            assert answer.status_code in (200, 404), (path, answer.text[:300])
            assert f'<html lang="{language}">' in answer.text, path
            if language == "zh-CN":
                assert "退出登录" in answer.text and ">Log out<" not in answer.text, path
                assert "活动" in answer.text, path
            else:
                assert ">Log out<" in answer.text and "退出登录" not in answer.text, path
    with client_for(shop) as anonymous:
        login = anonymous.get("/login", headers=header).text
        assert f'<html lang="{language}">' in login
        assert ("登录" in login) == (language == "zh-CN")


def test_the_switch_sets_a_cookie_and_goes_back(shop: Shop) -> None:
    with client_for(shop, "marketer") as client:
        answer = client.get("/language?to=zh-CN&next=/templates")
        assert answer.status_code == 303 and answer.headers["location"] == "/templates"
        assert "campaign_lang=zh-CN" in answer.headers["set-cookie"]
        page = client.get("/templates", headers={"Accept-Language": "en"}).text
        assert '<html lang="zh-CN">' in page and "模板" in page
        assert client.get("/language?to=en&next=//evil.example").headers["location"] == "/"
        assert '<html lang="en">' in client.get("/").text


def test_refusals_speak_the_language_too(shop: Shop) -> None:
    with client_for(shop, "marketer") as client:
        answer = client.get("/outbox", headers=ZH)
        assert answer.status_code == 403 and "营销人员" in answer.text
        refused = client.post("/campaigns/winback/pause", data={}, headers=ZH)
        assert refused.status_code == 403 and "CSRF" in refused.text and "已拒绝" in refused.text
