"""Recording what happened to claimed messages: one transaction per batch of outcomes.

Outcomes are written in batches, one ``executemany`` per kind; every update only
applies while the row is still ``sending`` under our lease, so a worker that lost its
lease cannot overwrite another's progress. A "sent" whose lease was lost meanwhile is
a *stale* outcome: the provider did accept it, so a row not yet sent becomes ``sent``
(which stops the new holder from sending it, see
:func:`campaign.delivery.outbox.renew_leases`), and a row another sender already sent
keeps that first "sent" with a note in ``last_error``; either way
:func:`record_outcomes` reports it (docs/delivery.md).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import String, and_, bindparam, func, select, update
from sqlalchemy.engine import Connection, Engine

from campaign.db.base import table_of
from campaign.db.dialect import array_param, in_values, is_postgresql
from campaign.db.models import Message, MessageStatus

_messages = table_of(Message)


@dataclass(frozen=True)
class Sent:
    """The provider accepted message ``id`` (a request was made: ``attempts`` + 1)."""

    id: int
    provider_message_id: str | None


@dataclass(frozen=True)
class Retry:
    """Try message ``id`` again at ``at``; ``error`` is kept as ``last_error``.

    ``attempted``: a request was made (``attempts`` + 1); False for work handed back
    unsent (quiet hours, a lease too short to start a request, a graceful stop).
    """

    id: int
    at: datetime
    error: str | None = None
    attempted: bool = False


@dataclass(frozen=True)
class Dead:
    """Message ``id`` failed for good; ``attempted``: after a request."""

    id: int
    error: str
    attempted: bool = False


@dataclass(frozen=True)
class Skipped:
    """Message ``id`` will not be sent, for ``reason`` (a ``SkipReason`` value)."""

    id: int
    reason: str
    error: str | None = None
    attempted: bool = False


Record = Sent | Retry | Dead | Skipped


@dataclass(frozen=True)
class StaleOutcome:
    """A "sent" recorded after its lease was lost: ``duplicate`` when another sender
    had already recorded its own "sent" (the provider got the message twice)."""

    id: int
    duplicate: bool
    holder: str | None


def record_outcomes(
    engine: Engine, records: Iterable[Record], *, owner: str, now: datetime
) -> list[StaleOutcome]:
    """Write a batch of outcomes in one transaction, one ``executemany`` per kind.

    Each applies only while the row is ``sending`` under ``owner``'s lease (checked in
    the UPDATE itself). "Sent" rows keep ``lease_owner`` as who sent them. A "sent"
    whose lease was lost is returned as a :class:`StaleOutcome` (and noted on the
    row); other outcomes of a lost lease are dropped: the new holder decides.
    """
    sent: list[dict[str, Any]] = []
    retry: list[dict[str, Any]] = []
    dead: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    for record in records:
        if isinstance(record, Sent):
            sent.append({"b_id": record.id, "b_pid": record.provider_message_id})
            continue
        # A request made: attempts + 1. Handed back unsent: the claim is taken back,
        # so claims - attempts counts only claims that ended in no outcome (a crash).
        inc = 1 if record.attempted else 0
        if isinstance(record, Retry):
            retry.append(
                {"b_id": record.id, "b_at": record.at, "b_error": record.error, "b_inc": inc}
            )
        elif isinstance(record, Dead):
            dead.append({"b_id": record.id, "b_error": record.error, "b_inc": inc})
        else:
            skipped.append(
                {"b_id": record.id, "b_reason": record.reason, "b_error": record.error,
                 "b_inc": inc}
            )
    ours = and_(
        _messages.c.status == MessageStatus.SENDING.value,
        _messages.c.lease_owner == owner,
    )
    released = {"lease_until": None, "lease_owner": None, "updated_at": now}
    sent_values = {
        "status": MessageStatus.SENT.value,
        "sent_at": now,
        "last_error": None,
        "skip_reason": None,
        "attempts": _messages.c.attempts + 1,
        "lease_until": None,
        "updated_at": now,
    }
    with engine.begin() as connection:
        # A batch request gives all its messages one provider id: one UPDATE ... IN for
        # them; per-message ids go through executemany.
        by_pid: dict[str | None, list[int]] = {}
        for row in sent:
            by_pid.setdefault(row["b_pid"], []).append(row["b_id"])
        singles = [row for row in sent if len(by_pid[row["b_pid"]]) == 1]
        postgresql = is_postgresql(connection)
        for pid, ids in by_pid.items():
            if len(ids) == 1:
                continue
            step = len(ids) if postgresql else 5000
            for start in range(0, len(ids), step):
                connection.execute(
                    update(_messages)
                    .where(in_values(_messages.c.id, ids[start : start + step], connection),
                           ours)
                    .values(provider_message_id=pid, **sent_values)
                )
        if singles and postgresql:
            # One UPDATE ... FROM unnest(ids, provider ids) instead of one per message.
            given = (
                func.unnest(
                    array_param([row["b_id"] for row in singles], _messages.c.id.type),
                    array_param([row["b_pid"] for row in singles], String()),
                )
                .table_valued("id", "pid")
                .render_derived(name="given")
            )
            connection.execute(
                update(_messages)
                .where(_messages.c.id == given.c.id, ours)
                .values(provider_message_id=given.c.pid, **sent_values)
            )
        elif singles:
            connection.execute(
                update(_messages)
                .where(_messages.c.id == bindparam("b_id"), ours)
                .values(provider_message_id=bindparam("b_pid"), **sent_values),
                singles,
            )
        stale = _settle_stale(connection, sent, owner=owner, now=now) if sent else []
        # One executemany per outcome, each setting its status and freeing the lease.
        guarded = and_(_messages.c.id == bindparam("b_id"), ours)
        attempts = _messages.c.attempts + bindparam("b_inc")
        # claims - 1 when no request was made (bindparam arithmetic: 1 - b_inc).
        claims = _messages.c.claims - 1 + bindparam("b_inc")
        for rows, values in (
            (retry, {"status": MessageStatus.QUEUED.value, "next_attempt_at": bindparam("b_at"),
                     "last_error": func.coalesce(bindparam("b_error"), _messages.c.last_error)}),
            (dead, {"status": MessageStatus.DEAD.value, "last_error": bindparam("b_error")}),
            (skipped, {"status": MessageStatus.SKIPPED.value,
                       "skip_reason": bindparam("b_reason"), "last_error": bindparam("b_error")}),
        ):
            if rows:
                connection.execute(
                    update(_messages).where(guarded).values(
                        **values, attempts=attempts, claims=claims, **released
                    ),
                    rows,
                )
    return stale


def _settle_stale(
    connection: Connection, sent: Sequence[Mapping[str, Any]], *, owner: str, now: datetime
) -> list[StaleOutcome]:
    """After the guarded "sent" updates: the rows of ``sent`` that are not ours-just-now.

    Runs after this transaction's first write, so on SQLite it holds the only write
    lock and on PostgreSQL the rows it updated stay locked: what it reads is current.
    """
    ids = [row["b_id"] for row in sent]
    pids = {row["b_id"]: row["b_pid"] for row in sent}
    stale: list[StaleOutcome] = []
    step = len(ids) if is_postgresql(connection) else 5000
    for start in range(0, len(ids), step):
        for row in connection.execute(
            select(
                _messages.c.id, _messages.c.status, _messages.c.lease_owner,
                _messages.c.sent_at, _messages.c.last_error,
            ).where(in_values(_messages.c.id, ids[start : start + step], connection))
        ):
            mine = (
                row.status == MessageStatus.SENT.value
                and row.lease_owner == owner
                and row.sent_at == now
            )
            if mine:
                continue
            pid = pids[row.id]
            if row.status == MessageStatus.SENT.value:
                # Another sender recorded it first: keep its "sent", note the repeat.
                note = f"stale duplicate: accepted again by {owner} (provider id {pid})"
                connection.execute(
                    update(_messages)
                    .where(_messages.c.id == row.id)
                    .values(last_error=_joined_note(row.last_error, note), updated_at=now)
                )
                stale.append(StaleOutcome(row.id, True, row.lease_owner))
                continue
            # Not sent by anyone yet: it is (the provider accepted it). Whoever holds
            # it now sees the row leave "sending" at its next renewal and drops it.
            note = f"stale outcome: accepted after the lease of {owner} ran out"
            if row.lease_owner:
                note += f" (held by {row.lease_owner})"
            connection.execute(
                update(_messages)
                .where(_messages.c.id == row.id, _messages.c.status != MessageStatus.SENT.value)
                .values(
                    status=MessageStatus.SENT.value, sent_at=now, provider_message_id=pid,
                    skip_reason=None, last_error=note, lease_until=None, lease_owner=owner,
                    attempts=_messages.c.attempts + 1, updated_at=now,
                )
            )
            stale.append(StaleOutcome(row.id, False, row.lease_owner))
    return stale


def _joined_note(previous: str | None, note: str) -> str:
    return note if not previous else f"{previous}; {note}"[:2000]
