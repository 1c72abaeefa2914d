"""The operator's brake: campaign pauses stored in ``campaign_state``.

``campaign pause NAME`` / ``campaign pause --all`` write a row here; the planner reads
it before a run and every outbox claim filters on it, so a pause takes effect before
the next claim in every process, without a restart. The row named :data:`ALL` is the
pause-all switch (campaign names cannot contain ``*``). The ``paused`` flag of a
campaign in ``config.toml`` is separate and needs a restart; either one pauses.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ColumnElement, and_, exists, or_, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from campaign.db.models import CampaignState

ALL = "*"

_state = CampaignState.__table__


def set_paused(
    engine: Engine,
    campaign: str,
    paused: bool,
    *,
    now: datetime,
    reason: str | None = None,
) -> None:
    """Pause (or resume) ``campaign``, or every campaign with :data:`ALL`; transactional."""
    values = {"paused": paused, "reason": reason if paused else None, "updated_at": now}
    with engine.begin() as connection:
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


def paused_campaigns(connection: Connection) -> dict[str, str | None]:
    """Paused campaign names (``*`` for pause-all) → the operator's reason; read-only."""
    rows = connection.execute(
        select(_state.c.campaign, _state.c.reason).where(_state.c.paused.is_(True))
    )
    return {name: reason for name, reason in rows}


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
