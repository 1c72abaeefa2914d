"""The operator's brake: campaign pauses stored in ``campaign_state``.

``campaign pause NAME`` / ``campaign pause --all`` write a row here; the planner reads
it before a run and every outbox claim filters on it, so a pause takes effect before
the next claim in every process, without a restart. The row named :data:`ALL` is the
pause-all switch (campaign names cannot contain ``*``). The ``paused`` flag of a
campaign in ``config.toml`` is separate and needs a restart; either one pauses.

Every switch is also appended to ``pause_events`` (who, why, when), so pausing again
with another reason never loses the first one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, exists, or_, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from campaign.db.base import table_of
from campaign.db.models import CampaignState, PauseEvent

ALL = "*"

_state = table_of(CampaignState)
_events = table_of(PauseEvent)


@dataclass(frozen=True)
class Switch:
    """One pause or resume: the campaign (``*``: all), its state, why, who and when."""

    campaign: str
    paused: bool
    reason: str | None
    by: str | None
    at: datetime | None


def set_paused(
    engine: Engine,
    campaign: str,
    paused: bool,
    *,
    now: datetime,
    reason: str | None = None,
    by: str = "unknown",
) -> None:
    """Pause (or resume) ``campaign``, or every campaign with :data:`ALL`; transactional.

    ``by`` names who did it (an operator's name, else the OS user); the switch and its
    history entry are written in one transaction.
    """
    with engine.begin() as connection:
        set_paused_in(connection, campaign, paused, now=now, reason=reason, by=by)


def set_paused_in(
    connection: Connection,
    campaign: str,
    paused: bool,
    *,
    now: datetime,
    reason: str | None = None,
    by: str = "unknown",
) -> None:
    """:func:`set_paused` inside the caller's transaction (``engine.begin()``)."""
    values = {
        "paused": paused, "reason": reason if paused else None, "updated_at": now,
        "changed_by": by,
    }
    connection.execute(
        _events.insert().values(campaign=campaign, paused=paused, reason=reason, actor=by, at=now)
    )
    done = connection.execute(
        update(_state).where(_state.c.campaign == campaign).values(**values)
    ).rowcount
    if done:
        return
    try:
        with connection.begin_nested():
            connection.execute(_state.insert().values(campaign=campaign, **values))
    except IntegrityError:
        # Someone inserted the row between our UPDATE and INSERT: update theirs.
        connection.execute(update(_state).where(_state.c.campaign == campaign).values(**values))


def switches(connection: Connection) -> list[Switch]:
    """The current switch of every campaign ever paused (``*`` first); read-only."""
    rows = connection.execute(
        select(
            _state.c.campaign, _state.c.paused, _state.c.reason, _state.c.changed_by,
            _state.c.updated_at,
        ).order_by(_state.c.campaign)
    )
    found = [Switch(r.campaign, bool(r.paused), r.reason, r.changed_by, r.updated_at)
             for r in rows]
    return sorted(found, key=lambda s: (s.campaign != ALL, s.campaign))


def pause_history(connection: Connection, limit: int = 20) -> list[Switch]:
    """The newest ``limit`` pauses and resumes, newest first; read-only."""
    rows = connection.execute(
        select(_events).order_by(_events.c.at.desc(), _events.c.id.desc()).limit(limit)
    )
    return [Switch(r.campaign, bool(r.paused), r.reason, r.actor, r.at) for r in rows]


def is_paused(connection: Connection, campaign: str) -> bool:
    """Whether ``campaign`` is paused by its own switch or by pause-all; read-only."""
    return bool(
        connection.execute(
            select(
                exists().where(
                    _state.c.paused.is_(True), _state.c.campaign.in_([campaign, ALL])
                )
            )
        ).scalar()
    )


def not_paused(campaign_column: ColumnElement[str]) -> ColumnElement[bool]:
    """A WHERE clause: the row's campaign (``campaign_column``) is not paused.

    Seed-list test sends are planned as ``<campaign>:test`` and follow their campaign's
    switch too.
    """
    base = campaign_column
    return ~exists().where(
        and_(
            _state.c.paused.is_(True),
            or_(
                _state.c.campaign == ALL,
                _state.c.campaign == base,
                _state.c.campaign + ":test" == base,
            ),
        )
    )
