"""Pure feature derivations: the documented NaN convention and ranges hold for any input."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from campaign.profile.features import (
    FEATURES,
    NEVER_DAYS,
    RAW_COLUMNS,
    SECONDS_PER_DAY,
    derive_features,
    epoch_seconds,
    fill_missing,
)

T = datetime(2026, 11, 1, tzinfo=UTC)
T_S = epoch_seconds(T)


@st.composite
def raw_rows(draw: st.DrawFn) -> dict[str, float | None]:
    orders = draw(st.integers(0, 50))
    gaps = max(orders - 1, 0)
    gap_values = draw(st.lists(st.integers(0, 400 * SECONDS_PER_DAY), min_size=gaps,
                               max_size=gaps))
    orders_90 = draw(st.integers(0, orders))
    orders_prev = draw(st.integers(0, orders - orders_90))
    received = draw(st.integers(0, 20))
    opened = draw(st.integers(0, received))
    first = T_S - draw(st.integers(1, 900 * SECONDS_PER_DAY))
    row: dict[str, float | None] = {c: 0 for c in RAW_COLUMNS}
    row.update(
        events_total=draw(st.integers(1, 500)),
        first_event_at_s=first,
        last_event_at_s=draw(st.integers(first, T_S - 1)),
        created_at_s=draw(st.one_of(st.none(), st.integers(T_S - 10**8, T_S + 10**6))),
        orders_total=orders,
        orders_90d=orders_90,
        orders_prev_90d=orders_prev,
        spend_total_cents=draw(st.integers(0, 10**9)) if orders else 0,
        coupon_orders=draw(st.integers(0, orders)),
        last_order_at_s=draw(st.integers(first, T_S - 1)) if orders else None,
        gap_count=gaps,
        gap_sum_s=sum(gap_values),
        gap_sumsq_s=sum(g * g for g in gap_values),
        messages_received=received,
        messages_opened=opened,
        last_message_at_s=T_S - 3600 if received else None,
    )
    return row


@settings(max_examples=80, deadline=None)
@given(st.lists(raw_rows(), min_size=1, max_size=20))
def test_derived_features_follow_the_documented_convention(rows: list[dict]) -> None:
    raw = pd.DataFrame(rows, index=pd.Index(range(1, len(rows) + 1), name="user_id"))
    frame = derive_features(raw, T)
    assert list(frame.columns) == list(FEATURES)
    for name, feature in FEATURES.items():
        assert str(frame[name].dtype) == feature.dtype
        if not feature.missing:
            assert frame[name].notna().all(), name
    no_orders = raw["orders_total"] == 0
    assert frame.loc[no_orders, "days_since_last_purchase"].isna().all()
    assert frame.loc[no_orders, "coupon_order_share"].isna().all()
    assert frame.loc[~no_orders, "coupon_order_share"].between(0, 1).all()
    assert (frame["interpurchase_mean_days"].isna() == (raw["orders_total"] < 2)).all()
    assert (frame["interpurchase_std_days"].dropna() >= 0).all()
    assert frame["order_trend"].between(-1, 1).all()
    assert frame["event_trend"].between(-1, 1).all()
    assert (frame["tenure_days"] >= frame["days_since_last_event"]).all()
    filled = fill_missing(frame)
    assert not filled.isna().any().any()
    assert (filled.loc[no_orders, "days_since_last_purchase"] == NEVER_DAYS).all()


def test_std_of_gaps_matches_numpy() -> None:
    gaps = np.array([3, 10, 4, 30]) * SECONDS_PER_DAY
    row = {c: 0 for c in RAW_COLUMNS} | {
        "events_total": 5, "first_event_at_s": T_S - 100 * SECONDS_PER_DAY,
        "last_event_at_s": T_S - SECONDS_PER_DAY, "created_at_s": None,
        "orders_total": 5, "last_order_at_s": T_S - 2 * SECONDS_PER_DAY,
        "gap_count": 4, "gap_sum_s": int(gaps.sum()), "gap_sumsq_s": int((gaps**2).sum()),
        "last_message_at_s": None,
    }
    frame = derive_features(pd.DataFrame([row], index=pd.Index([7], name="user_id")), T)
    assert math.isclose(frame.loc[7, "interpurchase_std_days"], (gaps / SECONDS_PER_DAY).std())
    assert math.isclose(frame.loc[7, "rhythm_ratio"], 2 / 11.75)


def test_every_feature_is_documented_with_a_meaning_and_unit() -> None:
    for name, feature in FEATURES.items():
        assert feature.meaning and feature.unit, name
        assert feature.dtype in ("int64", "float64"), name
        assert (feature.dtype == "float64") or not feature.missing, name
