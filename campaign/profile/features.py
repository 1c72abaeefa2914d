"""Per-user features: the one documented list and the pure derivations behind it.

:mod:`campaign.profile.queries` aggregates in SQL and returns *raw* per-user numbers
(counts, sums, epoch seconds); :func:`derive_features` turns them into the feature
frame described by :data:`FEATURES`. Pure: pandas and numpy only, vectorised.

Missing values: a feature that is undefined for a user is ``NaN`` (never 0 dressed up
as a measurement). "Days since X" is ``NaN`` when X never happened before the as-of
time; ratios are ``NaN`` when their denominator is zero (no orders, fewer than two
orders, no message received). Counts and money are never missing (0 when nothing
happened). :func:`fill_missing` replaces ``NaN`` with each feature's documented
``fill`` value for algorithms that need finite input (k-means, scalers).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd

SECONDS_PER_DAY = 86_400
# "Never" as a number: longer than any shop history, so trees can split it off.
NEVER_DAYS = 10_000.0
# TREND_DAYS is compared with the same span just before it.
TREND_DAYS = 90
# Denominator floor for the purchase rhythm: two orders minutes apart must not make a
# customer look infinitely overdue.
MIN_RHYTHM_DAYS = 1.0


@dataclass(frozen=True)
class Feature:
    """One documented feature column: what it means, its unit, and how it can be missing."""

    meaning: str
    unit: str
    dtype: str  # "int64" (never missing) or "float64" (may be NaN, see ``missing``)
    missing: str = ""  # when the value is NaN; empty means never NaN
    fill: float = 0.0  # what fill_missing() puts in place of NaN



FEATURES: dict[str, Feature] = {
    # Recency and tenure
    "days_since_last_event": Feature(
        "time from the user's last event of any type (a visit in the broad sense) to T",
        "days",
        "float64",
    ),
    "days_since_last_purchase": Feature(
        "time from the user's last order to T",
        "days",
        "float64",
        "no purchase before T",
        NEVER_DAYS,
    ),
    "tenure_days": Feature(
        "time since the user became known: the earlier of their first event and "
        "users.created_at (when created_at is before T)",
        "days",
        "float64",
    ),
    # Orders and money. An order is the set of purchase events sharing an order_id;
    # a purchase event without order_id is an order on its own.
    "orders_total": Feature("orders before T", "orders", "int64"),
    "orders_30d": Feature("orders in [T-30d, T)", "orders", "int64"),
    "orders_90d": Feature("orders in [T-90d, T)", "orders", "int64"),
    "orders_365d": Feature("orders in [T-365d, T)", "orders", "int64"),
    "orders_prev_90d": Feature("orders in [T-180d, T-90d)", "orders", "int64"),
    "order_trend": Feature(
        "(orders_90d - orders_prev_90d) / (orders_90d + orders_prev_90d): +1 only recent, "
        "-1 only earlier, 0 steady or no orders in either span",
        "ratio in [-1, 1]",
        "float64",
    ),
    "spend_total_cents": Feature("sum of purchase amounts before T", "cents", "int64"),
    "spend_30d_cents": Feature("purchase amounts in [T-30d, T)", "cents", "int64"),
    "spend_90d_cents": Feature("purchase amounts in [T-90d, T)", "cents", "int64"),
    "spend_365d_cents": Feature("purchase amounts in [T-365d, T)", "cents", "int64"),
    "avg_order_value_cents": Feature(
        "spend_total_cents / orders_total", "cents", "float64", "no orders", 0.0
    ),
    "interpurchase_mean_days": Feature(
        "mean time between consecutive orders (order time = its first line)",
        "days",
        "float64",
        "fewer than two orders",
        -1.0,
    ),
    "interpurchase_std_days": Feature(
        "population standard deviation of the times between consecutive orders "
        "(0 with exactly two orders)",
        "days",
        "float64",
        "fewer than two orders",
        -1.0,
    ),
    "rhythm_ratio": Feature(
        "days_since_last_purchase / interpurchase_mean_days (mean floored at 1 day): "
        "above 1 means the customer is later than their own usual rhythm",
        "ratio",
        "float64",
        "fewer than two orders",
        -1.0,
    ),
    "distinct_categories": Feature(
        "distinct product categories among purchased products before T", "categories", "int64"
    ),
    "coupon_order_share": Feature(
        "share of orders with a coupon code on any of their lines",
        "ratio in [0, 1]",
        "float64",
        "no orders",
        0.0,
    ),
    # Browsing
    "events_total": Feature("events of any type before T", "events", "int64"),
    "events_90d": Feature("events of any type in [T-90d, T)", "events", "int64"),
    "events_prev_90d": Feature("events of any type in [T-180d, T-90d)", "events", "int64"),
    "event_trend": Feature(
        "(events_90d - events_prev_90d) / (events_90d + events_prev_90d), 0 when both are 0",
        "ratio in [-1, 1]",
        "float64",
    ),
    "views_7d": Feature("view events in [T-7d, T)", "events", "int64"),
    "views_30d": Feature("view events in [T-30d, T)", "events", "int64"),
    "carts_7d": Feature("cart events in [T-7d, T)", "events", "int64"),
    "carts_30d": Feature("cart events in [T-30d, T)", "events", "int64"),
    "abandoned_carts_30d": Feature(
        "distinct products put in the cart in [T-30d, T) and not purchased at or after "
        "their last cart event (before T)",
        "products",
        "int64",
    ),
    # History with our campaigns (test sends excluded)
    "messages_received": Feature(
        "our messages with status 'sent' whose send time (sent_at, else created_at) is "
        "before T",
        "messages",
        "int64",
    ),
    "messages_opened": Feature(
        "received messages whose engagement reached 'opened' or beyond (clicked, "
        "converted) with engagement_at before T",
        "messages",
        "int64",
    ),
    "messages_clicked": Feature(
        "received messages whose engagement reached 'clicked' or 'converted' with "
        "engagement_at before T",
        "messages",
        "int64",
    ),
    "message_open_rate": Feature(
        "messages_opened / messages_received", "ratio in [0, 1]", "float64",
        "no message received", 0.0,
    ),
    "days_since_last_message": Feature(
        "time from the last received message to T",
        "days",
        "float64",
        "no message received before T",
        NEVER_DAYS,
    ),
    "coupons_issued": Feature("coupons issued to the user before T", "coupons", "int64"),
    "coupons_redeemed": Feature(
        "coupons issued to the user and redeemed before T", "coupons", "int64"
    ),
}

FEATURE_NAMES: tuple[str, ...] = tuple(FEATURES)

# Raw per-user aggregates produced by campaign.profile.queries; *_at_s are Unix epoch
# seconds (UTC, fractions truncated) so both dialects yield identical integers.
RAW_COLUMNS: tuple[str, ...] = (
    "events_total",
    "first_event_at_s",
    "last_event_at_s",
    "created_at_s",
    "events_90d",
    "events_prev_90d",
    "views_7d",
    "views_30d",
    "carts_7d",
    "carts_30d",
    "orders_total",
    "orders_30d",
    "orders_90d",
    "orders_prev_90d",
    "orders_365d",
    "spend_total_cents",
    "spend_30d_cents",
    "spend_90d_cents",
    "spend_365d_cents",
    "coupon_orders",
    "last_order_at_s",
    "gap_count",
    "gap_sum_s",
    "gap_sumsq_s",
    "distinct_categories",
    "abandoned_carts_30d",
    "messages_received",
    "messages_opened",
    "messages_clicked",
    "last_message_at_s",
    "coupons_issued",
    "coupons_redeemed",
)


def epoch_seconds(moment: datetime) -> int:
    """Unix epoch seconds of ``moment`` (naive means UTC), fractions truncated."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() // 1)


