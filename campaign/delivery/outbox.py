"""The outbox in SQL: claim due messages under a lease, then record what happened.

A claim moves due ``queued`` rows (and ``sending`` rows whose lease ran out: their
sender died) to ``sending`` with ``lease_until`` and ``lease_owner``, and counts the
attempt. Outcomes are written in batches, one ``executemany`` per kind; every update
except "sent" only applies while the row is still ``sending`` under our lease, so a
worker that lost its lease cannot overwrite another's progress. "Sent" always applies:
the provider accepted the message, and that is a fact.

Reads ``users`` and ``suppressions`` for the send-time re-check (the planner and the
response ingest own those rows; this module only reads them).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import String, and_, bindparam, func, or_, select, update
from sqlalchemy.engine import Connection, Engine

from campaign.db.dialect import array_param, in_values, is_postgresql, skip_locked
from campaign.db.models import Message, MessageStatus, Suppression, User
from campaign.db.pauses import not_paused

_messages = Message.__table__
_users = User.__table__
_suppressions = Suppression.__table__


# Only what sending needs: fewer columns (and timestamps to convert) make claims cheaper.
_CLAIM_COLUMNS = [
    _messages.c[name]
    for name in (
        "id", "run_id", "user_id", "campaign", "channel", "variant", "subject", "body",
        "text_body", "coupon_code", "address_override", "is_test", "idempotency_key",
        "attempts", "expires_at",
    )
]
# What the re-check needs about each recipient (``u_<name>`` in a joined claim).
_USER_COLUMNS = (
    "external_id", "email", "phone", "timezone", "consent_email", "consent_sms", "forgotten_at",
)


def address_hash(address: str) -> str:
    """SHA-256 hex of a normalised address (trimmed, lower-cased), as suppressions store it."""
    return hashlib.sha256(address.strip().lower().encode()).hexdigest()


@dataclass(frozen=True)
class ClaimedMessage:
    """An outbox row claimed for sending, with what the re-check needs about its user."""

    id: int
    run_id: int
    user_id: int
    campaign: str
    channel: str
    variant: str | None
    subject: str | None
    body: str | None
    text_body: str | None
    coupon_code: str | None
    address_override: str | None
    is_test: bool
    idempotency_key: str
    attempts: int
    expires_at: datetime | None
    lease_until: datetime
    user_external_id: str | None
    email: str | None
    phone: str | None
    timezone: str | None
    consent_email: bool
    consent_sms: bool
    forgotten: bool
    suppressed_channels: frozenset[str]
    # The user's messages sent within the frequency window, by channel (claims made
    # with ``sent_since``; test sends and this message itself never count).
    sent_recently: Mapping[str, int] = field(default_factory=dict)

    def address(self, medium: str) -> str | None:
        """Where this message goes: the seed-list override, else the user's own address."""
        if self.address_override:
            return self.address_override
        return self.phone if medium == "sms" else self.email

    def is_suppressed(self, medium: str) -> bool:
        """Does a suppression on this medium, this channel or ``all`` apply?"""
        return bool(self.suppressed_channels & {medium, self.channel, "all"})


