"""Telling the shop's checkout of the coupon codes each run reserved, until it has heard.

With ``[shop] coupon_webhook_url`` set, every run that reserved codes is announced in
one signed ``coupons.issued`` POST (:func:`campaign.coupons.policy.coupons_issued_payload`).
A shop that is down must still hear of them, or its checkout would refuse codes our
messages promised; so each announcement is a ``coupon_announcements`` row that lives
until the shop accepts it:

* right after a run (CLI or daemon), :func:`announce_run` tries at once;
* the daemon's sweep (:func:`announce_pending`, every minute; or
  ``campaign coupons announce``) retries the failed ones with exponential backoff
  (1 minute doubling to 1 hour) and picks up recent runs that have no row at all (a
  process that died between planning and announcing);
* every try of one run carries the same webhook id, which is also the
  ``Idempotency-Key``: a shop that received a call whose answer we lost sees a repeat
  it can ignore, never a different announcement.

Retries stop after ``RETRY_DAYS``; ``campaign coupons export`` always lists every code.
The HTTP call itself is passed in (``post``), so this module does no networking.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from campaign.common.errors import DeliveryError, SignatureError
from campaign.config import ShopConfig
from campaign.coupons.store import run_coupons_payload
from campaign.db.base import table_of
from campaign.db.models import CampaignRun, CouponAnnouncement, RunStatus

# post(url, secret, body, webhook_id) -> webhook id; raises DeliveryError on failure.
Post = Callable[[str, str, bytes, str], str]

BACKOFF_FIRST = timedelta(minutes=1)
BACKOFF_MAX = timedelta(hours=1)
# Failed announcements are retried this long; runs without a row are looked for
# this far back.
RETRY_DAYS = 30
ORPHAN_DAYS = 7


@dataclass(frozen=True)
class Announcement:
    """The outcome of announcing one run: ``announced`` (the shop accepted it),
    ``nothing`` (the run reserved no codes) or ``failed`` (retried at
    ``next_attempt_at``)."""

    run_id: int
    outcome: str
    codes: int
    webhook_id: str
    error: str | None = None
    next_attempt_at: datetime | None = None


def backoff(attempts: int) -> timedelta:
    """Delay before the next try after ``attempts`` failed ones (1 min doubling, ≤ 1 h)."""
    # The exponent is capped: a month of hourly retries would overflow a timedelta.
    return min(BACKOFF_MAX, BACKOFF_FIRST * 2 ** min(max(attempts - 1, 0), 20))


def announce_run(
    engine: Engine, shop: ShopConfig, run_id: int, *, now: datetime, post: Post
) -> Announcement | None:
    """Announce run ``run_id``'s codes now, unless the shop already accepted them.

    Returns None when no webhook is configured; otherwise the outcome. A failure is
    recorded for the sweep to retry and returned, never raised.
    """
    if not shop.coupon_webhook_url or shop.coupon_webhook_secret is None:
        return None
    row = _row(engine, run_id, now)
    if row.announced_at is not None:
        return Announcement(run_id, "announced", row.codes, row.webhook_id)
    with engine.connect() as connection:
        payload = run_coupons_payload(
            connection, run_id, shop=shop.name, currency=shop.currency, now=now
        )
    if payload is None:
        _settle(engine, run_id, codes=0, now=now)
        return Announcement(run_id, "nothing", 0, row.webhook_id)
    body, count = payload
    try:
        post(
            shop.coupon_webhook_url, shop.coupon_webhook_secret.get_secret_value(), body,
            row.webhook_id,
        )
    except (DeliveryError, SignatureError) as exc:
        attempts = row.attempts + 1
        retry_at = now + backoff(attempts)
        with engine.begin() as connection:
            connection.execute(
                update(CouponAnnouncement)
                .where(CouponAnnouncement.run_id == run_id)
                .values(
                    attempts=attempts, codes=count, next_attempt_at=retry_at,
                    last_error=str(exc)[:2000],
                )
            )
        return Announcement(run_id, "failed", count, row.webhook_id, str(exc), retry_at)
    _settle(engine, run_id, codes=count, now=now, attempts=row.attempts + 1)
    return Announcement(run_id, "announced", count, row.webhook_id)


def announce_pending(
    engine: Engine,
    shop: ShopConfig,
    *,
    now: datetime,
    post: Post,
    limit: int = 100,
    ignore_backoff: bool = False,
) -> list[Announcement]:
    """Announce every run the shop has not accepted yet whose next try is due.

    Those are failed announcements younger than ``RETRY_DAYS`` (with
    ``ignore_backoff``, whatever their next try: an operator asking now means now),
    and finished runs of the last ``ORPHAN_DAYS`` without any announcement row. At
    most ``limit`` runs per call, oldest first. Returns one outcome per run tried
    (runs that reserved no codes are settled quietly and not listed).
    """
    if not shop.coupon_webhook_url or shop.coupon_webhook_secret is None:
        return []
    pending = [
        CouponAnnouncement.announced_at.is_(None),
        CouponAnnouncement.created_at >= now - timedelta(days=RETRY_DAYS),
    ]
    if not ignore_backoff:
        pending.append(CouponAnnouncement.next_attempt_at <= now)
    with engine.connect() as connection:
        due = connection.execute(
            select(CouponAnnouncement.run_id)
            .where(*pending)
            .order_by(CouponAnnouncement.run_id)
            .limit(limit)
        ).scalars().all()
        orphans = connection.execute(
            select(CampaignRun.id)
            .outerjoin(CouponAnnouncement, CouponAnnouncement.run_id == CampaignRun.id)
            .where(
                CouponAnnouncement.run_id.is_(None),
                CampaignRun.status == RunStatus.DONE,
                CampaignRun.started_at >= now - timedelta(days=ORPHAN_DAYS),
            )
            .order_by(CampaignRun.id)
            .limit(limit)
        ).scalars().all()
    outcomes = []
    for run_id in sorted({*due, *orphans})[:limit]:
        outcome = announce_run(engine, shop, run_id, now=now, post=post)
        if outcome is not None and outcome.outcome != "nothing":
            outcomes.append(outcome)
    return outcomes


def _row(engine: Engine, run_id: int, now: datetime) -> Row[Any]:
    """The run's announcement row, created (with a new webhook id) if missing."""
    columns = table_of(CouponAnnouncement).c
    with engine.connect() as connection:
        found = connection.execute(select(*columns).where(columns.run_id == run_id)).first()
    if found is None:
        try:
            with engine.begin() as connection:
                connection.execute(
                    insert(CouponAnnouncement).values(
                        run_id=run_id, webhook_id=f"coupons_{uuid.uuid4().hex}", codes=0,
                        attempts=0, created_at=now, next_attempt_at=now,
                    )
                )
        except IntegrityError:
            pass  # another process created it first: use theirs (same webhook id)
        with engine.connect() as connection:
            found = connection.execute(select(*columns).where(columns.run_id == run_id)).one()
    return found


def _settle(engine: Engine, run_id: int, *, codes: int, now: datetime, attempts: int = 0) -> None:
    with engine.begin() as connection:
        connection.execute(
            update(CouponAnnouncement)
            .where(CouponAnnouncement.run_id == run_id)
            .values(codes=codes, announced_at=now, attempts=attempts, last_error=None)
        )
