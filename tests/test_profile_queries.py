"""Profile features on planted data with known answers, on SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import insert
from sqlalchemy.engine import Engine

from campaign.db.engine import make_engine
from campaign.db.models import CampaignRun, Coupon, Event, Message, Product, User
from campaign.profile import FEATURES, profile_frame
from campaign.profile.features import features_markdown

T = datetime(2026, 11, 1, tzinfo=UTC)
_ids = itertools.count(1)


def ago(days: float = 0, **delta: float) -> datetime:
    """A moment ``days`` (plus ``delta``) before T."""
    return T - timedelta(days=days, **delta)


def add_users(engine: Engine, *user_ids: int, created_at: datetime | None = None) -> None:
    rows = [
        {
            "id": uid,
            "external_id": f"u{uid}",
            "created_at": created_at,
            "consent_email": True,
            "consent_sms": False,
            "attributes": {},
        }
        for uid in user_ids
    ]
    with engine.begin() as connection:
        connection.execute(insert(User), rows)


def add_products(engine: Engine, categories: Mapping[int, str | None]) -> None:
    rows = [
        {"id": pid, "external_id": f"p{pid}", "category": cat, "tags": [], "attributes": {}}
        for pid, cat in categories.items()
    ]
    with engine.begin() as connection:
        connection.execute(insert(Product), rows)


def add_events(engine: Engine, events: Iterable[Mapping[str, Any]]) -> None:
    """Insert events; every key but user_id, type and ts has a valid default."""
    defaults = {
        "product_id": None,
        "order_id": None,
        "quantity": 1,
        "amount_cents": None,
        "coupon_code": None,
    }
    rows = [
        {**defaults, "source_event_id": f"e{next(_ids)}", **event} for event in events
    ]
    with engine.begin() as connection:
        connection.execute(insert(Event), rows)


def buy(user_id: int, ts: datetime, cents: int, **extra: Any) -> dict[str, Any]:
    return {"user_id": user_id, "type": "purchase", "ts": ts, "amount_cents": cents, **extra}


def event(user_id: int, kind: str, ts: datetime, **extra: Any) -> dict[str, Any]:
    return {"user_id": user_id, "type": kind, "ts": ts, **extra}


def profile(engine: Engine, as_of: datetime = T, **kwargs: Any) -> pd.DataFrame:
    with engine.connect() as connection:
        return profile_frame(connection, as_of, **kwargs)


def test_recency_and_tenure_are_days_before_t(engine: Engine) -> None:
    add_users(engine, 1, created_at=ago(400))
    add_users(engine, 2, created_at=T + timedelta(days=3))
    add_users(engine, 3)
    add_events(
        engine,
        [
            buy(1, ago(10), 1000),
            event(1, "visit", ago(2, hours=12)),
            event(1, "view", ago(100)),
            event(2, "view", ago(5)),
            event(2, "view", ago(50)),
            event(3, "search", ago(1)),
        ],
    )
    frame = profile(engine)
    assert list(frame.index) == [1, 2, 3]
    assert frame.loc[1, "days_since_last_purchase"] == 10
    assert frame.loc[1, "days_since_last_event"] == 2.5
    assert frame.loc[1, "tenure_days"] == 400  # created_at is earlier than the first event
    assert frame.loc[2, "tenure_days"] == 50  # created_at after T is ignored
    assert frame.loc[3, "tenure_days"] == 1
    assert math.isnan(frame.loc[2, "days_since_last_purchase"])


def test_purchases_sharing_an_order_id_form_one_order(engine: Engine) -> None:
    add_users(engine, 1, 2)
    add_events(
        engine,
        [
            buy(1, ago(5), 1000, order_id="A"),
            buy(1, ago(5, seconds=-30), 500, order_id="A"),
            buy(1, ago(5), 250),  # no order id: an order of its own
            buy(1, ago(5), 250),
            buy(1, ago(60), 2000, order_id="B"),
            buy(1, ago(200), 4000, order_id="C"),
            buy(1, ago(500), 1, order_id="D"),
            buy(2, ago(1), 100, order_id="A"),  # same order id, another user: another order
        ],
    )
    frame = profile(engine)
    one = frame.loc[1]
    assert one["orders_total"] == 6  # A (2 lines), 2 singles, B, C, D
    assert (one["orders_30d"], one["orders_90d"], one["orders_365d"]) == (3, 4, 5)
    assert one["spend_30d_cents"] == 2000
    assert one["spend_90d_cents"] == 4000
    assert one["spend_365d_cents"] == 8000
    assert one["spend_total_cents"] == 8001
    assert one["avg_order_value_cents"] == pytest.approx(8001 / 6)
    assert frame.loc[2, "orders_total"] == 1
    assert frame["orders_total"].dtype == "int64"
    assert frame["spend_total_cents"].dtype == "int64"


def test_interpurchase_intervals_and_rhythm(engine: Engine) -> None:
    add_users(engine, 1, 2, 3)
    add_events(
        engine,
        [
            # orders 100, 80, 40, 20 days ago: gaps 20, 40, 20
            *(buy(1, ago(d), 100) for d in (100, 80, 40, 20)),
            # two lines of one order count once: gaps 10
            buy(2, ago(30), 100, order_id="X"),
            buy(2, ago(30), 100, order_id="X"),
            buy(2, ago(20), 100),
            buy(3, ago(3), 100),
        ],
    )
    frame = profile(engine)
    assert frame.loc[1, "interpurchase_mean_days"] == pytest.approx(80 / 3)
    gaps = np.array([20.0, 40.0, 20.0])
    assert frame.loc[1, "interpurchase_std_days"] == pytest.approx(gaps.std())
    assert frame.loc[1, "rhythm_ratio"] == pytest.approx(20 / (80 / 3))
    assert frame.loc[2, "interpurchase_mean_days"] == pytest.approx(10)
    assert frame.loc[2, "interpurchase_std_days"] == 0
    assert frame.loc[2, "rhythm_ratio"] == pytest.approx(2.0)
    for column in ("interpurchase_mean_days", "interpurchase_std_days", "rhythm_ratio"):
        assert math.isnan(frame.loc[3, column])


def test_activity_trend_compares_the_last_90_days_with_the_90_before(engine: Engine) -> None:
    add_users(engine, 1, 2, 3)
    add_events(
        engine,
        [
            buy(1, ago(10), 100),
            *(buy(1, ago(d), 100) for d in (100, 120, 170)),
            event(1, "view", ago(200)),
            buy(2, ago(5), 100),
            event(3, "view", ago(400)),
        ],
    )
    frame = profile(engine)
    assert (frame.loc[1, "orders_90d"], frame.loc[1, "orders_prev_90d"]) == (1, 3)
    assert frame.loc[1, "order_trend"] == pytest.approx(-0.5)
    assert (frame.loc[1, "events_90d"], frame.loc[1, "events_prev_90d"]) == (1, 3)
    assert frame.loc[1, "event_trend"] == pytest.approx(-0.5)
    assert frame.loc[2, "order_trend"] == 1.0
    assert frame.loc[3, "order_trend"] == 0.0
    assert frame.loc[3, "event_trend"] == 0.0


def test_views_and_carts_count_in_half_open_windows(engine: Engine) -> None:
    add_users(engine, 1)
    add_events(
        engine,
        [
            event(1, "view", ago(7)),  # exactly T-7d: inside [T-7d, T)
            event(1, "view", ago(7, seconds=1)),  # just outside the 7 days
            event(1, "view", ago(29)),
            event(1, "view", ago(31)),
            event(1, "cart", ago(1), product_id=None),
            event(1, "cart", ago(20)),
        ],
    )
    one = profile(engine).loc[1]
    assert (one["views_7d"], one["views_30d"]) == (1, 3)
    assert (one["carts_7d"], one["carts_30d"]) == (1, 2)


def test_abandoned_carts_are_carted_products_not_bought_afterwards(engine: Engine) -> None:
    add_users(engine, 1)
    add_products(engine, {1: "a", 2: "a", 3: "b", 4: "b", 5: "c"})
    add_events(
        engine,
        [
            event(1, "cart", ago(10), product_id=1),
            buy(1, ago(9), 100, product_id=1),  # bought after: not abandoned
            buy(1, ago(20), 100, product_id=2),
            event(1, "cart", ago(10), product_id=2),  # bought only before: abandoned
            event(1, "cart", ago(5), product_id=3),
            event(1, "cart", ago(3), product_id=3),  # carted twice: one product
            event(1, "cart", ago(40), product_id=4),  # outside 30 days
            event(1, "cart", ago(2), product_id=5),
            buy(1, T, 100, product_id=5),  # bought at T: not seen from T
        ],
    )
    assert profile(engine).loc[1, "abandoned_carts_30d"] == 3


def test_distinct_categories_and_coupon_share(engine: Engine) -> None:
    add_users(engine, 1, 2)
    add_products(engine, {1: "shoes", 2: "shoes", 3: "hats", 4: None, 5: "bags"})
    add_events(
        engine,
        [
            buy(1, ago(50), 100, product_id=1, order_id="A", coupon_code="SAVE10"),
            buy(1, ago(50), 100, product_id=3, order_id="A"),
            buy(1, ago(40), 100, product_id=2),
            buy(1, ago(30), 100, product_id=4, coupon_code=""),
            buy(1, ago(20), 100, coupon_code="X"),
            event(1, "view", ago(1), product_id=5),  # viewed, not bought
            event(2, "view", ago(1), product_id=5),
        ],
    )
    frame = profile(engine)
    assert frame.loc[1, "distinct_categories"] == 2
    assert frame.loc[1, "coupon_order_share"] == pytest.approx(2 / 4)
    assert frame.loc[2, "distinct_categories"] == 0
    assert math.isnan(frame.loc[2, "coupon_order_share"])


def _message(
    user_id: int,
    status: str,
    sent_at: datetime | None,
    *,
    engagement: str | None = None,
    engagement_at: datetime | None = None,
    is_test: bool = False,
) -> dict[str, Any]:
    n = next(_ids)
    return {
        "run_id": 1,
        "user_id": user_id,
        "campaign": "winback",
        "channel": "email",
        "idempotency_key": f"k{n}",
        "status": status,
        "sent_at": sent_at,
        "created_at": (sent_at or T) - timedelta(minutes=5),
        "engagement": engagement,
        "engagement_at": engagement_at,
        "is_test": is_test,
        "products": [],
        "attempts": 0,
    }


def test_campaign_history_comes_from_messages_and_coupons(engine: Engine) -> None:
    add_users(engine, 1, 2, 3)
    add_events(engine, [event(u, "visit", ago(100)) for u in (1, 2, 3)])
    with engine.begin() as connection:
        connection.execute(
            insert(CampaignRun),
            [{"id": 1, "campaign": "winback", "slot": ago(60), "as_of": ago(60), "counts": {}}],
        )
        connection.execute(
            insert(Message),
            [
                _message(1, "sent", ago(60), engagement="delivered", engagement_at=ago(59)),
                _message(1, "sent", ago(40), engagement="opened", engagement_at=ago(39)),
                _message(1, "sent", ago(30), engagement="clicked", engagement_at=ago(29)),
                _message(1, "sent", ago(12), engagement="converted", engagement_at=ago(11)),
                # opened only after T: received but not (yet) opened as of T
                _message(1, "sent", ago(2), engagement="opened", engagement_at=T),
                _message(1, "sent", T),  # sent at T: not before T
                _message(1, "sent", ago(1), is_test=True),  # seed-list test send
                _message(1, "held_out", None),
                _message(1, "skipped", None),
                _message(1, "dead", None),
                _message(3, "queued", None),
            ],
        )
        coupon = {"campaign": "winback", "percent_off": 10, "min_order_cents": 0}
        connection.execute(
            insert(Coupon),
            [
                {**coupon, "code": "C1", "user_id": 1, "issued_at": ago(40),
                 "expires_at": ago(10), "redeemed_at": ago(35), "message_id": None},
                {**coupon, "code": "C2", "user_id": 1, "issued_at": ago(12),
                 "expires_at": T, "redeemed_at": T, "message_id": None},
                {**coupon, "code": "C3", "user_id": 1, "issued_at": T,
                 "expires_at": T, "redeemed_at": None, "message_id": None},
                {**coupon, "code": "C4", "user_id": 2, "issued_at": ago(3),
                 "expires_at": T, "redeemed_at": None, "message_id": None},
            ],
        )
    frame = profile(engine)
    one = frame.loc[1]
    assert one["messages_received"] == 5
    assert (one["messages_opened"], one["messages_clicked"]) == (3, 2)
    assert one["message_open_rate"] == pytest.approx(3 / 5)
    assert one["days_since_last_message"] == 2
    assert (one["coupons_issued"], one["coupons_redeemed"]) == (2, 1)
    assert frame.loc[2, "coupons_issued"] == 1
    assert frame.loc[3, "messages_received"] == 0
    assert math.isnan(frame.loc[3, "days_since_last_message"])
    assert math.isnan(frame.loc[3, "message_open_rate"])


def test_events_at_or_after_t_change_nothing(engine: Engine) -> None:
    add_users(engine, 1, 2)
    add_products(engine, {1: "a", 2: "b"})
    add_events(
        engine,
        [
            buy(1, ago(40), 900, product_id=1, order_id="A"),
            buy(1, ago(3), 100, product_id=1),
            event(1, "cart", ago(2), product_id=2),
            event(1, "view", ago(1)),
        ],
    )
    before = profile(engine)
    add_events(
        engine,
        [
            buy(1, T, 5000, product_id=2, order_id="A"),  # same order id, at T
            buy(1, T + timedelta(days=1), 5000, product_id=2, coupon_code="Z"),
            event(1, "view", T),
            event(1, "cart", T + timedelta(microseconds=1), product_id=1),
            event(2, "visit", T),  # a user seen only from T on is absent
        ],
    )
    after = profile(engine)
    pd.testing.assert_frame_equal(before, after)
    assert list(after.index) == [1]


def test_lookback_limits_the_events_read(engine: Engine) -> None:
    add_users(engine, 1, 2)
    add_events(
        engine,
        [
            buy(1, ago(300), 100),
            buy(1, ago(20), 100),
            event(2, "view", ago(200)),
        ],
    )
    frame = profile(engine, lookback_days=100)
    assert list(frame.index) == [1]
    assert frame.loc[1, "orders_total"] == 1
    assert frame.loc[1, "tenure_days"] == 20


def test_an_empty_shop_gives_an_empty_frame_with_every_column(engine: Engine) -> None:
    frame = profile(engine)
    assert frame.empty
    assert list(frame.columns) == list(FEATURES)
    assert frame.index.name == "user_id"


def test_columns_and_dtypes_are_the_documented_ones(engine: Engine) -> None:
    add_users(engine, 1)
    add_events(engine, [buy(1, ago(1), 100)])
    frame = profile(engine)
    assert list(frame.columns) == list(FEATURES)
    assert {c: str(t) for c, t in frame.dtypes.items()} == {
        name: f.dtype for name, f in FEATURES.items()
    }
    assert frame.index.dtype == "int64"


def test_docs_feature_table_matches_features() -> None:
    docs = Path(__file__).resolve().parents[1] / "docs" / "features.md"
    assert features_markdown() in docs.read_text(encoding="utf-8"), (
        "docs/features.md is stale: replace its table with the output of "
        "`python -c 'from campaign.profile.features import features_markdown as m; "
        "print(m())'`"
    )


CATEGORIES = ("shoes", "Shoes", "鞋子", "鞋", "👟", "👠", "bags")


def _random_shop(seed: int) -> dict[str, list[dict[str, Any]]]:
    """A few hundred users with random histories, timestamps with microseconds."""
    rng = np.random.default_rng(seed)
    users = [
        {
            "id": uid,
            "external_id": f"u{uid}",
            "created_at": ago(float(rng.uniform(0, 800))) if rng.random() < 0.6 else None,
            "consent_email": True,
            "consent_sms": False,
            "attributes": {},
        }
        for uid in range(1, 301)
    ]
    products = [
        # Categories differing only in case, and emoji, stay distinct on every database.
        {"id": pid, "external_id": f"p{pid}", "category": CATEGORIES[pid % len(CATEGORIES)],
         "tags": [], "attributes": {}}
        for pid in range(1, 41)
    ]
    events = []
    for n in range(6000):
        kind = str(rng.choice(["view", "view", "cart", "purchase", "visit", "search"]))
        ts = ago(float(rng.uniform(-20, 600)))  # some after T on purpose
        events.append(
            {
                "user_id": int(rng.integers(1, 301)),
                "product_id": int(rng.integers(1, 41)) if kind != "visit" else None,
                "type": kind,
                "ts": ts,
                "order_id": f"o{rng.integers(0, 900)}" if kind == "purchase"
                and rng.random() < 0.5 else None,
                "quantity": 1,
                "amount_cents": int(rng.integers(100, 50000)) if kind == "purchase" else None,
                "coupon_code": "C" if kind == "purchase" and rng.random() < 0.2 else None,
                "source_event_id": f"r{n}",
            }
        )
    return {"users": users, "products": products, "events": events}


@pytest.mark.parametrize(
    "server",
    [
        pytest.param("pg_url", marks=pytest.mark.postgres, id="postgresql"),
        pytest.param("mysql_url", marks=pytest.mark.mysql, id="mysql"),
    ],
)
def test_every_database_gives_the_sqlite_frame(
    sqlite_url: str, server: str, request: pytest.FixtureRequest
) -> None:
    shop = _random_shop(seed=3)
    frames = []
    for url in (sqlite_url, request.getfixturevalue(server)):
        engine = make_engine(url)
        with engine.begin() as connection:
            connection.execute(insert(User), shop["users"])
            connection.execute(insert(Product), shop["products"])
            connection.execute(insert(Event), shop["events"])
        frames.append(
            (profile(engine), profile(engine, lookback_days=90), profile(engine, ago(123.4)))
        )
        engine.dispose()
    for on_sqlite, on_server in zip(*frames, strict=True):
        assert len(on_sqlite) > 50
        pd.testing.assert_frame_equal(on_sqlite, on_server, check_exact=True)
