"""A run's row in ``campaign_runs``: claim the slot, see it taken, record a failure.

The row is unique per (campaign, slot); claiming it is what makes planning the same
slot twice plan nothing new. Also the read-only connection of dry runs and the
unsubscribe-link key a run signs with.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection, Engine

from campaign.config import Config
from campaign.db.dialect import inserted_id, is_server
from campaign.db.models import (
    CampaignRun,
    RunStatus,
)
from campaign.db.queries import unsubscribe_key
from campaign.planner.outcomes import ALREADY_PLANNED, RunReport

log = logging.getLogger("campaign.planner.run")


def already_planned(campaign: str, slot: datetime, as_of: datetime) -> RunReport:
    return RunReport(
        campaign, slot, as_of, ALREADY_PLANNED,
        notes=[f"{campaign} at {slot.isoformat()} was already planned: nothing new"],
    )


@contextmanager
def read_only(engine: Engine) -> Iterator[Connection]:
    """A connection whose transaction is always rolled back; read-only on the servers
    (PostgreSQL, MariaDB, MySQL)."""
    with engine.connect() as connection:
        if is_server(connection):
            connection.exec_driver_sql("SET TRANSACTION READ ONLY")
        try:
            yield connection
        finally:
            connection.rollback()


def claim_run(
    connection: Connection, campaign: str, slot: datetime, as_of: datetime, started: datetime
) -> int | None:
    """Insert the run row; None when the slot is already planned.

    A run recorded as failed (its transaction rolled back, so it planned nothing) is
    taken over and planned again.
    """
    existing = connection.execute(
        select(CampaignRun.id, CampaignRun.status).where(
            CampaignRun.campaign == campaign, CampaignRun.slot == slot
        )
    ).first()
    if existing is not None:
        if existing.status != RunStatus.FAILED:
            return None
        connection.execute(
            update(CampaignRun)
            .where(CampaignRun.id == existing.id)
            .values(status=RunStatus.RUNNING, as_of=as_of, started_at=started, error=None)
        )
        return int(existing.id)
    # The new key from the driver (MySQL has no INSERT ... RETURNING).
    return inserted_id(
        connection.execute(
            insert(CampaignRun).values(
                campaign=campaign, slot=slot, as_of=as_of, status=RunStatus.RUNNING,
                counts={}, started_at=started,
            )
        )
    )


def slot_taken(engine: Engine, campaign: str, slot: datetime) -> bool:
    """Whether a run of (campaign, slot) that did not fail is committed."""
    with engine.connect() as connection:
        status = connection.execute(
            select(CampaignRun.status).where(
                CampaignRun.campaign == campaign, CampaignRun.slot == slot
            )
        ).scalar()
    return status is not None and status != RunStatus.FAILED


def record_failure(
    engine: Engine, campaign: str, slot: datetime, as_of: datetime, at: datetime, exc: Exception
) -> None:
    """Leave a ``failed`` run row with the error, so operators see it; never raises."""
    try:
        with engine.begin() as connection:
            existing = connection.execute(
                select(CampaignRun.id).where(
                    CampaignRun.campaign == campaign, CampaignRun.slot == slot
                )
            ).scalar()
            values = {"status": RunStatus.FAILED, "error": str(exc)[:2000], "finished_at": at}
            if existing is None:
                connection.execute(
                    insert(CampaignRun).values(
                        campaign=campaign, slot=slot, as_of=as_of, counts={}, started_at=at,
                        **values,
                    )
                )
            else:
                connection.execute(
                    update(CampaignRun).where(CampaignRun.id == existing).values(**values)
                )
    except Exception:  # noqa: BLE001 - the original error is what the caller needs
        log.warning("campaign.run.failure_not_recorded campaign=%s slot=%s", campaign, slot,
                    exc_info=True)


def link_key(engine: Engine, config: Config, *, create: bool) -> bytes:
    """The unsubscribe-link key (a dry run only reads it, and never creates it)."""
    secrets = [secret.get_secret_value() for secret in config.server.link_secrets]
    if create:
        with engine.begin() as connection:
            return unsubscribe_key(connection, secrets, create=True)
    with engine.connect() as connection:
        return unsubscribe_key(connection, secrets, create=False)



@dataclass(frozen=True)
class RunSummary:
    """One run as a page or a report shows it: slot, status, counts, times, error."""

    run_id: int
    campaign: str
    slot: datetime
    status: str
    counts: dict[str, int]
    started_at: datetime | None
    finished_at: datetime | None
    error: str | None


def recent_runs(connection: Connection, campaign: str, limit: int = 5) -> list[RunSummary]:
    """The newest ``limit`` runs of ``campaign`` (by slot, newest first); read-only."""
    table = CampaignRun.__table__
    rows = connection.execute(
        select(table)
        .where(table.c.campaign == campaign)
        .order_by(table.c.slot.desc(), table.c.id.desc())
        .limit(limit)
    )
    return [
        RunSummary(
            r.id, r.campaign, r.slot, r.status, dict(r.counts or {}), r.started_at,
            r.finished_at, r.error,
        )
        for r in rows
    ]
