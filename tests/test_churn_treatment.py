"""Retraining never learns from users our messages reached inside the label window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from campaign.churn.training import labelled_snapshot
from campaign.db.models import CampaignRun, Message, MessageStatus
from tests.factories import make_events, make_user

AT = datetime(2026, 6, 1, tzinfo=UTC)
HORIZON = 90


def _sent(session: Session, run: CampaignRun, user_id: int, sent_at: datetime) -> None:
    session.add(
        Message(
            run_id=run.id, user_id=user_id, campaign=run.campaign, channel="email",
            idempotency_key=f"k-{user_id}", status=MessageStatus.SENT.value,
            created_at=sent_at, sent_at=sent_at, products=[],
        )
    )


def test_users_messaged_inside_the_label_window_are_left_out_of_training(
    session_factory: sessionmaker[Session],
) -> None:
    with session_factory.begin() as session:
        run = CampaignRun(campaign="winback", slot=AT, as_of=AT, status="done", counts={})
        session.add(run)
        users = [make_user(session, external_id=f"T{i}") for i in range(4)]
        for user in users:
            make_events(session, user, [{"type": "purchase", "ts": AT - timedelta(days=30)}])
        end = AT + timedelta(days=HORIZON)
        _sent(session, run, users[1].id, AT + timedelta(days=10))  # inside: left out
        _sent(session, run, users[2].id, end)  # at the window's end: cannot matter
        _sent(session, run, users[3].id, AT - timedelta(days=5))  # before T: a feature
        ids = [user.id for user in users]
    with session_factory.kw["bind"].connect() as connection:
        summary, labels = labelled_snapshot(connection, AT, HORIZON, lookback_days=365)
    kept = set(summary.index)
    assert ids[1] not in kept
    assert {ids[0], ids[2], ids[3]} <= kept
    assert len(labels) == len(summary)
