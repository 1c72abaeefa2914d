"""The console on the demo shop: the editor's "Send a test" (the campaign's real messages
of a few sample customers to the seed list only, marked test, recorded), the audience
preview of a run and the results page."""

from __future__ import annotations

import re
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
        page = client.get("/report?campaign=winback&view=page")
        download = client.get("/report?campaign=winback&download=1")
    assert page.status_code == 200
    assert '<iframe id="report" class="report" sandbox=""' in page.text
    assert "winback" in page.text
    assert download.headers["content-disposition"] == 'attachment; filename="report.html"'
    assert download.text.lstrip().lower().startswith("<!doctype html")
    assert "<script" not in download.text.lower()
    # The downloaded page draws the same tables as the console's results page.
    assert 'data-table="uplift"' in download.text and 'data-table="funnel"' in download.text


def test_the_results_tables_are_for_people_and_each_downloads_as_csv(demo: Shop) -> None:
    import csv
    import io

    with client_for(demo, "marketer") as client:
        page = client.get("/report?campaign=winback")
        chinese = client.get("/report?campaign=winback", headers={"Accept-Language": "zh-CN"})
        names = re.findall(r'data-table="([a-z]+)"', page.text)
        downloads = {name: client.get(f"/report/csv?table={name}&campaign=winback")
                     for name in names}
        unknown = client.get("/report/csv?table=nope&campaign=winback")
    assert page.status_code == 200 and "<iframe" not in page.text
    assert {"uplift", "revenue", "funnel", "models"} <= set(names)
    # Percentage points with the interval beside them, money in the shop's currency.
    assert re.search(r"[+-]\d+\.\d pts \[[+-]\d+\.\d, [+-]\d+\.\d\]", page.text)
    assert "CN¥" in page.text or "¥" in page.text
    assert re.search(r"<td class=\"num\">\d+\.\d%</td>", page.text)
    assert "个百分点" in chinese.text and "转化增益" in chinese.text
    for name, answer in downloads.items():
        assert answer.status_code == 200, name
        assert answer.headers["content-type"].startswith("text/csv")
        assert f"-{name}-" in answer.headers["content-disposition"]
        rows = list(csv.DictReader(io.StringIO(answer.text)))
        assert rows, name
    uplift = list(csv.DictReader(io.StringIO(downloads["uplift"].text)))
    assert {"uplift", "uplift_low", "uplift_high", "conv_treatment"} <= set(uplift[0])
    assert -1 <= float(uplift[0]["uplift"]) <= 1  # a fraction, not points
    revenue = list(csv.DictReader(io.StringIO(downloads["revenue"].text)))
    assert re.fullmatch(r"-?\d+\.\d\d", revenue[0]["incremental_revenue_cents"])
    assert unknown.status_code == 404 and "funnel" in unknown.text


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


def _audience_rows(html: str) -> dict[str, str]:
    """Shop id → the address cell of each row of an audience page."""
    import re

    return dict(re.findall(
        r'<tr data-user="([^"]+)">.*?<td class="address">([^<]*)</td>', html, re.S))


@pytest.mark.parametrize("role", ["marketer", "analyst", "operator"])
def test_audience_addresses_are_masked_unless_the_role_may_see_them(
    demo: Shop, role: str
) -> None:
    from campaign.db.models import User

    with demo.engine.connect() as connection:
        emails = dict(connection.execute(select(User.external_id, User.email)).all())
    with client_for(demo, role) as client:
        page = client.get("/campaigns/winback/audience")
        rows = _audience_rows(page.text)
        # A customer the run would email (their row shows an email address, masked or not).
        customer = next(user for user, address in rows.items() if "@" in address)
        one = client.get(f"/campaigns/winback/audience?user={customer}").text
        # A search by address finds the customer only for a role that sees addresses.
        by_address = client.get(
            "/campaigns/winback/audience", params={"q": emails[customer]}).text
    assert page.status_code == 200 and rows
    shown = [address for address in rows.values() if address]
    assert shown, "no row has an address"
    if role == "operator":
        assert not any("••••" in address for address in shown)
        assert any(rows[user] == emails[user] for user in rows)
        assert rows[customer] == emails[customer] and emails[customer] in one
        assert "masked" not in page.text
        assert f'data-user="{customer}"' in by_address
    else:
        assert all("••••" in address for address in shown)
        assert not any(emails.get(user) and emails[user] in page.text for user in rows)
        assert emails[customer] not in one and "••••" in one
        assert "Addresses are masked for your role." in page.text
        assert f'data-user="{customer}"' not in by_address


