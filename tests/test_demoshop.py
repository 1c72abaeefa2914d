"""The demo shop generator: deterministic, in the CSV contract, realistic enough to learn from."""

from __future__ import annotations

import csv
import re
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from campaign.common.errors import InputError
from campaign.demo.shop import (
    DEMO_AS_OF,
    EVENT_COLUMNS,
    HISTORY_DAYS,
    PRODUCT_COLUMNS,
    USER_COLUMNS,
    DemoShop,
    generate_shop,
    write_csv,
)

AS_OF = pd.Timestamp(DEMO_AS_OF)


@pytest.fixture(scope="module")
def shop() -> DemoShop:
    """The default demo shop (3,000 users), generated once for this module."""
    return generate_shop()


def _purchases(shop: DemoShop, *, future: bool = False) -> pd.DataFrame:
    events = pd.concat([shop.events, shop.future_events]) if future else shop.events
    return events[events["type"] == "purchase"]


def _no_repurchase_share(shop: DemoShop, as_of: pd.Timestamp) -> float:
    """Among users who bought in the year before ``as_of``, the share not buying in 90 days."""
    purchases = _purchases(shop, future=True)
    before = purchases[(purchases["ts"] < as_of) & (purchases["ts"] >= as_of - timedelta(days=365))]
    after = purchases[(purchases["ts"] >= as_of) & (purchases["ts"] < as_of + timedelta(days=90))]
    customers = set(before["user_id"])
    return 1 - len(customers & set(after["user_id"])) / len(customers)


def test_same_seed_gives_identical_frames_and_another_seed_does_not() -> None:
    first, second = generate_shop(200, seed=3), generate_shop(200, seed=3)
    for name in ("users", "products", "events", "truth", "future_events"):
        pd.testing.assert_frame_equal(getattr(first, name), getattr(second, name))
    other = generate_shop(200, seed=4)
    assert not other.events["ts"].equals(first.events["ts"])


def test_frames_have_exactly_the_csv_contract_columns(shop: DemoShop) -> None:
    assert tuple(shop.users.columns) == USER_COLUMNS
    assert tuple(shop.products.columns) == PRODUCT_COLUMNS
    assert tuple(shop.events.columns) == EVENT_COLUMNS
    assert tuple(shop.future_events.columns) == EVENT_COLUMNS
    assert USER_COLUMNS == ("user_id", "email", "phone", "name", "locale", "timezone",
                            "consent_email", "consent_sms", "created_at")
    assert PRODUCT_COLUMNS == ("product_id", "name", "category", "brand", "price", "tags",
                               "in_stock", "url")
    assert set(EVENT_COLUMNS) == {"event_id", "user_id", "type", "ts", "product_id", "order_id",
                                  "quantity", "amount", "coupon_code"}
    assert list(shop.truth.columns)[:3] == ["user_id", "persona", "churn_started_at"]


def test_default_shop_has_a_few_hundred_thousand_events_over_540_days(shop: DemoShop) -> None:
    assert len(shop.users) == 3000 and shop.users["user_id"].is_unique
    assert 300 <= len(shop.products) <= 600 and shop.products["product_id"].is_unique
    assert 200_000 <= len(shop.events) <= 600_000
    assert shop.events["event_id"].is_unique
    assert shop.events["ts"].is_monotonic_increasing
    assert shop.events["ts"].max() < AS_OF <= shop.future_events["ts"].min()
    assert shop.events["ts"].min() >= AS_OF - timedelta(days=HISTORY_DAYS)
    assert shop.events["ts"].min() < AS_OF - timedelta(days=HISTORY_DAYS - 2)
    assert set(shop.events["type"]) == {"visit", "search", "view", "cart", "purchase"}


def test_events_reference_known_users_and_products_and_follow_sign_up(shop: DemoShop) -> None:
    events = shop.events
    assert set(events["user_id"]) <= set(shop.users["user_id"])
    with_product = events["type"].isin(["view", "cart", "purchase"])
    assert events.loc[with_product, "product_id"].notna().all()
    assert events.loc[~with_product, "product_id"].isna().all()
    assert set(events.loc[with_product, "product_id"]) <= set(shop.products["product_id"])
    first = events.groupby("user_id")["ts"].min()
    created = shop.users.set_index("user_id")["created_at"]
    assert (created.loc[first.index] <= first).all()


