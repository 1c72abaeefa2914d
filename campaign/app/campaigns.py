"""The campaigns at a glance, and the operator's brake (``campaign pause|resume``, the
console's campaigns page).

Pausing goes through :func:`campaign.db.pauses.set_paused_in`, the switch every outbox
claim and the planner read, so a pause from the console stops the sender exactly as
one from the command line does. Each switch is also recorded with who made it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger
from sqlalchemy.engine import Engine

from campaign.config import Config, ScheduleConfig
from campaign.db import console as store
from campaign.db.pauses import ALL, Switch, set_paused_in, switches
from campaign.planner.claims import RunSummary, recent_runs

if TYPE_CHECKING:
    from campaign.measurement.reports.status import StatusReport


def next_slot(schedule: ScheduleConfig, after: datetime) -> datetime | None:
    """The first scheduled slot strictly after ``after`` (aware UTC), or None."""
    trigger = CronTrigger.from_crontab(schedule.cron, timezone=ZoneInfo(schedule.timezone))
    fire = trigger.get_next_fire_time(None, after + timedelta(microseconds=1))
    return fire.astimezone(UTC) if fire is not None else None


@dataclass(frozen=True)
class CampaignOverview:
    """One campaign as the campaigns page shows it.

    ``state`` is ``running``, ``paused`` (its own switch), ``paused by pause-all`` or
    ``paused in config.toml``; ``switch`` is the pause in force (who, why, when), if any.
    """

    name: str
    cron: str
    timezone: str
    channels: tuple[str, ...]
    variants: tuple[str, ...]
    next_slot: datetime | None
    state: str
    switch: Switch | None
    runs: list[RunSummary]

    @property
    def paused(self) -> bool:
        """Whether nothing is planned or sent for the campaign now."""
        return self.state != "running"


def campaigns_overview(
    engine: Engine, config: Config, *, now: datetime, runs: int = 5
) -> list[CampaignOverview]:
    """Every configured campaign: schedule, next slot, pause state, its last ``runs``
    runs with their counts; read-only."""
    with engine.connect() as connection:
        current = {s.campaign: s for s in switches(connection) if s.paused}
        found = []
        for campaign in config.campaigns:
            switch = current.get(campaign.name) or current.get(ALL)
            if campaign.name in current:
                state = "paused"
            elif ALL in current:
                state = "paused by pause-all"
            elif campaign.paused:
                state = "paused in config.toml"
            else:
                state = "running"
            found.append(
                CampaignOverview(
                    name=campaign.name,
                    cron=campaign.schedule.cron,
                    timezone=campaign.schedule.timezone,
                    channels=campaign.channels,
                    variants=tuple(
                        f"{v.name} ({v.template})" for v in campaign.variants if v.enabled
                    ),
                    next_slot=next_slot(campaign.schedule, now),
                    state=state,
                    switch=switch,
                    runs=recent_runs(connection, campaign.name, runs),
                )
            )
    return found


def switch_campaign(
    engine: Engine,
    config: Config,
    campaign: str,
    paused: bool,
    *,
    by: str,
    now: datetime,
    reason: str | None = None,
) -> None:
    """Pause (``paused``) or resume ``campaign`` (:data:`~campaign.db.pauses.ALL`: the
    pause-all switch), recorded with ``by``; one transaction.

    Raises:
        NotFound: ``campaign`` is not a configured campaign (with the known names).
    """
    if campaign != ALL:
        config.campaign(campaign)
    action = "campaign.paused" if paused else "campaign.resumed"
    with engine.begin() as connection:
        set_paused_in(connection, campaign, paused, now=now, reason=reason, by=by)
        store.record(
            connection, by, action, "(all)" if campaign == ALL else campaign, now=now,
            detail={"reason": reason} if reason else {},
        )


# A sender is alive while its heartbeat is younger than this many heartbeats.
LIVE_BEATS = 3


def agent_status(
    engine: Engine, config: Config, *, now: datetime, errors: int = 10
) -> StatusReport:
    """What the agent is doing (``campaign status``, the console's outbox page): the
    outbox by channel and status, due times, the latest errors with their reasons,
    pauses, models, runs and live senders; read-only. Error texts are as stored (the
    caller masks addresses where its reader may not see them)."""
    from campaign.measurement.reports.status import status_report

    with engine.connect() as connection:
        return status_report(
            connection, now=now,
            paused_in_config=[c.name for c in config.campaigns if c.paused],
            live_seconds=LIVE_BEATS * config.daemon.heartbeat_seconds, errors=errors,
        )


def requeue_dead_messages(
    engine: Engine, config: Config, *, by: str, now: datetime, campaign: str | None = None
) -> int:
    """Give dead messages (of ``campaign``, else all) another try once a provider is
    fixed (``campaign send --requeue-dead``); recorded with ``by``. Returns how many."""
    from campaign.delivery.outbox import requeue_dead

    if campaign is not None:
        config.campaign(campaign)
    moved = requeue_dead(engine, now=now, campaign=campaign)
    with engine.begin() as connection:
        store.record(
            connection, by, "outbox.requeued", campaign or "(all)", now=now,
            detail={"messages": moved},
        )
    return moved