def test_the_audience_search_finds_a_customer_by_shop_id_and_pages_keep_it(
    demo: Shop,
) -> None:
    with client_for(demo, "analyst") as client:
        everyone = _audience_rows(client.get("/campaigns/winback/audience").text)
        customer = next(iter(everyone))
        found = client.get("/campaigns/winback/audience", params={"q": customer}).text
    assert f'data-user="{customer}"' in found
    assert "customers considered match" in found
    assert set(_audience_rows(found)) <= {u for u in _audience_rows(found) if customer in u}


def test_the_audience_shows_risk_reasons_and_products_with_reasons(demo: Shop) -> None:
    with client_for(demo, "marketer") as client:
        page = client.get("/campaigns/winback/audience").text
    assert page.count('<small class="why">') > 10
    assert '<ul class="picks">' in page


def test_the_audience_shows_uplift_and_segment_once_a_model_scored_the_campaign(
    demo: Shop,
) -> None:
    import csv
    from datetime import timedelta

    import numpy as np
    from typer.testing import CliRunner

    from campaign.app.uplift import train_uplift
    from campaign.cli import app
    from campaign.db.models import User

    with demo.config_path.open("a", encoding="utf-8") as file:
        file.write("\n[uplift]\nmin_treated = 50\nmin_control = 50\nmin_samples_leaf = 20\n")
    config = load_config(demo.config_path)
    assert config.clock.as_of is not None
    assigned = config.clock.as_of - timedelta(days=20)
    with demo.engine.connect() as connection:
        users = sorted(connection.execute(select(User.external_id)).scalars())
    rng = np.random.default_rng(3)
    experiments = demo.folder / "experiments.csv"
    with experiments.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["user_id", "campaign", "group", "assigned_at", "converted", "revenue"])
        for user in users:
            treated = rng.random() < 0.5
            converted = rng.random() < (0.3 if treated else 0.1)
            writer.writerow([user, "winback", "treatment" if treated else "control",
                             assigned.isoformat(), int(converted), ""])
    imported = CliRunner().invoke(
        app, ["--config", str(demo.config_path), "import", "experiments", str(experiments)])
    assert imported.exit_code == 0, imported.output
    trained = train_uplift(demo.engine, config, "winback", "converted",
                           now=datetime.now(UTC))
    assert trained.version_id is not None, trained.refused
    console = create_app(config, demo.engine, clock=lambda: datetime.now(UTC))
    with client_for(demo, "analyst", app=console) as client:
        page = client.get("/campaigns/winback/audience").text
        chinese = client.get("/campaigns/winback/audience",
                             headers={"Accept-Language": "zh-CN"}).text
    assert "<th>uplift and segment</th>" in page
    cells = page.count('<td class="uplift"><span class="num">+')
    assert cells > 10 and " pts</span>" in page
    assert any(s in page for s in ("persuadable", "sure thing", "lost cause"))
    assert "个百分点" in chinese and "增益及分群" in chinese
    # Another campaign without a model has no such column.
    with client_for(demo, "analyst", app=console) as client:
        care = client.get("/campaigns/care/audience").text
    assert "uplift and segment" not in care


