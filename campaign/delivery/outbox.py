"""The outbox in SQL: claim due messages under a lease, renew it, record what happened.

A claim moves due ``queued`` rows (and ``sending`` rows whose lease ran out under
*another* owner: their sender died or stalled) to ``sending`` with ``lease_until``
and ``lease_owner``, and counts the claim (``claims``). ``attempts`` counts provider
requests actually made: it goes up when an outcome of a request is recorded, never at
claim time, so crashes before a send do not burn retries. A live sender renews the
leases of the rows it holds (:func:`renew_leases`) so they never expire under it.

What happened to a claimed row is written by :mod:`campaign.delivery.outcomes`
(re-exported here: ``outbox.record_outcomes``, the records ``Sent``, ``Retry``,
``Dead``, ``Skipped``).

Reads ``users`` and ``suppressions`` for the send-time re-check (the planner and the
response recording own those rows; this module only reads them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.engine import Connection, Engine

from campaign.common.contacts import address_hashes, normalize_phone, region_of_locale
from campaign.db.base import table_of
from campaign.db.dialect import claim_rows, in_values, is_postgresql
from campaign.db.models import Message, MessageStatus, Suppression, User
from campaign.db.pauses import not_paused
from campaign.delivery.outcomes import (
    Dead,
    Record,
    Retry,
    Sent,
    Skipped,
    StaleOutcome,
    record_outcomes,
)

__all__ = [
    "ClaimedMessage",
    "Dead",
    "Record",
    "Retry",
    "Sent",
    "Skipped",
    "StaleOutcome",
    "claim_batch",
    "count_by_status",
    "count_due",
    "record_outcomes",
    "renew_leases",
    "requeue_dead",
]

_messages = table_of(Message)
_users = table_of(User)
_suppressions = table_of(Suppression)


# Only what sending needs: fewer columns (and timestamps to convert) make claims cheaper.
_CLAIM_COLUMNS = [
    _messages.c[name]
    for name in (
        "id", "run_id", "user_id", "campaign", "channel", "variant", "subject", "body",
        "text_body", "coupon_code", "address_override", "is_test", "idempotency_key",
        "attempts", "claims", "expires_at",
    )
]
# What the re-check needs about each recipient (``u_<name>`` in a joined claim).
_USER_COLUMNS = (
    "external_id", "email", "phone", "phone_original", "locale", "timezone", "consent_email",
    "consent_sms", "forgotten_at",
)


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
    # Claims of this row so far, this one included (attempts: requests recorded).
    claims: int = 1

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
    exclude_channels: Sequence[str] = (),
    two_step: bool | None = None,
) -> list[ClaimedMessage]:
    """Claim up to ``limit`` due messages for ``owner``; one transaction.

    Due means ``queued`` with ``next_attempt_at`` unset or not after ``now``, or
    ``sending`` with an expired lease held by someone else: a row ``owner`` holds is
    never claimed again by it (its outcome may still be on the way to the database).
    Oldest first; ``exclude_channels`` are left alone (the sender has enough of them
    in hand). Each claimed row's ``claims`` goes up by one (``attempts`` does not).
    With ``sent_since`` each message also carries its user's messages sent since then
    (``sent_recently``), for the send-time frequency-cap check. ``two_step`` forces the
    claim variant of databases without ``UPDATE ... RETURNING`` (tests).
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
                or_(_messages.c.lease_owner.is_(None), _messages.c.lease_owner != owner),
            ),
        )
        conditions = [due, not_paused(_messages.c.campaign)]
        if exclude_channels:
            conditions.append(_messages.c.channel.not_in(sorted(set(exclude_channels))))
        candidates = (
            select(_messages.c.id)
            # A paused campaign's messages stay queued (campaign pause, docs/operations.md).
            .where(*conditions)
            .order_by(_messages.c.next_attempt_at, _messages.c.id)
            .limit(limit)
        )

        def with_users(claimed_cte: Any) -> Any:
            # PostgreSQL: one round trip, the claim as a data-modifying CTE joined to users.
            return select(
                claimed_cte, *(_users.c[name].label(f"u_{name}") for name in _USER_COLUMNS)
            ).select_from(claimed_cte.outerjoin(_users, _users.c.id == claimed_cte.c.user_id))

        claimed, joined = claim_rows(
            connection,
            _messages,
            candidates=candidates,
            values={
                "status": MessageStatus.SENDING.value,
                "lease_until": lease_until,
                "lease_owner": owner,
                "claims": _messages.c.claims + 1,
                "updated_at": now,
            },
            returning=_CLAIM_COLUMNS,
            joined=with_users,
            two_step=two_step,
        )
        if not claimed:
            return []
        users: dict[int, Any] | None = None
        if joined:
            users = {
                row["user_id"]: {name: row[f"u_{name}"] for name in _USER_COLUMNS}
                for row in claimed
                if row["u_external_id"] is not None
            }
        return _with_recipients(connection, claimed, lease_until, users, sent_since)


