"""Segments: naming rules on centroids, determinism, storage per as-of time."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy.engine import Engine

from campaign.profile import FEATURES
from campaign.profile.clustering import (
    BEHAVIOUR,
    BROWSERS,
    FALLBACK,
    SEGMENT_NAMES,
    name_clusters,
    segment_customers,
)
from campaign.profile.segments import latest_segments, store_segments, update_segments
from tests.test_profile_queries import T, add_events, add_users, ago, buy, event


def _centroids(rows: list[dict[str, float]]) -> pd.DataFrame:
    frame = pd.DataFrame([{name: 0.0 for name in BEHAVIOUR} | row for row in rows])
    frame.index.name = "cluster"
    return frame


def test_clusters_are_named_by_their_strongest_trait() -> None:
    centroids = _centroids(
        [
            {"order_value": 1.5, "frequency": 1.2, "recency": -0.8, "orders": 1.0},
            {"coupon_share": 2.0},
            {"orders": 0.9, "recency": 1.1, "trend": -0.7},
            {"tenure": -1.4, "recency": -0.6, "orders": -0.6},
            {"orders": -1.2, "recency": 0.3},
        ]
    )
    assert name_clusters(centroids) == {
        0: "loyal big spenders",
        1: "bargain hunters",
        2: "fading regulars",
        3: "new customers",
        4: "one-time buyers",
    }


def test_each_name_is_used_once_and_weak_clusters_get_the_fallback() -> None:
    centroids = _centroids(
        [{"coupon_share": 2.0}, {"coupon_share": 1.0}, {"coupon_share": 0.1}]
    )
    assert name_clusters(centroids) == {0: "bargain hunters", 1: FALLBACK, 2: FALLBACK}


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.lists(st.floats(-3, 3, allow_nan=False), min_size=len(BEHAVIOUR),
                 max_size=len(BEHAVIOUR)),
        min_size=1,
        max_size=6,
    )
)
def test_naming_is_deterministic_and_uses_known_names(rows: list[list[float]]) -> None:
    centroids = pd.DataFrame(rows, columns=list(BEHAVIOUR))
    names = name_clusters(centroids)
    assert names == name_clusters(centroids.copy())
    assert set(names) == set(range(len(rows)))
    assert set(names.values()) <= set(SEGMENT_NAMES)
    named = [n for n in names.values() if n != FALLBACK]
    assert len(named) == len(set(named))


def _synthetic_features(seed: int, n: int = 600) -> pd.DataFrame:
    """A profile-shaped frame with planted groups (big spenders, coupon users, lapsed...)."""
    rng = np.random.default_rng(seed)
    group = rng.integers(0, 5, n)
    orders = np.choose(group, [20, 4, 12, 1, 0]) + rng.integers(0, 3, n)
    frame = pd.DataFrame(index=pd.Index(np.arange(1, n + 1), name="user_id"))
    for name, f in FEATURES.items():
        frame[name] = np.zeros(n, dtype=f.dtype)
    frame["orders_total"] = orders
    frame["orders_365d"] = np.where(group == 2, 0, orders)
    frame["days_since_last_purchase"] = np.where(
        orders > 0, np.choose(group, [5, 30, 300, 20, 0]) + rng.uniform(0, 5, n), np.nan
    )
    frame["avg_order_value_cents"] = np.where(
        orders > 0, np.choose(group, [40000, 3000, 5000, 5000, 0]) * rng.uniform(0.9, 1.1, n),
        np.nan,
    )
    frame["coupon_order_share"] = np.where(orders > 0, np.where(group == 1, 0.9, 0.0), np.nan)
    frame["order_trend"] = np.where(group == 2, -1.0, 0.0)
    frame["tenure_days"] = np.choose(group, [500, 400, 500, 25, 100]) + rng.uniform(0, 10, n)
    return frame


def test_planted_groups_are_found_and_named() -> None:
    features = _synthetic_features(seed=1)
    result = segment_customers(features, n_segments=4, random_state=0)
    assert (result.names[features["orders_total"] == 0] == BROWSERS).all()
    assert result.centroids["size"].sum() == (features["orders_total"] > 0).sum()
    big = features["avg_order_value_cents"] > 20000
    assert (result.names[big] == "loyal big spenders").all()
    coupons = features["coupon_order_share"] > 0.5
    assert (result.names[coupons] == "bargain hunters").all()


def test_segmentation_is_deterministic_for_a_fixed_random_state() -> None:
    features = _synthetic_features(seed=2)
    first = segment_customers(features, random_state=7)
    again = segment_customers(features.sample(frac=1.0, random_state=3), random_state=7)
    pd.testing.assert_series_equal(first.names, again.names)
    pd.testing.assert_frame_equal(first.centroids, again.centroids)


def test_tiny_and_buyerless_profiles_still_segment() -> None:
    features = _synthetic_features(seed=3, n=3)
    result = segment_customers(features, n_segments=5)
    assert len(result.names) == 3
    nobody = segment_customers(features[features["orders_total"] < 0])
    assert nobody.names.empty


def test_segments_are_stored_per_as_of_and_replaced(engine: Engine) -> None:
    add_users(engine, 1, 2, 3)
    with engine.begin() as connection:
        store_segments(connection, ago(30), pd.Series({1: "new customers", 2: "browsers"}))
        store_segments(connection, T, pd.Series({1: "bargain hunters", 3: "browsers"}))
        store_segments(connection, T, pd.Series({1: "fading regulars", 2: "browsers"}))
    with engine.connect() as connection:
        now = latest_segments(connection, T + timedelta(days=1))
        earlier = latest_segments(connection, ago(1))
        none = latest_segments(connection, ago(60))
    assert now.to_dict() == {1: "fading regulars", 2: "browsers"}
    assert earlier.to_dict() == {1: "new customers", 2: "browsers"}
    assert none.empty and none.index.name == "user_id"


def test_update_segments_profiles_clusters_and_stores(engine: Engine) -> None:
    add_users(engine, *range(1, 13))
    rows = []
    for uid in range(1, 11):
        for k in range(uid % 4 + 1):
            rows.append(buy(uid, ago(5 + 40 * k + uid), 1000 * uid,
                            coupon_code="C" if uid % 3 == 0 else None))
    rows += [event(11, "view", ago(2)), event(12, "visit", ago(3))]
    add_events(engine, rows)
    result = update_segments(engine, T, n_segments=3)
    with engine.connect() as connection:
        stored = latest_segments(connection, T)
    assert stored.to_dict() == result.names.to_dict()
    assert stored[11] == stored[12] == BROWSERS
    assert set(stored) <= set(SEGMENT_NAMES)
    assert len(stored) == 12


@pytest.mark.parametrize("column", list(BEHAVIOUR))
def test_every_behaviour_column_is_computed_from_documented_features(column: str) -> None:
    features = _synthetic_features(seed=4, n=20)
    values = BEHAVIOUR[column](features[features["orders_total"] > 0])
    assert values.notna().all()


def test_docs_list_the_naming_rules() -> None:
    from pathlib import Path

    from campaign.profile.clustering import segments_markdown

    docs = Path(__file__).resolve().parents[1] / "docs" / "features.md"
    assert segments_markdown() in docs.read_text(encoding="utf-8")