def test_product_popularity_is_heavy_tailed(shop: DemoShop) -> None:
    views = shop.events.loc[shop.events["type"] == "view", "product_id"].value_counts()
    top_tenth = len(shop.products) // 10
    assert views.iloc[:top_tenth].sum() / views.sum() > 0.4
    purchases = _purchases(shop)["product_id"].value_counts()
    assert purchases.iloc[:top_tenth].sum() / purchases.sum() > 0.3
    # ...and yet the long tail is sold too.
    assert purchases.size > 0.7 * len(shop.products)


def test_purchases_have_amounts_of_price_times_quantity_and_orders(shop: DemoShop) -> None:
    purchases = _purchases(shop)
    price = shop.products.set_index("product_id")["price"].map(Decimal)
    expected = price.loc[purchases["product_id"]].to_numpy() * purchases["quantity"].to_numpy()
    assert (purchases["amount"].map(Decimal).to_numpy() == expected).all()
    assert purchases["order_id"].notna().all()
    lines = purchases.groupby("order_id").size()
    assert (lines > 1).mean() > 0.1
    assert purchases.groupby("order_id")["user_id"].nunique().max() == 1
    assert (purchases["quantity"] > 1).any()
    not_purchases = shop.events[shop.events["type"] != "purchase"]
    assert not_purchases["amount"].isna().all() and not_purchases["coupon_code"].isna().all()


def test_some_orders_carry_a_coupon_and_sale_codes_appear_in_sales(shop: DemoShop) -> None:
    orders = _purchases(shop).drop_duplicates("order_id")
    with_coupon = orders["coupon_code"].notna().mean()
    assert 0.05 < with_coupon < 0.4
    codes = set(orders["coupon_code"].dropna())
    assert "DOUBLE11-2025" in codes and {"SAVE10", "VIP15"} <= codes


def test_a_share_of_customers_fades_throughout_the_history(shop: DemoShop) -> None:
    truth = shop.truth.set_index("user_id")
    customers = _purchases(shop)["user_id"].unique()
    started = truth.loc[customers, "churn_started_at"]
    faded = started[started < AS_OF]
    assert 0.2 < len(faded) / len(customers) < 0.7
    # Fading starts all through the history, not only at its end.
    in_history = faded[faded >= AS_OF - timedelta(days=HISTORY_DAYS)]
    quarters = in_history.dt.tz_localize(None).dt.to_period("Q")
    assert quarters.nunique() >= 5
    assert quarters.value_counts(normalize=True).max() < 0.4


def test_fading_customers_visit_less_after_the_fading_starts(shop: DemoShop) -> None:
    truth = shop.truth.dropna(subset=["churn_started_at"])
    window = timedelta(days=60)
    middle = truth[
        (truth["churn_started_at"] > AS_OF - timedelta(days=HISTORY_DAYS) + window)
        & (truth["churn_started_at"] < AS_OF - window)
        & (truth["persona"] != "one_timer")
    ]
    visits = shop.events[shop.events["type"] == "visit"].merge(middle, on="user_id")
    before = visits[(visits["ts"] < visits["churn_started_at"])
                    & (visits["ts"] >= visits["churn_started_at"] - window)]
    after = visits[(visits["ts"] >= visits["churn_started_at"])
                   & (visits["ts"] < visits["churn_started_at"] + window)]
    assert len(before) > 200
    assert len(after) < 0.6 * len(before)


def test_churn_is_learnable_but_not_trivial_at_as_of_and_at_the_holdout_point(
    shop: DemoShop,
) -> None:
    for as_of in (AS_OF, AS_OF - timedelta(days=90)):
        assert 0.3 <= _no_repurchase_share(shop, as_of) <= 0.5, as_of


def test_truth_counts_the_orders_of_the_next_90_days(shop: DemoShop) -> None:
    future = _purchases(shop, future=True)
    future = future[future["ts"] >= AS_OF]
    counted = future.groupby("user_id")["order_id"].nunique()
    truth = shop.truth.set_index("user_id")["orders_next_90d"]
    assert (truth.loc[counted.index] == counted).all()
    assert truth.sum() == counted.sum()
    assert shop.future_events["ts"].max() < AS_OF + timedelta(days=90)


