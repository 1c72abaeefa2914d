"""Coupon rows on SQLite and PostgreSQL: reserve, never reuse, export, redeem."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from campaign.coupons.policy import Offer, new_coupon_code
from campaign.coupons.store import (
    EXPORT_COLUMNS,
    export_coupons,
    redeem_from_events,
    reserve_coupon,
)
from campaign.db.engine import session_scope
from campaign.db.models import Coupon
from tests.factories import make_events, make_user

NOW = datetime(2026, 11, 1, 10, 0, tzinfo=UTC)
OFFER = Offer(percent_off=20, min_order_cents=9900, valid_days=14)


class _FirstCodeRepeats(random.Random):
    """Draws the code ``CB-2222222222`` first, then random codes: forces one collision."""

    def __init__(self) -> None:
        super().__init__(1)
        self.draws = 0

    def choice(self, seq):  # type: ignore[no-untyped-def]
        self.draws += 1
        return seq[0] if self.draws <= 10 else super().choice(seq)


def test_a_reserved_coupon_is_stored_with_the_offer_and_expiry(
    session_factory: sessionmaker[Session],
) -> None:
    with session_scope(session_factory) as session:
        user = make_user(session)
        coupon = reserve_coupon(session, user.id, "winback", OFFER, NOW, random.Random(3))
        code = coupon.code
    with session_scope(session_factory) as session:
        stored = session.scalars(select(Coupon)).one()
    assert stored.code == code and stored.code.startswith("CB-")
    assert (stored.percent_off, stored.min_order_cents) == (20, 9900)
    assert stored.expires_at == NOW + timedelta(days=14)
    assert stored.redeemed_at is None


def test_a_code_collision_draws_a_new_code_instead_of_reusing_one(
    session_factory: sessionmaker[Session],
) -> None:
    with session_scope(session_factory) as session:
        first, second = make_user(session), make_user(session)
        taken = new_coupon_code(_FirstCodeRepeats())
        session.add(
            Coupon(
                code=taken,
                user_id=first.id,
                campaign="winback",
                percent_off=10,
                min_order_cents=0,
                issued_at=NOW,
                expires_at=NOW + timedelta(days=1),
            )
        )
        session.flush()
        rng = _FirstCodeRepeats()
        coupon = reserve_coupon(session, second.id, "winback", OFFER, NOW, rng)
        assert coupon.code != taken
    with session_scope(session_factory) as session:
        assert session.scalar(select(func.count()).select_from(Coupon)) == 2
        assert session.scalar(select(Coupon.user_id).where(Coupon.code == taken)) == first.id


def test_export_lists_codes_with_the_shops_user_ids_and_decimal_min_order(
    engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    with session_scope(session_factory) as session:
        old = make_user(session, external_id="U-old")
        new = make_user(session, external_id="U-new")
        reserve_coupon(
            session, old.id, "winback", OFFER, NOW - timedelta(days=30), random.Random(1)
        )
        reserve_coupon(session, new.id, "winback", OFFER, NOW, random.Random(2))
    with engine.connect() as connection:
        everything = export_coupons(connection)
        recent = export_coupons(connection, since=NOW - timedelta(days=1))
    assert tuple(everything.columns) == EXPORT_COLUMNS
    assert list(everything["user_id"]) == ["U-old", "U-new"]
    assert list(recent["user_id"]) == ["U-new"]
    row = recent.iloc[0]
    assert row["min_order"] == "99.00" and row["percent_off"] == 20
    assert row["expires_at"] == NOW + timedelta(days=14)
    assert recent["redeemed_at"].isna().all()


def _coupon_for(session: Session, user_id: int, issued_at: datetime = NOW) -> str:
    return reserve_coupon(session, user_id, "winback", OFFER, issued_at, random.Random()).code


def test_a_purchase_with_the_code_by_its_owner_redeems_it_once(
    engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    with session_scope(session_factory) as session:
        user = make_user(session)
        code = _coupon_for(session, user.id)
        make_events(
            session,
            user,
            [
                {
                    "type": "purchase",
                    "ts": NOW + timedelta(days=2),
                    "order_id": "o-1",
                    "coupon_code": code.lower(),
                    "amount_cents": 12000,
                },
                {
                    "type": "purchase",
                    "ts": NOW + timedelta(days=2),
                    "order_id": "o-1",
                    "coupon_code": code,
                    "amount_cents": 3000,
                },
                {
                    "type": "purchase",
                    "ts": NOW + timedelta(days=5),
                    "order_id": "o-2",
                    "coupon_code": code,
                    "amount_cents": 5000,
                },
            ],
        )
    with engine.begin() as connection:
        report = redeem_from_events(connection)
    assert report.redeemed == 1 and report.already_redeemed == 1
    with engine.begin() as connection:
        again = redeem_from_events(connection)
    assert again.redeemed == 0
    with session_scope(session_factory) as session:
        coupon = session.scalars(select(Coupon)).one()
    assert coupon.redeemed_at == NOW + timedelta(days=2)
    assert coupon.order_id == "o-1"


def test_codes_of_another_user_unknown_codes_and_late_purchases_redeem_nothing(
    engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    with session_scope(session_factory) as session:
        owner, stranger = make_user(session), make_user(session)
        code = _coupon_for(session, owner.id)
        make_events(
            session,
            stranger,
            [
                {
                    "type": "purchase",
                    "ts": NOW + timedelta(days=1),
                    "coupon_code": code,
                    "amount_cents": 100,
                },
                {
                    "type": "purchase",
                    "ts": NOW + timedelta(days=1),
                    "coupon_code": "CB-NOPE",
                    "amount_cents": 100,
                },
            ],
        )
        make_events(
            session,
            owner,
            [
                {
                    "type": "purchase",
                    "ts": NOW + timedelta(days=15),
                    "coupon_code": code,
                    "amount_cents": 100,
                },
                {"type": "view", "ts": NOW + timedelta(days=1), "coupon_code": code},
            ],
        )
    with engine.begin() as connection:
        report = redeem_from_events(connection)
    assert (report.redeemed, report.wrong_user, report.unknown_code, report.expired) == (0, 1, 1, 1)
    with session_scope(session_factory) as session:
        assert session.scalars(select(Coupon.redeemed_at)).one() is None
