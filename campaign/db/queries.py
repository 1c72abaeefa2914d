"""Small read-only query helpers over the shared tables (users, suppressions).

Suppressions always win: whatever a user's consent flags say (a re-import may set
them to true again), :func:`is_suppressed` is what senders and planners must ask.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import or_, select
from sqlalchemy.engine import Connection

from campaign.common.contacts import address_hash, address_hashes, region_of_locale
from campaign.common.links import LinkKeys
from campaign.db.base import table_of
from campaign.db.dialect import insert_ignoring
from campaign.db.models import InstallationSecret, Suppression, User

ALL_CHANNELS = "all"


__all__ = ["ALL_CHANNELS", "address_hash", "installation_secret", "is_suppressed"]


def is_suppressed(connection: Connection, user_id: int, channel: str) -> bool:
    """Whether ``user_id`` must not be messaged on ``channel``.

    True when a suppression names the user, or the user's email (channel ``email``)
    or phone (channel ``sms``) by its hash, for this channel or for ``all``.
    Read-only.
    """
    addresses: set[str] = set()
    user = connection.execute(
        select(User.email, User.phone, User.phone_original, User.locale).where(User.id == user_id)
    ).first()
    if user is not None:
        if channel == "email":
            addresses = address_hashes([user.email])
        elif channel == "sms":
            addresses = address_hashes(
                [user.phone, user.phone_original], region_of_locale(user.locale)
            )
    who = Suppression.user_id == user_id
    if addresses:
        who = or_(who, Suppression.address_hash.in_(sorted(addresses)))
    found = connection.execute(
        select(Suppression.id)
        .where(who, Suppression.channel.in_([channel, ALL_CHANNELS]))
        .limit(1)
    ).first()
    return found is not None


def installation_secret(connection: Connection, name: str) -> bytes:
    """The database's own random key called ``name``, created on first use.

    Safe under concurrency: the first writer wins and everyone reads its value
    (``ON CONFLICT DO NOTHING``, ``INSERT IGNORE`` on MySQL). Call it inside a transaction
    (``engine.begin()``) so the new key is committed.
    """
    row = connection.execute(
        select(InstallationSecret.value).where(InstallationSecret.name == name)
    ).first()
    if row is None:
        connection.execute(
            insert_ignoring(connection, table_of(InstallationSecret), ["name"]).values(
                name=name, value=secrets.token_hex(32), created_at=datetime.now(UTC)
            )
        )
        row = connection.execute(
            select(InstallationSecret.value).where(InstallationSecret.name == name)
        ).one()
    return bytes.fromhex(row.value)


UNSUBSCRIBE_KEY_NAME = "unsubscribe"
# Only a preview may lack the database's key (it never writes); its links are shown,
# never sent, so a fixed stand-in is honest there.
PREVIEW_ONLY_KEY = hashlib.sha256(b"campaign preview: links are never sent").digest()


def unsubscribe_key(
    connection: Connection, link_secrets: Sequence[str], *, create: bool = True
) -> bytes:
    """The key that signs unsubscribe links: the first ``[server] link_secret_envs``
    secret, else the database's own random key (made on first use when ``create``).

    Every process on the database signs and verifies with the same key, nobody can
    forge a link from public facts, and no provider holds it. With ``create=False``
    (read-only previews) a missing key gives :data:`PREVIEW_ONLY_KEY`.
    """
    if link_secrets:
        return link_secrets[0].encode()
    if create:
        return installation_secret(connection, UNSUBSCRIBE_KEY_NAME)
    row = connection.execute(
        select(InstallationSecret.value).where(InstallationSecret.name == UNSUBSCRIBE_KEY_NAME)
    ).first()
    return PREVIEW_ONLY_KEY if row is None else bytes.fromhex(row.value)


def unsubscribe_keys(
    connection: Connection,
    link_secrets: Sequence[str],
    server_secrets: Sequence[str] = (),
    *,
    legacy: bool = True,
) -> LinkKeys:
    """Every key an unsubscribe link may carry (``campaign serve`` verifies with all).

    Today's tokens: each link secret (rotation: old ones stay listed until their links
    have aged out) and the installation key (links signed before link keys were set).
    With ``legacy``, tokens of the earlier format also verify, under the keys that
    signed them then: the installation key and the ``[server] secret_envs`` secrets
    (each may have been the first one, and a provider may hold them: turn
    ``accept_legacy_links`` off once those links have aged out).
    """
    installation = installation_secret(connection, UNSUBSCRIBE_KEY_NAME)
    current = tuple(dict.fromkeys([*(s.encode() for s in link_secrets), installation]))
    old: tuple[bytes, ...] = ()
    if legacy:
        old = tuple(dict.fromkeys([*(s.encode() for s in server_secrets), installation]))
    return LinkKeys(current, old)