def test_the_results_page_shows_whom_to_message_with_csv_and_the_report_draws_it_too(
    demo: Shop,
) -> None:
    import csv
    import io

    with client_for(demo, "marketer") as client:
        page = client.get("/report?campaign=retain")
        chinese = client.get("/report?campaign=retain", headers={"Accept-Language": "zh-CN"})
        gain = client.get("/report/csv?table=targeting&campaign=retain")
        deciles = client.get("/report/csv?table=deciles&campaign=retain")
        whole = client.get("/report?campaign=retain&download=1")
    assert page.status_code == 200
    assert 'data-table="targeting"' in page.text and 'data-table="deciles"' in page.text
    assert "Whom to message" in page.text
    # The charts are inline SVG (no script, nothing fetched): the funnel and the uplift.
    charts = page.text.split('id="charts"')[1].split("</div>")[0]
    assert charts.count('<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img"') >= 2
    assert "<title>Funnel of retain</title>" in charts
    # Per 1,000 messages with the interval beside it; money in the shop currency.
    assert re.search(r"<td class=\"num\">[+-][\d,]+\.\d \[[+-][\d,]+\.\d, [+-][\d,]+\.\d\]</td>",
                     page.text)
    assert re.search(r"<td class=\"num\">[+-]CN¥[\d,]+\.\d\d \[", page.text)
    assert re.search(r"[+-]\d+\.\d pts \[[+-]\d+\.\d, [+-]\d+\.\d\]", page.text)
    assert "该给谁发" in chinese.text and "十分位" in chinese.text
    rows = list(csv.DictReader(io.StringIO(gain.text)))
    assert {r["campaign"] for r in rows} == {"retain"}
    assert {"share", "outcome", "gain", "low", "high"} <= set(rows[0])
    assert {float(r["share"]) for r in rows} == {0.1, 0.3, 0.5}
    decile_rows = list(csv.DictReader(io.StringIO(deciles.text)))
    assert [int(r["decile"]) for r in decile_rows] == list(range(1, len(decile_rows) + 1))
    assert -1 <= float(decile_rows[0]["uplift"]) <= 1
    # campaign report --html draws the same tables with the same builder.
    assert 'data-table="targeting"' in whole.text and 'data-table="deciles"' in whole.text


def test_the_models_page_reads_the_trees_as_rules_for_analysts(demo: Shop) -> None:
    with client_for(demo, "analyst") as client:
        page = client.get("/models")
        chinese = client.get("/models", headers={"Accept-Language": "zh-CN"})
        whole = client.get("/report?download=1")
    with client_for(demo, "marketer") as client:
        refused = client.get("/models")
    assert page.status_code == 200 and refused.status_code == 403
    churn = re.findall(r"<li>(if .+? → churn \d+% \([\d,]+ users\))</li>",
                       page.text.split('id="churn-rules"')[1].split("</section>")[0])
    assert len(churn) >= 2
    assert 'id="uplift-rules-retain"' in page.text
    assert re.search(r"<li>if .+? → uplift [+-]\d+\.\d pts \([\d,]+ users\)</li>", page.text)
    assert 'data-table="models"' in page.text and 'data-table="uplift_models"' in page.text
    assert "<title>Churn model ROC AUC per version</title>" in page.text
    assert "<title>Uplift model Qini per version</title>" in page.text
    assert "决策树" in chinese.text and "The churn tree" not in chinese.text
    # campaign report --html lists the same rules.
    for rule in churn:
        assert rule.replace("&gt;", ">") in whole.text.replace("&gt;", ">")
    assert "The uplift tree of retain as rules" in whole.text


def test_the_report_is_computed_again_only_when_its_data_changed(demo: Shop) -> None:
    from datetime import timedelta

    from sqlalchemy import func, update

    from campaign.app.report_cache import clear
    from campaign.app.reports import report_tables_at

    clear()
    now = datetime(2027, 1, 5, 9, 30, 12, tzinfo=UTC)
    first = report_tables_at(demo.engine, demo.config, now=now)
    # The same minute and data: the stored report, not a new computation.
    assert report_tables_at(demo.engine, demo.config, now=now + timedelta(seconds=30)) is first
    assert first.now == now.replace(second=0)
    later = report_tables_at(demo.engine, demo.config, now=now + timedelta(minutes=1))
    assert later is not first
    with demo.engine.begin() as connection:
        newest = connection.execute(select(func.max(Message.id))).scalar_one()
        connection.execute(update(Message).where(Message.id == newest)
                           .values(updated_at=now + timedelta(days=400)))
    changed = report_tables_at(demo.engine, demo.config, now=now)
    assert changed is not first
    assert report_tables_at(demo.engine, demo.config, now=now, campaign="retain") is not changed