def renew_leases(
    engine: Engine, ids: Sequence[int], *, owner: str, now: datetime, lease_seconds: float
) -> set[int]:
    """Extend ``owner``'s leases on ``ids`` to ``now + lease_seconds``; the ids renewed.

    An id missing from the answer is no longer ours (another sender claimed it after
    our lease ran out, or a stale "sent" of ours settled it): do not send it.
    """
    if not ids:
        return set()
    ours = and_(
        _messages.c.lease_owner == owner, _messages.c.status == MessageStatus.SENDING.value
    )
    renewed: set[int] = set()
    with engine.begin() as connection:
        step = len(ids) if is_postgresql(connection) else 5000
        for start in range(0, len(ids), step):
            chunk = list(ids[start : start + step])
            connection.execute(
                update(_messages)
                .where(in_values(_messages.c.id, chunk, connection), ours)
                .values(lease_until=now + timedelta(seconds=lease_seconds))
            )
            # Read back in the same transaction (portable: no UPDATE ... RETURNING).
            renewed.update(
                connection.execute(
                    select(_messages.c.id).where(in_values(_messages.c.id, chunk, connection), ours)
                ).scalars()
            )
    return renewed


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
    # Every hash a suppression of each address may be stored under: as given (rows from
    # before phones were normalized), normalized, and the phone as first imported.
    hashes: dict[int, set[str]] = {}
    phones: dict[int, str | None] = {}
    for row in rows:
        user = users.get(row["user_id"], {})
        region = region_of_locale(user.get("locale"))
        phones[row["id"]] = normalize_phone(user.get("phone"), region)
        if row["address_override"]:
            addresses = [row["address_override"]]
        else:
            addresses = [user.get("email"), user.get("phone"), user.get("phone_original")]
        hashes[row["id"]] = address_hashes(addresses, region)
    wanted = sorted(set().union(*hashes.values())) if hashes else []
    by_user: dict[int, set[str]] = {}
    by_hash: dict[str, set[str]] = {}
    for found in connection.execute(
        select(_suppressions.c.user_id, _suppressions.c.address_hash, _suppressions.c.channel)
        .where(
            or_(
                in_values(_suppressions.c.user_id, user_ids, connection),
                in_values(_suppressions.c.address_hash, wanted, connection),
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
        for digest in hashes[row["id"]]:
            channels |= by_hash.get(digest, set())
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
                claims=row["claims"],
                expires_at=row["expires_at"],
                lease_until=lease_until,
                user_external_id=user.get("external_id"),
                email=user.get("email"),
                phone=phones[row["id"]],
                timezone=user.get("timezone"),
                consent_email=bool(user.get("consent_email")),
                consent_sms=bool(user.get("consent_sms")),
                forgotten=user.get("forgotten_at") is not None,
                suppressed_channels=frozenset(channels),
                sent_recently=sent.get(row["user_id"], {}),
            )
        )
    return out


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
                claims=0,
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