def claim_batch(
    engine: Engine,
    *,
    owner: str,
    now: datetime,
    lease_seconds: float,
    limit: int,
    sent_since: datetime | None = None,
) -> list[ClaimedMessage]:
    """Claim up to ``limit`` due messages for ``owner``; one transaction.

    Due means ``queued`` with ``next_attempt_at`` unset or not after ``now``, or
    ``sending`` with an expired lease. Oldest first. Each claimed row's ``attempts`` goes
    up by one, so a message whose sender keeps dying ends up dead rather than looping.
    With ``sent_since`` each message also carries its user's messages sent since then
    (``sent_recently``), for the send-time frequency-cap check.
    """
    lease_until = now + timedelta(seconds=lease_seconds)
    with engine.begin() as connection:
        due = or_(
            and_(
                _messages.c.status == MessageStatus.QUEUED.value,
                or_(_messages.c.next_attempt_at.is_(None), _messages.c.next_attempt_at <= now),
            ),
            and_(
                _messages.c.status == MessageStatus.SENDING.value,
                _messages.c.lease_until < now,
            ),
        )
        candidates = skip_locked(
            select(_messages.c.id)
            # A paused campaign's messages stay queued (campaign pause, docs/operations.md).
            .where(due, not_paused(_messages.c.campaign))
            .order_by(_messages.c.next_attempt_at, _messages.c.id)
            .limit(limit),
            connection,
        )
        claim = (
            update(_messages)
            .where(_messages.c.id.in_(candidates.scalar_subquery()))
            .values(
                status=MessageStatus.SENDING.value,
                lease_until=lease_until,
                lease_owner=owner,
                attempts=_messages.c.attempts + 1,
                updated_at=now,
            )
            .returning(*_CLAIM_COLUMNS)
        )
        users: dict[int, Any] | None = None
        if is_postgresql(connection):
            # One round trip: the claim as a data-modifying CTE joined to its users.
            claimed_cte = claim.cte("claimed")
            joined = connection.execute(
                select(
                    claimed_cte,
                    *(_users.c[name].label(f"u_{name}") for name in _USER_COLUMNS),
                ).select_from(
                    claimed_cte.outerjoin(_users, _users.c.id == claimed_cte.c.user_id)
                )
            ).mappings().all()
            claimed: Sequence[Any] = joined
            users = {
                row["user_id"]: {name: row[f"u_{name}"] for name in _USER_COLUMNS}
                for row in joined
                if row["u_external_id"] is not None
            }
        else:
            # SQLite cannot use an UPDATE ... RETURNING as a CTE: users come next.
            claimed = connection.execute(claim).mappings().all()
        if not claimed:
            return []
        return _with_recipients(connection, claimed, lease_until, users, sent_since)


def _sent_by_user(
    connection: Connection, user_ids: Sequence[int], since: datetime
) -> dict[int, dict[str, int]]:
    """user id → {channel: messages sent at or after ``since``} (test sends excluded)."""
    out: dict[int, dict[str, int]] = {}
    for user_id, channel, n in connection.execute(
        select(_messages.c.user_id, _messages.c.channel, func.count())
        .where(
            in_values(_messages.c.user_id, user_ids, connection),
            # "|| ''" keeps both planners off the status index (it would walk every
            # sent row ever) and on the (user_id, ...) one: a few rows per user.
            _messages.c.status.concat("") == MessageStatus.SENT.value,
            _messages.c.is_test.is_(False),
            _messages.c.sent_at >= since,
        )
        .group_by(_messages.c.user_id, _messages.c.channel)
    ):
        out.setdefault(user_id, {})[channel] = int(n)
    return out


