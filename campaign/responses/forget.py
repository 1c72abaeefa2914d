"""Erase a person's personal data on request (GDPR Art. 17, right to erasure).

What goes: the user's email, phone, name and free-form attributes; the rendered
subject and bodies of their messages (they quote name, products, coupon) and any
seed-list override address; the payloads of responses to their messages and of
unmatched responses that named their address (by hash).

What stays, so reports and models keep their counts: the ``users`` row (shop id,
locale, timezone, consent turned off, ``forgotten_at`` set), events, message rows
(status, engagement, timestamps), response types and times, coupons.

What is added: suppressions on channel ``all`` for the user and for each of their
addresses as a SHA-256 hash only (the same normalization the sender checks at send
time), so the person is never messaged again, even if the shop re-imports them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.engine import Engine

from campaign.common.contacts import address_hashes, region_of_locale
from campaign.common.errors import NotFound
from campaign.db.base import table_of
from campaign.db.models import Message, Response, Suppression, User
from campaign.db.queries import ALL_CHANNELS

_REASON = "forgotten"


@dataclass(frozen=True)
class ForgetReport:
    """What :func:`forget_user` changed."""

    user: str
    messages_scrubbed: int
    responses_scrubbed: int
    suppressions_added: int
    already_forgotten: bool
    # The personal fields that held data (email, phone, name, attributes) before.
    erased_fields: tuple[str, ...] = ()
    dry_run: bool = False


def forget_user(
    engine: Engine, external_id: str, *, now: datetime, dry_run: bool = False
) -> ForgetReport:
    """Erase the personal data of the user with shop id ``external_id`` (one transaction).

    Safe to repeat. ``now`` (UTC) stamps ``forgotten_at`` and the suppressions. With
    ``dry_run`` the same statements run and are rolled back, so the counts are exactly
    those a real run would report and nothing changes.

    Raises:
        NotFound: no user has this id (``user not found: <id>``).
    """
    with engine.connect() as connection, connection.begin() as transaction:
        user = connection.execute(
            select(
                User.id, User.email, User.phone, User.phone_original, User.name,
                User.attributes, User.locale, User.forgotten_at,
            ).where(User.external_id == external_id)
        ).first()
        if user is None:
            raise NotFound("user", external_id)
        erased = tuple(
            name
            for name, value in (
                ("email", user.email), ("phone", user.phone), ("name", user.name),
                ("attributes", user.attributes),
            )
            if value
        )
        hashes = sorted(
            address_hashes([user.email])
            | address_hashes([user.phone, user.phone_original], region_of_locale(user.locale))
        )
        existing = set(
            (row.user_id, row.address_hash)
            for row in connection.execute(
                select(Suppression.user_id, Suppression.address_hash).where(
                    Suppression.channel == ALL_CHANNELS,
                    or_(Suppression.user_id == user.id, Suppression.address_hash.in_(hashes)),
                )
            )
        )
        wanted: list[tuple[int, str | None]] = [(user.id, digest) for digest in hashes]
        if not wanted and not any(user_id == user.id for user_id, _ in existing):
            wanted = [(user.id, None)]
        rows = [
            {
                "user_id": user_id,
                "address_hash": digest,
                "channel": ALL_CHANNELS,
                "reason": _REASON,
                "source": "campaign forget",
                "created_at": now,
            }
            for user_id, digest in wanted
            if (user_id, digest) not in existing
        ]
        if rows:
            connection.execute(table_of(Suppression).insert(), rows)
        message_ids = select(Message.id).where(Message.user_id == user.id)
        messages = connection.execute(
            update(Message)
            .where(Message.user_id == user.id)
            .values(subject=None, body=None, text_body=None, address_override=None, updated_at=now)
        ).rowcount
        by_address = Response.payload["address_hash"].as_string().in_(hashes) if hashes else None
        who: ColumnElement[bool] = Response.message_id.in_(message_ids)
        if by_address is not None:
            who = or_(who, by_address)
        responses = connection.execute(update(Response).where(who).values(payload={})).rowcount
        connection.execute(
            update(User)
            .where(User.id == user.id)
            .values(
                email=None,
                phone=None,
                phone_original=None,
                name=None,
                attributes={},
                consent_email=False,
                consent_sms=False,
                forgotten_at=user.forgotten_at or now,
                updated_at=now,
            )
        )
        if dry_run:
            transaction.rollback()
    return ForgetReport(
        user=external_id,
        messages_scrubbed=messages,
        responses_scrubbed=responses,
        suppressions_added=len(rows),
        already_forgotten=user.forgotten_at is not None,
        erased_fields=erased,
        dry_run=dry_run,
    )
