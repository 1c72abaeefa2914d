"""``campaign templates lint|render`` and ``campaign coupons export|redeem`` end to end."""

from __future__ import annotations

import csv
import io
import random
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from typer.testing import CliRunner

from campaign.cli import app
from campaign.coupons.policy import Offer
from campaign.coupons.store import reserve_coupon
from campaign.db.engine import make_engine, make_session_factory, session_scope
from campaign.db.models import Coupon
from tests.factories import make_events, make_user

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()
NOW = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)


def write_config(tmp_path: Path, url: str = "sqlite:///unused.db", extra: str = "") -> Path:
    config = tmp_path / "config.toml"
    config.write_text(
        f'[database]\nurl = "{url}"\n[templates]\ndir = "templates"\n'
        '[shop]\ndefault_locale = "en"\n' + extra,
        encoding="utf-8",
    )
    return config


def copy_templates(tmp_path: Path) -> Path:
    target = tmp_path / "templates"
    shutil.copytree(ROOT / "templates", target)
    return target


def test_lint_passes_on_the_shipped_templates(tmp_path: Path) -> None:
    copy_templates(tmp_path)
    result = runner.invoke(app, ["--config", str(write_config(tmp_path)), "templates", "lint"])
    assert result.exit_code == 0, result.output
    assert "0 error(s)" in result.stderr


def test_lint_prints_one_line_per_error_and_exits_1(tmp_path: Path) -> None:
    templates = copy_templates(tmp_path)
    sms = templates / "care" / "en" / "sms.txt"
    sms.write_text(sms.read_text(encoding="utf-8").replace("user.first_name", "user.first_nme"))
    result = runner.invoke(app, ["--config", str(write_config(tmp_path)), "templates", "lint"])
    assert result.exit_code == 1
    lines = [line for line in result.stdout.splitlines() if "care/en/sms.txt" in line]
    assert len(lines) == 1
    assert lines[0].endswith("'user.first_nme' is undefined (did you mean 'first_name'?)")


def test_lint_uses_the_campaign_variants_to_judge_coupon_use(tmp_path: Path) -> None:
    copy_templates(tmp_path)
    extra = (
        '[channels.email]\nkind = "file"\npath = "out"\n'
        '[[campaigns]]\nname = "winback"\n[[campaigns.variants]]\nname = "plain"\n'
        'template = "winback"\noffer = false\n'
    )
    config = write_config(tmp_path, extra=extra)
    result = runner.invoke(app, ["--config", str(config), "templates", "lint"])
    assert result.exit_code == 1
    assert "offer = false" in result.stdout


def test_render_shows_a_sample_email_and_writes_the_html(tmp_path: Path) -> None:
    copy_templates(tmp_path)
    html = tmp_path / "preview.html"
    result = runner.invoke(
        app,
        [
            "--config",
            str(write_config(tmp_path)),
            "templates",
            "render",
            "winback",
            "--locale",
            "zh-CN",
            "--html",
            str(html),
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Subject: 王小明，送您一张 20% 专属优惠券")
    assert "CB-7KQ4M9XH2P" in html.read_text(encoding="utf-8")


def test_render_an_sms_reports_its_segments(tmp_path: Path) -> None:
    copy_templates(tmp_path)
    result = runner.invoke(
        app,
        [
            "--config",
            str(write_config(tmp_path)),
            "templates",
            "render",
            "care",
            "--channel",
            "sms",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "Reply STOP" in result.stdout
    assert "GSM-7 characters, 1 segment(s)" in result.stderr


def test_render_an_unknown_set_is_one_line_error(tmp_path: Path) -> None:
    copy_templates(tmp_path)
    result = runner.invoke(
        app, ["--config", str(write_config(tmp_path)), "templates", "render", "../etc"]
    )
    assert result.exit_code == 1
    assert "no such template set (known: care, winback)" in result.stderr


def test_render_with_a_real_user_uses_their_name_and_locale(
    tmp_path: Path, sqlite_url: str
) -> None:
    copy_templates(tmp_path)
    engine = make_engine(sqlite_url)
    with session_scope(make_session_factory(engine)) as session:
        make_user(session, external_id="U-77", name="Mei Lin", locale="zh-CN")
    engine.dispose()
    result = runner.invoke(
        app,
        [
            "--config",
            str(write_config(tmp_path, sqlite_url)),
            "templates",
            "render",
            "care",
            "--user",
            "U-77",
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Subject: Mei，Demo Shop 想念您了")
    missing = runner.invoke(
        app,
        [
            "--config",
            str(write_config(tmp_path, sqlite_url)),
            "templates",
            "render",
            "care",
            "--user",
            "nobody",
        ],
    )
    assert missing.exit_code == 1 and "user not found: nobody" in missing.stderr


def test_coupons_export_writes_the_contract_columns(tmp_path: Path, sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    with session_scope(make_session_factory(engine)) as session:
        user = make_user(session, external_id="U-9")
        reserve_coupon(session, user.id, "winback", Offer(15, 9900, 14), NOW, random.Random(5))
    engine.dispose()
    config = write_config(tmp_path, sqlite_url)
    out = tmp_path / "codes.csv"
    result = runner.invoke(
        app, ["--config", str(config), "coupons", "export", "--output", str(out)]
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(out.read_text(encoding="utf-8"))))
    assert list(rows[0]) == [
        "code",
        "user_id",
        "percent_off",
        "min_order",
        "issued_at",
        "expires_at",
        "redeemed_at",
    ]
    assert rows[0]["user_id"] == "U-9" and rows[0]["min_order"] == "99.00"
    assert rows[0]["issued_at"] == "2026-11-01T10:00:00Z" and rows[0]["redeemed_at"] == ""
    later = runner.invoke(
        app, ["--config", str(config), "coupons", "export", "--since", "2026-12-01"]
    )
    assert later.exit_code == 0 and later.stdout.strip().count("\n") == 0  # header only
    bad = runner.invoke(app, ["--config", str(config), "coupons", "export", "--since", "soon"])
    assert bad.exit_code == 1 and "--since" in bad.stderr


def test_coupons_redeem_marks_codes_used_in_purchases(tmp_path: Path, sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    factory = make_session_factory(engine)
    with session_scope(factory) as session:
        user = make_user(session)
        code = reserve_coupon(
            session, user.id, "winback", Offer(15, 0, 14), NOW, random.Random()
        ).code
        make_events(
            session,
            user,
            [
                {
                    "type": "purchase",
                    "ts": NOW + timedelta(days=1),
                    "order_id": "o-9",
                    "coupon_code": code,
                }
            ],
        )
    result = runner.invoke(
        app, ["--config", str(write_config(tmp_path, sqlite_url)), "coupons", "redeem"]
    )
    assert result.exit_code == 0, result.output
    assert "redeemed 1" in result.stderr
    with session_scope(factory) as session:
        assert session.scalar(select(Coupon.order_id)) == "o-9"
    engine.dispose()
