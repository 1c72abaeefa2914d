"""``campaign recommend``, ``campaign train recommend`` and ``campaign evaluate recommend``."""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

import typer
from rich.table import Table

from campaign.cli.common import AS_OF_DEFAULT, console, parse_when, progress_bar, state
from campaign.cli.model import evaluate_app, train_app
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

    from campaign.cli.common import AppState

CSV_COLUMNS = ["user_id", "rank", "product_id", "score", "reason"]
EVALUATION_WINDOW_DAYS = 30


def _write_csv(frame: pd.DataFrame, out: TextIO, raw: bool) -> None:
    from decimal import Decimal

    from campaign.common.exports import write_csv

    rows = (
        (row.user_id, int(row.rank), row.product_id, Decimal(f"{row.score:.6f}"), row.reason)
        for row in frame.itertuples(index=False)
    )
    write_csv(out, CSV_COLUMNS, rows, raw=raw)


def recommend_command(
    ctx: typer.Context,
    user: str | None = typer.Option(
        None, "--user", help="Only this user (the shop's user id); default: every active user."
    ),
    k: int | None = typer.Option(
        None, "-k", "--k", min=1, max=100, help="Products per user (default: [recommender] k)."
    ),
    output: Path | None = typer.Option(
        None, "--output", "-o", help="Write the CSV here instead of standard output."
    ),
    as_of: str | None = typer.Option(
        None, "--as-of",
        help=f"Recommend as of this time, using only earlier events ({AS_OF_DEFAULT}).",
    ),
    raw: bool = typer.Option(
        False,
        "--raw",
        help="Write text cells as they are. By default a cell starting with = + - @, tab or CR "
        "gets a leading ' so spreadsheets do not run it as a formula; use --raw for "
        "programs that join on the ids.",
    ),
) -> None:
    """Recommend products per user: CSV user_id,rank,product_id,score,reason."""
    import numpy as np
    import pandas as pd

    from campaign.app.models import fit_recommender
    from campaign.common.errors import InputError, NotFound
    from campaign.recommend.data import active_user_ids, user_external_ids, user_ids_by_external
    from campaign.recommend.service import recommend_with

    app_state = state(ctx)
    model_config = app_state.config().model
    config = app_state.config().recommender
    engine = app_state.engine()
    when = parse_when(as_of, "--as-of") or state(ctx).default_as_of()
    top = k or config.k
    with engine.connect() as connection:
        if user is not None:
            found = user_ids_by_external(connection, [user])
            if user not in found:
                raise NotFound("user", user)
            user_ids = np.asarray([found[user]], dtype=np.int64)
        else:
            user_ids = active_user_ids(connection, when)
        fitted = fit_recommender(connection, config, model_config, when)
        with progress_bar("recommending", len(user_ids)) as advance:
            result = recommend_with(fitted, config, user_ids, top, progress=advance)
        externals = user_external_ids(connection, user_ids.tolist())
    frame = pd.DataFrame(
        {
            "user_id": result["user_id"].map(externals),
            "rank": result["rank"],
            "product_id": result["product_external_id"],
            "score": result["score"],
            "reason": result["reason"],
        }
    )
    if output is None:
        _write_csv(frame, sys.stdout, raw)
        return
    try:
        with output.open("w", encoding="utf-8", newline="") as out:
            _write_csv(frame, out, raw)
    except OSError as exc:
        raise InputError(str(output), f"cannot write: {exc.strerror or exc}") from None
    console.print(
        f"wrote {len(frame)} recommendations for {frame['user_id'].nunique()} users to {output}",
        markup=False,
    )


EVALUATION_FIELDS = ("as_of", "k", "window_days", "train_users", "target_users_all",
                     "target_users_new")
METRIC_FIELDS = ("scope", "model", "recall", "ndcg", "coverage")
TOURNAMENT_FIELDS = ("version", "validation_at", "scope", "recipe", "users", "ndcg", "recall",
                     "winner")
SCOPE_TITLES = {
    "repeat": "repeat purchases allowed",
    "new": "new items only",
}


def tournament_table(rows: list[dict[str, object]], scope: str, title: str, top: int) -> Table:
    """A rich table of one scope's tournament rows (best first)."""
    table = Table(title=title, title_justify="left")
    table.add_column("recipe")
    table.add_column("users", justify="right")
    table.add_column(f"NDCG@{top}", justify="right")
    table.add_column(f"recall@{top}", justify="right")
    for row in rows:
        if row["scope"] != scope:
            continue

        def figure(value: object) -> str:
            return "n/a" if value is None else f"{float(str(value)):.4f}"

        table.add_row(str(row["recipe"]), count(int(str(row["users"] or 0))),
                      figure(row["ndcg"]), figure(row["recall"]))
    return table


def train_recommend_command(
    ctx: typer.Context,
    as_of: str | None = typer.Option(
        None, "--as-of",
        help=f"Train as of this time, on earlier events only ({AS_OF_DEFAULT}; capped "
        "just after the latest imported data, so the validation window holds it).",
    ),
) -> None:
    """Pick this shop's best recommender on its recent history, store it, activate if not worse."""
    from datetime import UTC, datetime

    from campaign.app import models

    app_state = state(ctx)
    config = app_state.config()
    when = parse_when(as_of, "--as-of") or app_state.default_as_of()
    with progress_bar("tournament", models.recommender_training_steps()) as advance:
        report = models.train_recommender(
            app_state.engine(), config.recommender, config.model, when,
            now=datetime.now(UTC), progress=advance,
        )
    result = report.tournament
    console.print(
        f"recommender version {report.version_id}: every candidate fitted on the events "
        f"before {result.validation_at:%Y-%m-%d %H:%M} UTC, judged on what users bought "
        f"in the {result.window_days} days to {result.as_of:%Y-%m-%d %H:%M} UTC",
        markup=False,
    )
    rows = result.table.to_dict("records")
    for scope in ("repeat", "new"):
        winner = result.winners.get(scope)
        figure = result.figure(scope, winner) if winner else None
        print_table(tournament_table(
            rows, scope, f"{SCOPE_TITLES[scope]}: {count(result.users.get(scope, 0))} users",
            result.k,
        ))
        if winner is not None and figure is not None:
            from campaign.recommend.recipe import recipe_name

            console.print(f"winner, {SCOPE_TITLES[scope]}: {recipe_name(winner)} "
                          f"(NDCG@{result.k} {figure:.4f})", markup=False)
    console.print(report.decision, markup=False)



