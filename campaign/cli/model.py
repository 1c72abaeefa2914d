"""The ``campaign train`` and ``campaign score`` groups and the ``campaign evaluate``
sub-app.

``train`` and ``score`` alone do the churn model's work (as ``train churn`` and
``score churn`` do); the groups and ``evaluate_app`` are shared: the recommender
adds ``train recommend`` and ``evaluate recommend`` to them.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from campaign.cli.common import (
    AS_OF_HELP,
    console,
    note_if_stale,
    parse_when,
    progress_bar,
    state,
)
from campaign.cli.output import (
    OutputFormat,
    Section,
    count,
    emit,
    format_option,
    plain,
    print_table,
)

if TYPE_CHECKING:
    import pandas as pd

evaluate_app = typer.Typer(help="Offline quality checks of the models.", no_args_is_help=True)
train_app = typer.Typer(
    help="Train a model: churn (also `campaign train` alone) or the recommender.",
    invoke_without_command=True,
)
score_app = typer.Typer(
    help="Score customers with a model: churn (also `campaign score` alone).",
    invoke_without_command=True,
)

HORIZON_HELP = "Churn horizon in days (default: config model.horizon_days)."


def _number(value: float, name: str) -> str:
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    if name == "customers":
        return count(value)
    if name == "churn_rate":
        return f"{value:.1%}"
    return f"{value:.3f}"


def metrics_table(table: pd.DataFrame, title: str) -> Table:
    """A rich table of a metrics frame (rows: metrics, columns: models)."""
    from campaign.churn.evaluate import METRIC_LABELS

    out = Table(title=title, title_justify="left")
    out.add_column("metric")
    for column in table.columns:
        out.add_column(str(column), justify="right")
    for name, row in table.iterrows():
        out.add_row(METRIC_LABELS.get(str(name), str(name)), *(_number(v, str(name)) for v in row))
    return out


EVALUATION_FIELDS = ("as_of", "horizon_days", "train_at", "holdout_at", "max_depth",
                     "min_samples_leaf", "training_rows", "snapshots", "split")
METRIC_FIELDS = ("model", "metric", "value")


def metric_records(table: pd.DataFrame) -> list[dict[str, object]]:
    """A metrics frame (rows: metrics, columns: models) as model, metric, value records."""
    out = []
    for model in table.columns:
        for metric in table.index:
            value = plain(table.at[metric, model])
            if metric == "customers" and isinstance(value, float) and value.is_integer():
                value = int(value)  # a count, stored in a frame of floats
            out.append({"model": str(model), "metric": str(metric), "value": value})
    return out


@evaluate_app.command("churn")
def evaluate_churn_command(
    ctx: typer.Context,
    as_of: str | None = typer.Option(None, "--as-of", help=AS_OF_HELP),
    horizon_days: int | None = typer.Option(None, "--horizon-days", min=7, help=HORIZON_HELP),
    fmt: OutputFormat = format_option(),
) -> None:
    """Train on T-2h, score T-h, compare with (T-h, T]: tree beside recency and BG/NBD."""
    from campaign.app import models

    app_state = state(ctx)
    config = app_state.config()
    when = parse_when(as_of) or app_state.default_as_of()
    note_if_stale(app_state.engine(), when)
    with progress_bar("snapshots", models.evaluation_steps(config.model)) as advance:
        evaluation = models.evaluate(
            app_state.engine(), config.model, when, horizon_days, progress=advance
        )
    params = evaluation.fit.params
    if fmt is not OutputFormat.table:
        emit({
            "evaluation": Section(
                EVALUATION_FIELDS,
                [{"as_of": evaluation.as_of, "horizon_days": evaluation.horizon_days,
                  "train_at": evaluation.train_at, "holdout_at": evaluation.holdout_at,
                  **{k: params.get(k) for k in ("max_depth", "min_samples_leaf",
                                                "training_rows", "snapshots")},
                  "split": evaluation.split}],
            ),
            "metrics": Section(METRIC_FIELDS, metric_records(evaluation.table)),
        }, fmt)
        return
    console.print(
        f"T = {evaluation.as_of:%Y-%m-%d %H:%M} UTC, horizon {evaluation.horizon_days} days: "
        f"a tree of the configured recipe trained on snapshots up to "
        f"{evaluation.train_at:%Y-%m-%d}, scored {evaluation.holdout_at:%Y-%m-%d}, outcomes from "
        f"the {evaluation.horizon_days} days after ({evaluation.split}; a stored model version "
        "trained at T shows these same figures in campaign report --model)",
        markup=False,
    )
    console.print(
        f"tree: max_depth={params['max_depth']}, min_samples_leaf={params['min_samples_leaf']}, "
        f"{count(params['training_rows'])} training rows from {params['snapshots']} snapshot(s)"
    )
    print_table(metrics_table(evaluation.table, f"churn, {evaluation.split}"))


def train_command(
    ctx: typer.Context,
    as_of: str | None = typer.Option(None, "--as-of", help=AS_OF_HELP),
    horizon_days: int | None = typer.Option(None, "--horizon-days", min=7, help=HORIZON_HELP),
) -> None:
    """Train a churn model, print its evaluation, activate it if not worse than the active one."""
    from campaign.app import models

    app_state = state(ctx)
    config = app_state.config()
    when = parse_when(as_of) or app_state.default_as_of()
    note_if_stale(app_state.engine(), when)
    with progress_bar("training", models.training_steps(config.model)) as advance:
        report = models.train(
            app_state.engine(),
            config.model,
            when,
            horizon_days,
            now=datetime.now(UTC),
            progress=advance,
        )
    params = report.params
    console.print(
        f"model version {report.version_id}: max_depth={params['max_depth']}, "
        f"min_samples_leaf={params['min_samples_leaf']}, {count(params['training_rows'])} "
        f"training rows from {params['snapshots']} snapshot(s)"
    )
    if report.evaluation is not None:
        print_table(
            metrics_table(
                report.evaluation.table,
                f"this recipe on the {report.evaluation.split}",
            )
        )
    for note in report.notes:
        console.print(f"note: {note}", markup=False)
    console.print(report.decision, markup=False)


def score_command(
    ctx: typer.Context,
    as_of: str | None = typer.Option(None, "--as-of", help=AS_OF_HELP),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Write user_id,risk,tier,reason for every customer here."
    ),
    raw: bool = typer.Option(
        False,
        "--raw",
        help="Write text cells as they are. By default a cell starting with = + - @, tab or CR "
        "gets a leading ' so spreadsheets do not run it as a formula; use --raw for "
        "programs that join on the ids.",
    ),
) -> None:
    """Score every customer with the active model and store the scores."""
    from campaign.app import models
    from campaign.common.errors import InputError

    app_state = state(ctx)
    config = app_state.config()
    engine = app_state.engine()
    when = parse_when(as_of) or app_state.default_as_of()
    note_if_stale(engine, when)
    total = models.customers_to_score(engine, config.model, when)
    with progress_bar("scoring", total) as advance:
        scores = models.score(engine, config.model, when, progress=advance,
                              batch=config.engine)
    frame = scores.reset_index(drop=True).rename(columns={"external_id": "user_id"})
    frame["risk"] = frame["risk"].round(4)
    if output is not None:
        from campaign.common.exports import write_csv

        columns = ["user_id", "risk", "tier", "reason"]
        rows = (
            (r.user_id, float(r.risk), r.tier, r.reason)
            for r in frame[columns].itertuples(index=False)
        )
        try:
            with output.open("w", encoding="utf-8", newline="") as out:
                write_csv(out, columns, rows, raw=raw)
        except OSError as exc:
            raise InputError(str(output), f"cannot write: {exc.strerror or exc}") from None
        console.print(
            f"{count(len(frame))} customers scored as of {when:%Y-%m-%d %H:%M} UTC -> {output}"
        )
    else:
        console.print(f"{count(len(frame))} customers scored as of {when:%Y-%m-%d %H:%M} UTC")
    counts = frame["tier"].value_counts()
    console.print(", ".join(f"{tier}: {count(n)}" for tier, n in counts.items())
                  or "no customers")
    if output is None and len(frame):
        table = Table(title="highest risk", title_justify="left")
        for column in ("user_id", "risk", "tier", "reason"):
            table.add_column(column, overflow="fold", justify="right" if column == "risk"
                             else "left")
        for row in frame.head(10).itertuples(index=False):
            table.add_row(str(row.user_id), f"{row.risk:.3f}", row.tier, row.reason)
        print_table(table)


@train_app.callback(invoke_without_command=True)
def train_group(
    ctx: typer.Context,
    as_of: str | None = typer.Option(None, "--as-of", help=AS_OF_HELP),
    horizon_days: int | None = typer.Option(None, "--horizon-days", min=7, help=HORIZON_HELP),
) -> None:
    """Train a model. Alone: the churn model (as `campaign train churn`)."""
    if ctx.invoked_subcommand is None:
        train_command(ctx, as_of, horizon_days)


@score_app.callback(invoke_without_command=True)
def score_group(
    ctx: typer.Context,
    as_of: str | None = typer.Option(None, "--as-of", help=AS_OF_HELP),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Write user_id,risk,tier,reason for every customer here."
    ),
    raw: bool = typer.Option(
        False,
        "--raw",
        help="Write text cells as they are (see `campaign score churn --help`).",
    ),
) -> None:
    """Score customers. Alone: with the active churn model (as `campaign score churn`)."""
    if ctx.invoked_subcommand is None:
        score_command(ctx, as_of, output, raw)


train_app.command("churn")(train_command)
score_app.command("churn")(score_command)
