"""The migrations build exactly the schema the models describe, on both dialects."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
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


def test_upgrading_to_coupon_announcements_settles_earlier_runs(engine: Engine) -> None:
    # Runs that reserved codes before the table existed were announced (or not) back
    # then: the upgrade records them as settled so that nothing is sent again.
    from datetime import UTC, datetime, timedelta

    from alembic import command
    from sqlalchemy import insert, select
    from sqlalchemy.orm import Session

    from campaign.db.migrate import alembic_config
    from campaign.db.models import Coupon, CouponAnnouncement, Message
    from tests.delivery_helpers import make_run, make_user

    command.downgrade(alembic_config(engine), "0003")
    issued = datetime(2026, 10, 1, tzinfo=UTC)
    with Session(engine) as session:
        with_codes, without = make_run(session, slot=issued), make_run(session, "care", issued)
        for n, run in enumerate((with_codes, with_codes, without)):
            user = make_user(session, n)
            # Only the columns of revision 0003: the ORM model may have grown since.
            message_id = session.execute(insert(Message.__table__).values(
                run_id=run.id, user_id=user.id, campaign=run.campaign, channel="hook",
                idempotency_key=f"{run.campaign}:{n}", status="queued", attempts=0,
                products=[], created_at=issued,
            ).returning(Message.__table__.c.id)).scalar_one()
            if run is with_codes:
                session.add(Coupon(
                    code=f"OLD{n}", user_id=user.id, message_id=message_id,
                    campaign=run.campaign, percent_off=10, min_order_cents=0,
                    issued_at=issued, expires_at=issued + timedelta(days=30),
                ))
        session.commit()
        run_id = with_codes.id
    upgrade(engine)
    with engine.connect() as connection:
        rows = connection.execute(select(CouponAnnouncement)).all()
    assert [(r.run_id, r.codes, r.announced_at) for r in rows] == [(run_id, 2, issued)]


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
