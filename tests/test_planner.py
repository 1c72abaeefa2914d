"""The planner's decisions on real databases: every skip reason, holdout, caps,
idempotency, template errors, paused campaigns, dry runs and test sends."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from campaign.common.contacts import address_hash
from campaign.common.errors import ConfigError, InputError, TemplateError
from campaign.common.links import verify_unsubscribe_token
from campaign.config import Config, load_config
from campaign.db.models import (
    CampaignRun,
    ChurnScore,
    Coupon,
    Message,
    ModelVersion,
    Suppression,
    User,
)
from campaign.db.queries import unsubscribe_key
from campaign.experiments.holdout import is_held_out
from campaign.planner import plan_run
from campaign.planner import run as planner_run
from campaign.planner.content import (
    CodeDrawer,
    Pick,
    Renderer,
    validate_campaign_templates,
)
from campaign.planner.outcomes import ALREADY_PLANNED, DRY_RUN, PAUSED, PLANNED
from campaign.planner.test_send import parse_seed_list, plan_test_send

AS_OF = datetime(2026, 11, 1, tzinfo=UTC)
SLOT = datetime(2026, 11, 1, tzinfo=UTC)
NOW = datetime(2026, 11, 1, 2, 0, tzinfo=UTC)

SUBJECT = "Hello {{ user.first_name }}\n"
EMAIL_HTML = """<html><body>
<p>Hi {{ user.name }}</p>
{% if coupon %}<p>Code {{ coupon.code }}: {{ coupon.percent_off }}% off</p>{% endif %}
{% for p in products %}<p><a href="{{ p.url }}">{{ p.name }}</a></p>{% endfor %}
<p>Score {{ 100 // (user.name|length) }}</p>
<p>{{ shop.name }}, {{ shop.postal_address }}</p>
<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>
</body></html>
"""
EMAIL_TXT = (
    "Hi {{ user.name }} {% if coupon %}{{ coupon.code }}{% endif %}\n"
    "{{ shop.postal_address }}\nUnsubscribe: {{ unsubscribe_url }}\n"
)
SMS_TXT = "{{ shop.name }}: hi {{ user.first_name }}. {{ unsubscribe_url }} STOP to opt out\n"


def write_templates(root: Path, name: str = "t", html: str = EMAIL_HTML) -> None:
    folder = root / "templates" / name / "en"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "subject.txt").write_text(SUBJECT)
    (folder / "email.html").write_text(html)
    (folder / "email.txt").write_text(EMAIL_TXT)
    (folder / "sms.txt").write_text(SMS_TXT)


def make_config(root: Path, url: str, **campaign: Any) -> Config:
    """A config file in ``root`` with channels email+sms and one campaign ``c``."""
    values: dict[str, Any] = {
        "channels": '["email"]',
        "holdout_share": "0.0",
        "cooldown_days": "14",
        "offer": "false",
        "paused": "false",
    }
    values.update({k: str(v) for k, v in campaign.items()})
    caps = ""
    for key in ("max_recipients", "coupon_budget"):
        if key in values:
            caps += f"{key} = {values[key]}\n"
    text = f"""
[shop]
name = "Test Shop"
base_url = "https://shop.test"
default_locale = "en"
[database]
url = "{url}"
[delivery]
frequency_cap = {{ email = 2, sms = 1 }}
frequency_window_days = 7
message_expiry_hours = 24
[channels.email]
kind = "file"
medium = "email"
path = "out/email"
[channels.sms]
kind = "file"
medium = "sms"
path = "out/sms"
[[campaigns]]
name = "c"
channels = {values["channels"]}
holdout_share = {values["holdout_share"]}
cooldown_days = {values["cooldown_days"]}
paused = {values["paused"]}
{caps}
[campaigns.audience]
min_risk = 0.5
[[campaigns.variants]]
name = "v"
template = "t"
offer = {values["offer"]}
"""
    (root / "config.toml").write_text(text)
    write_templates(root)
    return load_config(root / "config.toml", environ={})


def add_user(engine: Engine, external_id: str, risk: float = 0.8, **overrides: Any) -> int:
    """A consenting user with email and phone and a churn score of ``risk`` at AS_OF."""
    values: dict[str, Any] = {
        "external_id": external_id,
        "email": f"{external_id}@example.com",
        "phone": "+8613800000000",
        "name": f"Name {external_id}",
        "locale": "en",
        "timezone": "Asia/Shanghai",
        "consent_email": True,
        "consent_sms": True,
        "attributes": {},
    }
    values.update(overrides)
    with engine.begin() as connection:
        user_id = int(
            connection.execute(insert(User).values(**values).returning(User.id)).scalar_one()
        )
        model = connection.execute(select(ModelVersion.id).where(ModelVersion.active)).scalar()
        if model is None:
            model = connection.execute(
                insert(ModelVersion)
                .values(
                    kind="churn",
                    trained_at=AS_OF,
                    as_of=AS_OF,
                    horizon_days=90,
                    params={},
                    metrics={},
                    artifact=b"",
                    library_versions={},
                    active=True,
                )
                .returning(ModelVersion.id)
            ).scalar_one()
        connection.execute(
            insert(ChurnScore).values(
                user_id=user_id,
                model_version_id=model,
                as_of=AS_OF,
                risk=risk,
                tier="high" if risk >= 0.7 else "medium",
                reason="no purchase for 120 days",
            )
        )
    return user_id


def add_message(
    engine: Engine, user_id: int, campaign: str, channel: str, at: datetime, status: str = "sent"
) -> None:
    """A message of an earlier run (with its own run row)."""
    with engine.begin() as connection:
        run_id = (
            connection.execute(
                select(CampaignRun.id).where(
                    CampaignRun.campaign == campaign, CampaignRun.slot == at
                )
            ).scalar()
            or connection.execute(
                insert(CampaignRun)
                .values(campaign=campaign, slot=at, as_of=at, status="done", counts={})
                .returning(CampaignRun.id)
            ).scalar_one()
        )
        connection.execute(
            insert(Message).values(
                run_id=run_id,
                user_id=user_id,
                campaign=campaign,
                channel=channel,
                idempotency_key=f"{campaign}/{at.isoformat()}/{user_id}/{channel}",
                status=status,
                created_at=at,
                products=[],
            )
        )


def messages(engine: Engine) -> list[Any]:
    """Every message row."""
    with engine.connect() as connection:
        return list(connection.execute(select(Message.__table__)).all())


def planned(engine: Engine, run_id: int | None) -> dict[str, Any]:
    with engine.connect() as connection:
        rows = (
            connection.execute(
                select(User.external_id, Message.__table__)
                .join(User, User.id == Message.user_id)
                .where(Message.run_id == run_id)
            )
            .mappings()
            .all()
        )
    return {row["external_id"]: row for row in rows}


def run(engine: Engine, config: Config, **kwargs: Any) -> Any:
    options: dict[str, Any] = {"as_of": AS_OF, "slot": SLOT, "now": lambda: NOW}
    options.update(kwargs)
    return plan_run(engine, config, "c", **options)


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.chdir(tmp_path)
    yield tmp_path


def test_every_considered_user_gets_one_row_with_the_first_reason_that_applies(
    engine: Engine, db_url: str, root: Path
) -> None:
    config = make_config(root, db_url)
    ok = add_user(engine, "ok")
    add_user(engine, "low", risk=0.2)
    suppressed = add_user(engine, "suppressed")
    add_user(engine, "suppressed_address", email="Gone@Example.com")
    add_user(engine, "no_consent", consent_email=False)
    add_user(engine, "no_address", email=None)
    add_user(engine, "bad_tz", timezone="Mars/Olympus_Mons")
    capped = add_user(engine, "capped")
    cooled = add_user(engine, "cooled")
    add_user(engine, "both", consent_email=False, email=None)
    forgotten = add_user(engine, "forgotten", forgotten_at=AS_OF)
    with engine.begin() as connection:
        connection.execute(
            insert(Suppression).values(
                user_id=suppressed, channel="all", reason="unsubscribed", created_at=AS_OF
            )
        )
        connection.execute(
            insert(Suppression).values(
                address_hash=address_hash("gone@example.com "),
                channel="email",
                reason="bounced",
                created_at=AS_OF,
            )
        )
    # Two recent emails from another campaign reach the cap of 2; one old one does not count.
    add_message(engine, capped, "other", "email", NOW - timedelta(days=1))
    add_message(engine, capped, "other", "email", NOW - timedelta(days=2), status="queued")
    add_message(engine, ok, "other", "email", NOW - timedelta(days=30))
    add_message(engine, ok, "other", "email", NOW - timedelta(days=1), status="skipped")
    add_message(engine, cooled, "c", "email", NOW - timedelta(days=3))
    assert forgotten

    report = run(engine, config)

    assert report.outcome == PLANNED
    rows = planned(engine, report.run_id)
    decided = {user: (row["status"], row["skip_reason"]) for user, row in rows.items()}
    assert decided == {
        "ok": ("queued", None),
        "suppressed": ("skipped", "suppressed"),
        "suppressed_address": ("skipped", "suppressed"),
        "no_consent": ("skipped", "no_consent"),
        "no_address": ("skipped", "no_address"),
        "bad_tz": ("skipped", "invalid_timezone"),
        "capped": ("skipped", "frequency_capped"),
        "cooled": ("skipped", "cooldown"),
        "both": ("skipped", "no_consent"),
    }
    assert report.counts["queued"] == 1 and report.counts["skipped"] == 8
    assert report.counts["skipped.no_consent"] == 2
    queued = rows["ok"]
    assert queued["subject"] == "Hello Name" and "Hi Name ok" in queued["body"]
    assert queued["created_at"] == NOW and queued["expires_at"] == NOW + timedelta(hours=24)
    assert queued["next_attempt_at"] == NOW and queued["variant"] == "v"
    assert queued["idempotency_key"] == f"c/20261101T000000Z/{ok}/email"
    assert rows["suppressed"]["subject"] is None and rows["suppressed"]["expires_at"] is None
    with engine.connect() as connection:
        run_row = connection.execute(
            select(CampaignRun.status, CampaignRun.counts).where(CampaignRun.id == report.run_id)
        ).one()
    assert run_row.status == "done" and run_row.counts == report.counts


def test_a_user_gets_the_first_channel_they_are_eligible_for(
    engine: Engine, db_url: str, root: Path
) -> None:
    config = make_config(root, db_url, channels='["email", "sms"]')
    add_user(engine, "email")
    add_user(engine, "sms_only", consent_email=False)
    add_user(engine, "sms_no_mail", email="")
    add_user(engine, "neither", consent_email=False, phone=None)
    report = run(engine, config)
    rows = planned(engine, report.run_id)
    decided = {u: (r["channel"], r["status"], r["skip_reason"]) for u, r in rows.items()}
    assert decided == {
        "email": ("email", "queued", None),
        "sms_only": ("sms", "queued", None),
        "sms_no_mail": ("sms", "queued", None),
        # No channel fits: the recorded reason is the first channel's.
        "neither": ("email", "skipped", "no_consent"),
    }
    assert rows["sms_only"]["subject"] is None
    assert rows["sms_only"]["body"].startswith("Test Shop: hi Name")


def test_running_the_same_slot_twice_plans_nothing_new(
    engine: Engine, db_url: str, root: Path
) -> None:
    config = make_config(root, db_url)
    for n in range(5):
        add_user(engine, f"u{n}")
    first = run(engine, config)
    second = run(engine, config)
    assert first.outcome == PLANNED and first.counts["queued"] == 5
    assert second.outcome == ALREADY_PLANNED and second.run_id is None
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(Message)).scalar() == 5
        assert connection.execute(select(func.count()).select_from(CampaignRun)).scalar() == 1
    # The next slot is a new run; the cooldown now keeps everybody out.
    third = run(engine, config, slot=SLOT + timedelta(days=1), now=lambda: NOW + timedelta(days=1))
    assert third.outcome == PLANNED and third.counts == {"skipped": 5, "skipped.cooldown": 5}


@pytest.mark.parametrize("chunk", [2_000, 7], ids=["one_chunk", "chunks_of_seven"])
def test_held_out_users_get_a_held_out_row_and_the_share_is_honoured(
    engine: Engine, db_url: str, root: Path, chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(planner_run, "WRITE_CHUNK", chunk)
    config = make_config(root, db_url, holdout_share="0.3", offer="true")
    for n in range(60):
        add_user(engine, f"h{n}")
    report = run(engine, config)
    rows = planned(engine, report.run_id)
    held = {u for u, r in rows.items() if r["status"] == "held_out"}
    assert held == {f"h{n}" for n in range(60) if is_held_out("c", f"h{n}", 0.3)}
    assert 8 <= len(held) <= 30
    for user in held:
        row = rows[user]
        assert row["created_at"] == NOW and row["channel"] == "email"
        assert row["coupon_code"] is None and row["subject"] is None
        assert row["next_attempt_at"] is None
    with engine.connect() as connection:
        coupons = connection.execute(select(Coupon.code, Coupon.message_id)).all()
        # Every row's probability of being held out, for the uplift model.
        share = connection.execute(
            select(CampaignRun.holdout_share).where(CampaignRun.id == report.run_id)
        ).scalar_one()
    assert share == 0.3
    assert len(coupons) == 60 - len(held)
    by_code = {r["coupon_code"]: r["id"] for r in rows.values() if r["coupon_code"]}
    assert {code: message for code, message in coupons} == by_code
    # Queued messages are written in the run's order (risk, then user), as the sender
    # will claim them.
    queued = sorted((r["id"], r["user_id"]) for r in rows.values() if r["status"] == "queued")
    assert [user for _, user in queued] == sorted(user for _, user in queued)


def test_recipient_cap_keeps_the_highest_risk_and_cuts_control_at_the_same_point(
    engine: Engine, db_url: str, root: Path
) -> None:
    config = make_config(root, db_url, max_recipients=3)
    for n in range(8):
        add_user(engine, f"r{n}", risk=0.9 - n * 0.01)
    report = run(engine, config)
    rows = planned(engine, report.run_id)
    assert {u for u, r in rows.items() if r["status"] == "queued"} == {"r0", "r1", "r2"}
    assert {u for u, r in rows.items() if r["skip_reason"] == "recipient_cap"} == {
        f"r{n}" for n in range(3, 8)
    }


def test_coupon_budget_skips_offer_users_beyond_it_and_reserves_one_code_each(
    engine: Engine, db_url: str, root: Path
) -> None:
    config = make_config(root, db_url, offer="true", coupon_budget=2)
    for n in range(5):
        add_user(engine, f"b{n}", risk=0.9 - n * 0.01)
    report = run(engine, config)
    rows = planned(engine, report.run_id)
    assert {u for u, r in rows.items() if r["status"] == "queued"} == {"b0", "b1"}
    assert {u for u, r in rows.items() if r["skip_reason"] == "budget"} == {"b2", "b3", "b4"}
    with engine.connect() as connection:
        coupons = {c.code: c for c in connection.execute(select(Coupon.__table__)).all()}
    assert set(coupons) == {rows["b0"]["coupon_code"], rows["b1"]["coupon_code"]}
    for user in ("b0", "b1"):
        coupon = coupons[rows[user]["coupon_code"]]
        assert coupon.message_id == rows[user]["id"] and coupon.user_id == rows[user]["user_id"]
        assert coupon.campaign == "c" and coupon.issued_at == NOW
        assert rows[user]["coupon_code"] in rows[user]["body"]


def test_a_render_error_for_one_user_skips_that_message_and_the_run_goes_on(
    engine: Engine, db_url: str, root: Path
) -> None:
    config = make_config(root, db_url, offer="true")
    add_user(engine, "fine")
    add_user(engine, "nameless", name="")  # the template divides by the name's length
    report = run(engine, config)
    rows = planned(engine, report.run_id)
    assert rows["fine"]["status"] == "queued"
    bad = rows["nameless"]
    assert (bad["status"], bad["skip_reason"]) == ("skipped", "template_error")
    assert "email.html" in bad["last_error"] and "ZeroDivisionError" in bad["last_error"]
    with engine.connect() as connection:
        owners = connection.execute(select(Coupon.user_id)).scalars().all()
    assert owners == [rows["fine"]["user_id"]]  # no code reserved for the failed render


def test_a_broken_template_stops_the_run_before_anything_is_planned(
    engine: Engine, sqlite_url: str, root: Path
) -> None:
    config = make_config(root, sqlite_url)
    write_templates(root, html="<p>{{ user.name }</p>\n<p>{% if %}</p>\n")
    add_user(engine, "u")
    with pytest.raises(TemplateError) as info:
        run(engine, config)
    assert info.value.template.endswith("t/en/email.html") and info.value.line == 1
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(Message)).scalar() == 0
        assert connection.execute(select(func.count()).select_from(CampaignRun)).scalar() == 0


def test_a_paused_campaign_plans_nothing_and_says_so(
    engine: Engine, sqlite_url: str, root: Path
) -> None:
    config = make_config(root, sqlite_url, paused="true")
    add_user(engine, "u")
    report = run(engine, config)
    assert report.outcome == PAUSED and "paused" in report.notes[0]
    assert messages(engine) == []


def test_a_dry_run_renders_but_writes_nothing_and_reserves_no_coupon(
    engine: Engine, db_url: str, root: Path
) -> None:
    config = make_config(root, db_url, offer="true", holdout_share="0.2")
    for n in range(10):
        add_user(engine, f"d{n}")
    report = run(engine, config, dry_run=True)
    assert report.outcome == DRY_RUN and report.run_id is None
    queued = report.decisions[report.decisions["status"] == "queued"]
    assert len(report.messages) == len(queued) > 0
    assert all(m.coupon_code and m.coupon_code in m.html for m in report.messages)
    with engine.connect() as connection:
        for table in (Message, CampaignRun, Coupon):
            assert connection.execute(select(func.count()).select_from(table)).scalar() == 0
    # The real run decides the same (stable holdout, same seeded variant choice).
    real = run(engine, config)
    assert real.counts == report.counts


def test_unsubscribe_links_carry_a_valid_signed_token(
    engine: Engine, sqlite_url: str, root: Path
) -> None:
    config = make_config(root, sqlite_url)
    add_user(engine, "unsub")
    report = run(engine, config)
    body = planned(engine, report.run_id)["unsub"]["text_body"]
    url = body.split("Unsubscribe: ")[1].split()[0]
    parsed = urlparse(url)
    assert f"{parsed.scheme}://{parsed.netloc}" == "https://shop.test"
    query = {k: v[0] for k, v in parse_qs(parsed.query).items()}
    assert query["u"] == "unsub" and query["c"] == "email"
    with engine.begin() as connection:
        secret = unsubscribe_key(connection, [])
    assert verify_unsubscribe_token(secret, "unsub", "email", query["t"])
    assert not verify_unsubscribe_token(secret, "someone-else", "email", query["t"])


def test_a_test_send_queues_only_to_seed_addresses_and_touches_no_audience_state(
    engine: Engine, sqlite_url: str, root: Path
) -> None:
    config = make_config(root, sqlite_url, offer="true", channels='["email", "sms"]')
    for n in range(4):
        add_user(engine, f"s{n}")
    seeds = parse_seed_list("# marketing team\nqa@shop.test\n+8613900000000\n", "seeds.txt")
    report = plan_test_send(engine, config, "c", seeds, as_of=AS_OF, now=lambda: NOW)
    rows = messages(engine)
    assert len(rows) == 2 and all(m.is_test for m in rows)
    assert sorted(m.address_override for m in rows) == sorted(seeds)
    assert {m.channel for m in rows} == {"email", "sms"}
    assert {m.campaign for m in rows} == {"c:test"}
    assert all(m.coupon_code.startswith("TEST-") for m in rows)
    assert report.counts == {"queued": 2}
    with engine.connect() as connection:
        assert connection.execute(select(func.count()).select_from(Coupon)).scalar() == 0
    # A real run of the same slot afterwards is unaffected: no cooldown, no cap, no clash.
    real = run(engine, config)
    assert real.outcome == PLANNED and real.counts["queued"] == 4


def test_seed_lists_refuse_lines_that_are_not_addresses() -> None:
    with pytest.raises(InputError, match=r"seeds.txt:2: 'not an address'"):
        parse_seed_list("a@b.test\nnot an address\n", "seeds.txt")
    with pytest.raises(InputError, match="no seed address"):
        parse_seed_list("# only a comment\n", "seeds.txt")


def test_a_campaign_naming_a_missing_template_set_is_a_config_error(root: Path) -> None:
    config = make_config(root, "sqlite:///x.db")
    validate_campaign_templates(config)
    (root / "config.toml").write_text(
        (root / "config.toml").read_text().replace('template = "t"', 'template = "nope"')
    )
    config = load_config(root / "config.toml", environ={})
    with pytest.raises(ConfigError, match=r"campaigns\[0\]\.variants\[0\]\.template: .*'nope'"):
        validate_campaign_templates(config)


def test_queued_messages_carry_recommended_products_and_held_out_ones_none(
    engine: Engine, db_url: str, root: Path
) -> None:
    from campaign.db.models import Event, Product

    config = make_config(root, db_url, holdout_share="0.5")
    users = [add_user(engine, f"p{n}") for n in range(12)]
    with engine.begin() as connection:
        products = [
            connection.execute(
                insert(Product)
                .values(
                    external_id=f"sku{n}",
                    name=f"Thing {n}",
                    category="home",
                    brand="Acme",
                    price_cents=1000 + n,
                    tags=[],
                    in_stock=True,
                    url=f"https://shop.test/sku{n}",
                    attributes={},
                )
                .returning(Product.id)
            ).scalar_one()
            for n in range(6)
        ]
        n = 0
        for i, user in enumerate(users):
            for j in range(3):
                n += 1
                connection.execute(
                    insert(Event).values(
                        user_id=user,
                        product_id=products[(i + j) % 6],
                        type="purchase",
                        ts=AS_OF - timedelta(days=30 + j),
                        quantity=1,
                        amount_cents=1000,
                        source_event_id=f"e{n}",
                    )
                )
    report = run(engine, config)
    rows = planned(engine, report.run_id)
    queued = [r for r in rows.values() if r["status"] == "queued"]
    held = [r for r in rows.values() if r["status"] == "held_out"]
    assert queued and held
    for row in queued:
        assert row["products"], "a queued message without products"
        first = row["products"][0]
        assert set(first) == {"product_id", "rank", "reason"} and first["rank"] == 1
        assert first["product_id"] in products
        assert "https://shop.test/sku" in row["body"]
    assert all(r["products"] == [] for r in held)
    decisions = report.decisions.set_index("external_id")
    assert all(p.startswith("sku") for p in decisions.loc[queued_ids(rows)[0], "products"])


def queued_ids(rows: dict[str, Any]) -> list[str]:
    return [user for user, row in rows.items() if row["status"] == "queued"]


def test_a_variant_repurchase_setting_overrides_the_campaign_one() -> None:
    import random

    import pandas as pd

    from campaign.config import CampaignConfig, VariantConfig
    from campaign.planner.decisions import decide_treatment

    campaign = CampaignConfig(
        name="c",
        holdout_share=0.0,
        allow_repurchase=False,
        variants=(VariantConfig(name="a", template="t", allow_repurchase=True),),
    )
    frame = pd.DataFrame({"external_id": ["x", "y"], "skip_reason": [None, "no_consent"]})
    out = decide_treatment(frame, campaign, random.Random(0))
    assert list(out["allow_repurchase"]) == [True, None]
    assert list(out["status"]) == ["queued", "skipped"]


def test_a_slot_recorded_as_failed_is_planned_again(
    engine: Engine, db_url: str, root: Path
) -> None:
    config = make_config(root, db_url)
    add_user(engine, "again")
    with engine.begin() as connection:
        failed = connection.execute(
            insert(CampaignRun)
            .values(
                campaign="c",
                slot=SLOT,
                as_of=AS_OF,
                status="failed",
                counts={},
                error="database went away",
            )
            .returning(CampaignRun.id)
        ).scalar_one()
    report = run(engine, config)
    assert report.outcome == PLANNED and report.run_id == failed
    with engine.connect() as connection:
        row = connection.execute(
            select(CampaignRun.status, CampaignRun.error).where(CampaignRun.id == failed)
        ).one()
    assert tuple(row) == ("done", None)
    assert planned(engine, failed)["again"]["status"] == "queued"


def test_held_out_users_cool_down_like_treated_ones(
    engine: Engine, db_url: str, root: Path
) -> None:
    config = make_config(root, db_url, holdout_share="0.5")
    for n in range(20):
        add_user(engine, f"k{n}")
    first = run(engine, config)
    later = run(engine, config, slot=SLOT + timedelta(days=3), now=lambda: NOW + timedelta(days=3))
    assert first.counts["held_out"] > 0 and first.counts["queued"] > 0
    assert later.counts == {"skipped": 20, "skipped.cooldown": 20}


@pytest.mark.parametrize("chunk", [2_000, 2], ids=["one_chunk", "chunks_of_two"])
def test_a_colliding_coupon_code_is_drawn_again_and_the_prefix_is_honoured(
    engine: Engine, db_url: str, root: Path, chunk: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(planner_run, "WRITE_CHUNK", chunk)
    make_config(root, db_url, offer="true")
    path = root / "config.toml"
    path.write_text(path.read_text() + '[campaigns.offer]\ncode_prefix = "WB"\n')
    config = load_config(path, environ={})
    earlier = add_user(engine, "earlier", risk=0.1)  # below min_risk: not in the audience
    for n in range(4):
        add_user(engine, f"k{n}", risk=0.9 - n * 0.01)
    # The first code the seeded generator draws is already taken by an earlier coupon.
    taken = CodeDrawer(random.Random(42), "WB")()
    with engine.begin() as connection:
        connection.execute(
            insert(Coupon).values(
                code=taken,
                user_id=earlier,
                campaign="old",
                percent_off=5,
                min_order_cents=0,
                issued_at=AS_OF,
                expires_at=AS_OF + timedelta(days=14),
            )
        )
    preview = run(engine, config, dry_run=True, code_rng=random.Random(42))
    assert preview.messages[0].coupon_code == taken  # the collision is real
    report = run(engine, config, code_rng=random.Random(42))
    assert report.outcome == PLANNED and report.counts == {"queued": 4}
    rows = planned(engine, report.run_id)
    codes = [rows[f"k{n}"]["coupon_code"] for n in range(4)]
    assert len(set(codes)) == 4 and taken not in codes
    assert all(code.startswith("WB-") for code in codes)
    for n in range(4):
        row = rows[f"k{n}"]
        assert row["coupon_code"] in row["body"] and row["coupon_code"] in row["text_body"]
    assert sorted(report.decisions["coupon_code"]) == sorted(codes)
    with engine.connect() as connection:
        stored = {c.code: c for c in connection.execute(select(Coupon.__table__)).all()}
    assert set(stored) == {taken, *codes}
    assert stored[taken].user_id == earlier and stored[taken].campaign == "old"
    for n in range(4):
        row = rows[f"k{n}"]
        assert stored[row["coupon_code"]].message_id == row["id"]
        assert stored[row["coupon_code"]].user_id == row["user_id"]


def test_the_renderer_still_refuses_values_that_are_not_plain_data(root: Path) -> None:
    config = make_config(root, "sqlite:///unused.db")
    renderer = Renderer(config, b"k" * 32)
    fine = {
        "id": "P1",
        "name": "Mug",
        "category": "c",
        "brand": "b",
        "price_cents": 900,
        "url": "https://shop.test/p/1",
        "reason": "popular",
    }
    good = Pick(1, "P1", 1, "popular", fine)
    options: dict[str, Any] = {
        "template": "t",
        "medium": "email",
        "locale": "en",
        "channel": "email",
        "campaign": "c",
        "variant": "v",
        "coupon": None,
    }
    user = {"external_id": "u1", "name": "Ann Lee", "email": "a@x.test", "timezone": "UTC"}
    assert "Mug" in (renderer.render(user=user, products=[good], **options).html or "")
    with pytest.raises(TemplateError, match="context.user.timezone: object is not plain"):
        renderer.render(user={**user, "timezone": object()}, products=[good], **options)
    sneaky = Pick(2, "P2", 1, "popular", {**fine, "name": object()})
    with pytest.raises(TemplateError, match=r"context.products\[1\].name: object is not plain"):
        renderer.render(user=user, products=[good, sneaky], **options)


def test_product_reasons_are_shown_in_the_recipients_language(root: Path) -> None:
    config = make_config(root, "sqlite:///unused.db")
    renderer = Renderer(config, b"k" * 32)
    view = {
        "id": "P1",
        "name": "Mug",
        "category": "Home",
        "brand": "b",
        "price_cents": 900,
        "url": "https://shop.test/p/1",
        "reason": "because you bought Tea",
    }
    pick = Pick(1, "P1", 1, "because you bought Tea", view)
    assert [v["reason"] for v in renderer.views_for([pick], "en")] == ["because you bought Tea"]
    chinese = renderer.views_for([pick], "zh-CN")
    assert [v["reason"] for v in chinese] == ["因为您买过Tea"]
    assert renderer.views_for([pick], "zh-TW")[0] is chinese[0]  # one copy per language
    assert view["reason"] == "because you bought Tea"  # the shared view is untouched


def test_a_message_key_taken_by_someone_else_fails_the_run_with_nothing_written(
    engine: Engine, db_url: str, root: Path
) -> None:
    config = make_config(root, db_url)
    first = add_user(engine, "k1", risk=0.9)
    add_user(engine, "k2", risk=0.8)
    # A row holding the key this run would write for k1 (bulk inserts go through the
    # driver; its unique violation must still surface as SQLAlchemy's IntegrityError).
    add_message(engine, first, "other", "email", NOW)
    with engine.begin() as connection:
        connection.execute(
            Message.__table__.update()
            .where(Message.user_id == first)
            .values(idempotency_key=f"c/20261101T000000Z/{first}/email")
        )
    with pytest.raises(IntegrityError):
        run(engine, config)
    with engine.connect() as connection:
        runs = connection.execute(select(CampaignRun.campaign, CampaignRun.status)).all()
        count = connection.execute(select(func.count()).select_from(Message)).scalar()
    assert ("c", "failed") in [tuple(r) for r in runs] and count == 1


def test_phone_suppressions_match_users_without_a_locale() -> None:
    # The planner's frame holds NaN for a missing locale; reading it must not fail.
    from campaign.common.contacts import address_hashes, region_of_locale

    assert region_of_locale(float("nan")) is None and region_of_locale(None) is None
    assert region_of_locale("zh-Hans-CN") == "CN" and region_of_locale("en") == "US"
    assert address_hashes(["+86 100 9934 7647", float("nan")], None) == address_hashes(
        ["+8610099347647"], None
    ) | address_hashes(["+86 100 9934 7647"], None)
