"""Attribution: windows, intent-to-treat groups, forward-only conversion, coupons, arms."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from campaign.config import AttributionConfig
from campaign.db.engine import session_scope
from campaign.db.models import (
    CampaignRun,
    Coupon,
    Engagement,
    ExperimentArm,
    Message,
    MessageStatus,
    RunStatus,
    User,
)
from campaign.experiments.store import arm_outcomes, load_arms, refresh_arms
from campaign.measurement.attribution import (
    HOLDOUT,
    INELIGIBLE,
    TREATMENT,
    attribute,
    load_outcomes,
    message_outcomes,
)
from tests.factories import make_events, make_user

PLANNED = datetime(2026, 11, 1, tzinfo=UTC)
SENT = PLANNED + timedelta(hours=2)
WINDOW = AttributionConfig(window_days=14)


@dataclass
class Scenario:
    """Ids of the rows :func:`build_scenario` made, by role."""

    messages: dict[str, int]
    users: dict[str, int]


def add_message(session: Session, run: CampaignRun, user_id: int, status: str, **values):
    row = Message(
        run_id=run.id, user_id=user_id, campaign=run.campaign, channel="email",
        idempotency_key=f"{run.campaign}/{user_id}/{status}/{len(values)}",
        status=status, created_at=PLANNED,
        variant=None if status == MessageStatus.HELD_OUT else values.pop("variant", "coupon"),
        sent_at=SENT if status == MessageStatus.SENT else None,
        **values,
    )
    session.add(row)
    session.flush()
    return row


def build_scenario(session: Session, campaign: str = "winback") -> Scenario:
    """Seven users of one run, each showing one attribution rule."""
    run = CampaignRun(campaign=campaign, slot=PLANNED, as_of=PLANNED, status=RunStatus.DONE,
                      counts={}, started_at=PLANNED, finished_at=PLANNED)
    session.add(run)
    session.flush()
    users = {role: make_user(session).id for role in (
        "buyer", "late", "coupon", "held_buyer", "held_idle", "skipped_buyer", "clicked",
        "no_consent",
    )}
    msgs: dict[str, int] = {}
    msgs["buyer"] = add_message(session, run, users["buyer"], MessageStatus.SENT,
                                engagement=Engagement.OPENED.value).id
    msgs["late"] = add_message(session, run, users["late"], MessageStatus.SENT).id
    msgs["coupon"] = add_message(session, run, users["coupon"], MessageStatus.SENT,
                                 coupon_code="CBAAAA1111", variant="coupon").id
    msgs["held_buyer"] = add_message(session, run, users["held_buyer"], MessageStatus.HELD_OUT).id
    msgs["held_idle"] = add_message(session, run, users["held_idle"], MessageStatus.HELD_OUT).id
    msgs["skipped_buyer"] = add_message(session, run, users["skipped_buyer"],
                                        MessageStatus.SKIPPED, skip_reason="expired").id
    msgs["no_consent"] = add_message(session, run, users["no_consent"], MessageStatus.SKIPPED,
                                     skip_reason="no_consent", variant=None).id
    msgs["clicked"] = add_message(session, run, users["clicked"], MessageStatus.SENT,
                                  engagement=Engagement.UNSUBSCRIBED.value, variant="plain").id
    session.add(Coupon(code="CBAAAA1111", user_id=users["coupon"], message_id=msgs["coupon"],
                       campaign=campaign, percent_off=20, min_order_cents=0, issued_at=PLANNED,
                       expires_at=PLANNED + timedelta(days=14)))
    buy = {"type": "purchase"}
    def events(role: str, specs):
        make_events(session, session.get(User, users[role]), specs)

    # Bought 3 days after the send: converted, revenue 50.00.
    events("buyer", [dict(buy, ts=SENT + timedelta(days=3), amount_cents=5000)])
    # Bought 20 days after: not a conversion (outside 14 days), but in the 90-day horizon.
    events("late", [dict(buy, ts=SENT + timedelta(days=20), amount_cents=7000)])
    # Paid 80.00 with a 20% coupon: the discount was 20.00.
    events("coupon", [dict(buy, ts=SENT + timedelta(days=1), amount_cents=8000,
                           coupon_code="cbaa aa1111")])
    # Held out, bought 5 days after the planned time: a holdout conversion.
    events("held_buyer", [dict(buy, ts=PLANNED + timedelta(days=5), amount_cents=3000)])
    # A purchase before the plan never counts.
    events("held_idle", [dict(buy, ts=PLANNED - timedelta(days=2), amount_cents=9999)])
    # Skipped at send time (expired) but bought: counts for treatment (intent-to-treat).
    events("skipped_buyer", [dict(buy, ts=PLANNED + timedelta(days=2), amount_cents=1000)])
    # Unsubscribed then bought: converted for the report, engagement stays terminal.
    events("clicked", [dict(buy, ts=SENT + timedelta(days=4), amount_cents=2000)])
    return Scenario(msgs, users)


NOW = PLANNED + timedelta(days=100)


def test_attribution_credits_windows_groups_and_coupons(session_factory, engine):
    with session_scope(session_factory) as session:
        scenario = build_scenario(session)
    with engine.connect() as connection:
        out = load_outcomes(connection, WINDOW, horizon_days=90, now=NOW).set_index("message_id")
    m = scenario.messages
    assert out.loc[m["buyer"], "converted"] and out.loc[m["buyer"], "revenue_cents"] == 5000
    assert not out.loc[m["late"], "converted"] and out.loc[m["late"], "bought_in_horizon"]
    assert out.loc[m["held_buyer"], "group"] == HOLDOUT and out.loc[m["held_buyer"], "converted"]
    assert not out.loc[m["held_idle"], "converted"]
    assert not out.loc[m["held_idle"], "bought_in_horizon"]
    assert out.loc[m["skipped_buyer"], "group"] == TREATMENT
    assert out.loc[m["skipped_buyer"], "converted"]
    assert out.loc[m["coupon"], "percent_off"] == 20
    # Never randomised (no consent at plan time): in neither group.
    assert out.loc[m["no_consent"], "group"] == INELIGIBLE
    # Held-out users are measured from their planned time, sent messages from the send.
    assert out.loc[m["held_buyer"], "start"] == pd.Timestamp(PLANNED)
    assert out.loc[m["buyer"], "start"] == pd.Timestamp(SENT)
    assert out["window_closed"].all()


def test_attribute_redeems_coupons_and_converts_sent_messages_forward_only(
    session_factory, engine
):
    with session_scope(session_factory) as session:
        scenario = build_scenario(session)
    report = attribute(engine, WINDOW, horizon_days=90, now=NOW)
    assert report.redemptions.redeemed == 1
    m = scenario.messages
    with engine.connect() as connection:
        rows = {r.id: r for r in connection.execute(select(Message))}
        coupon = connection.execute(select(Coupon)).one()
    assert rows[m["buyer"]].engagement == Engagement.CONVERTED
    assert rows[m["buyer"]].engagement_at == SENT + timedelta(days=3)
    assert rows[m["coupon"]].engagement == Engagement.CONVERTED
    assert rows[m["late"]].engagement is None
    # Nobody messaged held-out or skipped users: their rows are never touched.
    assert rows[m["held_buyer"]].engagement is None
    assert rows[m["skipped_buyer"]].engagement is None
    # Terminal states are never left.
    assert rows[m["clicked"]].engagement == Engagement.UNSUBSCRIBED
    assert coupon.redeemed_at == SENT + timedelta(days=1)
    outcomes = report.outcomes.set_index("message_id")
    assert outcomes.loc[m["coupon"], "redeemed"]
    assert outcomes.loc[m["coupon"], "coupon_cost_cents"] == 2000
    assert report.newly_converted == 2
    again = attribute(engine, WINDOW, horizon_days=90, now=NOW)
    assert again.newly_converted == 0 and again.redemptions.redeemed == 0


def test_an_open_window_does_not_reach_the_bandit(session_factory, engine):
    with session_scope(session_factory) as session:
        build_scenario(session)
    with engine.connect() as connection:
        early = load_outcomes(connection, WINDOW, horizon_days=90,
                              now=SENT + timedelta(days=5))
    assert not early["window_closed"].any()
    assert arm_outcomes(early) == {}
    refresh_arms(engine, early, now=SENT)
    with engine.connect() as connection:
        assert load_arms(connection, "winback") == {}


def test_arms_count_each_closed_sent_outcome_once_and_keep_the_holdout_out(
    session_factory, engine
):
    with session_scope(session_factory) as session:
        build_scenario(session)
    with engine.connect() as connection:
        outcomes = load_outcomes(connection, WINDOW, horizon_days=90, now=NOW)
    first = refresh_arms(engine, outcomes, now=NOW)
    second = refresh_arms(engine, outcomes, now=NOW)
    assert second.changed == 0
    with engine.connect() as connection:
        arms = load_arms(connection, "winback")
        rows = connection.execute(select(ExperimentArm)).all()
    # coupon: buyer (converted), late (not), coupon (converted); plain: clicked (converted).
    assert arms["coupon"].successes == 2 and arms["coupon"].failures == 1
    assert arms["plain"].successes == 1 and arms["plain"].failures == 0
    assert len(rows) == 2 and first.changed == 2


def test_message_outcomes_is_empty_safe():
    empty = message_outcomes(pd.DataFrame(), pd.DataFrame(), pd.DataFrame(),
                             window_days=14, horizon_days=90, now=NOW)
    assert empty.empty and "converted" in empty


@pytest.mark.parametrize("days,converted", [(14, True), (14.01, False)])
def test_the_window_end_is_inclusive(days, converted):
    messages = pd.DataFrame([{"message_id": 1, "run_id": 1, "campaign": "c", "user_id": 1,
                              "variant": "v", "status": "sent", "skip_reason": None,
                              "channel": "email",
                              "engagement": None, "coupon_code": None,
                              "created_at": PLANNED, "sent_at": PLANNED}])
    purchases = pd.DataFrame([{"user_id": 1, "ts": PLANNED + timedelta(days=days),
                               "amount_cents": 100, "coupon_code": None}])
    out = message_outcomes(messages, purchases, pd.DataFrame(), window_days=14,
                           horizon_days=90, now=NOW)
    assert bool(out.loc[0, "converted"]) is converted


def test_training_labels_leave_out_users_a_message_reached_in_the_label_window(
    session_factory, engine
):
    from campaign.churn.training import labelled_snapshot

    with session_scope(session_factory) as session:
        scenario = build_scenario(session)
        # Make every scenario user a customer with an order before the plan.
        for user_id in scenario.users.values():
            make_events(session, session.get(User, user_id),
                        [{"type": "purchase", "ts": PLANNED - timedelta(days=30),
                          "amount_cents": 1000}])
    with engine.connect() as connection:
        before, labels = labelled_snapshot(connection, PLANNED, 90, 365)
        after, _ = labelled_snapshot(connection, PLANNED + timedelta(days=91), 90, 365)
    users = scenario.users
    # Sent in (PLANNED, PLANNED + 90 days]: their outcome is ours, not theirs.
    for role in ("buyer", "late", "coupon", "clicked"):
        assert users[role] not in before.index
    # Held out, skipped or never contacted: they keep their label.
    for role in ("held_buyer", "held_idle", "skipped_buyer", "no_consent"):
        assert users[role] in before.index
    assert labels.loc[users["held_idle"]] == 1 and labels.loc[users["held_buyer"]] == 0
    # A later snapshot's label window holds no message: everybody is back.
    assert users["buyer"] in after.index
