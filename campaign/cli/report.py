"""``campaign report [CAMPAIGN] [--html FILE] [--model] [--format F]``: did it work?"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from campaign.cli.common import AS_OF_DEFAULT, console, parse_when, state
from campaign.cli.output import (
    OutputFormat,
    Section,
    count,
    emit,
    format_option,
    print_table,
    records,
)

if TYPE_CHECKING:
    import pandas as pd

    from campaign.measurement.reports.data import CampaignReport
    from campaign.uplift.report import TargetingReport


def _pct(value: float, digits: int = 1) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value * 100:.{digits}f}%"


def _pts(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value * 100:+.1f}"


def _money(minor: float, currency: str) -> str:
    """Minor units of ``currency`` as a grouped number with its own decimals."""
    from campaign.common.money import format_plain

    if minor is None or math.isnan(minor):
        return "n/a"
    return format_plain(minor, currency)


def _p(value: float) -> str:
    if math.isnan(value):
        return "n/a"
    return "<0.001" if value < 0.001 else f"{value:.3f}"


def funnel_table(funnel: pd.DataFrame) -> Table:
    """The funnel frame as a rich table (counts, with % of planned)."""
    from campaign.measurement.reports.data import FUNNEL_STEPS

    table = Table(title="Funnel (treatment group)", title_justify="left")
    table.add_column("campaign")
    table.add_column("variant")
    table.add_column("held out", justify="right")
    for step in FUNNEL_STEPS:
        table.add_column(step, justify="right")
    for row in funnel.itertuples(index=False):
        cells = [f"{getattr(row, step):,}" for step in FUNNEL_STEPS]
        table.add_row(row.campaign, row.variant, f"{row.held_out:,}" if row.held_out else "",
                      *cells)
    return table


def uplift_table(uplift: pd.DataFrame) -> Table:
    """Conversion, treatment vs holdout: rates, absolute uplift with its 95% CI and its
    always-valid 95% interval (the one to read daily), p-value."""
    table = Table(title="Conversion uplift vs holdout (intent-to-treat)", title_justify="left")
    for name in ("campaign", "variant", "users t/c", "converted t/c", "uplift pts [95% CI]",
                 "always-valid", "relative", "p"):
        table.add_column(name, justify="left" if name in ("campaign", "variant") else "right")
    for r in uplift.itertuples(index=False):
        table.add_row(
            r.campaign, r.variant, f"{r.n_treatment:,}/{r.n_control:,}",
            f"{_pct(r.conv_treatment)}/{_pct(r.conv_control)}",
            f"{_pts(r.uplift)} [{_pts(r.uplift_low)}, {_pts(r.uplift_high)}]",
            f"[{_pts(r.uplift_always_low)}, {_pts(r.uplift_always_high)}]",
            _pct(r.relative_uplift, 0), _p(r.p_value),
        )
    return table


def money_table(uplift: pd.DataFrame, currency: str) -> Table:
    """Revenue per user with its 95% CI, incremental revenue, coupon cost, churn."""
    table = Table(title=f"Revenue ({currency}) and churn vs holdout", title_justify="left")
    for name in ("campaign", "variant", "revenue/user t/c", "uplift/user [95% CI]",
                 "incremental (net)", "coupon cost", "churn t/c"):
        table.add_column(name, justify="left" if name in ("campaign", "variant") else "right")
    def money(minor: float) -> str:
        return _money(minor, currency)

    for r in uplift.itertuples(index=False):
        table.add_row(
            r.campaign, r.variant,
            f"{money(r.revenue_per_user_treatment)}/{money(r.revenue_per_user_control)}",
            f"{money(r.revenue_uplift_per_user)} "
            f"[{money(r.revenue_low)}, {money(r.revenue_high)}]",
            money(r.incremental_revenue_cents), money(r.coupon_cost_cents),
            f"{_pct(r.churn_treatment)}/{_pct(r.churn_control)}",
        )
    return table


def arms_table(arms: pd.DataFrame) -> Table:
    """Variant posteriors and the share Thompson sampling would give each next run."""
    table = Table(title="Variants (Thompson sampling, Beta posteriors)", title_justify="left")
    for name in ("campaign", "variant", "enabled", "conversions", "no conversion",
                 "posterior mean", "next run share"):
        table.add_column(name, justify="left" if name in ("campaign", "variant") else "right")
    for r in arms.itertuples(index=False):
        table.add_row(r.campaign, r.variant, "yes" if r.enabled else "no", f"{r.successes:,}",
                      f"{r.failures:,}", _pct(r.posterior_mean), _pct(r.next_share, 0))
    return table


def model_table(history: pd.DataFrame) -> Table:
    """Each churn model version's forward-holdout metrics, oldest first."""
    table = Table(
        title="Churn model versions: each version's recipe on its forward holdout",
        title_justify="left",
    )
    for name in ("version", "as of", "trained", "active", "depth", "inputs", "rows", "split",
                 "ROC AUC", "recency AUC", "PR AUC", "Brier", "lift top 10%", "churn rate"):
        table.add_column(name, justify="left" if name == "split" else "right")
    for r in history.itertuples(index=False):
        table.add_row(
            str(r.version), f"{r.as_of:%Y-%m-%d}", f"{r.trained_at:%Y-%m-%d %H:%M}",
            "*" if r.active else "", str(r.max_depth), str(r.inputs), count(r.training_rows),
            r.split or "n/a",
            *(("n/a" if math.isnan(v) else f"{v:.3f}")
              for v in (r.roc_auc, r.recency_roc_auc, r.pr_auc, r.brier, r.lift_top10)),
            _pct(r.churn_rate),
        )
    return table


