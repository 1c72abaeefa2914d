"""The demo's closed loop: plan, send, simulated customers answer, measure, learn.

After the demo has trained a model, planned every campaign and "sent" the messages to
its file sink, :func:`simulate_responses` plays the customers (deterministic with a
seed):

* **engagement**: each sent message is delivered (email 97%, SMS 98%; the rest hard
  bounce), opened (email 35% of delivered) and clicked (30% of opens; SMS 8%); these
  go as signed Standard Webhooks events to the real ``campaign serve`` app, started
  on 127.0.0.1 on an ephemeral port in a thread;
* **natural purchases**: the shop generator already simulated the 90 days after the
  as-of date for *everybody* (``DemoShop.future_events``, never exported). They are
  what every user, held out or not, would have done without us. A coupon holder who
  buys anyway uses the code half of the time (the coupon then costs money and earns
  nothing: the report's coupon cost shows it);
* **the planted effect**: a *sent* message makes one extra purchase happen with
  probability ``base_lift + per_percent_off × percent_off`` (:class:`PlantedEffect`:
  2% without a coupon, 12% with 20% off), within the coupon's validity (mean delay 3
  days). Skipped or failed messages and the holdout get nothing extra.

Purchases enter as shop events through the CSV importer (the events path), never as
webhooks. :func:`planted_uplift` is the effect the report should recover: the
expected intent-to-treat conversion uplift given the natural purchases.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.engine import Engine

from campaign.common.money import format_amount, parse_amount
from campaign.db.models import (
    Coupon,
    Message,
    MessageStatus,
    Product,
    User,
)
from campaign.demo.shop import EVENT_COLUMNS
from campaign.demo.shop.responsiveness import (
    PERSUADABLE,
    RESPONSE_WINDOW_DAYS,
    SLEEPING_DOG,
    PlantedResponse,
    purchase_state,
    responsiveness_types,
)


@dataclass(frozen=True)
class PlantedEffect:
    """The causal effect the simulation plants: extra-purchase probability of a sent
    message, ``base_lift + per_percent_off * percent_off`` (percent_off 0 = no coupon)."""

    base_lift: float = 0.02
    per_percent_off: float = 0.005

    def lift(self, percent_off: np.ndarray) -> np.ndarray:
        """Extra-purchase probability per message (array of percents, 0 without coupon)."""
        return self.base_lift + self.per_percent_off * np.asarray(percent_off, dtype=float)


@dataclass(frozen=True)
class Engagement:
    """Response rates of the simulated customers, per medium."""

    delivered: float = 0.97
    opened: float = 0.35
    clicked_after_open: float = 0.30
    sms_delivered: float = 0.98
    sms_clicked: float = 0.08
    coupon_use_when_buying_anyway: float = 0.5
    mean_delay_days: float = 3.0


@dataclass
class Simulation:
    """What the customers did: webhook event bodies, shop events, and the truth.

    ``webhooks``: (event id, JSON body) pairs; ``events``: rows in the events CSV
    columns (natural future events with coupon codes applied, plus extra purchases);
    ``extra``: message_id, extra_purchase (bool), lift (probability planted),
    natural_converted (bool: a natural purchase fell in the attribution window).
    """

    webhooks: list[tuple[str, bytes]]
    events: pd.DataFrame
    extra: pd.DataFrame


def _minor(amount: object, currency: str) -> int:
    return parse_amount(str(amount), currency)


def simulate_responses(
    messages: pd.DataFrame,
    future_events: pd.DataFrame,
    prices: pd.Series,
    *,
    seed: int,
    window_days: int = 14,
    effect: PlantedEffect = PlantedEffect(),
    rates: Engagement = Engagement(),
    currency: str = "CNY",
) -> Simulation:
    """Pure: the customers' answers to the sent messages (see the module docstring).

    ``messages``: one row per planned message with message_id, external_id (the
    user's shop id), status, medium, coupon_code, percent_off (0 without coupon),
    coupon_expires_at, sent_at, product (a shop product id to buy, or None).
    ``future_events``: events CSV rows after the as-of date. ``prices``: shop product
    id → price in minor units of ``currency`` (the amounts of ``future_events`` are
    decimals of it too). Deterministic for a given ``seed``.
    """
    rng = np.random.default_rng(seed)
    sent = messages[messages["status"] == MessageStatus.SENT.value].sort_values("message_id")
    sent = sent.reset_index(drop=True)
    n = len(sent)
    is_sms = (sent["medium"] == "sms").to_numpy()
    u = rng.random((n, 5))
    delivered = np.where(is_sms, u[:, 0] < rates.sms_delivered, u[:, 0] < rates.delivered)
    opened = delivered & ~is_sms & (u[:, 1] < rates.opened)
    clicked = np.where(is_sms, delivered & (u[:, 2] < rates.sms_clicked),
                       opened & (u[:, 2] < rates.clicked_after_open))
    percent = sent["percent_off"].fillna(0).to_numpy(dtype=float)
    lift = effect.lift(percent)
    extra = delivered & (u[:, 3] < lift)
    delays = rng.exponential(rates.mean_delay_days, n)
    sent_at = pd.to_datetime(sent["sent_at"], utc=True)

    webhooks: list[tuple[str, bytes]] = []
    for i, row in enumerate(sent.itertuples(index=False)):
        base = sent_at.iloc[i]
        steps = [("bounced", 0.02)] if not delivered[i] else [("delivered", 0.01)]
        if opened[i]:
            steps.append(("opened", min(delays[i], 2.0) * 0.5 + 0.05))
        if clicked[i]:
            steps.append(("clicked", min(delays[i], 2.0) * 0.5 + 0.1))
        for kind, days in steps:
            event_id = f"demo-{row.message_id}-{kind}"
            body = {"type": kind, "message_id": int(row.message_id),
                    "timestamp": (base + pd.Timedelta(days=days)).isoformat()}
            if kind == "bounced":
                body["bounce"] = "hard"
            webhooks.append((event_id, json.dumps(body).encode()))

    rows: list[dict[str, object]] = []
    for i in map(int, np.flatnonzero(extra)):
        row = sent.iloc[i]
        product = row["product"]
        price = int(prices.get(product, 9900)) if product is not None else 9900
        pct = int(percent[i])
        paid = round(price * (100 - pct) / 100)
        at = sent_at.iloc[i] + pd.Timedelta(days=min(float(delays[i]) + 0.1, 13.5))
        rows.append({
            "event_id": f"demo-extra-{row['message_id']}", "user_id": row["external_id"],
            "type": "purchase", "ts": at.isoformat(), "product_id": product,
            "order_id": f"demo-extra-{row['message_id']}", "quantity": 1,
            "amount": format_amount(paid, currency),
            "coupon_code": row["coupon_code"] if pct else None,
        })
    natural = future_events.copy()
    natural["coupon_code"] = natural["coupon_code"].astype(object)
    holders = sent[sent["coupon_code"].notna()]
    buys = natural[natural["type"] == "purchase"]
    ts = pd.to_datetime(buys["ts"], utc=True)
    for row in holders.itertuples(index=False):
        if rng.random() >= rates.coupon_use_when_buying_anyway:
            continue
        mine = buys[(buys["user_id"] == row.external_id)
                    & (ts > pd.Timestamp(row.sent_at))
                    & (ts <= pd.Timestamp(row.coupon_expires_at))]
        if mine.empty:
            continue
        order = mine["order_id"].iloc[0]
        lines = mine.index[mine["order_id"] == order] if pd.notna(order) else mine.index[:1]
        natural.loc[lines, "coupon_code"] = row.coupon_code
        natural.loc[lines, "amount"] = [
            format_amount(round(_minor(a, currency) * (100 - row.percent_off) / 100), currency)
            for a in natural.loc[lines, "amount"]
        ]
    events = pd.concat([natural, pd.DataFrame(rows, columns=list(EVENT_COLUMNS))],
                       ignore_index=True)
    first_buy = pd.DataFrame({"external_id": buys["user_id"], "ts": ts})
    window = sent[["message_id", "external_id"]].assign(start=sent_at)
    window = window.merge(first_buy, on="external_id", how="left")
    window["start"] = pd.to_datetime(window["start"], utc=True)
    window["ts"] = pd.to_datetime(window["ts"], utc=True)
    hit = (window["ts"] > window["start"]) & (
        window["ts"] <= window["start"] + pd.Timedelta(days=window_days)
    )
    natural_converted = sent["message_id"].isin(window.loc[hit, "message_id"]).to_numpy()
    truth = pd.DataFrame({"message_id": sent["message_id"], "extra_purchase": extra,
                          "lift": np.where(delivered, lift, 0.0),
                          "natural_converted": natural_converted})
    return Simulation(webhooks, events[list(EVENT_COLUMNS)], truth)


def planted_uplift(outcomes: pd.DataFrame, truth: pd.DataFrame) -> pd.Series:
    """Expected ITT conversion uplift per campaign that the simulation planted.

    For each treatment row: its planted lift (0 when not sent or bounced) times the
    chance it mattered (1 unless the user bought anyway within the window, from the
    natural purchases alone). Mean over the treatment group's closed rows, as a
    fraction (0.05 = 5 points).
    """
    treated = outcomes[(outcomes["group"] == "treatment") & outcomes["window_closed"]]
    merged = treated[["campaign", "message_id"]].merge(truth, on="message_id", how="left")
    lift = merged["lift"].fillna(0.0)
    anyway = merged["natural_converted"].astype("boolean").fillna(False).astype(bool)
    merged["expected"] = lift * (~anyway).astype(float)
    return merged.groupby("campaign")["expected"].mean()


# -- reading the shop the simulation answers -------------------------------------------


def load_sent_frame(engine: Engine) -> pd.DataFrame:
    """The planned messages with what :func:`simulate_responses` needs. Read-only."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(Message.id, User.external_id, Message.campaign, Message.status,
                   Message.channel, Message.coupon_code, Message.sent_at, Message.products,
                   Coupon.percent_off, Coupon.expires_at)
            .join(User, User.id == Message.user_id)
            .outerjoin(Coupon, Coupon.code == Message.coupon_code)
            .order_by(Message.id)
        ).all()
        products = dict(connection.execute(select(Product.id, Product.external_id)).all())
    frame = pd.DataFrame.from_records(rows, columns=[
        "message_id", "external_id", "campaign", "status", "channel", "coupon_code", "sent_at",
        "products", "percent_off", "coupon_expires_at"])
    frame["percent_off"] = frame["percent_off"].fillna(0).astype(int)
    frame["product"] = [
        products.get(items[0]["product_id"]) if items else None for items in frame["products"]
    ]
    return frame


