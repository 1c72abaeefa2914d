"""The scheduler's job functions: thin, module-level, and never fatal to the daemon.

Each job takes a :class:`JobContext` (engine, config, clock, metrics) and the name of
what it works on. A failure is recorded where an operator looks (``campaign_runs``
with status ``failed`` and the error; the log with its traceback) and the job returns:
one broken campaign never stops the others or the daemon.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from campaign.config import Config
from campaign.daemon.logging import log_event
from campaign.daemon.metrics import Metrics
from campaign.daemon.slots import make_trigger, plan_slots
from campaign.db.models import CampaignRun, RunStatus

if TYPE_CHECKING:
    from campaign.coupons.announcements import Announcement

log = logging.getLogger("campaign.daemon")


@dataclass(frozen=True)
class JobContext:
    """What every job needs; ``clock`` returns aware UTC datetimes."""

    engine: Engine
    config: Config
    clock: Callable[[], datetime]
    metrics: Metrics


# -- campaign_runs helpers ------------------------------------------------------------


def last_slot(engine: Engine, campaign: str, now: datetime) -> datetime | None:
    """The newest recorded slot of ``campaign`` not after ``now`` (any status); read-only."""
    with engine.connect() as connection:
        return connection.execute(
            select(func.max(CampaignRun.slot)).where(
                CampaignRun.campaign == campaign, CampaignRun.slot <= now
            )
        ).scalar()


def record_missed(
    engine: Engine, campaign: str, slots: list[datetime], *, now: datetime, reason: str
) -> int:
    """Record ``slots`` as ``missed`` (those already recorded are left alone).

    Returns how many rows were written. One transaction.
    """
    written = 0
    with engine.begin() as connection:
        for slot in slots:
            try:
                with connection.begin_nested():
                    connection.execute(
                        insert(CampaignRun).values(
                            campaign=campaign, slot=slot, as_of=slot, status=RunStatus.MISSED,
                            counts={}, started_at=None, finished_at=now, error=reason,
                        )
                    )
                written += 1
            except IntegrityError:
                continue
    return written


def record_failed(
    engine: Engine, campaign: str, slot: datetime, *, now: datetime, error: str
) -> None:
    """Mark (campaign, slot) failed with ``error``, inserting the row if planning never
    got that far. A slot that finished (``done``) is never downgraded."""
    error = error[:2000]
    with engine.begin() as connection:
        changed = connection.execute(
            update(CampaignRun)
            .where(
                CampaignRun.campaign == campaign,
                CampaignRun.slot == slot,
                CampaignRun.status != RunStatus.DONE,
            )
            .values(status=RunStatus.FAILED, error=error, finished_at=now)
        ).rowcount
        if changed:
            return
        try:
            with connection.begin_nested():
                connection.execute(
                    insert(CampaignRun).values(
                        campaign=campaign, slot=slot, as_of=slot, status=RunStatus.FAILED,
                        counts={}, started_at=now, finished_at=now, error=error,
                    )
                )
        except IntegrityError:
            pass  # a finished run of the slot exists: nothing to mark


# -- jobs -----------------------------------------------------------------------------


def tick_campaign(ctx: JobContext, campaign: str) -> None:
    """The scheduled job of one campaign: record missed slots, run the due one.

    Runs at every fire time of the campaign's cron, and once when this daemon becomes
    the leader (catching up what no daemon ran). Never raises.
    """
    try:
        now = ctx.clock()
        schedule = ctx.config.campaign(campaign).schedule
        grace = timedelta(seconds=ctx.config.daemon.missed_slot_grace_seconds)
        plan = plan_slots(make_trigger(schedule), last_slot(ctx.engine, campaign, now), now, grace)
        if plan.missed:
            written = record_missed(
                ctx.engine, campaign, plan.missed, now=now,
                reason=(
                    "missed: no daemon ran the scheduler at this slot"
                    " (older than the grace time)"
                ),
            )
            ctx.metrics.runs.labels(campaign, "missed").inc(written)
            log_event(
                log, "campaign.run.missed", logging.WARNING, campaign=campaign,
                slots=written, newest=plan.missed[-1].isoformat(), not_recorded=plan.dropped,
            )
        if plan.run is not None:
            run_slot(ctx, campaign, plan.run)
    except Exception:
        log.error("campaign.run.failed campaign=%s stage=schedule", campaign, exc_info=True)


def run_slot(ctx: JobContext, campaign: str, slot: datetime) -> str:
    """Plan ``campaign`` at ``slot`` (as of the slot); returns the outcome. Never raises.

    Outcomes: the planner's (``planned``, ``already_planned``), ``paused`` (recorded
    as missed so the slot is accounted for) or ``failed`` (recorded with its error).
    """
    from campaign.app.runs import plan_and_announce
    from campaign.planner.outcomes import ALREADY_PLANNED, PAUSED, PLANNED

    started = time.perf_counter()
    log_event(log, "campaign.run.started", campaign=campaign, slot=slot.isoformat())
    try:
        planned = plan_and_announce(
            ctx.engine, ctx.config, campaign, as_of=slot, slot=slot, now=ctx.clock
        )
    except Exception as exc:
        seconds = time.perf_counter() - started
        try:
            error = f"{type(exc).__name__}: {exc}"
            record_failed(ctx.engine, campaign, slot, now=ctx.clock(), error=error)
        except Exception:
            log.error("campaign.run.failure_not_recorded campaign=%s", campaign, exc_info=True)
        ctx.metrics.runs.labels(campaign, "failed").inc()
        ctx.metrics.run_seconds.labels(campaign).observe(seconds)
        log.error(
            "campaign.run.failed campaign=%s slot=%s error=%s",
            campaign, slot.isoformat(), exc, exc_info=True,
        )
        return "failed"
    seconds = time.perf_counter() - started
    report = planned.report
    if report.outcome == PAUSED:
        record_missed(ctx.engine, campaign, [slot], now=ctx.clock(), reason="paused")
        ctx.metrics.runs.labels(campaign, "paused").inc()
        log_event(log, "campaign.run.paused", campaign=campaign, slot=slot.isoformat())
        return PAUSED
    status = "already" if report.outcome == ALREADY_PLANNED else "done"
    ctx.metrics.runs.labels(campaign, status).inc()
    ctx.metrics.run_seconds.labels(campaign).observe(seconds)
    log_event(
        log, "campaign.run.finished", campaign=campaign, slot=slot.isoformat(),
        outcome=report.outcome, run_id=report.run_id, queued=report.counts.get("queued", 0),
        seconds=round(seconds, 3), ranked_by=report.ranked_by,
    )
    wanted = ctx.config.campaign(campaign).audience.rank_by
    if report.ranked_by is not None and report.ranked_by != wanted:
        # The fallback (no uplift model yet) is what the operator must not miss.
        log_event(log, "campaign.run.ranked_by_risk", logging.WARNING, campaign=campaign,
                  run_id=report.run_id, rank_by=wanted, reason=repr(report.targeting))
    if report.outcome == PLANNED and report.run_id is not None:
        # A failed announcement never fails the run: announce_coupons retries it.
        if planned.announce_error is not None:
            log.warning("coupons.shop.not_notified campaign=%s run_id=%s", campaign,
                        report.run_id, exc_info=planned.announce_error)
        elif planned.announcement is not None:
            _log_announcement(planned.announcement, campaign=campaign)
    return report.outcome


def announce_coupons(ctx: JobContext) -> None:
    """Retry announcing coupon codes the shop has not accepted yet. Never raises."""
    from campaign.app.runs import announce_pending_codes

    try:
        outcomes = announce_pending_codes(ctx.engine, ctx.config, now=ctx.clock())
    except Exception:
        log.error("coupons.announce.failed", exc_info=True)
        return
    for outcome in outcomes:
        _log_announcement(outcome)


def _log_announcement(outcome: Announcement, **fields: Any) -> None:
    if outcome.outcome == "announced":
        log_event(log, "coupons.shop.notified", run_id=outcome.run_id, codes=outcome.codes,
                  webhook_id=outcome.webhook_id, **fields)
    elif outcome.outcome == "failed":
        log.warning(
            "coupons.shop.not_notified run_id=%s codes=%s webhook_id=%s retry_at=%s error=%s",
            outcome.run_id, outcome.codes, outcome.webhook_id,
            outcome.next_attempt_at.isoformat() if outcome.next_attempt_at else None,
            outcome.error,
        )


def retrain(ctx: JobContext) -> None:
    """The retraining schedule: train churn (activating if not worse), score, then the
    recommender's tournament. Never raises."""
    from campaign.app.models import retrain_and_score

    started = time.perf_counter()
    try:
        done = retrain_and_score(
            ctx.engine, ctx.config.model, now=ctx.clock(), recommender=ctx.config.recommender
        )
        log_event(
            log, "model.retrain.finished", version=done.report.version_id,
            decision=done.report.decision, scored=done.scored,
            seconds=round(time.perf_counter() - started, 1),
        )
        if done.recommender is not None:
            log_event(
                log, "recommender.retrain.finished", version=done.recommender.version_id,
                decision=done.recommender.decision,
            )
        else:
            log.warning("recommender.retrain.failed reason=%s", done.recommender_error)
    except Exception:
        log.error("model.retrain.failed", exc_info=True)


