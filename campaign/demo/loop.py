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

import http.client
import json
import math
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

import numpy as np
import pandas as pd
import uvicorn
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from campaign.common.errors import CampaignError, ModelError
from campaign.common.money import format_amount, format_plain, parse_amount
from campaign.common.signing import sign_headers
from campaign.config import Config
from campaign.db.models import (
    ChurnScore,
    Coupon,
    Message,
    MessageStatus,
    ModelVersion,
    Product,
    User,
)
from campaign.demo.constants import LOOP_DAYS
from campaign.demo.shop import EVENT_COLUMNS
from campaign.demo.steps import DemoContext, DemoStep, StepSummary

DEMO_SECRET = "demo-loop-webhook-secret"


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


# -- I/O ------------------------------------------------------------------------------


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


@contextmanager
def running_server(config: Config, engine: Engine, *, clock_at: datetime) -> Iterator[str]:
    """The real response app under uvicorn on 127.0.0.1 (ephemeral port) in a thread.

    Yields its base URL; the app's clock is fixed at ``clock_at``. Stops it on exit.
    """
    from campaign.responses.app import create_app

    app = create_app(config, engine, clock=lambda: clock_at)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                           access_log=False, lifespan="on"))
    thread = threading.Thread(target=server.run, name="demo-webhooks", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise CampaignError("the demo's webhook server did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


def post_webhooks(
    base_url: str, webhooks: Sequence[tuple[str, bytes]], *, at: datetime,
    progress: Callable[[int], None] | None = None,
) -> dict[int, int]:
    """POST each signed event to ``/webhooks/events``; returns HTTP status → count.

    Signed with :data:`DEMO_SECRET` and a timestamp of ``at`` (the server's clock);
    the event's own time travels in its body. One keep-alive connection (the standard
    library's client: httpx belongs to the delivery part).
    """
    counts: dict[int, int] = {}
    stamp = int(at.timestamp())
    target = urlsplit(base_url)
    connection = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port,
                                            timeout=30)
    try:
        for event_id, body in webhooks:
            headers = sign_headers(DEMO_SECRET, event_id, stamp, body)
            headers["content-type"] = "application/json"
            connection.request("POST", "/webhooks/events", body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            counts[response.status] = counts.get(response.status, 0) + 1
            if progress is not None:
                progress(1)
    finally:
        connection.close()
    return counts


def with_demo_secret(config: Config) -> Config:
    """``config`` whose server accepts events signed with :data:`DEMO_SECRET`."""
    from pydantic import SecretStr

    server = config.server.model_copy(update={"secrets": (SecretStr(DEMO_SECRET),)})
    return config.model_copy(update={"server": server})



# -- demo steps (after campaign.demo.steps.SETUP_STEPS in campaign.demo.run) ------------


def _summary(title: str, lines: Sequence[tuple[str, str]], changed: bool) -> StepSummary:
    return StepSummary(title, tuple(lines), changed)


def _end(context: DemoContext) -> datetime:
    return context.as_of + timedelta(days=LOOP_DAYS)


def train_step(context: DemoContext) -> StepSummary:
    """Train the churn model at the demo's as-of date and score every customer (once)."""
    from campaign.app import models
    from campaign.churn.training import BGNBD, RECENCY

    engine, config = context.engine, context.config
    with engine.connect() as connection:
        version = connection.execute(
            select(ModelVersion.id).where(ModelVersion.as_of == context.as_of)
            .order_by(ModelVersion.id).limit(1)
        ).scalar()
        scored = connection.execute(
            select(func.count()).select_from(ChurnScore).where(ChurnScore.as_of == context.as_of)
        ).scalar()
    lines: list[tuple[str, str]] = []
    changed = False
    if version is None:
        try:
            with context.progress("Training the churn model",
                                  models.training_steps(config.model)) as advance:
                report = models.train(engine, config.model, as_of=context.as_of,
                                      now=context.as_of, progress=advance)
        except ModelError as exc:  # a tiny demo (--users 40) has too few customers
            return _summary("Churn model", [("skipped", str(exc))], False)
        version, changed = report.version_id, True
        if report.evaluation is not None:
            # The split on its own line, right under its figures: wrapped inside the
            # figures' line it would split "recency baseline" at 80 columns.
            lines.append(("forward holdout ROC AUC",
                          f"{report.evaluation.metric():.3f} (recency baseline "
                          f"{report.evaluation.metric(RECENCY):.3f}, BG/NBD baseline "
                          f"{report.evaluation.metric(BGNBD):.3f})"))
            lines.append(("measured on", report.evaluation.split))
    if not scored:
        customers = models.customers_to_score(engine, config.model, context.as_of)
        with context.progress("Scoring customers", customers) as advance:
            scores = models.score(engine, config.model, context.as_of, progress=advance)
        scored, changed = len(scores), True
    lines.insert(0, ("model", f"version {version} as of {context.as_of:%Y-%m-%d}"))
    lines.append(("scored", f"{scored:,} customers"))
    return _summary("Churn model", lines, changed)


def plan_step(context: DemoContext) -> StepSummary:
    """Plan one run of every configured campaign at the as-of date (idempotent)."""
    from campaign.app.runs import plan_and_announce
    from campaign.churn.registry import active_model_id

    lines: list[tuple[str, str]] = []
    changed = False
    with context.engine.connect() as connection:
        if active_model_id(connection) is None:
            return _summary("Campaign runs", [("skipped", "no churn model to target with")],
                            False)
    for campaign in context.config.campaigns:
        # The demo's shop has no checkout webhook: announcing is a no-op there.
        report = plan_and_announce(
            context.engine, context.config, campaign.name, as_of=context.as_of,
            slot=context.as_of, now=lambda: context.as_of,
        ).report
        changed |= report.outcome == "planned"
        counts = report.counts or {}
        if report.outcome == "planned":
            lines.append((campaign.name, "planned: " + ", ".join(
                f"{counts.get(k, 0):,} {k.replace('_', ' ')}"
                for k in ("queued", "held_out", "skipped"))))
        else:
            lines.append((campaign.name, f"{report.outcome.replace('_', ' ')}: nothing new"))
    lines.extend(_message_samples(context.engine, context.as_of))
    return _summary("Campaign runs", tuple(lines), changed)


def _message_samples(engine: Engine, slot: datetime) -> list[tuple[str, str]]:
    """A glance at what was planned: for each campaign, channel and language, one
    message's subject (email) or text (SMS) and who it is for."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(Message.campaign, Message.channel, Message.subject, Message.text_body,
                   User.external_id, User.locale)
            .join(User, User.id == Message.user_id)
            .where(Message.status.in_([MessageStatus.QUEUED, MessageStatus.SENT]),
                   Message.is_test.is_(False), Message.created_at <= slot + timedelta(days=1))
            .order_by(Message.id)
        ).all()
    seen: set[tuple[str, str, str]] = set()
    samples: list[tuple[str, str]] = []
    for campaign, channel, subject, text, user, locale in rows:
        if not locale or not (subject or text):
            continue
        key = (campaign, channel, locale.split("-")[0])
        if key in seen:
            continue
        seen.add(key)
        shown = subject or " ".join((text or "").split())
        if len(shown) > 80:
            shown = shown[:79] + "…"
        samples.append((f"  {campaign} {channel} {locale}", f"{shown}  (to {user})"))
    if samples:
        samples.append(("  more", "campaign preview CAMPAIGN: who gets what, and why"))
    return samples


def send_step(context: DemoContext) -> StepSummary:
    """Drain the outbox to the file sink, the simulated clock moving an hour at a time
    (quiet hours hold each message until its recipient's morning)."""
    from campaign.delivery.sender import drain_outbox

    sent = 0
    for hour in range(48):
        moment = context.as_of + timedelta(hours=hour)
        report = drain_outbox(context.engine, context.config, once=True, now=_frozen_clock(moment))
        sent += report.sent
        with context.engine.connect() as connection:
            waiting = connection.execute(
                select(func.count()).select_from(Message).where(
                    Message.status == MessageStatus.QUEUED.value)
            ).scalar()
        if not waiting:
            break
    with context.engine.connect() as connection:
        by_status = dict(connection.execute(
            select(Message.status, func.count()).group_by(Message.status)).all())
    lines = tuple((status, f"{count:,}") for status, count in sorted(by_status.items()))
    return _summary("Delivery (file sink)", lines, sent > 0)


def responses_step(context: DemoContext) -> StepSummary:
    """Simulate the customers and feed their answers in through the real paths."""
    from campaign.demo.shop import generate_shop
    from campaign.ingest import import_csv

    end = _end(context)
    with context.progress("Simulating customers", None):
        shop = generate_shop(context.settings.users, context.settings.seed)
        sent = load_sent_frame(context.engine)
        media = {name: channel.medium for name, channel in context.config.channels.items()}
        sent["medium"] = sent["channel"].map(media)
        simulation = simulate_responses(
            sent, shop.future_events, product_prices(context.engine),
            seed=context.settings.seed, window_days=context.config.attribution.window_days,
            currency=context.config.shop.currency,
        )
    context.facts["planted"] = simulation.extra
    with context.progress("Posting webhooks", len(simulation.webhooks)) as advance:
        with running_server(with_demo_secret(context.config), context.engine,
                            clock_at=end) as url:
            statuses = post_webhooks(url, simulation.webhooks, at=end, progress=advance)
    path = context.data_dir / "events_after.csv"
    simulation.events.to_csv(path, index=False)
    with context.progress("Importing later shop events", len(simulation.events)) as advance:
        report = import_csv(
            context.engine, "events", path, progress=advance, now=end,
            currency=context.config.shop.currency,
        )
    extra = int(simulation.extra["extra_purchase"].sum())
    lines = (
        ("webhooks", f"{len(simulation.webhooks):,} signed events to 127.0.0.1: "
                     + ", ".join(f"HTTP {k}: {v:,}" for k, v in sorted(statuses.items()))),
        ("shop events", f"{report.inserted:,} new of {len(simulation.events):,} (the 90 days "
                        f"after the as-of date, {extra:,} purchases caused by messages)"),
    )
    return _summary("Customer responses (simulated)", lines, bool(report.inserted))


def attribute_step(context: DemoContext) -> StepSummary:
    """Redeem coupons, attribute conversions and update the bandit's arms."""
    from campaign.experiments.store import refresh_arms
    from campaign.measurement.attribution import attribute

    end = _end(context)
    config = context.config
    report = attribute(context.engine, config.attribution,
                       horizon_days=config.model.horizon_days, now=end)
    arms = refresh_arms(context.engine, report.outcomes, now=end)
    lines = [
        ("coupons redeemed", f"{report.redemptions.redeemed:,} now"),
        ("conversions", f"{report.conversions:,} of {report.messages:,} planned rows "
                        f"({report.newly_converted:,} messages newly marked converted)"),
    ]
    for (campaign, variant), counts in sorted(arms.arms.items()):
        lines.append((f"arm {campaign}/{variant}",
                      f"{counts.successes:,} conversions, {counts.failures:,} without"))
    return _summary("Attribution and bandit", tuple(lines),
                       bool(report.newly_converted or arms.changed))


def retrain_step(context: DemoContext) -> StepSummary:
    """Retrain on the newest outcomes (held-out and untreated users' labels only)."""
    from campaign.app import models

    at = context.as_of + timedelta(days=90)
    with context.engine.connect() as connection:
        version = connection.execute(
            select(ModelVersion.id).where(ModelVersion.as_of == at).limit(1)
        ).scalar()
    if version is not None:
        return _summary("Retraining", (("model", f"version {version} as of {at:%Y-%m-%d} "
                                                    "(kept)"),), False)
    try:
        with context.progress("Retraining the churn model",
                              models.training_steps(context.config.model)) as advance:
            report = models.train(context.engine, context.config.model, as_of=at,
                                  now=_end(context), progress=advance)
    except ModelError as exc:
        return _summary("Retraining", [("skipped", str(exc))], False)
    lines = [("model", f"version {report.version_id} as of {at:%Y-%m-%d}"),
             ("decision", report.decision)]
    lines += [("note", note) for note in report.notes]
    return _summary("Retraining", tuple(lines), True)


def report_step(context: DemoContext) -> StepSummary:
    """The campaign report, with the planted effect beside the measured one."""
    from campaign.app.reports import build_report
    from campaign.measurement.reports.data import ALL

    end = _end(context)
    with context.engine.connect() as connection:
        built = build_report(connection, context.config, now=end,
                             html=context.folder / "report.html")
    report, path = built.report, built.html_path
    assert report is not None and path is not None
    planted = context.facts.get("planted")
    expected = planted_uplift(report.outcomes, planted) if planted is not None else None
    context.facts["report"] = report
    context.facts["planted_uplift"] = expected
    lines: list[tuple[str, str]] = []
    currency = context.config.shop.currency
    for row in report.uplift.itertuples(index=False):
        if row.variant != ALL or math.isnan(row.uplift):
            continue
        text = (f"converted {row.conv_treatment:.1%} of {row.n_treatment:,} treated vs "
                f"{row.conv_control:.1%} of {row.n_control:,} held out: "
                f"{row.uplift * 100:+.1f} pts [95% CI {row.uplift_low * 100:+.1f}, "
                f"{row.uplift_high * 100:+.1f}], p = {row.p_value:.2g}")
        if expected is not None and row.campaign in expected:
            truth = float(expected[row.campaign])
            inside = row.uplift_low <= truth <= row.uplift_high
            text += (f"; planted {truth * 100:+.1f} pts "
                     f"({'inside' if inside else 'OUTSIDE'} the interval)")
        lines.append((row.campaign, text))
        def plain(minor: float, signed: bool = False) -> str:
            return format_plain(minor, currency, signed=signed)

        lines.append(("", f"revenue/user {plain(row.revenue_uplift_per_user, True)} {currency} "
                          f"[{plain(row.revenue_low, True)}, {plain(row.revenue_high, True)}], "
                          f"incremental {plain(row.incremental_revenue_cents)} net of "
                          f"{plain(row.coupon_cost_cents)} coupon cost; churn "
                          f"{row.churn_treatment:.1%} treated vs {row.churn_control:.1%}"))
    for row in report.arms.itertuples(index=False):
        lines.append((f"{row.campaign}/{row.variant}",
                      f"posterior mean {row.posterior_mean:.1%} "
                      f"({row.successes}/{row.successes + row.failures}); next run share "
                      f"{row.next_share:.0%}"))
    lines.append(("HTML", str(path)))
    return _summary("Report (campaign report --as-of "
                       f"{end:%Y-%m-%d})", tuple(lines), False)


# Run after the set-up steps (campaign.demo.run.DEMO_STEPS).
LOOP_STEPS: tuple[DemoStep, ...] = (
    DemoStep("train", "Train and score the churn model", train_step),
    DemoStep("plan", "Plan a run of every campaign", plan_step),
    DemoStep("send", "Send the outbox to the file sink", send_step),
    DemoStep("responses", "Simulate customers; webhooks to the real server, purchases as events",
             responses_step),
    DemoStep("attribute", "Attribute conversions, redeem coupons, update the bandit",
             attribute_step),
    DemoStep("retrain", "Retrain the churn model on the newest outcomes", retrain_step),
    DemoStep("report", "Print the campaign report", report_step),
)


def _frozen_clock(moment: datetime) -> Callable[[], datetime]:
    """A clock that always reads ``moment`` (the simulated hour of a drain)."""
    return lambda: moment