def _with_recipients(
    connection: Connection,
    rows: Sequence[Any],
    lease_until: datetime,
    users: dict[int, Any] | None = None,
    sent_since: datetime | None = None,
) -> list[ClaimedMessage]:
    user_ids = sorted({row["user_id"] for row in rows})
    sent = _sent_by_user(connection, user_ids, sent_since) if sent_since is not None else {}
    if users is None:
        users = {
            u["id"]: u
            for u in connection.execute(
                select(_users.c.id, *(_users.c[name] for name in _USER_COLUMNS)).where(
                    in_values(_users.c.id, user_ids, connection)
                )
            ).mappings()
        }
    hashes: dict[str, str] = {}  # address -> hash, each computed once
    for row in rows:
        user = users.get(row["user_id"], {})
        for address in (row["address_override"], user.get("email"), user.get("phone")):
            if address and address not in hashes:
                hashes[address] = address_hash(address)
    by_user: dict[int, set[str]] = {}
    by_hash: dict[str, set[str]] = {}
    for found in connection.execute(
        select(_suppressions.c.user_id, _suppressions.c.address_hash, _suppressions.c.channel)
        .where(
            or_(
                in_values(_suppressions.c.user_id, user_ids, connection),
                in_values(_suppressions.c.address_hash, sorted(set(hashes.values())), connection),
            )
        )
    ).mappings():
        if found["user_id"] is not None:
            by_user.setdefault(found["user_id"], set()).add(found["channel"])
        if found["address_hash"] is not None:
            by_hash.setdefault(found["address_hash"], set()).add(found["channel"])
    out = []
    for row in sorted(rows, key=lambda r: r["id"]):
        user = users.get(row["user_id"], {})
        channels: set[str] = set()
        # A seed-list test send is judged by its own address, not by the user it samples.
        if not (row["is_test"] and row["address_override"]):
            channels |= by_user.get(row["user_id"], set())
        addresses = (
            [row["address_override"]]
            if row["address_override"]
            else [user.get("email"), user.get("phone")]
        )
        for address in addresses:
            if address:
                channels |= by_hash.get(hashes[address], set())
        out.append(
            ClaimedMessage(
                id=row["id"],
                run_id=row["run_id"],
                user_id=row["user_id"],
                campaign=row["campaign"],
                channel=row["channel"],
                variant=row["variant"],
                subject=row["subject"],
                body=row["body"],
                text_body=row["text_body"],
                coupon_code=row["coupon_code"],
                address_override=row["address_override"],
                is_test=bool(row["is_test"]),
                idempotency_key=row["idempotency_key"],
                attempts=row["attempts"],
                expires_at=row["expires_at"],
                lease_until=lease_until,
                user_external_id=user.get("external_id"),
                email=user.get("email"),
                phone=user.get("phone"),
                timezone=user.get("timezone"),
                consent_email=bool(user.get("consent_email")),
                consent_sms=bool(user.get("consent_sms")),
                forgotten=user.get("forgotten_at") is not None,
                suppressed_channels=frozenset(channels),
                sent_recently=sent.get(row["user_id"], {}),
            )
        )
    return out


@dataclass(frozen=True)
class Sent:
    """The provider accepted message ``id``."""

    id: int
    provider_message_id: str | None


@dataclass(frozen=True)
class Retry:
    """Try message ``id`` again at ``at``; ``error`` is kept as ``last_error``.

    With ``refund`` the claim did not count as an attempt (quiet hours, lost lease).
    """

    id: int
    at: datetime
    error: str | None = None
    refund: bool = False


@dataclass(frozen=True)
class Dead:
    """Message ``id`` failed for good."""

    id: int
    error: str


@dataclass(frozen=True)
class Skipped:
    """Message ``id`` will not be sent, for ``reason`` (a ``SkipReason`` value)."""

    id: int
    reason: str
    error: str | None = None


Record = Sent | Retry | Dead | Skipped