def evaluate_recommend_command(
    ctx: typer.Context,
    as_of: str | None = typer.Option(
        None,
        "--as-of",
        help="Split time: fit before it, score purchases in the 30 days after (default: "
        "30 days before [clock] as_of when the config pins it, else before now).",
    ),
    k: int | None = typer.Option(
        None, "-k", "--k", min=1, max=100, help="Cut-off (default: [recommender] k)."
    ),
    fmt: OutputFormat = format_option(),
) -> None:
    """Offline recommender quality: recall@k, NDCG@k and coverage beside baselines."""
    from campaign.common.errors import NotFound
    from campaign.recommend.data import load_events, load_products, newest_event_time
    from campaign.recommend.evaluate import SCOPES, evaluate_recommenders
    from campaign.recommend.service import make_recommender

    app_state = state(ctx)
    config = app_state.config().recommender
    engine = app_state.engine()
    top = k or config.k
    with engine.connect() as connection:
        when = parse_when(as_of, "--as-of")
        if when is None:
            if newest_event_time(connection) is None:
                raise NotFound("events", "the database has no events to evaluate on")
            when = app_state.default_as_of() - timedelta(days=EVALUATION_WINDOW_DAYS)
        end = when + timedelta(days=EVALUATION_WINDOW_DAYS)
        weighted = {t for t, w in config.event_weights.items() if w > 0} | {"purchase"}
        events = load_events(connection, end, types=weighted)
        products = load_products(connection)
    with progress_bar("evaluating", None) as advance:
        result = evaluate_recommenders(
            events,
            products,
            when,
            make_recommender(config),
            event_weights=config.event_weights,
            half_life_days=config.half_life_days,
            k=top,
            window_days=EVALUATION_WINDOW_DAYS,
            progress=advance,
        )
    tournament = _tournament_rows(app_state)
    if fmt is not OutputFormat.table:
        emit({
            "evaluation": Section(
                EVALUATION_FIELDS,
                [{"as_of": when, "k": top, "window_days": EVALUATION_WINDOW_DAYS,
                  "train_users": result.train_users,
                  **{f"target_users_{scope}": result.target_users[scope] for scope in SCOPES}}],
            ),
            "metrics": Section(METRIC_FIELDS, records(result.metrics, METRIC_FIELDS)),
            "tournament": Section(TOURNAMENT_FIELDS, tournament),
        }, fmt)
        return
    console.print(
        f"as of {when:%Y-%m-%d %H:%M} UTC: fit on {count(result.train_users)} users' history, "
        f"scored on purchases in the next {EVALUATION_WINDOW_DAYS} days",
        markup=False,
    )
    titles = {
        "all": "all purchases (repurchases allowed)",
        "new": "new items only (never bought before T)",
    }
    for scope in SCOPES:
        table = Table(
            title=f"{titles[scope]}: {count(result.target_users[scope])} users",
            title_justify="left",
        )
        table.add_column("model")
        table.add_column(f"recall@{top}", justify="right")
        table.add_column(f"NDCG@{top}", justify="right")
        table.add_column("coverage", justify="right")
        for row in result.metrics.loc[result.metrics["scope"] == scope].itertuples():
            table.add_row(
                str(row.model),
                f"{row.recall:.4f}",
                f"{row.ndcg:.4f}",
                f"{row.coverage:.4f}",
            )
        print_table(table)
    if not tournament:
        console.print(
            "no recommender trained yet (campaign recommend uses the configured hybrid): "
            "`campaign train recommend` runs the tournament", markup=False,
        )
        return
    first = tournament[0]
    console.print(
        f"the active recommender, version {first['version']}: its tournament (fitted "
        f"before {first['validation_at']}, judged on the purchases after it)", markup=False,
    )
    for scope in ("repeat", "new"):
        winner = next((r["recipe"] for r in tournament if r["scope"] == scope and r["winner"]),
                      None)
        print_table(tournament_table(
            tournament, scope, f"{SCOPE_TITLES[scope]}: winner {winner}", top
        ))


def _tournament_rows(app_state: AppState) -> list[dict[str, object]]:
    """The active recommender version's tournament table as records (none: empty)."""
    from campaign.app.models import active_recommender

    active = active_recommender(app_state.engine(), app_state.config().model)
    if active is None:
        return []
    metrics = active.metrics
    winners = dict(metrics.get("winners", {}))
    return [
        {"version": active.id, "validation_at": metrics.get("validation_at"),
         "scope": row.get("scope"), "recipe": row.get("recipe"), "users": row.get("users"),
         "ndcg": row.get("ndcg"), "recall": row.get("recall"),
         "winner": winners.get(str(row.get("scope"))) == row.get("recipe")}
        for row in metrics.get("table", [])
    ]


# `campaign evaluate` and `campaign train` are the churn part's groups (cli/model.py);
# we add our commands to them.
evaluate_app.command("recommend")(evaluate_recommend_command)
train_app.command("recommend")(train_recommend_command)
