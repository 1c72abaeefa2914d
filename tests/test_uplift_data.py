"""The uplift training frame: runs and imports together, each row's own probability,
outcomes in the window, and features that never see what happened after planning."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from campaign.config import AttributionConfig
from campaign.db.engine import session_scope
from campaign.db.models import (
    CampaignRun,
    EventType,
    ExperimentAssignment,
    Message,
    MessageStatus,
    RunStatus,
    SkipReason,
)
from campaign.uplift.data import FEATURE_COLUMNS, training_frame
from tests.factories import make_events, make_user

T = datetime(2026, 11, 1, tzinfo=UTC)
NOW = T + timedelta(days=30)
WINDOW = AttributionConfig(window_days=14)


def _message(run: CampaignRun, user_id: int, status: str, **values: object) -> Message:
    return Message(
        run_id=run.id, user_id=user_id, campaign=run.campaign, channel="email",
        idempotency_key=f"{run.campaign}/{run.id}/{user_id}", status=status, created_at=T,
        sent_at=T + timedelta(hours=1) if status == MessageStatus.SENT else None, **values,
    )


def _build(session_factory: sessionmaker[Session]) -> dict[str, int]:
    with session_scope(session_factory) as session:
        run = CampaignRun(campaign="winback", slot=T, as_of=T, status=RunStatus.DONE,
                          counts={}, started_at=T, finished_at=T, holdout_share=0.2)
        session.add(run)
        session.flush()
        users = {name: make_user(session) for name in (
            "treated", "failed", "held", "ineligible", "imported_t", "imported_t2",
            "imported_c")}
        before = T - timedelta(days=40)
        for name in ("treated", "held"):
            make_events(session, users[name], [{"type": EventType.PURCHASE, "ts": before,
                                                 "amount_cents": 5000}])
        # After planning: a big purchase in the window, and a view (a visit).
        make_events(session, users["treated"], [
            {"type": EventType.PURCHASE, "ts": T + timedelta(days=3), "amount_cents": 90000},
            {"type": EventType.VIEW, "ts": T + timedelta(days=2)},
        ])
        make_events(session, users["held"], [{"type": EventType.VIEW,
                                               "ts": T + timedelta(days=20)}])
        session.add_all([
            _message(run, users["treated"].id, MessageStatus.SENT, variant="a"),
            # Assigned, never sent: still treatment (intent-to-treat).
            _message(run, users["failed"].id, MessageStatus.DEAD, variant="a"),
            _message(run, users["held"].id, MessageStatus.HELD_OUT),
            _message(run, users["ineligible"].id, MessageStatus.SKIPPED,
                     skip_reason=SkipReason.NO_CONSENT.value),
        ])
        for name, group in (("imported_t", "treatment"), ("imported_t2", "treatment"),
                            ("imported_c", "control")):
            session.add(ExperimentAssignment(
                campaign="winback", user_id=users[name].id, group=group, assigned_at=before,
                converted=name == "imported_t", revenue_cents=700 if name == "imported_t"
                else None, visited=None, variant=None, imported_at=NOW))
        # Another campaign's import is not this campaign's data.
        session.add(ExperimentAssignment(
            campaign="other", user_id=users["treated"].id, group="control", assigned_at=T,
            converted=True, imported_at=NOW))
        return {name: user.id for name, user in users.items()}


def test_runs_and_imports_form_one_frame_with_each_rows_own_probability(
    engine: Engine, session_factory: sessionmaker[Session],
) -> None:
    ids = _build(session_factory)
    with engine.connect() as connection:
        frame = training_frame(connection, WINDOW, "winback", horizon_days=90, now=NOW)
    by_user = frame.set_index("user_id")
    assert set(by_user.index) == set(ids.values()) - {ids["ineligible"]}
    row = by_user.loc[ids["treated"]]
    assert (row["source"], bool(row["treatment"]), row["p_treatment"]) == ("run", True, 0.8)
    assert bool(row["converted"]) and bool(row["visited"]) and row["revenue_cents"] == 90000
    assert bool(by_user.loc[ids["failed"], "treatment"])
    held = by_user.loc[ids["held"]]
    assert not held["treatment"] and held["p_treatment"] == 0.8
    # The view came after the window closed: no visit, no conversion.
    assert not held["visited"] and not held["converted"]
    imported = by_user.loc[[ids["imported_t"], ids["imported_t2"], ids["imported_c"]]]
    assert imported["p_treatment"].tolist() == [2 / 3] * 3
    assert imported["revenue_cents"].tolist() == [700, 0, 0]
    assert list(frame.columns[-len(FEATURE_COLUMNS) - 1:]) == [*FEATURE_COLUMNS, "attributes"]


def test_features_never_see_events_after_the_planning_time(
    engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    ids = _build(session_factory)
    with engine.connect() as connection:
        first = training_frame(connection, WINDOW, "winback", horizon_days=90, now=NOW)
    with session_scope(session_factory) as session:
        from campaign.db.models import User

        treated = session.get(User, ids["treated"])
        assert treated is not None
        make_events(session, treated, [
            {"type": EventType.PURCHASE, "ts": T + timedelta(hours=2), "amount_cents": 10**7},
            {"type": EventType.VIEW, "ts": T},
        ])
    with engine.connect() as connection:
        second = training_frame(connection, WINDOW, "winback", horizon_days=90, now=NOW)
    features = list(FEATURE_COLUMNS)
    pd.testing.assert_frame_equal(first[features], second[features])
    row = first.set_index("user_id").loc[ids["treated"]]
    assert row["spend_total_cents"] == 5000 and row["orders_total"] == 1
    assert 39.9 < row["days_since_last_purchase"] < 40.1
    # The outcome did change: the new purchase is in the window.
    assert second.set_index("user_id").loc[ids["treated"], "revenue_cents"] == 90000 + 10**7


def test_a_campaign_without_data_gives_an_empty_frame(engine: Engine) -> None:
    with engine.connect() as connection:
        frame = training_frame(connection, WINDOW, "nothing", horizon_days=90, now=NOW)
    assert frame.empty and "p_treatment" in frame.columns
