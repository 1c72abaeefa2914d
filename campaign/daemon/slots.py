"""Which scheduled slots are due, from a cron trigger, the last recorded slot and now.

Pure apart from APScheduler's trigger arithmetic: no database, no clock of its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

from campaign.config import ScheduleConfig

# Never record more missed slots than this for one campaign in one pass (a per-minute
# campaign down for a month would otherwise write 43,200 rows at start).
MAX_MISSED = 100


def make_trigger(schedule: ScheduleConfig) -> CronTrigger:
    """The APScheduler cron trigger of a campaign schedule, in its timezone."""
    return CronTrigger.from_crontab(schedule.cron, timezone=ZoneInfo(schedule.timezone))


def cron_trigger(cron: str, timezone: str) -> CronTrigger:
    """A cron trigger from a five-field expression in ``timezone``."""
    return CronTrigger.from_crontab(cron, timezone=ZoneInfo(timezone))


def slots_between(
    trigger: CronTrigger, after: datetime, until: datetime, limit: int | None = None
) -> list[datetime]:
    """Fire times ``t`` with ``after < t <= until``, oldest first, in UTC.

    With ``limit`` only the newest ``limit`` are returned (older ones are dropped).
    """
    return _walk(trigger, after, until, limit)[0]


def _walk(
    trigger: CronTrigger, after: datetime, until: datetime, limit: int | None
) -> tuple[list[datetime], int]:
    out: list[datetime] = []
    total = 0
    cursor = after + timedelta(microseconds=1)
    while True:
        nxt = trigger.get_next_fire_time(None, cursor)
        if nxt is None or nxt > until:
            break
        total += 1
        out.append(nxt.astimezone(UTC))
        if limit is not None and len(out) > limit:
            out.pop(0)
        cursor = nxt + timedelta(microseconds=1)
    return out, total


@dataclass(frozen=True)
class SlotPlan:
    """What to do now: run ``run`` (or nothing), record ``missed`` as missed.

    ``dropped`` counts missed slots beyond :data:`MAX_MISSED` that are not recorded.
    """

    run: datetime | None
    missed: list[datetime] = field(default_factory=list)
    dropped: int = 0


def plan_slots(
    trigger: CronTrigger,
    last_slot: datetime | None,
    now: datetime,
    grace: timedelta,
) -> SlotPlan:
    """Decide the slots since ``last_slot`` (exclusive) up to ``now`` (inclusive).

    The newest of them runs when it is at most ``grace`` old, every older one is
    missed (coalescing: a daemon down for three slots runs one, not three). With no
    recorded slot (a new campaign, a fresh database) only ``[now - grace, now]`` is
    looked at and nothing is recorded as missed: there is no history to miss.
    """
    if last_slot is None:
        recent = slots_between(trigger, now - grace - timedelta(microseconds=1), now)
        return SlotPlan(run=recent[-1] if recent else None)
    # Bound the walk to a month before the grace window: older slots would be missed
    # anyway; they are neither recorded nor counted.
    horizon = max(last_slot, now - grace - timedelta(days=31))
    due, total = _walk(trigger, horizon, now, MAX_MISSED + 1)
    dropped = total - len(due)
    if not due:
        return SlotPlan(run=None, dropped=dropped)
    newest = due[-1]
    if now - newest <= grace:
        return SlotPlan(run=newest, missed=due[:-1], dropped=dropped)
    return SlotPlan(run=None, missed=due, dropped=dropped)
