"""The purchase summary the churn model starts from, built from a transactions frame.

The product gets these columns from SQL (:mod:`campaign.churn.data`, next to the
profile features). This pure version computes exactly the same columns from any
transactions frame, which is how a public transaction log that never touched our
database (``bench/churn_quality.py``) goes through the same model code:

    summary = purchase_summary(transactions, as_of)
    risk = predict_risk(model, summary)

Columns (one row per user with a purchase before ``as_of``, indexed by ``user_id``):

==========================  =====================================================
``days_since_last_purchase`` days from the latest order to ``as_of`` (float)
``days_since_first_purchase`` days from the first order to ``as_of`` (float)
``orders_total``             orders before ``as_of`` (all history)
``orders_30d``               orders in the 30 days before ``as_of``
``orders_90d``               orders in the 90 days before ``as_of``
``orders_365d``              orders in the 365 days before ``as_of``
``spend_365d_cents``         money spent in the 365 days before ``as_of``, minor units
==========================  =====================================================

Given a horizon, both builders add ``btyd_expected_orders``: the orders a BG/NBD
model expects from the customer in the next ``horizon_days``, the model fitted on
this snapshot's own population (every user with an order before ``as_of``, not only
the customers of the look-back) and nothing after it. Each snapshot of training and
the scoring snapshot thus get parameters that describe the shop as it was at their
own as-of time (:func:`with_btyd_expectation`).
"""

from __future__ import annotations

from datetime import datetime

import numpy as np
import pandas as pd

from campaign.churn.btyd import expected_orders, fit_bgnbd

SUMMARY_COLUMNS: tuple[str, ...] = (
    "days_since_last_purchase",
    "days_since_first_purchase",
    "orders_total",
    "orders_30d",
    "orders_90d",
    "orders_365d",
    "spend_365d_cents",
)

# Added by the builders when given a horizon (see the module docstring).
BTYD_COLUMN = "btyd_expected_orders"
# Expectations are capped here, so a numerically wild fit cannot overflow the tree.
MAX_EXPECTED = 1e6

_DAY = pd.Timedelta(days=1)


def orders_from_purchases(purchases: pd.DataFrame) -> pd.DataFrame:
    """Collapse purchase lines into orders (lines sharing ``order_id`` are one order).

    Input columns: ``user_id``, ``ts``, optional ``order_id`` (null: the line is its own
    order) and ``amount_cents``. Output columns: ``user_id``, ``ts`` (the order's first
    line), ``amount_cents`` (sum of lines, 0 when unknown).
    """
    frame = purchases.copy()
    if "amount_cents" not in frame:
        frame["amount_cents"] = 0
    frame["amount_cents"] = frame["amount_cents"].fillna(0)
    if "order_id" not in frame:
        frame["order_id"] = None
    own = frame["order_id"].isna()
    frame["order_key"] = frame["order_id"].astype("object")
    frame.loc[own, "order_key"] = "line:" + pd.Series(np.arange(len(frame)), index=frame.index)[
        own
    ].astype(str)
    orders = frame.groupby(["user_id", "order_key"], sort=False).agg(
        ts=("ts", "min"), amount_cents=("amount_cents", "sum")
    )
    return orders.reset_index()[["user_id", "ts", "amount_cents"]]


def purchase_summary(
    purchases: pd.DataFrame,
    as_of: datetime,
    *,
    lookback_days: int | None = None,
    horizon_days: int | None = None,
) -> pd.DataFrame:
    """Per-user purchase summary as of ``as_of`` from purchase lines strictly before it.

    With ``lookback_days`` only customers (a purchase in the last ``lookback_days``) are
    kept; their columns still use all earlier history. With ``horizon_days`` the
    :data:`BTYD_COLUMN` is added, fitted on every buyer before ``as_of``. See the
    module docstring for the columns.
    """
    before = purchases[purchases["ts"] < as_of]
    orders = orders_from_purchases(before)
    age = (pd.Timestamp(as_of) - orders["ts"]) / _DAY
    orders = orders.assign(
        age=age,
        in30=age <= 30,
        in90=age <= 90,
        in365=age <= 365,
    )
    orders["spend365"] = orders["amount_cents"].where(orders["in365"], 0)
    grouped = orders.groupby("user_id")
    summary = pd.DataFrame(
        {
            "days_since_last_purchase": grouped["age"].min(),
            "days_since_first_purchase": grouped["age"].max(),
            "orders_total": grouped.size(),
            "orders_30d": grouped["in30"].sum(),
            "orders_90d": grouped["in90"].sum(),
            "orders_365d": grouped["in365"].sum(),
            "spend_365d_cents": grouped["spend365"].sum(),
        }
    )
    summary.index.name = "user_id"
    if horizon_days is not None:
        summary = with_btyd_expectation(summary, horizon_days)
    if lookback_days is not None:
        summary = summary[summary["days_since_last_purchase"] <= lookback_days]
    return summary.astype(
        {c: "int64" for c in SUMMARY_COLUMNS if c.startswith(("orders", "spend"))}
    ).sort_index()


