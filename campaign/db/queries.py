"""Small read-only query helpers over the shared tables (users, suppressions).

Suppressions always win: whatever a user's consent flags say (a re-import may set
them to true again), :func:`is_suppressed` is what senders and planners must ask.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import or_, select
from sqlalchemy.engine import Connection

from campaign.db.models import Suppression, User

ALL_CHANNELS = "all"


def address_hash(address: str) -> str:
    """SHA-256 hex of a normalized address (stripped, lower-cased), as ``suppressions``
    stores it so a forgotten person stays suppressed without their address."""
    return hashlib.sha256(address.strip().lower().encode("utf-8")).hexdigest()


def is_suppressed(connection: Connection, user_id: int, channel: str) -> bool:
    """Whether ``user_id`` must not be messaged on ``channel``.

    True when a suppression names the user, or the user's email (channel ``email``)
    or phone (channel ``sms``) by its hash, for this channel or for ``all``.
    Read-only.
    """
    addresses: list[str] = []
    user = connection.execute(select(User.email, User.phone).where(User.id == user_id)).first()
    if user is not None:
        if channel == "email" and user.email:
            addresses.append(address_hash(user.email))
        elif channel == "sms" and user.phone:
            addresses.append(address_hash(user.phone))
    who = Suppression.user_id == user_id
    if addresses:
        who = or_(who, Suppression.address_hash.in_(addresses))
    found = connection.execute(
        select(Suppression.id)
        .where(who, Suppression.channel.in_([channel, ALL_CHANNELS]))
        .limit(1)
    ).first()
    return found is not None