def test_november_sales_peak_is_visible(shop: DemoShop) -> None:
    purchases = _purchases(shop)
    per_day = purchases.groupby(purchases["ts"].dt.tz_convert("Asia/Shanghai").dt.date).size()
    per_day.index = pd.to_datetime(per_day.index)
    october = per_day["2025-10-01":"2025-10-20"].mean()
    assert per_day["2025-11-01":"2025-11-11"].mean() > 1.5 * october
    assert per_day["2025-05-10":"2025-12-31"].idxmax() == pd.Timestamp("2025-11-11")


def test_weekends_are_busier_than_weekdays(shop: DemoShop) -> None:
    visits = shop.events.loc[shop.events["type"] == "visit", "ts"].dt.tz_convert("Asia/Shanghai")
    per_weekday = visits.dt.day_of_week.value_counts().sort_index()
    assert per_weekday.loc[[5, 6]].mean() > 1.03 * per_weekday.loc[[0, 1, 2, 3]].mean()


def test_visits_happen_at_plausible_local_hours(shop: DemoShop) -> None:
    users = shop.users.set_index("user_id")
    visits = shop.events[shop.events["type"] == "visit"]
    shanghai = users.index[users["timezone"] == "Asia/Shanghai"]
    local = visits[visits["user_id"].isin(shanghai)]["ts"].dt.tz_convert("Asia/Shanghai")
    hours = local.dt.hour.value_counts(normalize=True)
    assert hours.loc[[20, 21]].sum() > 3 * hours.loc[[3, 4]].sum()


def test_locales_are_mostly_zh_cn_and_en_with_matching_timezones(shop: DemoShop) -> None:
    users = shop.users
    shares = users["locale"].value_counts(normalize=True, dropna=False)
    assert 0.6 < shares["zh-CN"] < 0.8 and 0.2 < shares["en"] < 0.4
    assert users["locale"].isna().any() and users["timezone"].isna().any()
    # A few regional locales the templates only know by their language.
    assert set(users["locale"].dropna()) == {"zh-CN", "en", "en-GB", "zh-TW"}
    assert (users.loc[users["locale"] == "zh-TW", "timezone"].dropna() == "Asia/Taipei").all()
    for zone in users["timezone"].dropna().unique():
        ZoneInfo(zone)
    chinese = users[users["locale"] == "zh-CN"]["timezone"].dropna()
    assert (chinese == "Asia/Shanghai").mean() > 0.9
    english = users[users["locale"] == "en"]["timezone"].dropna()
    assert not english.isin(["Asia/Shanghai"]).any() and english.nunique() >= 5


def test_contact_details_are_fictional_and_consent_is_realistic(shop: DemoShop) -> None:
    users = shop.users
    emails = users["email"].dropna()
    assert emails.str.fullmatch(r"[a-z0-9.]+@example\.(com|org|net)").all()
    assert emails.is_unique and users["email"].isna().any()
    phones = users["phone"].dropna()
    assert phones.str.fullmatch(r"\+86100\d{8}|\+447700900\d{3}|\+12025550[12]\d{2}").all()
    assert users["name"].notna().all()
    for column in ("consent_email", "consent_sms"):
        consent = users[column]
        assert consent.isna().any()
        assert 0.2 < (consent != True).mean() < 0.8  # noqa: E712 - missing counts as no
    no_phone = users["phone"].isna()
    assert users.loc[no_phone, "consent_sms"].isna().all()


def test_catalogue_has_prices_tags_stock_and_urls(shop: DemoShop) -> None:
    products = shop.products
    assert products["price"].str.fullmatch(r"\d+\.\d\d").all()
    assert products["price"].map(Decimal).min() > 0
    assert products["category"].nunique() >= 8 and products["brand"].nunique() >= 10
    assert 0.02 < (~products["in_stock"]).mean() < 0.15
    assert products["tags"].str.contains("|", regex=False).any()
    assert products["url"].str.startswith("https://shop.example.com/").all()
    assert products["name"].is_unique


