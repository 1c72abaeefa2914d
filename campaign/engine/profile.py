"""Profile features on Spark: the raw aggregates of :mod:`campaign.profile.queries` as
DataFrame groupBys and joins, then :func:`campaign.profile.features.derive_features`
on each partition (``mapInPandas``), so the derivation has one copy.

Each query mirrors one SQL statement of :mod:`campaign.profile.queries` (same
windows, same half-open ``[cut-off, T)`` comparisons, the same order grouping: a
purchase without ``order_id`` is its own order). Times are epoch microseconds, cut
to whole seconds where the SQL returns ``*_at_s``. Nothing is collected to the
driver: the result is a Spark DataFrame of ``user_id`` and the feature columns.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import pandas as pd

from campaign.db.models import Engagement, EventType, MessageStatus
from campaign.engine.sources import Tables
from campaign.profile.features import FEATURES, RAW_COLUMNS, TREND_DAYS, derive_features
from campaign.profile.queries import as_utc

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

_MICROS = 1_000_000


def micros(moment: datetime) -> int:
    """Epoch microseconds of an aware (or naive-UTC) datetime, exactly."""
    moment = as_utc(moment)
    delta = moment - datetime(1970, 1, 1, tzinfo=moment.tzinfo)
    return (delta.days * 86_400 + delta.seconds) * _MICROS + delta.microseconds


def seconds(column: Column) -> Column:
    """Whole epoch seconds of an epoch-microseconds column (floor, like the SQL)."""
    from pyspark.sql import functions as F

    # Integer arithmetic: a double quotient could round ….999999 s up to the next second.
    return ((column - F.pmod(column, F.lit(_MICROS))) / F.lit(_MICROS)).cast("long")


def _count(condition: Column) -> Column:
    from pyspark.sql import functions as F

    return F.sum(F.when(condition, 1).otherwise(0)).cast("long")


def _sum_if(condition: Column, value: Column) -> Column:
    from pyspark.sql import functions as F

    return F.sum(F.when(condition, value).otherwise(0)).cast("long")


class _Cutoffs:
    def __init__(self, as_of: datetime, lookback_days: int | None) -> None:
        self.as_of = micros(as_of)
        self.start = (
            None if lookback_days is None else micros(as_of - timedelta(days=lookback_days))
        )

    def before(self, days: int) -> int:
        return self.as_of - days * 86_400 * _MICROS


def _events(tables: Tables, cut: _Cutoffs) -> DataFrame:
    from pyspark.sql import functions as F

    ts = F.col("ts_us")
    window = ts < cut.as_of
    if cut.start is not None:
        window = window & (ts >= cut.start)
    per_user = tables.events.where(window).groupBy("user_id").agg(
        F.count(F.lit(1)).alias("events_total"),
        F.min(ts).alias("first_ts"),
        F.max(ts).alias("last_ts"),
        _count(ts >= cut.before(TREND_DAYS)).alias("events_90d"),
        _count(ts >= cut.before(2 * TREND_DAYS)).alias("events_180d"),
    )
    users = tables.users.select(F.col("id").alias("user_id"), "created_at_us")
    created = F.col("created_at_us")
    return per_user.join(users, "user_id").select(
        "user_id", "events_total",
        seconds(F.col("first_ts")).alias("first_event_at_s"),
        seconds(F.col("last_ts")).alias("last_event_at_s"),
        F.when(created < cut.as_of, seconds(created)).alias("created_at_s"),
        "events_90d",
        (F.col("events_180d") - F.col("events_90d")).alias("events_prev_90d"),
    )


def _orders(tables: Tables, cut: _Cutoffs) -> DataFrame:
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    ts = F.col("ts_us")
    window = (F.col("type") == str(EventType.PURCHASE)) & (ts < cut.as_of)
    if cut.start is not None:
        window = window & (ts >= cut.start)
    purchases = tables.events.where(window)
    coupon = F.col("coupon_code").isNotNull() & (F.col("coupon_code") != "")
    own_order = F.when(F.col("order_id").isNull(), F.col("id"))
    orders = purchases.groupBy("user_id", "order_id", own_order.alias("own")).agg(
        F.min(ts).alias("ts_us"),
        F.sum(F.coalesce(F.col("amount_cents"), F.lit(0))).cast("long").alias("value"),
        F.max(F.when(coupon, 1).otherwise(0)).alias("coupon"),
    ).withColumn("at_s", seconds(F.col("ts_us")))
    by_user = Window.partitionBy("user_id").orderBy("at_s")
    gaps = orders.withColumn("gap", F.col("at_s") - F.lag("at_s").over(by_user))
    value, gap = F.col("value"), F.col("gap")
    per_user = gaps.groupBy("user_id").agg(
        F.count(F.lit(1)).alias("orders_total"),
        _count(ts >= cut.before(30)).alias("orders_30d"),
        _count(ts >= cut.before(TREND_DAYS)).alias("orders_90d"),
        _count((ts >= cut.before(2 * TREND_DAYS)) & (ts < cut.before(TREND_DAYS))).alias(
            "orders_prev_90d"
        ),
        _count(ts >= cut.before(365)).alias("orders_365d"),
        F.sum(value).cast("long").alias("spend_total_cents"),
        _sum_if(ts >= cut.before(30), value).alias("spend_30d_cents"),
        _sum_if(ts >= cut.before(TREND_DAYS), value).alias("spend_90d_cents"),
        _sum_if(ts >= cut.before(365), value).alias("spend_365d_cents"),
        F.sum("coupon").cast("long").alias("coupon_orders"),
        F.max("at_s").alias("last_order_at_s"),
        F.count(gap).alias("gap_count"),
        F.sum(gap).cast("long").alias("gap_sum_s"),
        F.sum(gap * gap).cast("long").alias("gap_sumsq_s"),
    )
    products = tables.products.select(F.col("id").alias("product_id"), "category")
    categories = purchases.join(products, "product_id").groupBy("user_id").agg(
        F.countDistinct("category").alias("distinct_categories")
    )
    return per_user.join(categories, "user_id", "left").withColumn(
        "distinct_categories", F.coalesce(F.col("distinct_categories"), F.lit(0))
    )


def _recent(tables: Tables, cut: _Cutoffs) -> DataFrame:
    from pyspark.sql import functions as F

    ts, kind = F.col("ts_us"), F.col("type")
    start = cut.before(30) if cut.start is None or cut.start <= cut.before(30) else cut.start
    view, cart = kind == str(EventType.VIEW), kind == str(EventType.CART)
    per_product = tables.events.where((ts >= start) & (ts < cut.as_of)).groupBy(
        "user_id", "product_id"
    ).agg(
        _count(view & (ts >= cut.before(7))).alias("views_7d"),
        _count(view).alias("views_30d"),
        _count(cart & (ts >= cut.before(7))).alias("carts_7d"),
        _count(cart).alias("carts_30d"),
        F.max(F.when(cart, ts)).alias("last_cart"),
        F.max(F.when(kind == str(EventType.PURCHASE), ts)).alias("last_purchase"),
    )
    last_cart, last_purchase = F.col("last_cart"), F.col("last_purchase")
    abandoned = (
        F.col("product_id").isNotNull() & last_cart.isNotNull()
        & (last_purchase.isNull() | (last_purchase < last_cart))
    )
    return per_product.groupBy("user_id").agg(
        *(F.sum(c).cast("long").alias(c) for c in ("views_7d", "views_30d", "carts_7d",
                                                  "carts_30d")),
        _count(abandoned).alias("abandoned_carts_30d"),
    )


def _messages(tables: Tables, cut: _Cutoffs) -> DataFrame:
    from pyspark.sql import functions as F

    sent_at = F.coalesce(F.col("sent_at_us"), F.col("created_at_us"))
    engaged_before = F.col("engagement_at_us") < cut.as_of
    opened = [str(e) for e in (Engagement.OPENED, Engagement.CLICKED, Engagement.CONVERTED)]
    clicked = [str(e) for e in (Engagement.CLICKED, Engagement.CONVERTED)]
    received = tables.messages.where(
        (F.col("status") == str(MessageStatus.SENT)) & (sent_at < cut.as_of)
        & (F.col("is_test") == 0)
    )
    return received.groupBy("user_id").agg(
        F.count(F.lit(1)).alias("messages_received"),
        _count(F.col("engagement").isin(opened) & engaged_before).alias("messages_opened"),
        _count(F.col("engagement").isin(clicked) & engaged_before).alias("messages_clicked"),
        seconds(F.max(sent_at)).alias("last_message_at_s"),
    )


def _coupons(tables: Tables, cut: _Cutoffs) -> DataFrame:
    from pyspark.sql import functions as F

    return tables.coupons.where(F.col("issued_at_us") < cut.as_of).groupBy("user_id").agg(
        F.count(F.lit(1)).alias("coupons_issued"),
        _count(F.col("redeemed_at_us") < cut.as_of).alias("coupons_redeemed"),
    )


def raw_aggregates(
    tables: Tables, as_of: datetime, *, lookback_days: int | None = None
) -> DataFrame:
    """The columns of :data:`RAW_COLUMNS` per user, as
    :func:`campaign.profile.queries.load_profile_aggregates` computes them in SQL."""
    from pyspark.sql import functions as F

    cut = _Cutoffs(as_of, lookback_days)
    frame = _events(tables, cut)
    for side in (_orders(tables, cut), _recent(tables, cut), _messages(tables, cut),
                 _coupons(tables, cut)):
        frame = frame.join(side, "user_id", "left")
    return frame.select(F.col("user_id").cast("long"), *(F.col(c).cast("long")
                                                         for c in RAW_COLUMNS))


def feature_schema() -> str:
    """The Spark schema (DDL) of the feature frame: ``user_id`` then :data:`FEATURES`."""
    types = {"int64": "bigint", "float64": "double"}
    columns = ", ".join(f"{name} {types[f.dtype]}" for name, f in FEATURES.items())
    return f"user_id bigint, {columns}"


def profile_features(
    tables: Tables, as_of: datetime, *, lookback_days: int | None = None
) -> DataFrame:
    """Features of every user with an event before ``as_of``, on Spark: the frame
    :func:`campaign.profile.profile_frame` returns, as a DataFrame with ``user_id``."""
    as_of = as_utc(as_of)

    def derive(chunks: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for chunk in chunks:
            features = derive_features(chunk.set_index("user_id"), as_of)
            yield features.reset_index()

    raw = raw_aggregates(tables, as_of, lookback_days=lookback_days)
    return raw.mapInPandas(derive, feature_schema())  # type: ignore[arg-type]


def to_frame(features: DataFrame) -> pd.DataFrame:
    """A (small) feature DataFrame as the pandas frame of the SQL path: indexed by
    ``user_id``, sorted, the documented dtypes. For tests and samples only."""
    collected: pd.DataFrame = features.toPandas()  # type: ignore[assignment]
    frame = collected.set_index("user_id").sort_index()
    frame.index = frame.index.astype("int64")
    return frame.astype({name: f.dtype for name, f in FEATURES.items() if name in frame})
