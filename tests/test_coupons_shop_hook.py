"""The shop's checkout hears of every run's coupon codes through a signed webhook."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from campaign.cli import app
from campaign.common.signing import verify
from campaign.db.engine import make_engine
from campaign.db.models import Coupon
from tests.http_sink import HttpSink
from tests.test_planner_cli import shop  # noqa: F401  (the fixture)

runner = CliRunner()
SECRET = "whsec_shop"


def _with_hook(folder: Path, url: str) -> None:
    config = folder / "config.toml"
    text = config.read_text()
    config.write_text(text.replace(
        "[shop]\n",
        f'[shop]\ncoupon_webhook_url = "{url}/hooks/coupons"\n'
        'coupon_webhook_secret_env = "SHOP_HOOK_SECRET"\n', 1,
    ))


def _codes(url: str) -> set[str]:
    engine = make_engine(url)
    with engine.connect() as connection:
        codes = set(connection.execute(select(Coupon.code)).scalars())
    engine.dispose()
    return codes


def test_a_run_posts_its_new_codes_signed_to_the_shop(
    shop: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    monkeypatch.setenv("SHOP_HOOK_SECRET", SECRET)
    with HttpSink() as sink:
        _with_hook(shop, sink.url)
        result = runner.invoke(
            app, ["--config", str(shop / "config.toml"), "run", "c", "--as-of", "2026-11-01"]
        )
        assert result.exit_code == 0, result.output
        assert len(sink.requests) == 1
        request = sink.requests[0]
    codes = _codes(sqlite_url)
    assert codes and f"shop told of {len(codes)} new coupon code(s)" in result.stdout
    assert request.path == "/hooks/coupons"
    webhook_id = verify([SECRET], request.headers, request.body, now=int(time.time()))
    assert webhook_id == request.headers["webhook-id"]  # a valid Standard Webhooks signature
    body = json.loads(request.body)
    assert body["type"] == "coupons.issued" and body["shop"] == "Test Shop"
    assert {item["code"] for item in body["data"]} == codes
    assert request.headers["idempotency-key"] == request.headers["webhook-id"]


def test_a_shop_that_fails_gets_retried_and_the_run_still_stands(
    shop: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    monkeypatch.setenv("SHOP_HOOK_SECRET", SECRET)
    monkeypatch.setattr("campaign.coupons.shop.time.sleep", lambda _s: None)
    with HttpSink() as sink:
        sink.script("500", "500", "500")
        _with_hook(shop, sink.url)
        result = runner.invoke(
            app, ["--config", str(shop / "config.toml"), "run", "c", "--as-of", "2026-11-01"]
        )
        attempts = [r.headers["webhook-id"] for r in sink.requests]
    assert result.exit_code == 0, result.output
    assert len(attempts) == 3 and len(set(attempts)) == 1  # one webhook id, retried
    assert "warning: shop not told of the new coupon codes" in result.stderr
    assert "campaign coupons export" in result.stderr
    assert _codes(sqlite_url)  # the codes stay reserved


def test_coupons_announce_tells_a_shop_that_was_down_under_the_same_webhook_id(
    shop: Path, sqlite_url: str, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    monkeypatch.setenv("SHOP_HOOK_SECRET", SECRET)
    monkeypatch.setattr("campaign.coupons.shop.time.sleep", lambda _s: None)
    config = ["--config", str(shop / "config.toml")]
    with HttpSink() as sink:
        _with_hook(shop, sink.url)
        sink.script("503", "503", "503", "503", "503", "503")
        planned = runner.invoke(app, [*config, "run", "c", "--as-of", "2026-11-01"])
        assert planned.exit_code == 0, planned.output
        assert "the daemon retries it" in planned.stderr
        still_down = runner.invoke(app, [*config, "coupons", "announce"])
        assert still_down.exit_code == 1 and "shop not told of" in still_down.stderr
        back = runner.invoke(app, [*config, "coupons", "announce"])
        assert back.exit_code == 0, back.output
        assert "shop told of" in back.stdout
        again = runner.invoke(app, [*config, "coupons", "announce"])
        assert again.exit_code == 0 and "nothing to announce" in again.stdout
        ids = [r.headers["webhook-id"] for r in sink.requests]
        delivered = json.loads(sink.requests[-1].body)
    assert len(ids) == 7 and len(set(ids)) == 1
    assert {item["code"] for item in delivered["data"]} == _codes(sqlite_url)


def test_coupons_announce_without_a_webhook_says_so(shop: Path) -> None:  # noqa: F811
    result = runner.invoke(app, ["--config", str(shop / "config.toml"), "coupons", "announce"])
    assert result.exit_code == 1
    assert "coupon_webhook_url" in result.stderr and "no shop to tell" in result.stderr


def test_a_shop_that_rejects_the_call_is_not_retried(
    shop: Path, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    monkeypatch.setenv("SHOP_HOOK_SECRET", SECRET)
    with HttpSink() as sink:
        sink.script("400")
        _with_hook(shop, sink.url)
        result = runner.invoke(
            app, ["--config", str(shop / "config.toml"), "run", "c", "--as-of", "2026-11-01"]
        )
        assert len(sink.requests) == 1
    assert result.exit_code == 0 and "answered 400" in result.stderr


def test_a_hook_without_its_secret_is_a_config_error(
    shop: Path, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    monkeypatch.delenv("SHOP_HOOK_SECRET", raising=False)
    _with_hook(shop, "http://127.0.0.1:9")
    result = runner.invoke(app, ["--config", str(shop / "config.toml"), "run", "c"])
    assert result.exit_code == 1
    assert "shop.coupon_webhook_secret_env: environment variable SHOP_HOOK_SECRET" in (
        result.stderr
    )
