"""Coupon rows: reserve a code for a recipient, export codes for the checkout, redeem.

The policy and code generation are pure (:mod:`campaign.coupons.policy`); this module is the
I/O around the ``coupons`` table. A code is reserved when a message is planned and
is never reused, whatever happens to the message; rows are never deleted.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

import pandas as pd
from sqlalchemy import select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from campaign.common.errors import CampaignError
from campaign.common.money import format_amount
from campaign.coupons.policy import Offer, coupons_issued_payload, new_coupon_code, normalize_code
from campaign.db.models import Coupon, Event, EventType, Message, User

EXPORT_COLUMNS = (
    "code",
    "user_id",
    "percent_off",
    "min_order",
    "issued_at",
    "expires_at",
    "redeemed_at",
)
RESERVE_ATTEMPTS = 5


def reserve_coupon(
    session: Session,
    user_id: int,
    campaign: str,
    offer: Offer,
    now: datetime,
    rng: random.Random,
    *,
    prefix: str = "CB",
    message_id: int | None = None,
) -> Coupon:
    """Insert a fresh coupon for ``user_id`` (internal id) and return the flushed row.

    Runs inside the caller's transaction (nothing is committed here); each attempt is
    a SAVEPOINT so a unique-code collision — about one in 10^14 per draw — only rolls
    back that attempt and a new code is drawn.

    Raises:
        CampaignError: no free code after 5 draws (the generator is broken).
    """
    for _ in range(RESERVE_ATTEMPTS):
        coupon = Coupon(
            code=new_coupon_code(rng, prefix=prefix),
            user_id=user_id,
            message_id=message_id,
            campaign=campaign,
            percent_off=offer.percent_off,
            min_order_cents=offer.min_order_cents,
            issued_at=now,
            expires_at=offer.expires_at(now),
        )
        try:
            with session.begin_nested():
                session.add(coupon)
        except IntegrityError:
            # The savepoint rolled back and took the pending row with it; draw again.
            continue
        return coupon
    raise CampaignError(f"could not draw a unique coupon code in {RESERVE_ATTEMPTS} attempts")


def export_coupons(
    connection: Connection, since: datetime | None = None, *, currency: str = "CNY"
) -> pd.DataFrame:
    """Issued coupons for the shop's checkout, oldest first. Read-only.

    Columns: ``code``, ``user_id`` (the shop's own id), ``percent_off`` (int),
    ``min_order`` (decimal string in ``currency``, e.g. ``"99.00"``), ``issued_at``,
    ``expires_at``, ``redeemed_at`` (aware UTC datetimes; ``redeemed_at`` NaT when
    unused). ``since`` keeps coupons issued at or after it.
    """
    query = (
        select(
            Coupon.code,
            User.external_id,
            Coupon.percent_off,
            Coupon.min_order_cents,
            Coupon.issued_at,
            Coupon.expires_at,
            Coupon.redeemed_at,
        )
        .join(User, User.id == Coupon.user_id)
        .order_by(Coupon.issued_at, Coupon.id)
    )
    if since is not None:
        query = query.where(Coupon.issued_at >= since)
    rows = connection.execute(query).all()
    frame = pd.DataFrame(
        {
            "code": [r.code for r in rows],
            "user_id": [r.external_id for r in rows],
            "percent_off": pd.Series([int(r.percent_off) for r in rows], dtype="int64"),
            "min_order": [
                format_amount(int(r.min_order_cents), currency) for r in rows
            ],
            "issued_at": pd.to_datetime([r.issued_at for r in rows], utc=True),
            "expires_at": pd.to_datetime([r.expires_at for r in rows], utc=True),
            "redeemed_at": pd.to_datetime([r.redeemed_at for r in rows], utc=True),
        },
        columns=list(EXPORT_COLUMNS),
    )
    return frame


@dataclass(frozen=True)
class RedemptionReport:
    """What :func:`redeem_from_events` did with the purchase events carrying a code."""

    redeemed: int = 0
    unknown_code: int = 0
    wrong_user: int = 0
    expired: int = 0
    already_redeemed: int = 0


def _chunks(items: Sequence[str], size: int = 500) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def redeem_from_events(
    connection: Connection, *, since: datetime | None = None
) -> RedemptionReport:
    """Mark coupons redeemed by the purchase events that carry their code.

    A code counts only when it was issued to the buying user and the purchase falls
    between ``issued_at`` and ``expires_at``; the earliest such purchase sets
    ``redeemed_at`` and ``order_id`` (the event's order id, else its source event
    id). Later lines of the same order are not counted twice, so running this again
    (e.g. after every events import) changes nothing. Codes are matched
    case-insensitively, ignoring spaces. ``since`` limits the events scanned by
    timestamp. Runs in the caller's transaction.
    """
    query = (
        select(Event.user_id, Event.ts, Event.order_id, Event.source_event_id, Event.coupon_code)
        .where(Event.type == EventType.PURCHASE.value, Event.coupon_code.is_not(None))
        .order_by(Event.ts, Event.id)
    )
    if since is not None:
        query = query.where(Event.ts >= since)
    events = connection.execute(query).all()
    codes = sorted({normalize_code(e.coupon_code) for e in events if e.coupon_code.strip()})
    coupons: dict[str, dict[str, object]] = {}
    for chunk in _chunks(codes):
        for row in connection.execute(
            select(
                Coupon.id,
                Coupon.code,
                Coupon.user_id,
                Coupon.issued_at,
                Coupon.expires_at,
                Coupon.redeemed_at,
                Coupon.order_id,
            ).where(Coupon.code.in_(chunk))
        ):
            coupons[row.code] = dict(row._mapping)
    counts = dict.fromkeys(
        ("redeemed", "unknown_code", "wrong_user", "expired", "already_redeemed"), 0
    )
    for event in events:
        code = normalize_code(event.coupon_code)
        if not code:
            continue
        coupon = coupons.get(code)
        order = event.order_id or event.source_event_id
        if coupon is None:
            counts["unknown_code"] += 1
        elif coupon["redeemed_at"] is not None:
            if coupon["order_id"] != order:
                counts["already_redeemed"] += 1
        elif coupon["user_id"] != event.user_id:
            counts["wrong_user"] += 1
        elif not coupon["issued_at"] <= event.ts <= coupon["expires_at"]:  # type: ignore[operator]
            counts["expired"] += 1
        else:
            result = connection.execute(
                update(Coupon)
                .where(Coupon.id == coupon["id"], Coupon.redeemed_at.is_(None))
                .values(redeemed_at=event.ts, order_id=order)
            )
            coupon["redeemed_at"] = event.ts
            coupon["order_id"] = order
            counts["redeemed"] += result.rowcount
    return RedemptionReport(**counts)


def run_coupons_payload(
    connection: Connection, run_id: int, *, shop: str, currency: str, now: datetime
) -> tuple[bytes, int] | None:
    """The signed-webhook body announcing the coupons reserved by run ``run_id``
    (:func:`campaign.coupons.policy.coupons_issued_payload`) and how many it lists, or None
    when the run reserved none. Read-only."""
    rows = connection.execute(
        select(
            Coupon.code, User.external_id.label("user_id"), Coupon.percent_off,
            Coupon.min_order_cents, Coupon.expires_at,
        )
        .join(User, User.id == Coupon.user_id)
        .join(Message, Message.id == Coupon.message_id)
        .where(Message.run_id == run_id)
        .order_by(Coupon.id)
    ).all()
    if not rows:
        return None
    body = coupons_issued_payload(
        [row._asdict() for row in rows], issued_at=now, shop=shop, currency=currency
    )
    return body, len(rows)
