"""The shop hears of every run's coupon codes, later if not at once, under one webhook id.

Real databases (both dialects), a real HTTP server on 127.0.0.1 and the real signed
POST of the delivery part.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from campaign.config import Config, ShopConfig
from campaign.coupons.announcements import (
    BACKOFF_MAX,
    RETRY_DAYS,
    announce_pending,
    announce_run,
    backoff,
)
from campaign.coupons.shop import post_coupons_issued
from campaign.daemon import jobs
from campaign.daemon.jobs import JobContext
from campaign.daemon.metrics import Metrics
from campaign.db.models import Coupon, CouponAnnouncement
from tests.delivery_helpers import make_run, make_user, queue_message
from tests.http_sink import HttpSink

NOW = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _no_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    # The in-call retries wait 1 s, 2 s; the tests only count them.
    monkeypatch.setattr("campaign.coupons.shop.time.sleep", lambda _s: None)


def shop_config(url: str) -> ShopConfig:
    return ShopConfig(
        coupon_webhook_url=f"{url}/hooks/coupons", coupon_webhook_secret="shop-secret"
    )


def run_with_codes(engine: Engine, codes: int, *, started: datetime = NOW) -> int:
    """A finished run whose messages reserved ``codes`` coupon codes."""
    with Session(engine) as session:
        run = make_run(session, slot=started)
        run.started_at = started
        for n in range(max(codes, 1)):
            user = make_user(session, n + 1000 * run.id)
            message = queue_message(session, run, user)
            if n < codes:
                session.add(Coupon(
                    code=f"R{run.id}C{n}", user_id=user.id, message_id=message.id,
                    campaign=run.campaign, percent_off=10, min_order_cents=0,
                    issued_at=started, expires_at=started + timedelta(days=14),
                ))
        session.commit()
        return run.id


def announcement(engine: Engine, run_id: int) -> CouponAnnouncement | None:
    with Session(engine) as session:
        return session.get(CouponAnnouncement, run_id)


def test_a_failed_announcement_is_retried_later_under_the_same_webhook_id(engine: Engine) -> None:
    run_id = run_with_codes(engine, 3)
    with HttpSink() as sink:
        shop = shop_config(sink.url)
        sink.script("500", "500", "500")
        first = announce_run(engine, shop, run_id, now=NOW, post=post_coupons_issued)
        assert first is not None and first.outcome == "failed" and first.codes == 3
        assert first.next_attempt_at == NOW + timedelta(minutes=1)
        assert "answered 500" in (first.error or "")
        # Not due yet: nothing is sent.
        assert announce_pending(engine, shop, now=NOW, post=post_coupons_issued) == []
        assert len(sink.requests) == 3
        later = announce_pending(
            engine, shop, now=NOW + timedelta(minutes=2), post=post_coupons_issued
        )
        assert [(o.run_id, o.outcome, o.codes) for o in later] == [(run_id, "announced", 3)]
        # Accepted: never again.
        assert announce_pending(engine, shop, now=NOW + timedelta(days=1),
                                post=post_coupons_issued) == []
        ids = {r.headers["webhook-id"] for r in sink.requests}
        assert len(sink.requests) == 4 and ids == {first.webhook_id}
        assert {r.headers["idempotency-key"] for r in sink.requests} == ids
        body = json.loads(sink.requests[-1].body)
        assert sorted(item["code"] for item in body["data"]) == [
            f"R{run_id}C{n}" for n in range(3)
        ]
    row = announcement(engine, run_id)
    assert row is not None and row.announced_at == NOW + timedelta(minutes=2)
    assert row.attempts == 2 and row.last_error is None


def test_a_run_never_announced_is_found_by_the_sweep(engine: Engine) -> None:
    # The process died between committing the run and announcing it.
    run_id = run_with_codes(engine, 2, started=NOW - timedelta(hours=5))
    with HttpSink() as sink:
        outcomes = announce_pending(engine, shop_config(sink.url), now=NOW,
                                    post=post_coupons_issued)
        assert [(o.run_id, o.outcome, o.codes) for o in outcomes] == [(run_id, "announced", 2)]
        assert len(sink.requests) == 1


def test_runs_without_codes_are_settled_quietly(engine: Engine) -> None:
    run_id = run_with_codes(engine, 0)
    with HttpSink() as sink:
        assert announce_pending(engine, shop_config(sink.url), now=NOW,
                                post=post_coupons_issued) == []
        assert sink.requests == []
    row = announcement(engine, run_id)
    assert row is not None and row.codes == 0 and row.announced_at == NOW


def test_a_rejected_announcement_also_waits_and_is_retried(engine: Engine) -> None:
    # A 400 is not retried within the call, but the shop may be fixed later.
    run_id = run_with_codes(engine, 1)
    with HttpSink() as sink:
        shop = shop_config(sink.url)
        sink.script("400")
        failed = announce_run(engine, shop, run_id, now=NOW, post=post_coupons_issued)
        assert failed is not None and failed.outcome == "failed" and len(sink.requests) == 1
        again = announce_pending(engine, shop, now=NOW + timedelta(minutes=1),
                                 post=post_coupons_issued)
        assert [o.outcome for o in again] == ["announced"]


def test_retries_stop_after_the_retry_window(engine: Engine) -> None:
    run_id = run_with_codes(engine, 1)
    with HttpSink() as sink:
        shop = shop_config(sink.url)
        sink.script("500", "500", "500")
        announce_run(engine, shop, run_id, now=NOW, post=post_coupons_issued)
        late = NOW + timedelta(days=RETRY_DAYS, minutes=1)
        assert announce_pending(engine, shop, now=late, post=post_coupons_issued) == []
        assert len(sink.requests) == 3


def test_nothing_happens_without_a_webhook(engine: Engine) -> None:
    run_id = run_with_codes(engine, 1)
    assert announce_run(engine, ShopConfig(), run_id, now=NOW, post=post_coupons_issued) is None
    assert announce_pending(engine, ShopConfig(), now=NOW, post=post_coupons_issued) == []
    assert announcement(engine, run_id) is None


def test_backoff_doubles_from_a_minute_to_an_hour() -> None:
    assert [backoff(n) for n in range(1, 5)] == [timedelta(minutes=m) for m in (1, 2, 4, 8)]
    assert backoff(7) == BACKOFF_MAX and backoff(50) == BACKOFF_MAX


def test_the_daemon_job_retries_due_announcements(engine: Engine) -> None:
    run_id = run_with_codes(engine, 2)
    with HttpSink() as sink:
        shop = shop_config(sink.url)
        sink.script("503", "503", "503")
        announce_run(engine, shop, run_id, now=NOW, post=post_coupons_issued)
        config = Config.model_validate({}).model_copy(update={"shop": shop})
        jobs.announce_coupons(
            JobContext(engine, config, lambda: NOW + timedelta(minutes=5), Metrics())
        )
        assert len(sink.requests) == 4
    with engine.connect() as connection:
        announced = connection.execute(
            select(CouponAnnouncement.announced_at).where(CouponAnnouncement.run_id == run_id)
        ).scalar_one()
    assert announced == NOW + timedelta(minutes=5)


def test_the_leader_schedules_the_sweep_only_with_a_webhook(engine: Engine) -> None:
    from campaign.daemon.scheduler import build_scheduler

    for shop, expected in ((ShopConfig(), False), (shop_config("http://127.0.0.1:9"), True)):
        config = Config.model_validate({}).model_copy(update={"shop": shop})
        scheduler = build_scheduler(JobContext(engine, config, lambda: NOW, Metrics()))
        scheduler.start(paused=True)
        try:
            job = scheduler.get_job("coupons:announce")
            assert (job is not None) == expected
            if job is not None:
                assert job.max_instances == 1 and job.coalesce is True
        finally:
            scheduler.shutdown(wait=False)


def test_metrics_show_pending_announcements_and_the_oldest_ones_age(engine: Engine) -> None:
    from prometheus_client import generate_latest

    run_id = run_with_codes(engine, 1)
    later = NOW + timedelta(minutes=30)
    clock = {"now": later}
    metrics = Metrics(engine, clock=lambda: clock["now"])

    def scrape() -> str:
        return generate_latest(metrics.registry).decode()

    assert "campaign_coupon_announcements_pending 0.0" in scrape()
    with HttpSink() as sink:
        shop = shop_config(sink.url)
        sink.script("500", "500", "500")
        announce_run(engine, shop, run_id, now=NOW, post=post_coupons_issued)
        text = scrape()
        assert "campaign_coupon_announcements_pending 1.0" in text
        assert "campaign_coupon_announcement_oldest_pending_seconds 1800.0" in text
        announce_pending(engine, shop, now=later, post=post_coupons_issued)
    text = scrape()
    assert "campaign_coupon_announcements_pending 0.0" in text
    assert "campaign_coupon_announcement_oldest_pending_seconds 0.0" in text