def targeting_table(targeting: TargetingReport, currency: str) -> Table:
    """Messaging the top share by predicted uplift instead of by risk, per 1,000
    messages, on the experiment rows the model did not see (95% bootstrap interval)."""
    from campaign.measurement.reports.tables import per_thousand

    table = Table(
        title=f"{targeting.campaign}: by uplift vs by risk, per 1,000 messages "
              f"({count(targeting.rows)} held-back rows; uplift version {targeting.version})",
        title_justify="left")
    for name in ("messaged", "outcome", "by uplift", "by risk", "gain [95% CI]"):
        table.add_column(name, justify="left" if name in ("messaged", "outcome") else "right")
    for r in targeting.gain.itertuples(index=False):
        table.add_row(
            f"top {r.share:.0%}", "revenue" if r.outcome == "revenue" else r.outcome,
            per_thousand(r.by_uplift, r.outcome, currency),
            per_thousand(r.by_risk, r.outcome, currency),
            f"{per_thousand(r.gain, r.outcome, currency)} "
            f"[{per_thousand(r.low, r.outcome, currency)}, "
            f"{per_thousand(r.high, r.outcome, currency)}]",
        )
    return table


def print_report(report: CampaignReport, currency: str) -> None:
    """Draw a :class:`CampaignReport` on the terminal."""
    console.print(
        f"Report at {report.now:%Y-%m-%d %H:%M} UTC: conversions within "
        f"{report.window_days} days of the send, churn over {report.horizon_days} days",
        markup=False,
    )
    if report.outcomes.empty:
        console.print("No campaign has planned anything yet.")
        for targeting in report.targeting:  # imported experiments have a model all the same
            print_table(targeting_table(targeting, currency))
        return
    print_table(funnel_table(report.funnel))
    print_table(uplift_table(report.uplift))
    print_table(money_table(report.uplift, currency))
    if not report.arms.empty:
        print_table(arms_table(report.arms))
    for targeting in report.targeting:
        print_table(targeting_table(targeting, currency))
    for note in report.notes:
        console.print(f"note: {note}", markup=False)


FUNNEL_FIELDS = ("campaign", "variant", "held_out", "planned", "sent", "delivered", "opened",
                 "clicked", "redeemed", "converted")
# Frame column → field name; money is in minor units (cents of the shop's currency).
UPLIFT_FIELDS = {
    "campaign": "campaign", "variant": "variant", "n_treatment": "n_treatment",
    "n_control": "n_control", "pending": "pending", "conv_treatment": "conv_treatment",
    "conv_control": "conv_control", "uplift": "uplift", "uplift_low": "uplift_low",
    "uplift_high": "uplift_high", "uplift_always_low": "uplift_always_low",
    "uplift_always_high": "uplift_always_high", "relative_uplift": "relative_uplift",
    "relative_low": "relative_low", "relative_high": "relative_high", "p_value": "p_value",
    "revenue_per_user_treatment": "revenue_per_user_treatment_cents",
    "revenue_per_user_control": "revenue_per_user_control_cents",
    "revenue_uplift_per_user": "revenue_uplift_per_user_cents",
    "revenue_low": "revenue_uplift_low_cents", "revenue_high": "revenue_uplift_high_cents",
    "revenue_always_low": "revenue_uplift_always_low_cents",
    "revenue_always_high": "revenue_uplift_always_high_cents",
    "revenue_p_value": "revenue_p_value",
    "incremental_revenue_cents": "incremental_revenue_cents",
    "coupon_cost_cents": "coupon_cost_cents",
    "incremental_revenue_gross_cents": "incremental_revenue_gross_cents",
    "churn_n_treatment": "churn_n_treatment", "churn_n_control": "churn_n_control",
    "churn_treatment": "churn_treatment", "churn_control": "churn_control",
    "churn_diff": "churn_diff", "churn_low": "churn_low", "churn_high": "churn_high",
}
ARM_FIELDS = ("campaign", "variant", "enabled", "successes", "failures", "alpha", "beta",
              "posterior_mean", "next_share")
