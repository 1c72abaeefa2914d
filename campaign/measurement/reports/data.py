"""Report frames: funnel, uplift vs holdout, churn, money, variants, model versions.

Everything here is read-only. :func:`campaign_report` reads the attribution outcomes
(:func:`campaign.measurement.attribution.load_outcomes`) and the responses once and returns a
:class:`CampaignReport` of plain frames; the terminal tables (``campaign report``) and
the HTML report (:mod:`campaign.measurement.reports.html`) only draw them.

Conversion and revenue compare the whole treatment group with the holdout,
intent-to-treat, over messages whose attribution window has closed; the churn rate
compares users whose horizon has closed. Money is integer minor units (``*_cents``)
except where a column says ``per_user`` (a float of minor units).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pandas as pd
from sqlalchemy import select
from sqlalchemy.engine import Connection

from campaign.churn.splits import split_label
from campaign.config import Config
from campaign.db.models import Engagement, ExperimentArm, Message, ModelVersion, Response
from campaign.experiments.bandit import ArmCounts, BanditState, choice_probabilities
from campaign.experiments.uplift import proportion_uplift, welch_difference
from campaign.measurement.attribution import (
    HOLDOUT,
    LEARNING_HOLDOUT,
    LEARNING_TREATMENT,
    TREATMENT,
    load_outcomes,
)

if TYPE_CHECKING:
    from campaign.uplift.report import TargetingReport

FUNNEL_STEPS: tuple[str, ...] = (
    "planned", "sent", "delivered", "opened", "clicked", "redeemed", "converted",
)
ALL = "(all)"

_REACHED = {
    "delivered": (Engagement.DELIVERED, Engagement.OPENED, Engagement.CLICKED),
    "opened": (Engagement.OPENED, Engagement.CLICKED),
    "clicked": (Engagement.CLICKED,),
}
_RESPONSES_REACHING = {
    "delivered": ("delivered", "opened", "clicked"),
    "opened": ("opened", "clicked"),
    "clicked": ("clicked",),
}


def load_response_types(connection: Connection) -> pd.DataFrame:
    """Distinct (message_id, type) pairs of matched responses, including those kept
    on the message when ``campaign prune`` deleted its response rows. Read-only."""
    rows: list[tuple[int | None, str]] = [
        (row.message_id, row.type)
        for row in connection.execute(
            select(Response.message_id, Response.type)
            .where(Response.message_id.is_not(None))
            .group_by(Response.message_id, Response.type)
        )
    ]
    pruned = connection.execute(
        select(Message.id, Message.pruned_response_types).where(
            Message.pruned_response_types.is_not(None)
        )
    ).all()
    rows += [(mid, kind) for mid, kinds in pruned for kind in (kinds or "").split(",") if kind]
    frame = pd.DataFrame.from_records(rows, columns=["message_id", "type"])
    return frame.drop_duplicates(ignore_index=True)


def with_reached(outcomes: pd.DataFrame, responses: pd.DataFrame) -> pd.DataFrame:
    """Pure: ``outcomes`` plus boolean ``delivered``, ``opened``, ``clicked`` columns.

    A step is reached when a response of that step (or a later one) was received, or
    the stored engagement is that step or later. A conversion alone does not imply an
    open: people buy without opening mail, and the funnel should show it.
    """
    out = outcomes.copy()
    for step, engagements in _REACHED.items():
        by_engagement = out["engagement"].isin([e.value for e in engagements])
        ids = responses.loc[responses["type"].isin(_RESPONSES_REACHING[step]), "message_id"]
        out[step] = (by_engagement | out["message_id"].isin(ids)).to_numpy() & out["sent"]
    return out


def funnel_frame(outcomes: pd.DataFrame) -> pd.DataFrame:
    """Per campaign and variant (and per campaign as ``variant == "(all)"``) funnel.

    Columns: campaign, variant, held_out, then :data:`FUNNEL_STEPS` counts of the
    treatment group (``planned`` = assigned to treatment; ``converted`` = attributed
    conversions, window closed or not). Needs :func:`with_reached` columns.
    """
    rows: list[dict[str, Any]] = []
    for campaign, frame in outcomes.groupby("campaign", sort=True):
        treated = frame[frame["group"] == TREATMENT]
        held = int((frame["group"] == HOLDOUT).sum())
        parts = [(ALL, treated)] + [
            (str(v), g) for v, g in treated.groupby("variant", sort=True)
        ]
        for variant, group in parts:
            rows.append({
                "campaign": campaign, "variant": variant,
                "held_out": held if variant == ALL else 0,
                "planned": len(group),
                "sent": int(group["sent"].sum()),
                "delivered": int(group["delivered"].sum()),
                "opened": int(group["opened"].sum()),
                "clicked": int(group["clicked"].sum()),
                "redeemed": int(group["redeemed"].sum()),
                "converted": int(group["converted"].sum()),
            })
    return pd.DataFrame(rows, columns=["campaign", "variant", "held_out", *FUNNEL_STEPS])


def _nan_if_none(value: float | None) -> float:
    return math.nan if value is None else float(value)


def uplift_frame(outcomes: pd.DataFrame) -> pd.DataFrame:
    """Treatment vs holdout per campaign (``variant == "(all)"``) and per variant.

    Per variant, that variant's treated users are compared with the campaign's whole
    holdout (the split into variants happens after the holdout, at random).
    Columns:

    * campaign, variant, n_treatment, n_control (closed windows only), pending
      (treatment rows whose window is still open);
    * conv_treatment, conv_control (rates 0..1), uplift (absolute, rate points as a
      fraction), uplift_low/high (Newcombe 95% CI), uplift_always_low/_high (the
      always-valid 95% interval, safe to read every day), relative_uplift (+ _low/
      _high), p_value (two-proportion z-test);
    * revenue_per_user_treatment/_control (cents, float), revenue_uplift_per_user with
      revenue_low/high (Welch 95% CI), revenue_always_low/_high and revenue_p_value;
    * incremental_revenue_cents = revenue uplift per user × n_treatment (paid amounts,
      so already net of coupon discounts), coupon_cost_cents (discounts the treatment
      group's coupons gave), incremental_revenue_gross_cents (before that cost);
    * churn_n_treatment/_control (closed horizons), churn_treatment/_control (share
      with no purchase over the horizon), churn_diff with churn_low/high.
    """
    rows: list[dict[str, Any]] = []
    for campaign, frame in outcomes.groupby("campaign", sort=True):
        control = frame[(frame["group"] == HOLDOUT) & frame["window_closed"]]
        control_h = frame[(frame["group"] == HOLDOUT) & frame["horizon_closed"]]
        treated_all = frame[frame["group"] == TREATMENT]
        parts = [(ALL, treated_all)] + [
            (str(v), g) for v, g in treated_all.groupby("variant", sort=True)
        ]
        for variant, treated_rows in parts:
            treated = treated_rows[treated_rows["window_closed"]]
            treated_h = treated_rows[treated_rows["horizon_closed"]]
            conv = proportion_uplift(
                int(treated["converted"].sum()), len(treated),
                int(control["converted"].sum()), len(control),
            )
            revenue = welch_difference(
                treated["revenue_cents"].to_numpy(float), control["revenue_cents"].to_numpy(float)
            )
            churn = proportion_uplift(
                int((~treated_h["bought_in_horizon"]).sum()), len(treated_h),
                int((~control_h["bought_in_horizon"]).sum()), len(control_h),
            )
            incremental = revenue.diff * len(treated) if len(treated) else math.nan
            cost = int(treated["coupon_cost_cents"].sum())
            rows.append({
                "campaign": campaign, "variant": variant,
                "n_treatment": len(treated), "n_control": len(control),
                "pending": int((~treated_rows["window_closed"]).sum()),
                "conv_treatment": conv.p_treatment, "conv_control": conv.p_control,
                "uplift": conv.diff, "uplift_low": conv.low, "uplift_high": conv.high,
                "uplift_always_low": conv.always_low, "uplift_always_high": conv.always_high,
                "relative_uplift": conv.relative, "relative_low": conv.relative_low,
                "relative_high": conv.relative_high, "p_value": conv.p_value,
                "revenue_per_user_treatment": revenue.mean_treatment,
                "revenue_per_user_control": revenue.mean_control,
                "revenue_uplift_per_user": revenue.diff,
                "revenue_low": revenue.low, "revenue_high": revenue.high,
                "revenue_always_low": revenue.always_low,
                "revenue_always_high": revenue.always_high,
                "revenue_p_value": revenue.p_value,
                "incremental_revenue_cents": incremental,
                "coupon_cost_cents": cost,
                "incremental_revenue_gross_cents": incremental + cost,
                "churn_n_treatment": len(treated_h), "churn_n_control": len(control_h),
                "churn_treatment": churn.p_treatment, "churn_control": churn.p_control,
                "churn_diff": churn.diff, "churn_low": churn.low, "churn_high": churn.high,
            })
    return pd.DataFrame(rows)


def load_arms_frame(
    connection: Connection, config: Config, *, campaign: str | None = None, seed: int = 0
) -> pd.DataFrame:
    """Bandit arms: campaign, variant, enabled, successes, failures, posterior a, b,
    posterior mean, and ``next_share`` (Monte Carlo share of the next run's treated
    users under Thompson sampling with the configured floor; NaN for disabled
    variants). Configured variants without a row yet appear with zero counts.
    Read-only; ``seed`` fixes the Monte Carlo draws.
    """
    rows = connection.execute(
        select(ExperimentArm.campaign, ExperimentArm.variant, ExperimentArm.successes,
               ExperimentArm.failures)
    ).all()
    stored = {(r.campaign, r.variant): ArmCounts(r.successes, r.failures) for r in rows}
    out: list[dict[str, Any]] = []
    names_seen: set[tuple[str, str]] = set()
    exp = config.experiments
    for spec in config.campaigns:
        if campaign is not None and spec.name != campaign:
            continue
        arms = {v.name: stored.get((spec.name, v.name), ArmCounts()) for v in spec.variants}
        state = BanditState(arms, exp.exploration_floor, exp.prior_successes, exp.prior_failures)
        enabled = [v.name for v in spec.variants if v.enabled]
        shares = choice_probabilities(enabled, state, random.Random(seed), draws=2000)
        for variant in spec.variants:
            a, b = state.posterior(variant.name)
            counts = arms[variant.name]
            names_seen.add((spec.name, variant.name))
            out.append({
                "campaign": spec.name, "variant": variant.name, "enabled": variant.enabled,
                "successes": counts.successes, "failures": counts.failures,
                "alpha": a, "beta": b, "posterior_mean": a / (a + b),
                "next_share": shares.get(variant.name, math.nan),
            })
    for (camp, variant), counts in stored.items():
        if (camp, variant) in names_seen or (campaign is not None and camp != campaign):
            continue
        a, b = exp.prior_successes + counts.successes, exp.prior_failures + counts.failures
        out.append({
            "campaign": camp, "variant": variant, "enabled": False,
            "successes": counts.successes, "failures": counts.failures,
            "alpha": a, "beta": b, "posterior_mean": a / (a + b), "next_share": math.nan,
        })
    return pd.DataFrame(out, columns=["campaign", "variant", "enabled", "successes", "failures",
                                      "alpha", "beta", "posterior_mean", "next_share"])


def model_history(connection: Connection, kind: str = "churn") -> pd.DataFrame:
    """Every model version's metrics over time, oldest first. Read-only.

    Columns: version, trained_at, as_of, horizon_days, active, max_depth, inputs
    (count), training_rows, roc_auc, pr_auc, brier, lift_top10, churn_rate,
    recency_roc_auc (forward-holdout figures of the version's recipe as stored by
    ``campaign train``; NaN when a version had no holdout) and split, the holdout they
    were measured on (:func:`campaign.churn.splits.split_label`).
    """
    rows = connection.execute(
        select(ModelVersion.id, ModelVersion.trained_at, ModelVersion.as_of,
               ModelVersion.horizon_days, ModelVersion.active, ModelVersion.params,
               ModelVersion.metrics)
        .where(ModelVersion.kind == kind)
        .order_by(ModelVersion.as_of, ModelVersion.id)
    ).all()
    out = []
    for row in rows:
        holdout = (row.metrics or {}).get("holdout") or {}
        recency = (row.metrics or {}).get("holdout_recency") or {}
        params = row.params or {}
        out.append({
            "version": row.id, "trained_at": row.trained_at, "as_of": row.as_of,
            "horizon_days": row.horizon_days, "active": bool(row.active),
            "max_depth": params.get("max_depth"),
            "inputs": len(params.get("inputs") or []),
            "training_rows": params.get("training_rows"),
            "roc_auc": _nan_if_none(holdout.get("roc_auc")),
            "pr_auc": _nan_if_none(holdout.get("pr_auc")),
            "brier": _nan_if_none(holdout.get("brier")),
            "lift_top10": _nan_if_none(holdout.get("lift_top_decile")),
            "churn_rate": _nan_if_none(holdout.get("churn_rate")),
            "recency_roc_auc": _nan_if_none(recency.get("roc_auc")),
            "split": model_split(row.metrics or {}, row.as_of, row.horizon_days),
        })
    return pd.DataFrame(out, columns=[
        "version", "trained_at", "as_of", "horizon_days", "active", "max_depth", "inputs",
        "training_rows", "roc_auc", "pr_auc", "brier", "lift_top10", "churn_rate",
        "recency_roc_auc", "split",
    ])


def model_split(metrics: dict[str, Any], as_of: datetime, horizon_days: int) -> str:
    """The holdout a stored version's figures were measured on ("" when it had none)."""
    if not metrics.get("holdout"):
        return ""
    return split_label(*_split_times(metrics, as_of, horizon_days))


def _split_times(
    metrics: dict[str, Any], as_of: datetime, horizon_days: int
) -> tuple[datetime, datetime]:
    """When a version's holdout was scored and where its outcomes end (versions stored
    before ``holdout_to`` was recorded: T, their as-of time, by construction)."""
    from datetime import UTC, timedelta

    def aware(value: datetime) -> datetime:
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    end = aware(datetime.fromisoformat(metrics["holdout_to"])) if metrics.get(
        "holdout_to") else aware(as_of)
    start = aware(datetime.fromisoformat(metrics["holdout_at"])) if metrics.get(
        "holdout_at") else end - timedelta(days=horizon_days)
    return start, end


@dataclass
class CampaignReport:
    """The frames of one report (see each builder for columns)."""

    now: datetime
    window_days: int
    horizon_days: int
    outcomes: pd.DataFrame
    funnel: pd.DataFrame
    uplift: pd.DataFrame
    arms: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    # Per campaign with an uplift model: what targeting by it gains over risk
    # (campaign.uplift.report; filled by campaign.app.reports).
    targeting: list[TargetingReport] = field(default_factory=list)


def campaign_report(
    connection: Connection, config: Config, *, now: datetime, campaign: str | None = None
) -> CampaignReport:
    """Build every frame of the campaign report at ``now`` (UTC). Read-only.

    Raises:
        NotFound: ``campaign`` is not configured and has no messages.
    """
    outcomes = load_outcomes(
        connection, config.attribution, horizon_days=config.model.horizon_days, now=now,
        campaign=campaign,
    )
    if campaign is not None and outcomes.empty:
        config.campaign(campaign)  # raises NotFound for an unknown name
    outcomes = with_reached(outcomes, load_response_types(connection))
    notes = []
    learning = int(outcomes["group"].isin((LEARNING_TREATMENT, LEARNING_HOLDOUT)).sum())
    if learning:
        notes.append(
            f"{learning} users of learning shares (outside the audience, randomised half "
            "and half for the uplift model) are not in these figures"
        )
    pending = int((~outcomes["window_closed"] & (outcomes["group"] == TREATMENT)).sum())
    if pending:
        notes.append(
            f"{pending} treated users' attribution window is still open; they count once "
            f"it closes ({config.attribution.window_days} days after the send)"
        )
    return CampaignReport(
        now=now,
        window_days=config.attribution.window_days,
        horizon_days=config.model.horizon_days,
        outcomes=outcomes,
        funnel=funnel_frame(outcomes),
        uplift=uplift_frame(outcomes),
        arms=load_arms_frame(connection, config, campaign=campaign),
        notes=notes,
    )