def _days_before(as_of_s: int, at_s: pd.Series) -> pd.Series:
    return (as_of_s - at_s.astype("float64")) / SECONDS_PER_DAY


def _trend(recent: pd.Series, earlier: pd.Series) -> pd.Series:
    total = (recent + earlier).astype("float64")
    diff = (recent - earlier).astype("float64")
    return (diff / total.where(total > 0)).fillna(0.0)


def _ratio(numerator: pd.Series, denominator: pd.Series) -> pd.Series:
    return numerator.astype("float64") / denominator.astype("float64").where(denominator > 0)


def derive_features(raw: pd.DataFrame, as_of: datetime) -> pd.DataFrame:
    """The feature frame of :data:`FEATURES` from raw per-user aggregates.

    ``raw`` is indexed by ``user_id`` with the columns of :data:`RAW_COLUMNS` (counts
    and cents may be missing for users absent from a side query: they count as 0;
    ``*_at_s`` may be missing: the event never happened). Returns a frame with the
    same index and exactly the columns of :data:`FEATURES`, in that order, with the
    documented dtypes.
    """
    as_of_s = epoch_seconds(as_of)
    count_columns = [c for c in RAW_COLUMNS if not c.endswith("_at_s")]
    counts = raw[count_columns].fillna(0).astype("int64")
    out = pd.DataFrame(index=raw.index)

    out["days_since_last_event"] = _days_before(as_of_s, raw["last_event_at_s"])
    out["days_since_last_purchase"] = _days_before(as_of_s, raw["last_order_at_s"])
    created = raw["created_at_s"].astype("float64")
    created = created.where(created < as_of_s)
    known_since = np.fmin(raw["first_event_at_s"].astype("float64"), created)
    out["tenure_days"] = _days_before(as_of_s, known_since)

    for name in ("orders_total", "orders_30d", "orders_90d", "orders_365d", "orders_prev_90d"):
        out[name] = counts[name]
    out["order_trend"] = _trend(counts["orders_90d"], counts["orders_prev_90d"])
    for name in ("spend_total_cents", "spend_30d_cents", "spend_90d_cents", "spend_365d_cents"):
        out[name] = counts[name]
    out["avg_order_value_cents"] = _ratio(counts["spend_total_cents"], counts["orders_total"])

    gaps = counts["gap_count"].astype("float64").where(counts["gap_count"] > 0)
    mean_s = counts["gap_sum_s"] / gaps
    variance_s = (counts["gap_sumsq_s"].astype("float64") / gaps - mean_s**2).clip(lower=0.0)
    out["interpurchase_mean_days"] = mean_s / SECONDS_PER_DAY
    out["interpurchase_std_days"] = np.sqrt(variance_s) / SECONDS_PER_DAY
    out["rhythm_ratio"] = out["days_since_last_purchase"] / out["interpurchase_mean_days"].clip(
        lower=MIN_RHYTHM_DAYS
    )
    out["distinct_categories"] = counts["distinct_categories"]
    out["coupon_order_share"] = _ratio(counts["coupon_orders"], counts["orders_total"])

    for name in ("events_total", "events_90d", "events_prev_90d"):
        out[name] = counts[name]
    out["event_trend"] = _trend(counts["events_90d"], counts["events_prev_90d"])
    for name in ("views_7d", "views_30d", "carts_7d", "carts_30d", "abandoned_carts_30d"):
        out[name] = counts[name]

    for name in ("messages_received", "messages_opened", "messages_clicked"):
        out[name] = counts[name]
    out["message_open_rate"] = _ratio(counts["messages_opened"], counts["messages_received"])
    out["days_since_last_message"] = _days_before(as_of_s, raw["last_message_at_s"])
    out["coupons_issued"] = counts["coupons_issued"]
    out["coupons_redeemed"] = counts["coupons_redeemed"]

    out = out[list(FEATURE_NAMES)]
    return out.astype({name: feature.dtype for name, feature in FEATURES.items()})


def fill_missing(features: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``features`` with every ``NaN`` replaced by its feature's ``fill`` value.

    Columns not in :data:`FEATURES` are left as they are.
    """
    fills = {name: f.fill for name, f in FEATURES.items() if f.missing and name in features}
    return features.fillna(value=fills)


def features_markdown() -> str:
    """The feature table of docs/features.md, generated from :data:`FEATURES`."""
    lines = [
        "| feature | meaning | unit | missing (NaN) when | fill_missing() value |",
        "|---|---|---|---|---|",
    ]
    for name, f in FEATURES.items():
        missing = f.missing or "never missing"
        fill = f"{f.fill:g}" if f.missing else "–"
        lines.append(f"| `{name}` | {f.meaning} | {f.unit} | {missing} | {fill} |")
    return "\n".join(lines) + "\n"
