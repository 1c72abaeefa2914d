"""The demo's closed loop, after the set-up steps: train, plan, send to the file sink,
the simulated customers answer (:mod:`.customers`, through the real webhook server,
:mod:`.webhooks`), attribute, retrain, report. Each step returns what it did."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from campaign.common.errors import ModelError
from campaign.common.money import format_plain
from campaign.db.models import (
    ChurnScore,
    Message,
    MessageStatus,
    ModelVersion,
    User,
)
from campaign.demo.constants import LOOP_DAYS, SECOND_RUN_DAYS
from campaign.demo.customers import (
    load_sent_frame,
    measured_by_ranking,
    planted_uplift,
    product_prices,
    simulate_reminders,
    simulate_responses,
)
from campaign.demo.shop.responsiveness import EXPERIMENT_CAMPAIGN
from campaign.demo.steps import DemoContext, DemoStep, StepSummary
from campaign.demo.webhooks import post_webhooks, running_server, with_demo_secret


def _summary(title: str, lines: Sequence[tuple[str, str]], changed: bool) -> StepSummary:
    return StepSummary(title, tuple(lines), changed)


def _end(context: DemoContext) -> datetime:
    return context.as_of + timedelta(days=LOOP_DAYS)


def _second(context: DemoContext) -> datetime:
    return context.as_of + timedelta(days=SECOND_RUN_DAYS)


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
        if campaign.name == EXPERIMENT_CAMPAIGN:
            continue  # the second run's (second_run_step)
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
    sent = _drain(context, context.as_of)
    with context.engine.connect() as connection:
        by_status = dict(connection.execute(
            select(Message.status, func.count()).group_by(Message.status)).all())
    lines = tuple((status, f"{count:,}") for status, count in sorted(by_status.items()))
    return _summary("Delivery (file sink)", lines, sent > 0)


def _drain(context: DemoContext, start: datetime) -> int:
    """Send what is queued, an hour at a time from ``start`` for up to two days."""
    from campaign.delivery.sender import drain_outbox

    sent = 0
    for hour in range(48):
        moment = start + timedelta(hours=hour)
        report = drain_outbox(context.engine, context.config, once=True, now=_frozen_clock(moment))
        sent += report.sent
        with context.engine.connect() as connection:
            waiting = connection.execute(
                select(func.count()).select_from(Message).where(
                    Message.status == MessageStatus.QUEUED.value)
            ).scalar()
        if not waiting:
            break
    return sent


def responses_step(context: DemoContext) -> StepSummary:
    """Simulate the customers and feed their answers in through the real paths."""
    from campaign.demo.shop import generate_shop
    from campaign.ingest import import_csv

    end = _end(context)
    with context.progress("Simulating customers", None):
        shop = generate_shop(context.settings.users, context.settings.seed)
        sent = load_sent_frame(context.engine)
        sent = sent[sent["campaign"] != EXPERIMENT_CAMPAIGN]
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
    # Only what happened before the second run is imported now: a sleeping dog put off
    # by the second run's reminder never places the orders it would have placed after.
    second = pd.Timestamp(_second(context))
    before = pd.to_datetime(simulation.events["ts"], utc=True) < second
    context.facts["history_before_second_run"] = pd.concat(
        [shop.events, simulation.events[before]], ignore_index=True)
    context.facts["events_after_second_run"] = simulation.events[~before]
    context.facts["shop"] = shop
    path = context.data_dir / "events_after.csv"
    simulation.events[before].to_csv(path, index=False)
    with context.progress("Importing later shop events", int(before.sum())) as advance:
        report = import_csv(
            context.engine, "events", path, progress=advance, now=end,
            currency=context.config.shop.currency,
        )
    extra = int(simulation.extra["extra_purchase"].sum())
    lines = (
        ("webhooks", f"{len(simulation.webhooks):,} signed events to 127.0.0.1: "
                     + ", ".join(f"HTTP {k}: {v:,}" for k, v in sorted(statuses.items()))),
        ("shop events", f"{report.inserted:,} new of {int(before.sum()):,} (the "
                        f"{SECOND_RUN_DAYS} days after the as-of date, {extra:,} purchases "
                        "caused by messages)"),
    )
    return _summary("Customer responses (simulated)", lines, bool(report.inserted))


def second_run_step(context: DemoContext) -> StepSummary:
    """Import the shop's past A/B test, train the uplift model on it, and run the
    ``retain`` reminder (ranked by uplift) 45 days after the first run; simulate the
    customers' answers by their hidden type and import the rest of the shop's events."""
    from campaign.app import models
    from campaign.app.runs import plan_and_announce
    from campaign.app.uplift import train_uplift
    from campaign.churn.registry import active_model_id
    from campaign.ingest import import_csv
    from campaign.uplift.registry import active_uplift_campaigns

    engine, config = context.engine, context.config
    at, currency = _second(context), config.shop.currency
    lines: list[tuple[str, str]] = []
    changed = False
    path = context.data_dir / "experiments.csv"
    with context.progress("Importing the past A/B test", None):
        imported = import_csv(engine, "experiments", path, now=context.as_of, currency=currency)
    changed |= bool(imported.inserted or imported.updated)
    lines.append(("past A/B test", f"experiments.csv: {imported.inserted:,} new, "
                                   f"{imported.unchanged:,} unchanged ({EXPERIMENT_CAMPAIGN}, "
                                   "50/50)"))
    with engine.connect() as connection:
        trained = EXPERIMENT_CAMPAIGN in active_uplift_campaigns(connection)
        churn_model = active_model_id(connection)
    skipped: str | None = None
    if not any(c.name == EXPERIMENT_CAMPAIGN for c in config.campaigns):
        skipped = f"the folder's config.toml has no {EXPERIMENT_CAMPAIGN!r} campaign"
    elif churn_model is None:
        skipped = "no churn model to target with"
    elif not trained:
        with context.progress("Training the uplift model", None):
            result = train_uplift(engine, config, EXPERIMENT_CAMPAIGN, "converted", now=at)
        if result.refused is not None:
            skipped = f"a small shop: {result.refused}"
        else:
            assert result.comparison is not None
            changed = True
            lines.append(("uplift model", f"version {result.version_id}: "
                                          f"{result.comparison.chosen} on {result.rows:,} rows"))
    else:
        lines.append(("uplift model", "trained (kept)"))
    if skipped is None:
        with engine.connect() as connection:
            scored = connection.execute(select(func.count()).select_from(ChurnScore)
                                        .where(ChurnScore.as_of == at)).scalar()
        if not scored:
            models.score(engine, config.model, at)
        report = plan_and_announce(engine, config, EXPERIMENT_CAMPAIGN, as_of=at, slot=at,
                                   now=lambda: at).report
        changed |= report.outcome == "planned"
        counts = report.counts or {}
        lines.append((EXPERIMENT_CAMPAIGN, f"{report.outcome.replace('_', ' ')} at "
                      f"{at:%Y-%m-%d}: " + ", ".join(
                          f"{counts.get(k, 0):,} {k.replace('_', ' ')}"
                          for k in ("queued", "held_out", "skipped"))))
        _drain(context, at)
    else:
        lines.append(("skipped", f"the uplift-targeted second run: {skipped}"))
    later = context.facts["events_after_second_run"]
    if skipped is None:
        shop = context.facts["shop"]
        sent = load_sent_frame(engine)
        sent = sent[sent["campaign"] == EXPERIMENT_CAMPAIGN]
        media = {name: channel.medium for name, channel in config.channels.items()}
        sent["medium"] = sent["channel"].map(media)
        reminders = simulate_reminders(
            sent, context.facts["history_before_second_run"], later, shop.truth,
            product_prices(engine), at=at, seed=context.settings.seed, currency=currency)
        later = reminders.events
        context.facts["reminders"] = reminders.truth
        told = reminders.truth
        lines.append(("reminders sent", ", ".join(
            f"{count:,} {kind}s" for kind, count in
            told["responsiveness"].value_counts().sort_index().items())
            + f" (hidden types): {int(told['extra_purchase'].sum()):,} extra purchases, "
              f"{int(told['put_off'].sum()):,} put off"))
    path = context.data_dir / "events_later.csv"
    later.to_csv(path, index=False)
    with context.progress("Importing the shop's later events", len(later)) as advance:
        report_later = import_csv(engine, "events", path, progress=advance, now=_end(context),
                                  currency=currency)
    changed |= bool(report_later.inserted)
    lines.append(("shop events", f"{report_later.inserted:,} new of {len(later):,} (to the "
                                 f"end of the simulated {LOOP_DAYS} days)"))
    return _summary("Second run: targeting by uplift", tuple(lines), changed)


def compare_step(context: DemoContext) -> StepSummary:
    """The second run's uplift-ranked audience against the risk-ranked one of the same
    size, each measured against its own randomized holdout."""
    from campaign.app.models import stored_scores
    from campaign.measurement.attribution import (
        HOLDOUT,
        LEARNING_HOLDOUT,
        LEARNING_TREATMENT,
        TREATMENT,
        load_outcomes,
    )

    config = context.config
    with context.engine.connect() as connection:
        outcomes = load_outcomes(connection, config.attribution,
                                 horizon_days=config.model.horizon_days, now=_end(context),
                                 campaign=EXPERIMENT_CAMPAIGN)
    risk = stored_scores(context.engine, _second(context))["risk"]
    rows = outcomes[outcomes["group"].isin(
        [TREATMENT, HOLDOUT, LEARNING_TREATMENT, LEARNING_HOLDOUT]) & outcomes["window_closed"]]
    if rows.empty:
        return _summary("Uplift vs risk targeting", (("skipped", "no second run to measure"),),
                        False)
    frame = pd.DataFrame({
        "user_id": rows["user_id"].to_numpy(),
        "group": rows["group"].replace({LEARNING_TREATMENT: TREATMENT,
                                        LEARNING_HOLDOUT: HOLDOUT}).to_numpy(),
        "converted": rows["converted"].astype(bool).to_numpy(),
        # The planner's own choice: its uplift-ranked audience (the rest of the eligible
        # customers were randomized too, as the learning share).
        "uplift-ranked": (~rows["learning"].astype("boolean").fillna(False)).astype(float)
        .to_numpy(),
        "risk-ranked": risk.reindex(rows["user_id"].to_numpy()).fillna(0.0).to_numpy(),
    })
    size = int((frame["uplift-ranked"] > 0).sum())
    measured = measured_by_ranking(frame, size)
    context.facts["targeting_comparison"] = measured
    by = measured.set_index("ranking")
    up, rk = by.loc["uplift-ranked"], by.loc["risk-ranked"]
    lines = [(str(name), f"converted {row.conv_treatment:.1%} of {int(row.n_treatment):,} "
                         f"treated vs {row.conv_control:.1%} of {int(row.n_control):,} held out: "
                         f"{row.uplift * 100:+.1f} pts")
             for name, row in by.iterrows()]
    lines.append(("second run", f"the uplift-ranked audience gained {up.uplift * 100:+.1f} pts "
                                f"vs {rk.uplift * 100:+.1f} pts for the risk-ranked one "
                                f"({size:,} customers each), measured against their "
                                "holdouts"))
    return _summary("Uplift vs risk targeting (second run)", tuple(lines), False)


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
    if expected is not None:
        # The reminder's effect depends on each customer's hidden type: no single planted
        # figure; the comparison step measures it by targeting instead.
        expected = expected.drop(EXPERIMENT_CAMPAIGN, errors="ignore")
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
                          + (f"{row.churn_treatment:.1%} treated vs {row.churn_control:.1%}"
                             if not math.isnan(row.churn_treatment) else
                             f"not yet measured ({context.config.model.horizon_days}-day "
                             "horizon still open)")))
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
    DemoStep("second_run", "Train the uplift model on the past A/B test; a second run "
             "targeted by uplift", second_run_step),
    DemoStep("attribute", "Attribute conversions, redeem coupons, update the bandit",
             attribute_step),
    DemoStep("compare", "Measure the uplift-ranked audience against the risk-ranked one",
             compare_step),
    DemoStep("retrain", "Retrain the churn model on the newest outcomes", retrain_step),
    DemoStep("report", "Print the campaign report", report_step),
)


def _frozen_clock(moment: datetime) -> Callable[[], datetime]:
    """A clock that always reads ``moment`` (the simulated hour of a drain)."""
    return lambda: moment