def product_prices(engine: Engine) -> pd.Series:
    """Shop product id → price in cents. Read-only."""
    with engine.connect() as connection:
        rows = connection.execute(select(Product.external_id, Product.price_cents)).all()
    return pd.Series({k: v for k, v in rows if v is not None}, dtype="int64")


# -- the second run: a reminder whose effect depends on who receives it ----------------


@dataclass
class ReminderSimulation:
    """The shop events after the second run, and what the reminders did.

    ``events``: the natural events after the run (sleeping dogs' lost orders removed)
    plus the persuadables' extra purchases, in the events CSV columns; ``truth``:
    message_id, external_id, responsiveness (the type at the run), delivered,
    extra_purchase, put_off (bool: an order of theirs was lost).
    """

    events: pd.DataFrame
    truth: pd.DataFrame


def simulate_reminders(
    messages: pd.DataFrame,
    history: pd.DataFrame,
    later_events: pd.DataFrame,
    truth: pd.DataFrame,
    prices: pd.Series,
    *,
    at: datetime,
    seed: int,
    planted: PlantedResponse | None = None,
    rates: Engagement = Engagement(),
    currency: str = "CNY",
) -> ReminderSimulation:
    """Pure: the customers' answers to the second run's reminders (no coupon).

    ``messages`` as for :func:`simulate_responses` (only ``sent`` rows matter);
    ``history``: every events CSV row before ``at`` (what decides each customer's type,
    :mod:`campaign.demo.shop.responsiveness`); ``later_events``: the natural events
    from ``at`` on; ``truth``: the shop's truth (user_id, responsiveness_draw).
    Deterministic for a given ``seed``.
    """
    planted = planted or PlantedResponse()
    rng = np.random.default_rng([seed, 2])
    sent = messages[messages["status"] == MessageStatus.SENT.value].sort_values("message_id")
    sent = sent.reset_index(drop=True)
    n = len(sent)
    draw = truth.set_index("user_id")["responsiveness_draw"].reindex(sent["external_id"])
    kinds = responsiveness_types(purchase_state(history, sent["external_id"], at),
                                 draw.to_numpy(dtype=float), planted)
    u = rng.random((n, 2))
    delivered = np.where((sent["medium"] == "sms").to_numpy(), u[:, 0] < rates.sms_delivered,
                         u[:, 0] < rates.delivered)
    extra = delivered & (kinds == PERSUADABLE) & (u[:, 1] < planted.persuadable_lift)
    put_off = delivered & (kinds == SLEEPING_DOG) & (u[:, 1] < planted.put_off)
    delays = rng.exponential(rates.mean_delay_days, n)
    sent_at = pd.to_datetime(sent["sent_at"], utc=True)

    events = later_events.copy()
    ts = pd.to_datetime(events["ts"], utc=True)
    lost = pd.Series(False, index=events.index)
    for i in map(int, np.flatnonzero(put_off)):
        # The orders they would have placed in the window are never placed.
        lost |= ((events["user_id"] == sent["external_id"].iloc[i])
                 & (events["type"] == "purchase") & (ts > sent_at.iloc[i])
                 & (ts <= sent_at.iloc[i] + pd.Timedelta(days=RESPONSE_WINDOW_DAYS)))
    rows: list[dict[str, object]] = []
    for i in map(int, np.flatnonzero(extra)):
        row = sent.iloc[i]
        product = row["product"]
        price = int(prices.get(product, 9900)) if product is not None else 9900
        moment = sent_at.iloc[i] + pd.Timedelta(days=min(float(delays[i]) + 0.1, 13.5))
        rows.append({
            "event_id": f"demo-reminder-{row['message_id']}", "user_id": row["external_id"],
            "type": "purchase", "ts": moment.isoformat(), "product_id": product,
            "order_id": f"demo-reminder-{row['message_id']}", "quantity": 1,
            "amount": format_amount(price, currency), "coupon_code": None,
        })
    out = pd.concat([events[~lost], pd.DataFrame(rows, columns=list(EVENT_COLUMNS))],
                    ignore_index=True)
    told = pd.DataFrame({
        "message_id": sent["message_id"], "external_id": sent["external_id"],
        "responsiveness": kinds, "delivered": delivered, "extra_purchase": extra,
        "put_off": put_off,
    })
    return ReminderSimulation(out[list(EVENT_COLUMNS)], told)


def measured_by_ranking(rows: pd.DataFrame, size: int) -> pd.DataFrame:
    """Pure: the measured conversion uplift of the ``size`` top customers by each ranking.

    ``rows``: one randomized row per customer with group (treatment/holdout),
    converted (bool), and one score column per ranking (higher first; ties by
    user_id). Returns one row per ranking: ranking, n, n_treatment, n_control,
    conv_treatment, conv_control, uplift (fractions; NaN without both groups).
    """
    out = []
    for ranking in [c for c in rows.columns if c not in ("user_id", "group", "converted")]:
        top = rows.sort_values([ranking, "user_id"], ascending=[False, True]).head(size)
        treated = top[top["group"] == "treatment"]["converted"].astype(float)
        held = top[top["group"] != "treatment"]["converted"].astype(float)
        conv_t = treated.mean() if len(treated) else float("nan")
        conv_c = held.mean() if len(held) else float("nan")
        out.append({"ranking": ranking, "n": len(top), "n_treatment": len(treated),
                    "n_control": len(held), "conv_treatment": conv_t,
                    "conv_control": conv_c, "uplift": conv_t - conv_c})
    return pd.DataFrame(out)
