"""What every MariaDB/MySQL connection guarantees: UTC, utf8mb4, strictness, isolation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import insert, select, text
from sqlalchemy.exc import DataError, OperationalError

from campaign.db.engine import make_engine
from campaign.db.models import CampaignRun, Message, User

pytestmark = pytest.mark.mysql

SHANGHAI = timezone(timedelta(hours=8))


def test_sessions_are_utc_strict_utf8mb4_and_read_committed(mysql_url: str) -> None:
    engine = make_engine(mysql_url)
    with engine.connect() as connection:
        zone, mode, charset, isolation = connection.execute(
            text("SELECT @@time_zone, @@sql_mode, @@character_set_connection, "
                 "@@tx_isolation")
        ).one()
        tables = connection.execute(
            text("SELECT DISTINCT table_collation FROM information_schema.tables "
                 "WHERE table_schema = DATABASE() AND table_name <> 'alembic_version'")
        ).scalars().all()
    engine.dispose()
    assert zone == "+00:00" and charset == "utf8mb4" and isolation == "READ-COMMITTED"
    assert {"STRICT_ALL_TABLES", "ONLY_FULL_GROUP_BY"} <= set(mode.split(","))
    assert tables == ["utf8mb4_bin"]


def test_times_round_trip_in_utc_with_microseconds_whatever_their_zone(mysql_url: str) -> None:
    engine = make_engine(mysql_url)
    local = datetime(2026, 11, 2, 8, 30, 15, 123456, tzinfo=SHANGHAI)
    with engine.begin() as connection:
        connection.execute(insert(User).values(external_id="u1", created_at=local,
                                               attributes={}))
        # A raw parameter (no UTCDateTime in between) is converted to UTC as well.
        connection.execute(text("UPDATE users SET updated_at = :t"), {"t": local})
        stored, raw = connection.execute(
            select(User.created_at, text("CAST(updated_at AS CHAR)")).select_from(User)
        ).one()
    engine.dispose()
    assert stored == local and stored.tzinfo == UTC
    assert raw == "2026-11-02 00:30:15.123456"


def test_chinese_names_emoji_and_case_are_kept_apart(mysql_url: str) -> None:
    engine = make_engine(mysql_url)
    names = ["张伟", "Anna", "anna", "🎉 party", "😀 party"]
    body = "<p>🎁 优惠券</p>" * 20_000  # beyond the 64 KiB of a MySQL TEXT
    with engine.begin() as connection:
        for name in names:
            connection.execute(insert(User).values(external_id=name, name=name, attributes={}))
        run = connection.execute(
            insert(CampaignRun).values(campaign="c", slot=datetime.now(UTC),
                                       as_of=datetime.now(UTC), status="done", counts={})
        ).inserted_primary_key[0]
        connection.execute(
            insert(Message).values(run_id=run, user_id=1, campaign="c", channel="email",
                                   body=body, products=[], idempotency_key="k",
                                   status="queued", created_at=datetime.now(UTC))
        )
        stored = connection.execute(select(User.external_id).order_by(User.id)).scalars().all()
        kept = connection.execute(select(Message.body)).scalar_one()
    engine.dispose()
    assert stored == names
    assert kept == body


def test_a_value_that_does_not_fit_is_an_error_not_truncated(mysql_url: str) -> None:
    engine = make_engine(mysql_url)
    with pytest.raises((DataError, OperationalError)), engine.begin() as connection:
        connection.execute(insert(User).values(external_id="x" * 129, attributes={}))
    with engine.connect() as connection:
        assert connection.execute(select(User.id)).first() is None
    engine.dispose()