TARGETING_GAIN_FIELDS = ("campaign", "version", "share", "outcome", "by_uplift", "by_risk",
                         "gain", "low", "high")
TARGETING_DECILE_FIELDS = ("campaign", "version", "decile", "customers", "treated",
                           "held_out", "predicted", "treated_rate", "control_rate", "uplift",
                           "low", "high")
MODEL_FIELDS = ("version", "trained_at", "as_of", "horizon_days", "active", "max_depth",
                "inputs", "training_rows", "roc_auc", "pr_auc", "brier", "lift_top10",
                "churn_rate", "recency_roc_auc", "split")


def report_sections(report: CampaignReport, currency: str) -> dict[str, Section]:
    """The report for ``--format json|csv`` (fields in docs/output.md)."""
    uplift = report.uplift.rename(columns=UPLIFT_FIELDS)
    return {
        "report": Section(
            ("now", "window_days", "horizon_days", "currency"),
            [{"now": report.now, "window_days": report.window_days,
              "horizon_days": report.horizon_days, "currency": currency}],
        ),
        "funnel": Section(FUNNEL_FIELDS, records(report.funnel, FUNNEL_FIELDS)),
        "uplift": Section(
            tuple(UPLIFT_FIELDS.values()), records(uplift, UPLIFT_FIELDS.values())
        ),
        "arms": Section(ARM_FIELDS, records(report.arms, ARM_FIELDS)),
        "targeting_gain": Section(TARGETING_GAIN_FIELDS, [
            {"campaign": t.campaign, "version": t.version, **row}
            for t in report.targeting for row in records(t.gain, TARGETING_GAIN_FIELDS[2:])
        ]),
        "targeting_deciles": Section(TARGETING_DECILE_FIELDS, [
            {"campaign": t.campaign, "version": t.version, **row}
            for t in report.targeting
            for row in records(t.deciles, TARGETING_DECILE_FIELDS[2:])
        ]),
        "notes": Section(("note",), [{"note": note} for note in report.notes]),
    }


def report_command(
    ctx: typer.Context,
    campaign: str | None = typer.Argument(None, help="Only this campaign (default: all)."),
    html: Path | None = typer.Option(
        None, "--html", help="Also write a self-contained HTML report with plots to FILE."
    ),
    model: bool = typer.Option(
        False, "--model", help="Show every churn model version's metrics over time instead."
    ),
    as_of: str | None = typer.Option(
        None, "--as-of",
        help=f"Measure as of this time (ISO date or datetime, naive means UTC; {AS_OF_DEFAULT}).",
    ),
    fmt: OutputFormat = format_option(),
) -> None:
    """Funnel, uplift vs holdout with 95% CI, churn, money and variants per campaign."""
    from campaign.app.reports import build_report

    app_state = state(ctx)
    config = app_state.config()
    engine = app_state.engine()
    now = parse_when(as_of) or app_state.default_as_of()
    machine = fmt is not OutputFormat.table
    with engine.connect() as connection:
        built = build_report(
            connection, config, now=now, campaign=campaign, html=html, models_only=model
        )
    if model:
        history = built.history
        assert history is not None
        if machine:
            emit({"models": Section(MODEL_FIELDS, records(history, MODEL_FIELDS))}, fmt)
        elif history.empty:
            console.print("No churn model trained yet: run campaign train.")
        else:
            print_table(model_table(history))
    else:
        report = built.report
        assert report is not None
        if machine:
            emit(report_sections(report, config.shop.currency), fmt)
        else:
            print_report(report, config.shop.currency)
    if built.html_path is not None:
        # Machine output owns stdout: the note goes to stderr there.
        from campaign.cli.common import err_console

        (err_console if machine else console).print(
            f"HTML report written to {built.html_path}", markup=False
        )