def test_personas_are_all_present_and_behave_differently(shop: DemoShop) -> None:
    truth = shop.truth.set_index("user_id")
    orders = _purchases(shop).groupby("user_id")["order_id"].nunique()
    per_persona = orders.reindex(truth.index, fill_value=0).groupby(truth["persona"]).mean()
    assert set(per_persona.index) == {"loyal", "regular", "bargain_hunter", "one_timer",
                                      "window_shopper"}
    assert per_persona["loyal"] > 1.5 * per_persona["regular"] > 3 * per_persona["window_shopper"]
    purchases = _purchases(shop)
    spend = purchases["amount"].astype(float).groupby(purchases["user_id"]).sum()
    spend = spend.reindex(truth.index, fill_value=0).groupby(truth["persona"]).mean()
    assert spend["loyal"] > 2 * spend["regular"]
    baskets = purchases.assign(amount=purchases["amount"].astype(float)).groupby("order_id").agg(
        user_id=("user_id", "first"), amount=("amount", "sum")
    )
    basket = baskets["amount"].groupby(truth["persona"].loc[baskets["user_id"]].to_numpy()).mean()
    assert basket["loyal"] > basket["bargain_hunter"]
    one_timers = orders.reindex(truth.index[truth["persona"] == "one_timer"]).dropna()
    assert (one_timers == 1).mean() > 0.9


def test_write_csv_writes_the_import_files_in_the_contract(tmp_path: Path) -> None:
    shop = generate_shop(50, seed=1)
    paths = write_csv(shop, tmp_path / "data")
    assert {"users", "products", "events"} <= set(paths)
    for name, columns in (("users", USER_COLUMNS), ("products", PRODUCT_COLUMNS),
                          ("events", EVENT_COLUMNS)):
        with paths[name].open(encoding="utf-8", newline="") as handle:
            rows = list(csv.reader(handle))
        assert tuple(rows[0]) == columns
        assert len(rows) - 1 == len(getattr(shop, name))
    users = pd.read_csv(paths["users"], dtype=str, keep_default_na=False)
    assert set(users["consent_email"]) <= {"true", "false", ""}
    assert users["created_at"].str.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ").all()
    events = pd.read_csv(paths["events"], dtype=str, keep_default_na=False)
    assert events["ts"].str.endswith("Z").all()
    purchases = events[events["type"] == "purchase"]
    assert purchases["amount"].str.fullmatch(r"\d+\.\d\d").all()
    assert (events.loc[events["type"] == "view", "quantity"] == "").all()
    # Written again: byte-identical files.
    before = {name: path.read_bytes() for name, path in paths.items()}
    write_csv(generate_shop(50, seed=1), tmp_path / "data")
    assert {name: path.read_bytes() for name, path in paths.items()} == before


@pytest.mark.parametrize("n_users", [0, -5, 2_000_000])
def test_an_impossible_size_is_refused(n_users: int) -> None:
    with pytest.raises(InputError, match="users must be between"):
        generate_shop(n_users)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n_users=st.integers(1, 60), seed=st.integers(0, 2**32 - 1))
def test_any_small_shop_keeps_the_invariants(n_users: int, seed: int) -> None:
    shop = generate_shop(n_users, seed=seed, n_products=40)
    events = shop.events
    assert len(shop.users) == n_users == len(shop.truth)
    assert events["event_id"].is_unique and events["ts"].is_monotonic_increasing
    purchases = events[events["type"] == "purchase"]
    price = shop.products.set_index("product_id")["price"].map(Decimal)
    if len(purchases):
        expected = price.loc[purchases["product_id"]].to_numpy() * purchases["quantity"].to_numpy()
        assert (purchases["amount"].map(Decimal).to_numpy() == expected).all()
    first = events.groupby("user_id")["ts"].min()
    created = shop.users.set_index("user_id")["created_at"]
    assert (created.loc[first.index] <= first).all()
    assert re.fullmatch(r"U\d{6}", shop.users["user_id"].iloc[0])
    assert np.isin(shop.truth["persona"].unique(),
                   ["loyal", "regular", "bargain_hunter", "one_timer", "window_shopper"]).all()