def record_outcomes(
    engine: Engine, records: Iterable[Record], *, owner: str, now: datetime
) -> None:
    """Write a batch of outcomes in one transaction, one ``executemany`` per kind."""
    sent: list[dict[str, Any]] = []
    retry: list[dict[str, Any]] = []
    refund: list[dict[str, Any]] = []
    dead: list[dict[str, Any]] = []
    skipped: list[dict[str, Any]] = []
    for record in records:
        if isinstance(record, Sent):
            sent.append({"b_id": record.id, "b_pid": record.provider_message_id})
        elif isinstance(record, Retry):
            target = refund if record.refund else retry
            target.append({"b_id": record.id, "b_at": record.at, "b_error": record.error})
        elif isinstance(record, Dead):
            dead.append({"b_id": record.id, "b_error": record.error})
        else:
            skipped.append(
                {"b_id": record.id, "b_reason": record.reason, "b_error": record.error}
            )
    ours = and_(
        _messages.c.id == bindparam("b_id"),
        _messages.c.status == MessageStatus.SENDING.value,
        _messages.c.lease_owner == owner,
    )
    released = {"lease_until": None, "lease_owner": None, "updated_at": now}
    with engine.begin() as connection:
        # A batch request gives all its messages one provider id: one UPDATE ... IN for
        # them; per-message ids go through executemany.
        by_pid: dict[str | None, list[int]] = {}
        for row in sent:
            by_pid.setdefault(row["b_pid"], []).append(row["b_id"])
        singles = [row for row in sent if len(by_pid[row["b_pid"]]) == 1]
        sent_values = {
            "status": MessageStatus.SENT.value,
            "sent_at": now,
            "last_error": None,
            "skip_reason": None,
            **released,
        }
        not_sent = _messages.c.status != MessageStatus.SENT.value
        postgresql = is_postgresql(connection)
        for pid, ids in by_pid.items():
            if len(ids) == 1:
                continue
            step = len(ids) if postgresql else 5000
            for start in range(0, len(ids), step):
                connection.execute(
                    update(_messages)
                    .where(in_values(_messages.c.id, ids[start : start + step], connection),
                           not_sent)
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
                .where(_messages.c.id == given.c.id, not_sent)
                .values(provider_message_id=given.c.pid, **sent_values)
            )
        elif singles:
            connection.execute(
                update(_messages)
                .where(_messages.c.id == bindparam("b_id"), not_sent)
                .values(provider_message_id=bindparam("b_pid"), **sent_values),
                singles,
            )
        # One executemany per outcome, each setting its status and freeing the lease.
        for rows, values in (
            (retry, {"status": MessageStatus.QUEUED.value, "next_attempt_at": bindparam("b_at"),
                     "last_error": bindparam("b_error")}),
            (refund, {"status": MessageStatus.QUEUED.value, "next_attempt_at": bindparam("b_at"),
                      "attempts": _messages.c.attempts - 1}),
            (dead, {"status": MessageStatus.DEAD.value, "last_error": bindparam("b_error")}),
            (skipped, {"status": MessageStatus.SKIPPED.value,
                       "skip_reason": bindparam("b_reason"), "last_error": bindparam("b_error")}),
        ):
            if rows:
                connection.execute(
                    update(_messages).where(ours).values(**values, **released), rows
                )


def requeue_dead(engine: Engine, *, now: datetime, campaign: str | None = None) -> int:
    """Move dead messages (of ``campaign``, or all) back to ``queued`` with fresh attempts.

    Their expiry is kept: a message dead for longer than its expiry is skipped as
    expired on the next drain rather than sent late. Returns how many were requeued.
    """
    condition = _messages.c.status == MessageStatus.DEAD.value
    if campaign is not None:
        condition = and_(condition, _messages.c.campaign == campaign)
    with engine.begin() as connection:
        result = connection.execute(
            update(_messages)
            .where(condition)
            .values(
                status=MessageStatus.QUEUED.value,
                attempts=0,
                next_attempt_at=now,
                lease_until=None,
                lease_owner=None,
                updated_at=now,
            )
        )
        return int(result.rowcount or 0)


def count_by_status(engine: Engine, campaign: str | None = None) -> dict[str, int]:
    """How many messages are in each status (read-only)."""
    from sqlalchemy import func

    query = select(_messages.c.status, func.count()).group_by(_messages.c.status)
    if campaign is not None:
        query = query.where(_messages.c.campaign == campaign)
    with engine.connect() as connection:
        return {status: int(n) for status, n in connection.execute(query)}


def count_due(engine: Engine, *, now: datetime) -> int:
    """Messages a sender could claim at ``now`` (the condition of :func:`claim_batch`:
    queued and due, or sending with an expired lease; paused campaigns excluded).
    Read-only; the total of ``campaign send``'s progress bar."""
    from sqlalchemy import func

    due = or_(
        and_(
            _messages.c.status == MessageStatus.QUEUED.value,
            or_(_messages.c.next_attempt_at.is_(None), _messages.c.next_attempt_at <= now),
        ),
        and_(
            _messages.c.status == MessageStatus.SENDING.value,
            _messages.c.lease_until < now,
        ),
    )
    query = select(func.count()).select_from(_messages).where(
        due, not_paused(_messages.c.campaign)
    )
    with engine.connect() as connection:
        return int(connection.execute(query).scalar_one())
