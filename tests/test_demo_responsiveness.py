"""The demo shop's hidden responsiveness, its past A/B test, and the second run's answers."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest

from campaign.demo.customers import measured_by_ranking, simulate_reminders
from campaign.demo.shop import DEMO_AS_OF, EXPERIMENT_COLUMNS, DemoShop, generate_shop
from campaign.demo.shop.responsiveness import (
    EXPERIMENT_DAYS_BEFORE,
    LOST_CAUSE,
    PERSUADABLE,
    SLEEPING_DOG,
    SURE_THING,
    PlantedResponse,
    purchase_state,
    responsiveness_types,
)


@pytest.fixture(scope="module")
def shop() -> DemoShop:
    return generate_shop(1500, 7)


def test_the_type_follows_recency_orders_and_the_hidden_draw() -> None:
    state = pd.DataFrame({"days_since_last_purchase": [5, 5, 5, 60, 60, 200, np.inf],
                          "orders": [1, 4, 4, 2, 2, 9, 0]})
    draw = np.array([0.1, 0.1, 0.9, 0.1, 0.9, 0.1, 0.1])
    assert list(responsiveness_types(state, draw)) == [
        SURE_THING, SLEEPING_DOG, SURE_THING, PERSUADABLE, LOST_CAUSE, LOST_CAUSE, LOST_CAUSE]


def test_purchase_state_counts_orders_before_the_moment_only() -> None:
    at = DEMO_AS_OF
    events = pd.DataFrame({
        "user_id": ["a", "a", "a", "b"], "type": ["purchase"] * 3 + ["view"],
        "order_id": ["o1", "o1", "o2", None],
        "ts": [at - timedelta(days=10), at - timedelta(days=10), at + timedelta(days=1),
               at - timedelta(days=1)],
    })
    state = purchase_state(events, pd.Series(["a", "b"]), at)
    assert state["orders"].tolist() == [1, 0]
    assert state["days_since_last_purchase"].iloc[0] == pytest.approx(10)
    assert np.isinf(state["days_since_last_purchase"].iloc[1])


def test_the_past_test_is_an_importable_50_50_split_where_only_types_differ(
    shop: DemoShop,
) -> None:
    experiments = shop.experiments
    assert tuple(experiments.columns) == EXPERIMENT_COLUMNS
    assert experiments["assigned_at"].nunique() == len(EXPERIMENT_DAYS_BEFORE)
    assert not experiments.duplicated(["user_id", "assigned_at"]).any()
    assert set(experiments["user_id"]) <= set(shop.users["user_id"])
    treated = (experiments["group"] == "treatment").mean()
    assert 0.45 < treated < 0.55
    # The planted effect shows by type: persuadables gain, sleeping dogs lose.
    draw = shop.truth.set_index("user_id")["responsiveness_draw"]
    kinds = pd.concat([
        pd.Series(responsiveness_types(
            purchase_state(shop.events, wave["user_id"], at.to_pydatetime()),
            draw.reindex(wave["user_id"]).to_numpy()), index=wave.index)
        for at, wave in experiments.groupby("assigned_at")])
    rates = experiments.assign(kind=kinds).groupby(["kind", "group"])["converted"].mean()
    assert rates[PERSUADABLE, "treatment"] > rates[PERSUADABLE, "control"] + 0.15
    assert rates[SLEEPING_DOG, "treatment"] < rates[SLEEPING_DOG, "control"]


def test_the_generator_stays_deterministic_and_the_shop_itself_unchanged(
    shop: DemoShop,
) -> None:
    again = generate_shop(1500, 7)
    pd.testing.assert_frame_equal(again.experiments, shop.experiments)
    pd.testing.assert_frame_equal(again.truth, shop.truth)
    assert set(shop.truth["responsiveness"]) == {
        PERSUADABLE, SURE_THING, LOST_CAUSE, SLEEPING_DOG}


def test_reminders_bring_persuadables_extra_orders_and_cost_sleeping_dogs_theirs(
    shop: DemoShop,
) -> None:
    at = DEMO_AS_OF + timedelta(days=45)
    future_ts = pd.to_datetime(shop.future_events["ts"], utc=True)
    history = pd.concat([shop.events, shop.future_events[future_ts < pd.Timestamp(at)]])
    later = shop.future_events[future_ts >= pd.Timestamp(at)]
    users = shop.users["user_id"]
    messages = pd.DataFrame({
        "message_id": range(1, len(users) + 1), "external_id": users, "status": "sent",
        "medium": "email", "sent_at": pd.Timestamp(at), "product": None,
    })
    always = PlantedResponse(persuadable_lift=1.0, put_off=1.0)
    first = simulate_reminders(messages, history, later, shop.truth, pd.Series(dtype="int64"),
                               at=at, seed=7, planted=always)
    again = simulate_reminders(messages, history, later, shop.truth, pd.Series(dtype="int64"),
                               at=at, seed=7, planted=always)
    pd.testing.assert_frame_equal(first.events, again.events)
    truth = first.truth
    persuaded = truth["responsiveness"] == PERSUADABLE
    assert (truth.loc[persuaded & truth["delivered"], "extra_purchase"]).all()
    assert not truth.loc[~persuaded, "extra_purchase"].any()
    dogs = truth.loc[truth["put_off"], "external_id"]
    assert len(dogs) and (truth.loc[truth["put_off"], "responsiveness"] == SLEEPING_DOG).all()
    window = pd.Timestamp(at) + pd.Timedelta(days=14)
    kept = first.events[first.events["type"] == "purchase"]
    kept_ts = pd.to_datetime(kept["ts"], utc=True, format="ISO8601")
    assert not (kept["user_id"].isin(dogs) & (kept_ts <= window)).any()
    extra = first.events["event_id"].str.startswith("demo-reminder-")
    assert extra.sum() == truth["extra_purchase"].sum()


def test_each_ranking_is_measured_on_its_own_top_customers() -> None:
    rows = pd.DataFrame({
        "user_id": range(8),
        "group": ["treatment", "holdout"] * 4,
        "converted": [True, False, True, False, False, False, True, True],
        "good": [8, 7, 6, 5, 4, 3, 2, 1],
        "bad": [1, 2, 3, 4, 5, 6, 7, 8],
    })
    measured = measured_by_ranking(rows, 4).set_index("ranking")
    assert measured.loc["good", "uplift"] == pytest.approx(1.0)
    assert measured.loc["bad", "uplift"] == pytest.approx(0.0)
    assert measured.loc["good", "n"] == 4 and measured.loc["bad", "n_treatment"] == 2
