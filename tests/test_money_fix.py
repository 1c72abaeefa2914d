"""Upgrading a shop whose currency has no or three decimals: amounts an earlier version
stored as hundredths are rescaled once by ``campaign db fix-money``, on both dialects.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import select
from sqlalchemy.engine import Engine

from campaign.common.errors import CampaignError
from campaign.db.migrate import alembic_config, upgrade
from campaign.db.models import Coupon, DataFix, Event, Product
from campaign.db.money_fix import fix_money
from campaign.ingest import import_csv
from tests.test_ingest import _write

NOW = datetime(2026, 12, 2, tzinfo=UTC)
USERS = "user_id\nu1\n"
PRODUCTS = "product_id,price\np1,1200\np2,980\n"
EVENTS = (
    "user_id,type,ts,product_id,order_id,quantity,amount\n"
    "u1,purchase,2026-11-01T10:00:00Z,p1,o1,1,1200\n"
    "u1,purchase,2026-11-02T10:00:00+09:00,p2,,2,1960\n"
)


def _old_shop(engine: Engine, tmp_path: Path, events: str = EVENTS) -> None:
    """A database as an earlier version left it: every amount read as hundredths
    (what CNY parsing does for any currency), at revision 0009 (before 0010)."""
    command.downgrade(alembic_config(engine), "0009")
    import_csv(engine, "users", _write(tmp_path, "users.csv", USERS), now=NOW)
    import_csv(engine, "products", _write(tmp_path, "products.csv", PRODUCTS), now=NOW,
               currency="CNY")
    import_csv(engine, "events", _write(tmp_path, "events.csv", events), now=NOW, currency="CNY")
    upgrade(engine)


def _amounts(engine: Engine) -> tuple[list[int], list[int]]:
    with engine.connect() as connection:
        prices = list(connection.execute(select(Product.price_cents).order_by(Product.id))
                      .scalars())
        amounts = list(connection.execute(select(Event.amount_cents).order_by(Event.id))
                       .scalars())
    return prices, amounts


def test_a_yen_shop_is_rescaled_once_and_old_files_still_reimport_as_unchanged(
    engine: Engine, tmp_path: Path
) -> None:
    _old_shop(engine, tmp_path)
    assert _amounts(engine) == ([120000, 98000], [120000, 196000])
    dry = fix_money(engine, "JPY", now=NOW, dry_run=True)
    assert dry.status == "would apply" and _amounts(engine) == ([120000, 98000], [120000, 196000])
    report = fix_money(engine, "JPY", now=NOW)
    assert report.status == "applied" and report.factor == "1/100"
    assert report.rows == {"products": 2, "events": 2, "coupons": 0}
    assert report.rehashed_events == 2
    assert _amounts(engine) == ([1200, 980], [1200, 1960])
    # The same old file, imported now in yen, is the same events: nothing new.
    again = import_csv(engine, "events", tmp_path / "events.csv", now=NOW, currency="JPY")
    assert (again.inserted, again.unchanged) == (0, 2)
    assert fix_money(engine, "JPY", now=NOW).status == "already"
    assert _amounts(engine) == ([1200, 980], [1200, 1960])


def test_a_three_decimal_shop_is_multiplied_by_ten(engine: Engine, tmp_path: Path) -> None:
    _old_shop(engine, tmp_path)
    with engine.begin() as connection:
        connection.execute(Coupon.__table__.insert().values(
            code="CB-OLD", user_id=1, campaign="c", percent_off=10, min_order_cents=550,
            issued_at=NOW, expires_at=NOW))
    fix_money(engine, "KWD", now=NOW)
    assert _amounts(engine) == ([1200000, 980000], [1200000, 1960000])
    with engine.connect() as connection:
        assert connection.execute(select(Coupon.min_order_cents)).scalar() == 5500


def test_fractional_yen_stop_the_fix_before_anything_changes(
    engine: Engine, tmp_path: Path
) -> None:
    events = EVENTS + "u1,purchase,2026-11-03T10:00:00Z,p1,,1,1200.50\n"
    _old_shop(engine, tmp_path, events)
    before = _amounts(engine)
    with pytest.raises(CampaignError, match="not whole JPY minor units") as caught:
        fix_money(engine, "JPY", now=NOW)
    assert "1200.50" in str(caught.value) and "\n" not in str(caught.value)
    assert _amounts(engine) == before
    with engine.connect() as connection:
        assert connection.execute(select(DataFix.applied_at)).scalar() is None


def test_a_two_decimal_shop_or_a_fresh_database_needs_nothing(
    engine: Engine, tmp_path: Path
) -> None:
    assert fix_money(engine, "JPY", now=NOW).status == "nothing"  # migrated empty
    _old_shop(engine, tmp_path)
    before = _amounts(engine)
    assert fix_money(engine, "CNY", now=NOW).status == "unchanged"
    assert _amounts(engine) == before
    assert fix_money(engine, "JPY", now=NOW).status == "already"
