"""The console on the demo shop: the editor's "Send a test" (the campaign's real messages
of a few sample customers to the seed list only, marked test, recorded), the audience
preview of a run and the results page."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from campaign.config import load_config
from campaign.console.app import create_app
from campaign.db.console import AuditEntry
from campaign.db.engine import make_engine
from campaign.db.models import Message
from tests.console_helpers import Shop, add_role_accounts, client_for, token
from tests.demo_helpers import DemoShop

pytestmark = pytest.mark.slow
SEEDS = "qa@shop.example\n+8613800138000\n"


@pytest.fixture
def demo(demo_shop: DemoShop, tmp_path: Path) -> Iterator[Shop]:
    folder = tmp_path / "campaign-demo"
    shutil.copytree(demo_shop.folder, folder)
    (folder / "seeds.txt").write_text(SEEDS, encoding="utf-8")
    config_path = folder / "config.toml"
    with config_path.open("a", encoding="utf-8") as file:
        file.write('\n[console]\ntest_seed_file = "seeds.txt"\n')
    add_role_accounts(folder / "campaign.db")
    config = load_config(config_path)
    engine = make_engine(config.database_url())
    yield Shop(folder, config_path, config, engine)
    engine.dispose()


def test_a_marketer_sends_a_test_to_the_seed_list_only(demo: Shop) -> None:
    app = create_app(demo.config, demo.engine, clock=lambda: datetime.now(UTC))
    with client_for(demo, "marketer", app=app) as client:
        editor = client.get("/templates/file?name=winback/en/email.html").text
        assert 'id="test-send"' in editor and "Send a test of winback" in editor
        response = client.post("/templates/test-send", data={
            "csrf": token(client), "name": "winback/en/email.html",
        })
    assert response.status_code == 200, response.text
    assert "Queued 2 test message(s)" in response.text
    assert "qa@shop.example" in response.text and "+8613800138000" in response.text
    with demo.engine.connect() as connection:
        tests = connection.execute(
            select(Message.campaign, Message.channel, Message.address_override, Message.is_test)
            .where(Message.is_test.is_(True))
        ).all()
        recorded = connection.execute(
            select(AuditEntry.actor, AuditEntry.target)
            .where(AuditEntry.action == "campaign.test_sent")
        ).all()
    assert sorted((c, ch, a) for c, ch, a, _ in tests) == [
        ("winback:test", "email", "qa@shop.example"),
        ("winback:test", "sms", "+8613800138000"),
    ]
    assert [tuple(r) for r in recorded] == [("marketer", "winback")]


def test_an_analyst_cannot_send_a_test(demo: Shop) -> None:
    with client_for(demo, "analyst") as client:
        editor = client.get("/templates/file?name=winback/en/email.html").text
        response = client.post("/templates/test-send", data={
            "csrf": token(client), "name": "winback/en/email.html",
        })
    assert 'id="test-send"' not in editor
    assert response.status_code == 403


def test_the_results_page_is_the_html_report_of_the_demo(demo: Shop) -> None:
    with client_for(demo, "analyst") as client:
        page = client.get("/report?campaign=winback")
        download = client.get("/report?campaign=winback&download=1")
    assert page.status_code == 200
    assert '<iframe id="report" class="report" sandbox=""' in page.text
    assert "winback" in page.text
    assert download.headers["content-disposition"] == 'attachment; filename="report.html"'
    assert download.text.lstrip().lower().startswith("<!doctype html")
    assert "<script" not in download.text.lower()


def test_the_audience_preview_pages_and_opens_a_customers_message(demo: Shop) -> None:
    import re

    from campaign.app.runs import preview

    as_of = demo.config.clock.as_of
    assert as_of is not None
    expected = preview(
        demo.config.database_url(), demo.config, "winback", as_of=as_of,
        slot=as_of.replace(hour=0, minute=0, second=0, microsecond=0),
        now=lambda: datetime.now(UTC), limit=1,
    )
    with client_for(demo, "analyst") as client:
        first = client.get("/campaigns/winback/audience")
        second = client.get("/campaigns/winback/audience?page=2")
        queued = expected.decisions[expected.decisions["status"] == "queued"]
        customer = str(queued.iloc[0]["external_id"])
        one = client.get(f"/campaigns/winback/audience?user={customer}")
        nobody = client.get("/campaigns/winback/audience?user=U-nobody")
    total = len(expected.decisions)
    assert first.status_code == 200
    assert f"({total:,} customers considered)" in first.text
    rows = re.findall(r'audience\?user=([^"]+)"', first.text)
    assert len(rows) == min(50, total)
    assert rows[0] == str(expected.decisions.iloc[0]["external_id"])
    assert 'id="next-page"' in first.text and "Page 2 of" in second.text
    assert re.findall(r'audience\?user=([^"]+)"', second.text)[0] == str(
        expected.decisions.iloc[50]["external_id"])
    assert one.status_code == 200 and f"{customer} via " in one.text
    assert 'class="message-html" sandbox=""' in one.text or "Subject:" not in one.text
    assert "is not in the audience of winback" in nobody.text
