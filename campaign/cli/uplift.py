"""``campaign train uplift``, ``campaign score uplift`` and ``campaign evaluate uplift``."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from campaign.cli.common import AS_OF_HELP, console, err_console, parse_when, progress_bar, state
from campaign.cli.model import evaluate_app, metric_records, score_app, train_app
from campaign.cli.output import (
    OutputFormat,
    Section,
    count,
    emit,
    format_option,
    print_table,
)
from campaign.cli.report import TARGETING_DECILE_FIELDS, TARGETING_GAIN_FIELDS

if TYPE_CHECKING:
    from campaign.app.uplift import UpliftTrained

CSV_COLUMNS = ["user_id", "uplift", "segment", "reason"]
LABELS = {
    "qini": "Qini coefficient", "auuc": "AUUC", "uplift_at_10": "uplift at 10 %",
    "uplift_at_30": "uplift at 30 %", "uplift_at_50": "uplift at 50 %",
    "customers": "customers",
}
_CAMPAIGN = typer.Option(
    None, "--campaign", help="The campaign (default: every campaign with experiment data).")
_OUTCOME = typer.Option(
    "converted", "--outcome", help="What the message should change: converted, visited or "
    "revenue (in the shop's currency).")


def _cell(value: float, metric: str, outcome: str) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    if metric == "customers":
        return count(value)
    if metric == "qini" or outcome == "revenue":
        return f"{value:.3f}"
    return f"{value * 100:+.2f} pts"


def _print_comparison(trained: UpliftTrained, title: str) -> None:
    comparison = trained.comparison
    assert comparison is not None
    table = Table(title=title, title_justify="left")
    table.add_column("metric")
    for name in comparison.table.columns:
        table.add_column(str(name), justify="right")
    for metric, row in comparison.table.iterrows():
        table.add_row(LABELS.get(str(metric), str(metric)),
                      *(_cell(v, str(metric), trained.outcome) for v in row))
    print_table(table)


def _check_outcome(outcome: str) -> None:
    if outcome not in ("converted", "visited", "revenue"):
        raise typer.BadParameter("one of converted, visited, revenue", param_hint="--outcome")


def train_uplift_command(
    ctx: typer.Context, campaign: str | None = _CAMPAIGN, outcome: str = _OUTCOME,
) -> None:
    """Fit the uplift tree and a boosted challenger on the holdouts and imported tests;
    keep the better by Qini, per campaign."""
    from campaign.app import uplift

    _check_outcome(outcome)
    app_state = state(ctx)
    config, engine = app_state.config(), app_state.engine()
    names = uplift.uplift_campaigns(engine, config, campaign)
    if not names:
        err_console.print("error: no campaign is configured and no experiment is imported "
                          "(`campaign import experiments FILE.csv`)", markup=False)
        raise typer.Exit(1)
    now = datetime.now(UTC)
    results = []
    with progress_bar("profiles", uplift.planning_times(engine, names)) as advance:
        for name in names:
            results.append(uplift.train_uplift(engine, config, name, outcome, now=now,
                                               progress=advance))
    for trained in results:
        if trained.refused:
            err_console.print(f"error: {trained.refused}", markup=False, soft_wrap=True)
            continue
        comparison = trained.comparison
        assert comparison is not None
        _print_comparison(trained, f"campaign {trained.campaign}, outcome {outcome}: "
                          f"{count(comparison.validation_rows)} rows held back")
        if comparison.min_responders != config.uplift.min_responders_per_leaf:
            console.print(
                f"the readable tree's leaves expect at least {comparison.min_responders} "
                "customers with the outcome in each group: it ranked the held-back rows "
                "better than the configured leaf size ([uplift] tune_leaf_size)", markup=False)
        console.print(
            f"the challenger's Qini is higher in {comparison.challenger_wins:.0%} of "
            "resamples of the held-back rows (it replaces the tree at 90 %)", markup=False)
        console.print(
            f"uplift version {trained.version_id} for campaign {trained.campaign}: "
            f"{comparison.chosen} ({count(trained.rows)} experiment rows, "
            f"{count(trained.treated)} treated)", markup=False)
    if all(trained.refused for trained in results):
        raise typer.Exit(1)


def score_uplift_command(
    ctx: typer.Context,
    campaign: str | None = typer.Option(
        None, "--campaign", help="The campaign (required when several have a model)."),
    as_of: str | None = typer.Option(None, "--as-of", help=AS_OF_HELP),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Write user_id,uplift,segment,reason here."),
    raw: bool = typer.Option(
        False, "--raw", help="Write text cells as they are (see `campaign score churn --help`)."),
) -> None:
    """Score every customer's uplift with the campaign's model: segment and reason."""
    from campaign.app import uplift
    from campaign.common.errors import InputError
    from campaign.common.money import minor_digits

    app_state = state(ctx)
    config = app_state.config()
    when = parse_when(as_of) or app_state.default_as_of()
    name, outcome, scores = uplift.score_uplift(app_state.engine(), config, campaign, when)
    digits = minor_digits(config.shop.currency) if outcome == "revenue" else 4
    scores["uplift"] = scores["uplift"].round(digits)
    console.print(f"{count(len(scores))} customers scored for campaign {name} "
                  f"({outcome}) as of {when:%Y-%m-%d %H:%M} UTC", markup=False)
    counts = scores["segment"].value_counts()
    console.print(", ".join(f"{segment}: {count(n)}" for segment, n in counts.items())
                  or "no customers", markup=False)
    if output is None:
        table = Table(title="most persuadable", title_justify="left")
        for column in CSV_COLUMNS:
            table.add_column(column, overflow="fold",
                             justify="right" if column == "uplift" else "left")
        for row in scores.head(10).itertuples(index=False):
            table.add_row(str(row.user_id), f"{row.uplift:+.{digits}f}", row.segment,
                          row.reason)
        print_table(table)
        return
    from campaign.common.exports import write_csv

    rows = ((r.user_id, float(r.uplift), r.segment, r.reason)
            for r in scores[CSV_COLUMNS].itertuples(index=False))
    try:
        with output.open("w", encoding="utf-8", newline="") as out:
            write_csv(out, CSV_COLUMNS, rows, raw=raw)
    except OSError as exc:
        raise InputError(str(output), f"cannot write: {exc.strerror or exc}") from None
    console.print(f"-> {output}", markup=False)


EVALUATION_FIELDS = ("campaign", "outcome", "train_rows", "validation_rows", "chosen",
                     "challenger_wins")
METRIC_FIELDS = ("campaign", "model", "metric", "value")
GAIN_FIELDS = ("campaign", *TARGETING_GAIN_FIELDS[2:])
DECILE_FIELDS = ("campaign", *TARGETING_DECILE_FIELDS[2:])


def evaluation_sections(results: list[UpliftTrained]) -> dict[str, Section]:
    """``evaluate uplift --format json|csv`` (fields in docs/output.md)."""
    evaluations, metrics, gain, deciles = [], [], [], []
    for trained in results:
        comparison = trained.comparison
        assert comparison is not None
        evaluations.append({
            "campaign": trained.campaign, "outcome": trained.outcome,
            "train_rows": comparison.train_rows, "validation_rows": comparison.validation_rows,
            "chosen": comparison.chosen, "challenger_wins": comparison.challenger_wins,
        })
        metrics += [{"campaign": trained.campaign, **row}
                    for row in metric_records(comparison.table)]
        gain += [{"campaign": trained.campaign, **row}
                 for row in comparison.targeting.get("gain", [])]
        deciles += [{"campaign": trained.campaign, **row}
                    for row in comparison.targeting.get("deciles", [])]
    return {
        "evaluation": Section(EVALUATION_FIELDS, evaluations),
        "metrics": Section(METRIC_FIELDS, metrics),
        "targeting_gain": Section(GAIN_FIELDS, gain),
        "targeting_deciles": Section(DECILE_FIELDS, deciles),
    }


def evaluate_uplift_command(
    ctx: typer.Context, campaign: str | None = _CAMPAIGN, outcome: str = _OUTCOME,
    fmt: OutputFormat = format_option(),
) -> None:
    """Qini, AUUC and uplift at 10/30/50 % of the tree and the challenger, beside risk
    targeting and random, on experiment rows they were not fitted on."""
    from campaign.app import uplift
    from campaign.common.errors import CampaignError

    _check_outcome(outcome)
    app_state = state(ctx)
    config, engine = app_state.config(), app_state.engine()
    names = uplift.uplift_campaigns(engine, config, campaign)
    now = datetime.now(UTC)
    failed = 0
    with progress_bar("profiles", uplift.planning_times(engine, names)) as advance:
        results = []
        for name in names:
            try:
                results.append(uplift.evaluate_uplift(engine, config, name, outcome, now=now,
                                                      progress=advance))
            except CampaignError as exc:
                failed += 1
                err_console.print(f"error: {exc}", markup=False, soft_wrap=True)
    if fmt is not OutputFormat.table:
        emit(evaluation_sections(results), fmt)
        if failed and not results:
            raise typer.Exit(1)
        return
    for trained in results:
        comparison = trained.comparison
        assert comparison is not None
        _print_comparison(trained, f"campaign {trained.campaign}, outcome {outcome}: fitted "
                          f"on {count(comparison.train_rows)} rows, measured on "
                          f"{count(comparison.validation_rows)} others")
    if failed and not results:
        raise typer.Exit(1)


train_app.command("uplift")(train_uplift_command)
score_app.command("uplift")(score_uplift_command)
evaluate_app.command("uplift")(evaluate_uplift_command)
