"""The migrations build exactly the schema the models describe, on both dialects."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select
from sqlalchemy.engine import Engine

from campaign.db.base import Base
from campaign.db.migrate import current_revision, head_revision, upgrade


def test_upgrade_reaches_head_and_is_idempotent(engine: Engine) -> None:
    upgrade(engine)
    assert current_revision(engine) == head_revision(engine)
    names = set(inspect(engine).get_table_names())
    assert set(Base.metadata.tables) <= names


def test_autogenerate_finds_no_difference_from_models(engine: Engine) -> None:
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    assert diff == [], f"models and migrations differ: {diff}"


def _legacy_insert(connection: Any, table_name: str, /, **values: Any) -> int:
    """Insert a row naming only ``values``' columns (an older schema lacks newer ones)."""
    table = sa.table(table_name, *(sa.column(key) for key in values), sa.column("id"))
    return int(connection.execute(sa.insert(table).values(**values).returning(table.c.id)).scalar())


def _old_user(connection: Any, n: int, **extra: Any) -> int:
    values = {
        "external_id": f"u{n}", "email": f"u{n}@example.com", "phone": f"+1555000{n:04d}",
        "name": f"User {n}", "consent_email": True, "consent_sms": True, "attributes": "{}",
    }
    values.update(extra)
    return _legacy_insert(connection, "users", **values)


def _old_message(connection: Any, run_id: int, user_id: int, key: str, **extra: Any) -> int:
    values = {
        "run_id": run_id, "user_id": user_id, "campaign": "winback", "channel": "text",
        "products": "[]", "idempotency_key": key, "status": "queued", "attempts": 0,
        "is_test": False, "created_at": ISSUED,
    }
    values.update(extra)
    return _legacy_insert(connection, "messages", **values)


def _old_run(connection: Any, campaign: str = "winback") -> int:
    return _legacy_insert(
        connection, "campaign_runs", campaign=campaign, slot=ISSUED, as_of=ISSUED,
        status="done", counts="{}",
    )


ISSUED = datetime(2026, 10, 1, tzinfo=UTC)


def test_upgrading_to_coupon_announcements_settles_earlier_runs(engine: Engine) -> None:
    # Runs that reserved codes before the table existed were announced (or not) back
    # then: the upgrade records them as settled so that nothing is sent again.
    from alembic import command

    from campaign.db.migrate import alembic_config
    from campaign.db.models import CouponAnnouncement

    command.downgrade(alembic_config(engine), "0003")
    with engine.begin() as connection:
        with_codes, without = _old_run(connection), _old_run(connection, "care")
        for n, run in enumerate((with_codes, with_codes, without)):
            user = _old_user(connection, n)
            message = _old_message(connection, run, user, f"k{n}")
            if run == with_codes:
                _legacy_insert(
                    connection, "coupons", code=f"OLD{n}", user_id=user, message_id=message,
                    campaign="winback", percent_off=10, min_order_cents=0,
                    issued_at=ISSUED, expires_at=ISSUED + timedelta(days=30),
                )
    upgrade(engine)
    with engine.connect() as connection:
        rows = connection.execute(select(CouponAnnouncement)).all()
    assert [(r.run_id, r.codes, r.announced_at) for r in rows] == [(with_codes, 2, ISSUED)]


def test_upgrading_to_pause_history_keeps_the_pauses_in_force(engine: Engine) -> None:
    # A pause switched on before the history existed keeps its reason and time there.
    from datetime import UTC, datetime

    from alembic import command
    from sqlalchemy import select, text

    from campaign.db.migrate import alembic_config
    from campaign.db.pauses import pause_history, switches

    command.downgrade(alembic_config(engine), "0004")
    at = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    with engine.begin() as connection:
        connection.execute(
            text("INSERT INTO campaign_state (campaign, paused, reason, updated_at) "
                 "VALUES ('winback', :t, 'typo', :at), ('care', :f, NULL, :at)"),
            {"t": True, "f": False, "at": at.replace(tzinfo=None) if
             engine.dialect.name == "sqlite" else at},
        )
    upgrade(engine)
    with engine.connect() as connection:
        history = pause_history(connection)
        current = {s.campaign: s for s in switches(connection)}
        assert connection.execute(select(text("count(*) FROM pause_events"))).scalar() == 1
    assert [(h.campaign, h.paused, h.reason, h.by, h.at) for h in history] == [
        ("winback", True, "typo", "unknown", at)
    ]
    assert current["winback"].paused and current["winback"].by is None


def test_upgrading_a_database_of_the_earlier_release_keeps_suppressions_and_attempts(
    engine: Engine,
) -> None:
    # A database as the release before 0009 left it: phones stored as given, a STOP
    # recorded as the hash of the raw phone, attempts that counted claims.
    from alembic import command

    from campaign.db.migrate import alembic_config
    from campaign.db.models import Message, User
    from campaign.db.queries import address_hash, is_suppressed

    command.downgrade(alembic_config(engine), "0004")
    raw = ["+86 100 9934 7647", "+86-100-8397-3564", "008610094904445", "(202) 555-0142"]
    locales = ["zh-CN", "zh-CN", "zh-CN", "en-US"]
    with engine.begin() as connection:
        run = _old_run(connection)
        ids = []
        for n, (phone, locale) in enumerate(zip(raw, locales, strict=True)):
            user = _old_user(connection, n, phone=phone, locale=locale)
            ids.append(user)
            _old_message(connection, run, user, f"k{n}", attempts=3)
            # Suppressed by address only (as an inbound STOP without a message did).
            _legacy_insert(
                connection, "suppressions", user_id=None, address_hash=address_hash(phone),
                channel="sms", reason="unsubscribed", source="twilio:SM1", created_at=ISSUED,
            )
        _old_user(connection, 9, phone="+86 100 0000 0009", locale="zh-CN")
    upgrade(engine)
    with engine.connect() as connection:
        users = {u.id: u for u in connection.execute(select(User)).all()}
        assert [users[i].phone for i in ids] == [
            "+8610099347647", "+8610083973564", "+8610094904445", "+12025550142",
        ]
        assert [users[i].phone_original for i in ids] == raw
        for user_id in ids:
            assert is_suppressed(connection, user_id, "sms"), users[user_id].phone
        others = [u.id for u in users.values() if u.id not in ids]
        assert not is_suppressed(connection, others[0], "sms")
        messages = connection.execute(select(Message.attempts, Message.claims)).all()
        assert {(m.attempts, m.claims) for m in messages} == {(3, 3)}
