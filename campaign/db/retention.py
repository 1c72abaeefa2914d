"""Retention: ``campaign prune --older-than DAYS`` removes what is old and heavy, keeps counts.

The policy (docs/operations.md "Retention"), for everything older than the cutoff
(now minus DAYS):

* **message texts**: the rendered subject and bodies of messages that are finished
  (sent, dead, skipped, held out) are set to NULL. The rows stay: status, engagement,
  variant, coupon, times, so every count of every report is unchanged.
* **responses**: provider events are deleted. Before a matched event goes, its type
  is folded into its message's ``pruned_response_types``, which the funnel reads
  like a response (:func:`campaign.measurement.reports.data.load_response_types`): a pruned run
  shows the same delivered/opened/clicked numbers as before.
* **browsing events**: ``view``, ``cart``, ``search`` and ``visit`` events are deleted.
  **Purchases are kept**: conversions, revenue, churn, customer value and the churn
  labels are built from them.

Nothing else is touched (users, coupons, suppressions, runs, model versions, arms).
Work goes in batches, each its own transaction, so a large prune neither holds one
huge transaction nor loses its progress when interrupted: running it again finishes
the job, and a second run over the same data finds nothing left to do.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, bindparam, delete, func, or_, select, update
from sqlalchemy.engine import Connection, Engine, Row

from campaign.common.errors import InputError
from campaign.db.base import table_of
from campaign.db.models import Event, EventType, Message, MessageStatus, Response

BATCH_ROWS = 5_000
KEPT_EVENT_TYPES: tuple[str, ...] = (EventType.PURCHASE.value,)
FINISHED: tuple[str, ...] = (
    MessageStatus.SENT.value,
    MessageStatus.DEAD.value,
    MessageStatus.SKIPPED.value,
    MessageStatus.HELD_OUT.value,
)

Progress = Callable[[int], None]


@dataclass(frozen=True)
class PruneReport:
    """What a prune removed (or, with ``dry_run``, would remove) before ``cutoff``."""

    cutoff: datetime
    message_texts: int
    responses: int
    events: int
    dry_run: bool

    @property
    def total(self) -> int:
        """Rows changed or deleted, all kinds together."""
        return self.message_texts + self.responses + self.events


def minimum_days(window_days: int, horizon_days: int) -> int:
    """The shortest retention allowed: no message whose attribution window or churn
    horizon is still open loses anything its measurement could still read."""
    return max(window_days, horizon_days)


def _texts(cutoff: datetime) -> tuple[Any, ...]:
    return (
        Message.created_at < cutoff,
        Message.status.in_(FINISHED),
        or_(Message.subject.is_not(None), Message.body.is_not(None),
            Message.text_body.is_not(None)),
    )


def _old_responses(cutoff: datetime) -> tuple[Any, ...]:
    return (Response.ts < cutoff,)


def _old_events(cutoff: datetime) -> tuple[Any, ...]:
    return (Event.ts < cutoff, Event.type.not_in(KEPT_EVENT_TYPES))


def _count(connection: Connection, table: type, where: tuple[Any, ...]) -> int:
    return int(connection.execute(select(func.count()).select_from(table).where(*where))
               .scalar_one())


def prune(
    engine: Engine,
    *,
    older_than_days: int,
    now: datetime,
    minimum: int = 0,
    dry_run: bool = False,
    progress: Progress | None = None,
    batch_rows: int = BATCH_ROWS,
) -> PruneReport:
    """Apply the retention policy to everything older than ``now - older_than_days``.

    ``progress(n)`` is told of the rows handled, batch by batch; the total is
    announced first (:func:`campaign.common.progress.set_total`). With ``dry_run`` only the
    counts are read.

    Raises:
        InputError: ``older_than_days`` below ``minimum`` (see :func:`minimum_days`).
    """
    from campaign.common.progress import set_total

    if older_than_days < minimum:
        raise InputError(
            "--older-than",
            f"{older_than_days} days is shorter than the {minimum} days that attribution "
            "windows and churn horizons still read ([attribution] window_days, "
            "[model] horizon_days)",
        )
    cutoff = now - timedelta(days=older_than_days)
    with engine.connect() as connection:
        counts = (
            _count(connection, Message, _texts(cutoff)),
            _count(connection, Response, _old_responses(cutoff)),
            _count(connection, Event, _old_events(cutoff)),
        )
    report = PruneReport(cutoff, *counts, dry_run=dry_run)
    if dry_run or not report.total:
        return report
    set_total(progress, report.total)
    advance = progress or (lambda _n: None)
    _scrub_texts(engine, cutoff, now, batch_rows, advance)
    _delete_responses(engine, cutoff, batch_rows, advance)
    _delete_events(engine, cutoff, batch_rows, advance)
    return report


def _scrub_texts(
    engine: Engine, cutoff: datetime, now: datetime, batch_rows: int, advance: Progress
) -> None:
    while True:
        with engine.begin() as connection:
            ids = connection.execute(
                select(Message.id).where(*_texts(cutoff)).order_by(Message.id).limit(batch_rows)
            ).scalars().all()
            if not ids:
                return
            connection.execute(
                update(Message).where(Message.id.in_(ids))
                .values(subject=None, body=None, text_body=None, updated_at=now)
            )
        advance(len(ids))


def _delete_responses(
    engine: Engine, cutoff: datetime, batch_rows: int, advance: Progress
) -> None:
    while True:
        with engine.begin() as connection:
            rows = connection.execute(
                select(Response.id, Response.message_id, Response.type)
                .where(*_old_responses(cutoff)).order_by(Response.id).limit(batch_rows)
            ).all()
            if not rows:
                return
            _fold_types(connection, rows)
            connection.execute(delete(Response).where(Response.id.in_([r.id for r in rows])))
        advance(len(rows))


def _fold_types(connection: Connection, rows: Sequence[Row[int, int | None, str]]) -> None:
    """Add the types of responses about to be deleted to their messages' kept types."""
    received: dict[int, set[str]] = {}
    for row in rows:
        if row.message_id is not None:
            received.setdefault(int(row.message_id), set()).add(str(row.type))
    if not received:
        return
    kept = dict(connection.execute(
        select(Message.id, Message.pruned_response_types).where(Message.id.in_(received))
    ).all())
    updates = []
    for message_id, kinds in received.items():
        before = set(filter(None, (kept.get(message_id) or "").split(",")))
        merged = before | kinds
        if merged != before:
            updates.append({"mid": message_id, "types": ",".join(sorted(merged))})
    if updates:
        table: Table = table_of(Message)
        connection.execute(
            update(table).where(table.c.id == bindparam("mid"))
            .values(pruned_response_types=bindparam("types")),
            updates,
        )


def _delete_events(engine: Engine, cutoff: datetime, batch_rows: int, advance: Progress) -> None:
    while True:
        with engine.begin() as connection:
            ids = connection.execute(
                select(Event.id).where(*_old_events(cutoff)).order_by(Event.id).limit(batch_rows)
            ).scalars().all()
            if not ids:
                return
            connection.execute(delete(Event).where(Event.id.in_(ids)))
        advance(len(ids))