def btyd_history(summary: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A summary's customers in buy-till-you-die terms (float arrays, days).

    Returns ``(x, t_x, t)``: repeat orders (``orders_total - 1``, at least 0), days
    from the first to the latest order, and days from the first order to the as-of
    time (see :mod:`campaign.churn.btyd`).
    """
    first = summary["days_since_first_purchase"].to_numpy(dtype=float)
    last = summary["days_since_last_purchase"].to_numpy(dtype=float)
    x = np.maximum(summary["orders_total"].to_numpy(dtype=float) - 1, 0)
    return x, np.maximum(first - last, 0), first


def with_btyd_expectation(summary: pd.DataFrame, horizon_days: int) -> pd.DataFrame:
    """``summary`` plus :data:`BTYD_COLUMN`, from a BG/NBD model fitted on its own rows.

    ``summary`` is one snapshot's population (every user with an order before its
    as-of time); the fit uses their histories only, so nothing after the as-of time
    moves the figure. An empty frame gets an empty column.
    """
    out = summary.copy()
    if out.empty:
        out[BTYD_COLUMN] = pd.Series(dtype=float)
        return out
    x, t_x, t = btyd_history(out)
    # With the small L2 penalty: unpenalised fits ranked slightly better on some
    # snapshots but diverged on others (expectations of 1e38 orders, or garbage).
    params = fit_bgnbd(x, t_x, t)
    out[BTYD_COLUMN] = np.minimum(expected_orders(params, x, t_x, t, horizon_days), MAX_EXPECTED)
    return out


# Profile columns the churn model can use on top of the summary (see model.OPTIONAL_INPUTS).
PROFILE_EXTRAS: tuple[str, ...] = (
    "days_since_last_event",
    "views_30d",
    "carts_30d",
    "abandoned_carts_30d",
)


def summary_from_profile(
    profile: pd.DataFrame, *, lookback_days: int, horizon_days: int | None = None
) -> pd.DataFrame:
    """The purchase summary of the customers in a :func:`campaign.profile.profile_frame`.

    Customers are users with an order in the last ``lookback_days`` (the profile must
    cover all history, i.e. be built without its own look-back). The profile has no
    "first order" column; it follows exactly from the mean gap between orders:
    ``first = last + interpurchase_mean_days * (orders_total - 1)``. Behaviour columns
    of :data:`PROFILE_EXTRAS` are passed through. With ``horizon_days`` the
    :data:`BTYD_COLUMN` is added, fitted on every buyer in the profile.
    """
    buyers = profile[profile["orders_total"] > 0]
    out = _buyer_summary(buyers)
    if horizon_days is not None:
        out = with_btyd_expectation(out, horizon_days)
    return out[out["days_since_last_purchase"] <= lookback_days]


def buyer_summary(profile: pd.DataFrame) -> pd.DataFrame:
    """Summary columns (and behaviour extras) of every profile row with an order: the
    rows :func:`summary_from_profile` starts from, before the BG/NBD column and the
    look-back (the Spark engine runs this per partition)."""
    return _buyer_summary(profile[profile["orders_total"] > 0])


def _buyer_summary(customers: pd.DataFrame) -> pd.DataFrame:
    """Summary columns (and behaviour extras) of profile rows with at least one order."""
    gaps = customers["interpurchase_mean_days"].fillna(0.0).clip(lower=0.0)
    out = pd.DataFrame(
        {
            "days_since_last_purchase": customers["days_since_last_purchase"].astype(float),
            "days_since_first_purchase": customers["days_since_last_purchase"].astype(float)
            + gaps * (customers["orders_total"] - 1),
        },
        index=customers.index,
    )
    for column in SUMMARY_COLUMNS[2:]:
        out[column] = customers[column].astype("int64")
    for column in PROFILE_EXTRAS:
        if column in customers:
            out[column] = customers[column]
    out.index.name = "user_id"
    return out
