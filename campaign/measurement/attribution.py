"""Attribution: which purchases a message (or a held-out user's non-message) earned.

Every planned ``messages`` row of a campaign run is one experimental unit:

* its **start** is the send time for a sent message, else the time it was planned
  (``created_at``). Held-out users get their ``held_out`` row's ``created_at``, the
  time they *would have been sent*, so both groups are measured over the same window.
* a purchase by the same user in ``(start, start + window_days]`` is a **conversion**
  of that message; its revenue is the sum of those purchase lines' amounts (what the
  customer paid, after any discount).
* the **horizon** outcome (``model.horizon_days``) says whether the user bought at all
  in ``(start, start + horizon]``: the churn measure of the report.
* the **group** is ``holdout`` for ``held_out`` rows and ``treatment`` for every row the
  planner assigned to treatment (it has a variant, or lost its coupon to the budget),
  whatever happened next (queued, sent, skipped or failed at send time, dead):
  intent-to-treat. Rows skipped *before* the random split (no consent, no address,
  cooldown, caps...) are ``ineligible``: the control group never contains their like,
  so counting them on one side only would bias the comparison.

A purchase may count for several messages (e.g. two campaigns' runs in the same
fortnight): each campaign's experiment is measured on its own, against its own
control group, so no last-touch rule is needed for the uplift to be unbiased.

:func:`message_outcomes` is pure (frames in, frame out); :func:`load_outcomes` reads
the frames; :func:`attribute` is the write step: redeem coupons from purchase events,
then move the engagement of converted *sent* messages to ``converted`` (forward only).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.engine import Connection, Engine

from campaign.config import AttributionConfig
from campaign.coupons.policy import normalize_code
from campaign.coupons.store import RedemptionReport, redeem_from_events
from campaign.db.base import table_of
from campaign.db.models import (
    Coupon,
    Engagement,
    Event,
    EventType,
    Message,
    MessageStatus,
    SkipReason,
)

TREATMENT = "treatment"
HOLDOUT = "holdout"
INELIGIBLE = "ineligible"
# The run's learning share: users outside the audience randomised half and half for the
# uplift model. Another population with another probability of treatment, so never
# pooled with the audience's treatment and holdout in the campaign's report.
LEARNING_TREATMENT = "learning_treatment"
LEARNING_HOLDOUT = "learning_holdout"

# Engagements from which "converted" is a step forward (terminal ones are never left).
BEFORE_CONVERTED: tuple[str, ...] = (
    Engagement.DELIVERED.value,
    Engagement.OPENED.value,
    Engagement.CLICKED.value,
)

MESSAGE_COLUMNS = (
    "message_id", "run_id", "campaign", "user_id", "variant", "status", "skip_reason",
    "channel", "engagement", "coupon_code", "created_at", "sent_at", "p_treatment", "learning",
)
PURCHASE_COLUMNS = ("user_id", "ts", "amount_cents", "coupon_code")
COUPON_COLUMNS = ("code", "percent_off", "redeemed_at")


def _utc(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values, utc=True)


def message_outcomes(
    messages: pd.DataFrame,
    purchases: pd.DataFrame,
    coupons: pd.DataFrame,
    *,
    window_days: int,
    horizon_days: int,
    now: datetime,
) -> pd.DataFrame:
    """Pure: each message's window, conversion, revenue, coupon and horizon outcome.

    Inputs: ``messages`` with :data:`MESSAGE_COLUMNS` (test sends already excluded);
    ``purchases`` with :data:`PURCHASE_COLUMNS` (``amount_cents`` paid, may be null);
    ``coupons`` with :data:`COUPON_COLUMNS` (codes in stored form).

    Output: the message columns plus ``group`` (treatment/holdout/ineligible, and
    learning_treatment/learning_holdout for the learning share's rows), ``sent``,
    ``start``, ``window_end``, ``window_closed`` (``window_end <= now``),
    ``converted`` (bool), ``conversion_at`` (first purchase in the window, NaT),
    ``revenue_cents`` (int, paid in the window), ``redeemed`` (bool: the message's
    coupon was redeemed), ``percent_off`` (0 without coupon), ``coupon_cost_cents``
    (the discount the coupon gave: paid × p / (100 − p) over the lines carrying the
    code), ``horizon_end``, ``horizon_closed`` and ``bought_in_horizon`` (bool).
    All times UTC.
    """
    out = messages.reindex(columns=list(MESSAGE_COLUMNS)).copy()
    out["created_at"] = _utc(out["created_at"])
    out["sent_at"] = _utc(out["sent_at"])
    held = (out["status"] == MessageStatus.HELD_OUT.value).to_numpy()
    # The planner draws the control group among eligible users only, and only they get
    # a variant (a coupon-budget cut drops it): rows without either were never
    # randomised (no consent, no address, cooldown...) and belong to neither group.
    assigned = (out["variant"].notna() | (out["skip_reason"] == SkipReason.BUDGET.value))
    out["group"] = np.where(held, HOLDOUT, np.where(assigned.to_numpy(), TREATMENT, INELIGIBLE))
    learning = out["learning"].eq(True).to_numpy()
    out["learning"] = learning
    out.loc[learning & held, "group"] = LEARNING_HOLDOUT
    out.loc[learning & ~held & assigned.to_numpy(), "group"] = LEARNING_TREATMENT
    out["sent"] = (out["status"] == MessageStatus.SENT.value).to_numpy()
    start = out["sent_at"].where(out["sent"] & out["sent_at"].notna(), out["created_at"])
    out["start"] = start
    out["window_end"] = start + pd.Timedelta(days=window_days)
    out["horizon_end"] = start + pd.Timedelta(days=horizon_days)
    moment = pd.Timestamp(now).tz_convert("UTC") if pd.Timestamp(now).tzinfo else (
        pd.Timestamp(now).tz_localize("UTC")
    )
    out["window_closed"] = (out["window_end"] <= moment).to_numpy()
    out["horizon_closed"] = (out["horizon_end"] <= moment).to_numpy()

    buys = purchases.reindex(columns=list(PURCHASE_COLUMNS)).copy()
    buys["ts"] = _utc(buys["ts"])
    buys["amount_cents"] = pd.to_numeric(buys["amount_cents"]).fillna(0).astype("int64")
    keyed = out[["message_id", "user_id", "start", "window_end", "horizon_end"]].merge(
        buys, on="user_id", how="inner"
    )
    after = keyed["ts"] > keyed["start"]
    in_window = keyed[after & (keyed["ts"] <= keyed["window_end"])]
    in_horizon = keyed[after & (keyed["ts"] <= keyed["horizon_end"])]
    by_message = in_window.groupby("message_id").agg(
        conversion_at=("ts", "min"), revenue_cents=("amount_cents", "sum")
    )
    out = out.merge(by_message, left_on="message_id", right_index=True, how="left")
    out["converted"] = out["conversion_at"].notna().to_numpy()
    out["revenue_cents"] = out["revenue_cents"].fillna(0).astype("int64")
    out["bought_in_horizon"] = out["message_id"].isin(in_horizon["message_id"]).to_numpy()

    codes = coupons.reindex(columns=list(COUPON_COLUMNS)).copy()
    codes["redeemed"] = codes["redeemed_at"].notna()
    codes = codes.set_index("code")
    own_code = out["coupon_code"].map(
        lambda c: normalize_code(c) if isinstance(c, str) else None
    )
    out["redeemed"] = (own_code.map(codes["redeemed"]) == True).to_numpy()  # noqa: E712 (NaN)
    percent = own_code.map(codes["percent_off"]).fillna(0).astype("int64")
    out["percent_off"] = percent.to_numpy()
    coded = in_horizon[in_horizon["coupon_code"].notna()].copy()
    coded["code"] = coded["coupon_code"].map(normalize_code)
    paid = coded.groupby(["message_id", "code"])["amount_cents"].sum()
    own = pd.MultiIndex.from_arrays([out["message_id"], own_code.fillna("")])
    paid_with_own = pd.Series(paid.reindex(own).fillna(0).to_numpy(), index=out.index)
    p = percent.clip(upper=99).astype(float)
    cost = (paid_with_own * p / (100.0 - p)).round()
    out["coupon_cost_cents"] = cost.where(out["redeemed"], 0).astype("int64").to_numpy()
    return out.reset_index(drop=True)


# -- I/O -------------------------------------------------------------------------------


def load_messages(connection: Connection, campaign: str | None = None) -> pd.DataFrame:
    """Planned messages (test sends excluded) with :data:`MESSAGE_COLUMNS`. Read-only."""
    statement = select(
        Message.id.label("message_id"), Message.run_id, Message.campaign, Message.user_id,
        Message.variant, Message.status, Message.skip_reason, Message.channel,
        Message.engagement,
        Message.coupon_code, Message.created_at, Message.sent_at, Message.p_treatment,
        Message.learning,
    ).where(or_(Message.is_test.is_(None), Message.is_test.is_(False)))
    if campaign is not None:
        statement = statement.where(Message.campaign == campaign)
    rows = connection.execute(statement.order_by(Message.id)).all()
    return pd.DataFrame.from_records(rows, columns=list(MESSAGE_COLUMNS))


def load_purchases(
    connection: Connection, campaign: str | None = None, since: datetime | None = None
) -> pd.DataFrame:
    """Purchase lines of users with a planned message (of ``campaign``), after ``since``.

    Columns :data:`PURCHASE_COLUMNS`. Read-only.
    """
    users = select(Message.user_id).distinct()
    if campaign is not None:
        users = users.where(Message.campaign == campaign)
    statement = select(Event.user_id, Event.ts, Event.amount_cents, Event.coupon_code).where(
        Event.type == EventType.PURCHASE.value, Event.user_id.in_(users)
    )
    if since is not None:
        statement = statement.where(Event.ts > since)
    rows = connection.execute(statement).all()
    return pd.DataFrame.from_records(rows, columns=list(PURCHASE_COLUMNS))


def load_coupons(connection: Connection, campaign: str | None = None) -> pd.DataFrame:
    """Issued coupons with :data:`COUPON_COLUMNS`. Read-only."""
    statement = select(Coupon.code, Coupon.percent_off, Coupon.redeemed_at)
    if campaign is not None:
        statement = statement.where(Coupon.campaign == campaign)
    rows = connection.execute(statement).all()
    return pd.DataFrame.from_records(rows, columns=list(COUPON_COLUMNS))


def load_outcomes(
    connection: Connection,
    config: AttributionConfig,
    *,
    horizon_days: int,
    now: datetime,
    campaign: str | None = None,
) -> pd.DataFrame:
    """:func:`message_outcomes` of every planned message (of ``campaign``). Read-only."""
    messages = load_messages(connection, campaign)
    since = None
    if not messages.empty:
        # Sent times are never before planning, so no window starts earlier.
        since = pd.to_datetime(messages["created_at"], utc=True).min().to_pydatetime()
    purchases = load_purchases(connection, campaign, since)
    coupons = load_coupons(connection, campaign)
    return message_outcomes(
        messages, purchases, coupons,
        window_days=config.window_days, horizon_days=horizon_days, now=now,
    )


@dataclass(frozen=True)
class AttributionReport:
    """What :func:`attribute` did."""

    messages: int
    conversions: int
    newly_converted: int
    redemptions: RedemptionReport
    outcomes: pd.DataFrame


def attribute(
    engine: Engine,
    config: AttributionConfig,
    *,
    horizon_days: int,
    now: datetime,
    progress: Callable[[int], None] | None = None,
) -> AttributionReport:
    """Redeem coupons from purchase events, then mark converted sent messages.

    One transaction. A sent message whose user bought within its window moves to
    engagement ``converted`` (with ``engagement_at`` = the first such purchase) unless
    it is already converted or terminal (bounced, complained, unsubscribed): forward
    only, so running it again changes nothing. Held-out and skipped rows are never
    touched (nobody messaged them); they still count in the report.
    """
    with engine.begin() as connection:
        redemptions = redeem_from_events(connection)
        outcomes = load_outcomes(connection, config, horizon_days=horizon_days, now=now)
        movable = outcomes["engagement"].isna() | outcomes["engagement"].isin(BEFORE_CONVERTED)
        todo = outcomes[outcomes["sent"] & outcomes["converted"] & movable]
        newly = 0
        if len(todo):
            # One executemany for every conversion, not one statement per message; the
            # engagement guard repeats the forward-only rule inside the database.
            table = table_of(Message)
            result = connection.execute(
                update(table)
                .where(
                    table.c.id == bindparam("b_id"),
                    # Plain comparisons: an IN list expands, which executemany refuses.
                    or_(
                        table.c.engagement.is_(None),
                        *(table.c.engagement == value for value in BEFORE_CONVERTED),
                    ),
                )
                .values(
                    engagement=Engagement.CONVERTED.value,
                    engagement_at=bindparam("b_at"),
                    updated_at=now,
                ),
                [
                    {"b_id": int(row.message_id), "b_at": row.conversion_at.to_pydatetime()}
                    for row in todo.itertuples(index=False)
                ],
            )
            newly = result.rowcount
            if progress:
                progress(len(todo))
    return AttributionReport(
        messages=len(outcomes),
        conversions=int(outcomes["converted"].sum()),
        newly_converted=newly,
        redemptions=redemptions,
        outcomes=outcomes,
    )

