"""Campaign runs: plan one, tell the shop of its coupon codes, test-send one.

The CLI's ``campaign run`` plans and then announces (it prints the run's counts in
between); the daemon's schedule and the demo call :func:`plan_and_announce`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine

from campaign.config import Config

if TYPE_CHECKING:
    from campaign.coupons.announcements import Announcement
    from campaign.planner.run import RunReport

Progress = Callable[[int], None]


@dataclass(frozen=True)
class PlannedRun:
    """A planned run and, when it reserved codes, what the shop was told.

    ``announce_error`` is an exception the announcement raised (the run itself is
    committed; the sweep retries the announcement): the caller decides whether it is
    fatal (the CLI) or a log line (the daemon).
    """

    report: RunReport
    announcement: Announcement | None = None
    announce_error: Exception | None = None


def plan(
    engine: Engine,
    config: Config,
    campaign: str,
    *,
    as_of: datetime,
    slot: datetime,
    now: Callable[[], datetime] | None = None,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> RunReport:
    """Plan one run of ``campaign`` (see :func:`campaign.planner.run.plan_run`), ranked
    as its audience asks: by risk, or by the campaign's uplift model
    (:func:`campaign.app.uplift.uplift_targeting`)."""
    from campaign.app.uplift import uplift_targeting
    from campaign.planner import run as planner_run

    # Looked up on the module at call time, so a test can stand in for the planner.
    return planner_run.plan_run(
        engine, config, campaign, as_of=as_of, slot=slot, dry_run=dry_run,
        progress=progress, now=now, targeting=uplift_targeting(config),
    )


def announce_codes(
    engine: Engine, config: Config, run_id: int, *, now: datetime
) -> Announcement | None:
    """Tell the shop's checkout of run ``run_id``'s new codes (None: no webhook set)."""
    from campaign.coupons.announcements import announce_run
    from campaign.coupons.shop import post_coupons_issued

    return announce_run(engine, config.shop, run_id, now=now, post=post_coupons_issued)


def announce_pending_codes(
    engine: Engine, config: Config, *, now: datetime, ignore_backoff: bool = False
) -> list[Announcement]:
    """Retry every announcement the shop has not accepted yet (whose next try is due)."""
    from campaign.coupons.announcements import announce_pending
    from campaign.coupons.shop import post_coupons_issued

    return announce_pending(
        engine, config.shop, now=now, post=post_coupons_issued, ignore_backoff=ignore_backoff
    )


def plan_and_announce(
    engine: Engine,
    config: Config,
    campaign: str,
    *,
    as_of: datetime,
    slot: datetime,
    now: Callable[[], datetime],
    progress: Progress | None = None,
) -> PlannedRun:
    """Plan one run, then announce its codes when it planned one.

    A planning error raises (nothing was written); an announcement error is returned
    in :attr:`PlannedRun.announce_error`, never raised: the codes are reserved and
    the announcement sweep retries.
    """
    from campaign.planner.run import PLANNED

    report = plan(engine, config, campaign, as_of=as_of, slot=slot, now=now, progress=progress)
    if report.outcome != PLANNED or report.run_id is None:
        return PlannedRun(report)
    try:
        announcement = announce_codes(engine, config, report.run_id, now=now())
    except Exception as exc:  # reported to the caller; the sweep retries
        return PlannedRun(report, announce_error=exc)
    return PlannedRun(report, announcement)


def test_send(
    engine: Engine,
    config: Config,
    campaign: str,
    seed_text: str,
    source: str,
    *,
    as_of: datetime,
    now: Callable[[], datetime],
) -> RunReport:
    """Queue real messages of a few sample users to the seed addresses in ``seed_text``."""
    from campaign.planner.test_send import parse_seed_list, plan_test_send

    seeds = parse_seed_list(seed_text, source)
    return plan_test_send(engine, config, campaign, seeds, as_of=as_of, now=now)


def test_send_to_seeds(
    engine: Engine,
    config: Config,
    campaign: str,
    *,
    by: str,
    as_of: datetime,
    now: Callable[[], datetime],
) -> RunReport:
    """:func:`test_send` to the console's seed list (``[console] test_seed_file``),
    recorded as ``campaign.test_sent`` by ``by``.

    Raises:
        InputError: no seed file is configured, or it cannot be read.
    """
    from campaign.common.errors import InputError
    from campaign.db import console as store

    if not config.console.test_seed_file:
        raise InputError("console.test_seed_file", "no seed list is configured for test sends")
    path = config.resolve_path(config.console.test_seed_file)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise InputError(str(path), f"cannot read the seed list ({exc.strerror or exc})") from None
    report = test_send(engine, config, campaign, text, str(path), as_of=as_of, now=now)
    with engine.begin() as connection:
        store.record(
            connection, by, "campaign.test_sent", campaign, now=now(),
            detail={"messages": len(report.messages), "run": report.run_id},
        )
    return report


def preview(
    database_url: str,
    config: Config,
    campaign: str,
    *,
    as_of: datetime,
    slot: datetime,
    now: Callable[[], datetime],
    limit: int | None = 10,
    user: str | None = None,
) -> RunReport:
    """Who would get what and why in a run of ``campaign``, with up to ``limit`` rendered
    messages (``campaign preview``, the console's audience page), on a read-only
    connection: nothing is written, no coupon reserved.

    Raises:
        DatabaseError: the database is not at the current migration.
        NotFound, TemplateError, ConfigError: as a run.
    """
    from campaign.app.uplift import uplift_targeting
    from campaign.db.migrate import require_current
    from campaign.planner.preview import open_read_only, preview_run

    engine = open_read_only(database_url)
    try:
        require_current(engine)
        return preview_run(
            engine, config, campaign, as_of=as_of, slot=slot, limit=limit, user=user, now=now,
            targeting=uplift_targeting(config),
        )
    finally:
        engine.dispose()
