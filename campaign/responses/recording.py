"""Inbound events → ``responses``, ``messages.engagement`` and ``suppressions``.

One call handles a batch in the caller's transaction:

1. match each event to a message (our id, our idempotency key, or the provider's id;
   an unsubscribe link names the user and channel instead);
2. store it with ``INSERT ... ON CONFLICT (provider_event_id) DO NOTHING`` on both
   dialects, so replays and concurrent duplicates are harmless, never an error;
3. for the events actually stored: move ``messages.engagement`` forward only (the
   guard is inside the UPDATE, so racing writers cannot move it back);
4. suppress at once on unsubscribe, spam complaint and hard bounce (SMS stop words
   arrive as unsubscribes): the user and the address hash, on the message's medium.

``campaign import responses`` stores its rows itself and then calls
:func:`apply_stored_responses` so a provider export has the same effects.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import and_, bindparam, func, or_, select, update
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection

from campaign.common.contacts import address_hash, normalize_address
from campaign.db.base import table_of
from campaign.db.models import Engagement, Message, MessageStatus, Response, Suppression, User
from campaign.db.queries import ALL_CHANNELS
from campaign.responses.events import (
    ENGAGEMENT_OF,
    SUPPRESSING,
    InboundEvent,
    ResponseType,
    canonical_type,
    next_engagement,
    reachable_from,
)

_responses = table_of(Response)
_messages = table_of(Message)
_suppressions = table_of(Suppression)
_users = table_of(User)
_SUPPRESSION_CHANNEL_CHARS = 16


@dataclass
class RecordResult:
    """What one batch did. ``statuses[i]`` is ``"stored"``, ``"unmatched"`` (stored, no
    message found) or ``"duplicate"`` for the i-th input event."""

    stored: int = 0
    duplicates: int = 0
    unmatched: int = 0
    suppressions: int = 0
    statuses: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Effect:
    """A stored response whose consequences are still to apply."""

    type: ResponseType
    ts: datetime
    message_id: int | None
    user_id: int | None
    channel: str | None
    medium: str | None
    address: str | None
    source: str


@dataclass(frozen=True)
class _MessageRef:
    id: int
    user_id: int
    channel: str


def record_events(
    connection: Connection,
    events: Sequence[InboundEvent],
    *,
    now: datetime,
    media: Mapping[str, str] | None = None,
) -> RecordResult:
    """Store a batch of events and apply their effects, in ``connection``'s transaction.

    ``media`` maps configured channel names to ``email``/``sms`` (to suppress the
    right medium); ``now`` (UTC) stamps ``received_at``. Duplicates (by
    ``event_id``, within the batch or already stored) change nothing.
    """
    result = RecordResult(statuses=["duplicate"] * len(events))
    first: dict[str, int] = {}
    for index, event in enumerate(events):
        first.setdefault(event.event_id, index)
    unique = [events[i] for i in sorted(first.values())]
    if not unique:
        result.duplicates = len(events)
        return result
    refs = _match_messages(connection, unique)
    users = _users_by_external_id(connection, {e.user_ref for e in unique if e.user_ref})
    rows: list[dict[str, Any]] = []
    matched: dict[str, _MessageRef | None] = {}
    for event in unique:
        ref = refs.get(id(event))
        if ref is None and event.user_ref and event.channel and event.user_ref in users:
            ref = _latest_message(connection, users[event.user_ref], event.channel)
        matched[event.event_id] = ref
        rows.append(
            {
                "message_id": ref.id if ref else None,
                "type": event.type.value,
                "ts": event.ts,
                "provider": event.provider[:64],
                "provider_event_id": event.event_id,
                "payload": event.payload,
                "received_at": now,
            }
        )
    inserted = _insert_ignoring_duplicates(connection, rows)
    effects: list[_Effect] = []
    for event in unique:
        if event.event_id not in inserted:
            continue
        result.stored += 1
        ref = matched[event.event_id]
        result.statuses[first[event.event_id]] = "stored" if ref else "unmatched"
        if ref is None:
            result.unmatched += 1
        user_id = ref.user_id if ref else users.get(event.user_ref or "")
        channel = ref.channel if ref else event.channel
        medium = (media or {}).get(channel or "") or event.medium
        effects.append(
            _Effect(
                type=event.type,
                ts=event.ts,
                message_id=ref.id if ref else None,
                user_id=user_id,
                channel=channel,
                medium=medium,
                address=event.address,
                source=f"{event.provider}:{event.event_id}"[:128],
            )
        )
    result.duplicates = len(events) - result.stored
    result.suppressions = _apply(connection, effects, now)
    return result


def apply_stored_responses(
    connection: Connection,
    rows: Iterable[Mapping[str, Any]],
    *,
    now: datetime,
    media: Mapping[str, str] | None = None,
) -> int:
    """Apply engagement and suppression for ``responses`` rows just inserted by another
    path (the CSV importer): each row has ``message_id`` (or None), ``type``, ``ts``,
    ``provider`` and ``provider_event_id``. Types are read with the same aliases as
    provider events; unknown types have no effect. Returns suppressions added.
    """
    pending = []
    for row in rows:
        kind = canonical_type(str(row["type"]))
        if kind is None:
            continue
        pending.append((row, kind))
    ids = sorted({row["message_id"] for row, _ in pending if row["message_id"] is not None})
    refs = _messages_by_id(connection, ids)
    effects = []
    for row, kind in pending:
        ref = refs.get(row["message_id"]) if row["message_id"] is not None else None
        effects.append(
            _Effect(
                type=kind,
                ts=row["ts"],
                message_id=ref.id if ref else None,
                user_id=ref.user_id if ref else None,
                channel=ref.channel if ref else None,
                medium=(media or {}).get(ref.channel) if ref else None,
                address=None,
                source=f"{row.get('provider') or 'csv'}:{row['provider_event_id']}"[:128],
            )
        )
    return _apply(connection, effects, now)


# -- matching -------------------------------------------------------------------------


def _ref(row: Any) -> _MessageRef:
    return _MessageRef(id=row.id, user_id=row.user_id, channel=row.channel)


def _messages_by_id(connection: Connection, ids: Sequence[int]) -> dict[int, _MessageRef]:
    if not ids:
        return {}
    query = select(_messages.c.id, _messages.c.user_id, _messages.c.channel).where(
        _messages.c.id.in_(ids)
    )
    return {row.id: _ref(row) for row in connection.execute(query)}


def _match_messages(
    connection: Connection, events: Sequence[InboundEvent]
) -> dict[int, _MessageRef]:
    """``id(event)`` → the message it names; ambiguous provider ids (one provider
    request carried several messages) match nothing rather than the wrong one."""
    by_id = _messages_by_id(
        connection, sorted({e.message_id for e in events if e.message_id is not None})
    )
    keys = sorted({e.idempotency_key for e in events if e.idempotency_key})
    by_key: dict[str, _MessageRef] = {}
    if keys:
        query = select(
            _messages.c.id, _messages.c.user_id, _messages.c.channel, _messages.c.idempotency_key
        ).where(_messages.c.idempotency_key.in_(keys))
        by_key = {row.idempotency_key: _ref(row) for row in connection.execute(query)}
    pids = sorted({e.provider_message_id for e in events if e.provider_message_id})
    by_pid: dict[str, list[_MessageRef]] = {}
    if pids:
        query = select(
            _messages.c.id,
            _messages.c.user_id,
            _messages.c.channel,
            _messages.c.provider_message_id,
        ).where(_messages.c.provider_message_id.in_(pids))
        for row in connection.execute(query):
            by_pid.setdefault(row.provider_message_id, []).append(_ref(row))
    out: dict[int, _MessageRef] = {}
    for event in events:
        ref = by_id.get(event.message_id) if event.message_id is not None else None
        if ref is None and event.idempotency_key:
            ref = by_key.get(event.idempotency_key)
        if ref is None and event.provider_message_id:
            candidates = by_pid.get(event.provider_message_id, [])
            ref = candidates[0] if len(candidates) == 1 else None
        if ref is not None:
            out[id(event)] = ref
    return out


def _users_by_external_id(connection: Connection, refs: set[str]) -> dict[str, int]:
    if not refs:
        return {}
    query = select(_users.c.external_id, _users.c.id).where(_users.c.external_id.in_(sorted(refs)))
    return {row.external_id: row.id for row in connection.execute(query)}


def _latest_message(connection: Connection, user_id: int, channel: str) -> _MessageRef | None:
    """The newest sent message of a user on a channel (what an unsubscribe link answers)."""
    row = connection.execute(
        select(_messages.c.id, _messages.c.user_id, _messages.c.channel)
        .where(
            _messages.c.user_id == user_id,
            _messages.c.channel == channel,
            _messages.c.status == MessageStatus.SENT.value,
        )
        .order_by(_messages.c.sent_at.desc(), _messages.c.id.desc())
        .limit(1)
    ).first()
    return _ref(row) if row is not None else None


def _insert_ignoring_duplicates(connection: Connection, rows: list[dict[str, Any]]) -> set[str]:
    """Insert ``rows`` into ``responses``; the ``provider_event_id`` of those stored."""
    if connection.dialect.name == "postgresql":
        # One fixed statement over arrays: a multi-row VALUES of a few hundred rows costs
        # the driver more to parse than the database to run.
        result = connection.exec_driver_sql(
            "INSERT INTO responses"
            " (message_id, type, ts, provider, provider_event_id, payload, received_at)"
            " SELECT * FROM unnest(%s::bigint[], %s::text[], %s::timestamptz[], %s::text[],"
            " %s::text[], %s::text[]::json[], %s::timestamptz[])"
            " ON CONFLICT (provider_event_id) DO NOTHING RETURNING provider_event_id",
            tuple(
                [row[key] for row in rows]
                for key in ("message_id", "type", "ts", "provider", "provider_event_id")
            )
            + ([json.dumps(row["payload"]) for row in rows], [row["received_at"] for row in rows]),
        )
        return set(result.scalars())
    statement = (
        sqlite.insert(_responses)
        .on_conflict_do_nothing(index_elements=["provider_event_id"])
        .returning(_responses.c.provider_event_id)
    )
    return set(connection.execute(statement, rows).scalars())


# -- effects --------------------------------------------------------------------------


def _apply(connection: Connection, effects: Sequence[_Effect], now: datetime) -> int:
    """Advance engagement and add suppressions for ``effects``; suppressions added."""
    _advance_engagement(connection, effects, now)
    return _suppress(connection, [e for e in effects if e.type in SUPPRESSING], now)


def _reduce(effects: Sequence[_Effect]) -> dict[int, tuple[Engagement, datetime]]:
    """One engagement target per message for a batch, equal to applying its events in
    time order: the earliest terminal event if any (it beats every forward state and
    nothing leaves it), else the highest forward one (the guard keeps the maximum)."""
    out: dict[int, tuple[Engagement, datetime]] = {}
    for effect in sorted(effects, key=lambda e: e.ts):
        target = ENGAGEMENT_OF.get(effect.type)
        if target is None or effect.message_id is None:
            continue
        held = out.get(effect.message_id)
        if held is None or next_engagement(held[0].value, target) is not None:
            out[effect.message_id] = (target, effect.ts)
    return out


def _advance_engagement(connection: Connection, effects: Sequence[_Effect], now: datetime) -> None:
    by_target: dict[Engagement, list[tuple[int, datetime]]] = {}
    for message_id, (target, at) in _reduce(effects).items():
        by_target.setdefault(target, []).append((message_id, at))
    postgres = connection.dialect.name == "postgresql"
    for target, rows in by_target.items():
        sources = reachable_from(target)
        if postgres:
            # One statement per target whatever the batch size: arrays, not a pipeline of
            # single-row UPDATEs (ten times faster at a few hundred rows).
            connection.exec_driver_sql(
                "UPDATE messages SET engagement = %s, engagement_at = v.at, updated_at = %s"
                " FROM unnest(%s::bigint[], %s::timestamptz[]) AS v(id, at)"
                " WHERE messages.id = v.id"
                " AND (messages.engagement IS NULL OR messages.engagement = ANY(%s::text[]))",
                (target.value, now, [r[0] for r in rows], [r[1] for r in rows], list(sources)),
            )
            continue
        # Plain comparisons, not IN: an expanding IN cannot be used with executemany.
        guard = or_(
            _messages.c.engagement.is_(None), *(_messages.c.engagement == s for s in sources)
        )
        statement = (
            update(_messages)
            .where(and_(_messages.c.id == bindparam("b_id"), guard))
            .values(engagement=target.value, engagement_at=bindparam("b_at"), updated_at=now)
        )
        connection.execute(statement, [{"b_id": mid, "b_at": at} for mid, at in rows])


def _suppression_channel(effect: _Effect) -> str:
    """The ``suppressions.channel`` of an effect: its medium, else its channel name when
    it fits the column (the sender checks medium, channel and ``all``), else ``all``."""
    if effect.medium in ("email", "sms"):
        return effect.medium
    if effect.channel and len(effect.channel) <= _SUPPRESSION_CHANNEL_CHARS:
        return effect.channel
    return ALL_CHANNELS


def _suppress(connection: Connection, effects: Sequence[_Effect], now: datetime) -> int:
    if not effects:
        return 0
    user_ids = sorted({e.user_id for e in effects if e.user_id is not None})
    contacts: dict[int, Any] = {}
    if user_ids:
        query = select(_users.c.id, _users.c.email, _users.c.phone).where(_users.c.id.in_(user_ids))
        contacts = {row.id: row for row in connection.execute(query)}
    orphans = {e.address.strip() for e in effects if e.user_id is None and e.address}
    owners = _users_by_address(connection, orphans)
    # Matched and hashed in normal form: E.164 phones, lower-cased emails.
    wanted: dict[tuple[int | None, str | None, str], _Effect] = {}
    for effect in effects:
        channel = _suppression_channel(effect)
        user_id = effect.user_id
        address = effect.address
        if user_id is None and address:
            user_id = owners.get(normalize_address(address))
        if not address and user_id in contacts:
            contact = contacts[user_id]
            if channel == "sms":
                address = contact.phone
            elif channel == "email":
                address = contact.email
        digest = address_hash(normalize_address(address)) if address else None
        if user_id is None and digest is None:
            continue
        wanted.setdefault((user_id, digest, channel), effect)
    existing = _existing_suppressions(connection, wanted)
    rows = [
        {
            "user_id": user_id,
            "address_hash": digest,
            "channel": channel,
            "reason": SUPPRESSING[effect.type],
            "source": effect.source,
            "created_at": now,
        }
        for (user_id, digest, channel), effect in wanted.items()
        if (user_id, digest, channel) not in existing
    ]
    if rows:
        connection.execute(_suppressions.insert(), rows)
    return len(rows)


def _users_by_address(connection: Connection, addresses: set[str]) -> dict[str, int]:
    """Normalized address (:func:`campaign.common.contacts.normalize_address`) → user id, for
    events that name an address but no message. Phones match in E.164, and as first
    imported (rows stored before phones were normalized)."""
    if not addresses:
        return {}
    normal = sorted({normalize_address(a) for a in addresses})
    raw = sorted({a.strip() for a in addresses})
    query = select(_users.c.id, _users.c.email, _users.c.phone, _users.c.phone_original).where(
        or_(
            func.lower(_users.c.email).in_(normal),
            _users.c.phone.in_(sorted({*normal, *raw})),
            _users.c.phone_original.in_(raw),
        )
    )
    out: dict[str, int] = {}
    for row in connection.execute(query):
        for address in (row.email, row.phone, row.phone_original):
            if address:
                out.setdefault(normalize_address(address), row.id)
    return out


def _existing_suppressions(
    connection: Connection, wanted: Mapping[tuple[int | None, str | None, str], object]
) -> set[tuple[int | None, str | None, str]]:
    user_ids = sorted({u for u, _, _ in wanted if u is not None})
    digests = sorted({d for _, d, _ in wanted if d is not None})
    conditions = []
    if user_ids:
        conditions.append(_suppressions.c.user_id.in_(user_ids))
    if digests:
        conditions.append(_suppressions.c.address_hash.in_(digests))
    if not conditions:
        return set()
    query = select(
        _suppressions.c.user_id, _suppressions.c.address_hash, _suppressions.c.channel
    ).where(or_(*conditions))
    return {(row.user_id, row.address_hash, row.channel) for row in connection.execute(query)}
