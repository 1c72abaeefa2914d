"""The console in a real browser: Debian's Chromium driven by playwright, against a real
``campaign console`` process on 127.0.0.1 and a real SQLite file.

The marketer's loop (log in, make a typo, see lint mark its line, fix it, see the preview
follow, save, see the version and the file, revert) and the operator's brake (a marketer
cannot pause, an operator can, and the planner then plans nothing) as a person clicks
them. Skipped when Chromium or playwright is missing, failed instead under
``CAMPAIGN_REQUIRE_SERVICES=1`` (CI installs both).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from campaign.config import load_config
from campaign.db.engine import make_engine
from tests.conftest import skip_or_fail
from tests.console_helpers import PASSWORD, Shop, add_role_accounts, make_shop
from tests.demo_helpers import DemoShop, campaign_cli, clean_env

CHROMIUM = os.environ.get("CAMPAIGN_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
]
FILE = "winback/en/email.txt"
# Playwright waits for what a person would wait for, up to this long (a loaded CI machine).
WAIT_MS = 30_000

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        skip_or_fail("the browser tests need playwright (pip install playwright)")
    if shutil.which(CHROMIUM) is None and not Path(CHROMIUM).is_file():
        skip_or_fail(f"the browser tests need Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def console(tmp_path: Path, console_template: Path) -> Iterator[tuple[Shop, str]]:
    """A real ``campaign console`` on a free port; (shop, base URL)."""
    yield from _serve(make_shop(tmp_path, console_template))


@pytest.fixture
def demo_console(demo_shop: DemoShop, tmp_path: Path) -> Iterator[tuple[Shop, str]]:
    """A real ``campaign console`` on a copy of the demo shop (scored customers)."""
    folder = tmp_path / "campaign-demo"
    shutil.copytree(demo_shop.folder, folder)
    add_role_accounts(folder / "campaign.db")
    config = load_config(folder / "config.toml")
    yield from _serve(Shop(folder, folder / "config.toml", config,
                           make_engine(config.database_url())))


def _serve(shop: Shop) -> Iterator[tuple[Shop, str]]:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "campaign", "--config", str(shop.config_path), "console",
         "--port", str(port)],
        cwd=shop.folder, env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=2) as answer:
                if answer.status == 200:
                    break
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            output = process.communicate()[0]
            pytest.fail(f"campaign console did not start:\n{output}")
        time.sleep(0.3)
    try:
        yield shop, base
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shop.engine.dispose()


def _log_in(browser: Any, base: str, name: str) -> Any:
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    page.set_default_timeout(WAIT_MS)
    page.goto(f"{base}/")
    assert page.url.startswith(f"{base}/login")
    page.fill("#name", name)
    page.fill("#password", PASSWORD)
    page.click("#login")
    page.wait_for_url(f"{base}/")
    assert page.inner_text("#who") == f"{name} ({name})"
    return page


def _post_without_csrf(page: Any, path: str, form: dict[str, str]) -> int:
    status: int = page.evaluate(
        """async ([path, form]) => (await fetch(path, {method: "POST",
            body: new URLSearchParams(form)})).status""",
        [path, form],
    )
    return status


def test_a_marketer_edits_lints_previews_saves_and_reverts(browser: Any, console: Any) -> None:
    shop, base = console
    path = shop.templates / FILE
    original = path.read_text(encoding="utf-8")
    page = _log_in(browser, base, "marketer")
    page.click("text=Templates")
    page.click(f'#set-winback a.file[href$="name={FILE}"]')
    page.wait_for_selector("#source")
    lines = original.split("\n")
    assert lines[0] == 'Hi {{ user.first_name or "there" }},'

    # A typo on line 1: the gutter marks that line with lint's own words.
    page.fill("#source", "\n".join(["Hi {{ frist_name }},", *lines[1:]]))
    marker = page.wait_for_selector('#gutter span[data-line="1"].marker.error')
    assert "did you mean 'first_name'?" in (marker.get_attribute("title") or "")
    finding = page.locator('#findings li.finding.error[data-line="1"]')
    assert "email.txt:1: 'frist_name' is undefined (did you mean 'first_name'?" in (
        finding.inner_text()
    )
    assert page.locator("#gutter span.marker").count() == 1

    # Fixed: the marker goes and the preview shows the new greeting for the sample user.
    fixed = "\n".join(["Hello {{ user.first_name }}, welcome back!", *lines[1:]])
    page.fill("#source", fixed)
    page.wait_for_selector('#gutter span[data-line="1"]:not(.marker)')
    page.wait_for_function(
        "document.getElementById('text-preview').textContent.includes('Hello Alex, welcome')"
    )
    assert page.locator("#gutter span.marker").count() == 0

    # Saved: a new version, and the file on disk is the edited text.
    page.click("#save")
    page.wait_for_selector("#saved")
    assert page.inner_text("#saved") == "Saved as version 2."
    assert path.read_text(encoding="utf-8") == fixed

    # The history has both versions; reverting to the first brings the text back.
    page.click("#history-link")
    page.wait_for_selector('#versions tr[data-version="2"]')
    page.click('#versions tr[data-version="1"] button.revert')
    page.wait_for_selector("#saved")
    assert page.inner_text("#saved") == "Saved as version 3."
    assert path.read_text(encoding="utf-8") == original
    assert page.input_value("#source") == original


def test_a_marketer_cannot_pause_and_an_operator_can(browser: Any, console: Any) -> None:
    shop, base = console
    marketer = _log_in(browser, base, "marketer")
    assert marketer.locator("button.pause").count() == 0
    csrf = marketer.get_attribute('form.who input[name="csrf"]', "value")
    status = marketer.evaluate(
        """async (csrf) => (await fetch("/campaigns/winback/pause", {method: "POST",
            body: new URLSearchParams({csrf, reason: "not mine"})})).status""",
        csrf,
    )
    assert status == 403
    assert marketer.get_attribute("#campaign-winback .state", "data-state") == "running"

    operator = _log_in(browser, base, "operator")
    operator.fill("#campaign-winback input[name=reason]", "wrong coupon in the copy")
    operator.click("#campaign-winback button.pause")
    operator.wait_for_selector('#campaign-winback .state[data-state="paused"]')
    assert "wrong coupon in the copy" in operator.inner_text("#campaign-winback .reason")
    assert operator.get_attribute("#campaign-care .state", "data-state") == "running"

    # The planner honours the console's switch: a run of winback plans nothing.
    run = campaign_cli("--config", str(shop.config_path), "run", "winback",
                       cwd=shop.folder, env=clean_env())
    assert run.returncode == 0, run.stderr
    assert "campaign 'winback' is paused" in run.stdout
    status_json = campaign_cli("--config", str(shop.config_path), "status", "--format", "json",
                               cwd=shop.folder, env=clean_env())
    assert '"by": "operator"' in status_json.stdout

    operator.click("text=Activity")
    operator.wait_for_selector("#activity")
    assert "campaign.paused" in operator.inner_text("#activity")


def test_a_csrf_less_post_and_a_traversal_name_are_refused(browser: Any, console: Any) -> None:
    shop, base = console
    config_text = shop.config_path.read_text(encoding="utf-8")
    before = (shop.templates / FILE).read_text(encoding="utf-8")
    page = _log_in(browser, base, "operator")
    assert _post_without_csrf(page, "/templates/save", {"name": FILE, "source": "x"}) == 403
    assert _post_without_csrf(page, "/campaigns/winback/pause", {}) == 403
    response = page.goto(f"{base}/templates/file?name=../config.toml")
    assert response is not None and response.status == 400
    assert "not a template file name" in page.inner_text("#message")
    csrf = page.get_attribute('form.who input[name="csrf"]', "value")
    status = page.evaluate(
        """async (csrf) => (await fetch("/templates/save", {method: "POST",
            body: new URLSearchParams({csrf, name: "winback/../../config.toml",
                                       source: "[database]"})})).status""",
        csrf,
    )
    assert status == 400
    assert shop.config_path.read_text(encoding="utf-8") == config_text
    assert (shop.templates / FILE).read_text(encoding="utf-8") == before


def test_the_language_follows_the_browser_and_the_switch(
    browser: Any, console: Any, tmp_path: Path
) -> None:
    shop, base = console
    # A Chinese browser gets the Chinese login page.
    chinese = browser.new_context(locale="zh-CN").new_page()
    chinese.set_default_timeout(WAIT_MS)
    chinese.goto(f"{base}/login")
    assert chinese.get_attribute("html", "lang") == "zh-CN"
    assert chinese.inner_text("#login") == "登录"

    # An English browser, without JavaScript: the header's switch is a plain link.
    context = browser.new_context(locale="en-US", java_script_enabled=False,
                                  viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    page.goto(f"{base}/login")
    page.fill("#name", "operator")
    page.fill("#password", PASSWORD)
    page.click("#login")
    page.wait_for_url(f"{base}/")
    assert page.get_attribute("html", "lang") == "en"
    assert "Campaigns" in page.inner_text("header nav")
    page.click("#lang-zh-CN")
    page.wait_for_selector('html[lang="zh-CN"]')
    assert page.url == f"{base}/"
    nav = page.inner_text("header nav")
    assert "活动" in nav and "模板" in nav and "Templates" not in nav
    assert page.inner_text("#who") == "operator (运维)"
    assert "下一个时段" in page.inner_text("#campaign-winback")
    shot = tmp_path / "campaigns-zh.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000
    # The choice stays for the next page, and switching back works the same way.
    page.click("header nav >> text=模板")
    page.wait_for_selector("#set-winback")
    assert page.get_attribute("html", "lang") == "zh-CN"
    page.click("#lang-en")
    page.wait_for_selector('html[lang="en"]')
    assert page.url == f"{base}/templates"
    context.close()


def test_the_audience_pages_and_opens_a_customers_message(
    browser: Any, demo_console: Any
) -> None:
    shop, base = demo_console
    page = _log_in(browser, base, "marketer")
    page.click("#campaign-winback a.audience")
    page.wait_for_selector("#audience")
    first = page.locator("#audience tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.user)")
    assert len(first) == 50
    assert "••••" in page.inner_text("#audience tbody tr:first-child td.address")
    page.click("#next-page")
    page.wait_for_url("**page=2")
    second = page.locator("#audience tbody tr").evaluate_all(
        "rows => rows.map(r => r.dataset.user)")
    assert second and not set(first) & set(second)
    assert "2" in page.inner_text("#pages")

    # A row opens its rendered message: subject, text and the products with reasons.
    queued = page.locator("#audience tbody tr", has_text="queued").first
    customer = queued.get_attribute("data-user")
    queued.locator("a.open").click()
    page.wait_for_selector("#message")
    assert f"{customer} via " in page.inner_text("#message h2")
    assert page.inner_text("#message-text").strip()
    assert "••••" in page.inner_text("#message-to")


def test_an_analyst_reads_the_trees_as_rules_and_the_charts_on_a_phone(
    browser: Any, demo_console: Any
) -> None:
    shop, base = demo_console
    page = _log_in(browser, base, "analyst")
    page.set_viewport_size({"width": 390, "height": 844})
    page.click("a[href='/models']")
    page.wait_for_selector("#churn-rules ol.rules li")
    rules = page.locator("#churn-rules ol.rules li").all_inner_texts()
    assert len(rules) >= 2 and all(" → churn " in rule for rule in rules)
    assert page.locator("#uplift-rules-retain ol.rules li").count() >= 2
    # Nothing wider than the phone but the scrolling tables; the charts fit.
    overflow = page.evaluate("document.documentElement.scrollWidth")
    assert overflow <= 390, overflow
    charts = page.locator("#charts svg")
    assert charts.count() == 2
    for box in (charts.nth(i).bounding_box() for i in range(charts.count())):
        assert box is not None and box["width"] <= 390 and box["height"] > 100
    page.goto(f"{base}/report?campaign=retain")
    page.wait_for_selector("#charts svg")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert page.locator("table[data-table='targeting'] tbody tr").count() >= 3