def ingest_folder_job(ctx: JobContext) -> None:
    """Import new CSV drops from ``[daemon.ingest] folder``. Never raises."""
    from campaign.daemon.ingest_jobs import ingest_folder

    folder = ctx.config.daemon.ingest.folder
    if folder is None:
        return
    try:
        ingest_folder(
            ctx.engine, ctx.config.resolve_path(folder), now=ctx.clock,
            settle_seconds=ctx.config.daemon.ingest.settle_seconds,
            media={n: c.medium for n, c in ctx.config.channels.items()},
            currency=ctx.config.shop.currency, phone_region=ctx.config.shop.phone_region,
        )
    except Exception:
        log.error("ingest.folder.failed folder=%s", folder, exc_info=True)


def ingest_query_job(ctx: JobContext, index: int, url: str) -> None:
    """Run configured shop-database query number ``index`` into our tables. Never raises."""
    from campaign.daemon.ingest_jobs import ingest_query

    query = ctx.config.daemon.ingest.queries[index]
    try:
        ingest_query(
            ctx.engine, query.target, url, query.query, now=ctx.clock,
            currency=ctx.config.shop.currency, phone_region=ctx.config.shop.phone_region,
        )
    except Exception:
        log.error("ingest.query.failed index=%d target=%s", index, query.target, exc_info=True)
