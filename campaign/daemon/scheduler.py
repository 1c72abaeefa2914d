"""The APScheduler 3.x scheduler, built from config at every start.

In memory only: no persistent job store, no pickled jobs, no APScheduler table. Run
state lives in ``campaign_runs``, which is what makes restarts safe (a slot is
planned once; missed slots are found from the cron and the newest recorded slot,
see :mod:`campaign.daemon.slots`). Every job has ``max_instances=1`` (a slow run is
never overlapped by its next tick) and ``coalesce=True`` (a backlog of fire times
collapses into one tick, which then looks at the database anyway).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from campaign.daemon import jobs
from campaign.daemon.jobs import JobContext
from campaign.daemon.slots import cron_trigger, make_trigger

# How often the leader retries coupon announcements the shop has not accepted (each
# one also waits out its own backoff, see campaign.coupons.announcements).
ANNOUNCE_EVERY_SECONDS = 60

JOB_DEFAULTS = {
    "coalesce": True,
    "max_instances": 1,
    # Our ticks decide from campaign_runs what is due, so a late tick is never wrong:
    # let APScheduler run it however late (None = no misfire cut-off).
    "misfire_grace_time": None,
}


def build_scheduler(
    ctx: JobContext,
    *,
    query_urls: Mapping[int, str] | None = None,
    catch_up_at: datetime | None = None,
) -> BackgroundScheduler:
    """A scheduler (not started) with one job per campaign, retraining, ingest and
    (with a shop coupon webhook) retried coupon announcements.

    ``query_urls`` maps the index of each ``[[daemon.ingest.queries]]`` entry to its
    resolved database URL (secrets come from the environment at the entry point).
    With ``catch_up_at`` (wall-clock now), every campaign also ticks once right after
    the start, which runs or records slots missed while no daemon was leader.
    """
    scheduler = BackgroundScheduler(
        timezone=UTC,
        executors={"default": ThreadPoolExecutor(max_workers=4)},
        job_defaults=JOB_DEFAULTS,
    )
    add_jobs(scheduler, ctx, query_urls=query_urls, catch_up_at=catch_up_at)
    return scheduler


def reschedule(
    scheduler: BackgroundScheduler, ctx: JobContext, *, query_urls: Mapping[int, str] | None
) -> None:
    """Replace every job of a running scheduler by those of ``ctx.config`` (SIGHUP).

    The job ids stay the same, so a run still in progress under the old config keeps
    its ``max_instances=1`` guard: the new schedule never overlaps it. Changed crons
    take effect at their next fire time (no catch-up: the old schedule's slots were
    handled by the old jobs).
    """
    scheduler.remove_all_jobs()
    add_jobs(scheduler, ctx, query_urls=query_urls)


def add_jobs(
    scheduler: BackgroundScheduler,
    ctx: JobContext,
    *,
    query_urls: Mapping[int, str] | None = None,
    catch_up_at: datetime | None = None,
) -> None:
    """Add the jobs of ``ctx.config`` to ``scheduler`` (see :func:`build_scheduler`)."""
    config = ctx.config
    for campaign in config.campaigns:
        scheduler.add_job(
            jobs.tick_campaign,
            trigger=make_trigger(campaign.schedule),
            args=(ctx, campaign.name),
            id=f"campaign:{campaign.name}",
            name=f"campaign {campaign.name}",
            **({"next_run_time": catch_up_at} if catch_up_at is not None else {}),
        )
    if config.daemon.retrain:
        scheduler.add_job(
            jobs.retrain,
            trigger=cron_trigger(config.model.retrain_cron, config.shop.timezone),
            args=(ctx,),
            id="model:retrain",
            name="retrain churn model",
        )
    if config.shop.coupon_webhook_url:
        scheduler.add_job(
            jobs.announce_coupons,
            trigger=IntervalTrigger(seconds=ANNOUNCE_EVERY_SECONDS, timezone=UTC),
            args=(ctx,),
            id="coupons:announce",
            name="announce coupon codes to the shop",
        )
    ingest = config.daemon.ingest
    if ingest.folder is not None:
        scheduler.add_job(
            jobs.ingest_folder_job,
            trigger=cron_trigger(ingest.cron, config.shop.timezone),
            args=(ctx,),
            id="ingest:folder",
            name="ingest CSV drops",
        )
    for index, query in enumerate(ingest.queries):
        url = (query_urls or {}).get(index) or query.url
        if url is None:
            continue
        scheduler.add_job(
            jobs.ingest_query_job,
            trigger=cron_trigger(query.cron, config.shop.timezone),
            args=(ctx, index, url),
            id=f"ingest:query:{index}",
            name=f"ingest {query.target} query {index}",
        )
