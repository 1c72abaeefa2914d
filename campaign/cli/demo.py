"""``campaign demo``: a ready-to-explore shop in ./campaign-demo (docs/demo.md)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from campaign.cli.common import console, progress_bar
from campaign.demo.constants import DEFAULT_SEED, DEFAULT_USERS, DEMO_AS_OF, MAX_USERS

if TYPE_CHECKING:
    from campaign.demo.steps import DemoStep, StepSummary


def _show(step: DemoStep, summary: StepSummary) -> None:
    # The title goes on its own line: as a table title it wraps to a narrow table's width.
    console.print(summary.title, style="bold", markup=False)
    table = Table(show_header=False, box=None, padding=(0, 2))
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for label, value in summary.lines:
        table.add_row(label, value)
    console.print(table)
    console.print()


def demo_command(
    directory: Path = typer.Option(
        Path("campaign-demo"), "--dir", help="Folder of the demo (config, database, data)."
    ),
    users: int | None = typer.Option(
        None, "--users", min=1, max=MAX_USERS,
        help=f"Customers to simulate (default {DEFAULT_USERS:,}; a reused folder keeps its own).",
    ),
    seed: int | None = typer.Option(
        None, "--seed",
        help=f"Seed of the generator (default {DEFAULT_SEED}; a reused folder keeps its own).",
    ),
    fresh: bool = typer.Option(
        False, "--fresh", help="Delete the demo folder and build it again from scratch."
    ),
) -> None:
    """Create campaign-demo/ (config.toml, SQLite database) and load a generated shop.

    Safe to run twice: a second run reuses the folder and changes nothing; --fresh
    recreates it. The demo uses its own config.toml, never --config or CAMPAIGN_*.
    """
    from campaign.db.engine import make_engine
    from campaign.demo.run import run_steps
    from campaign.demo.steps import (
        CONFIG_FILE,
        DemoContext,
        load_demo_config,
        prepare_folder,
    )

    settings, created = prepare_folder(
        directory, users=users, seed=seed, fresh=fresh, default_users=DEFAULT_USERS,
        default_seed=DEFAULT_SEED,
    )
    config = load_demo_config(directory)
    verb = "Creating" if created else "Reusing"
    console.print(
        f"{verb} the demo in {directory}/ ({settings.users:,} users, seed {settings.seed}, "
        f"clock fixed at {DEMO_AS_OF:%Y-%m-%d %H:%M} UTC)\n",
        markup=False, soft_wrap=True,
    )
    engine = make_engine(config.database_url())
    try:
        context = DemoContext(
            folder=directory, config=config, engine=engine, settings=settings,
            progress=progress_bar,
        )
        run_steps(context, on_step=_show)
    finally:
        engine.dispose()
    console.print(
        f"Next: cd {directory} and run any command there (it reads {CONFIG_FILE}), e.g. "
        "campaign preview winback, campaign report --html report.html, "
        f"campaign evaluate churn --as-of {DEMO_AS_OF:%Y-%m-%d}",
        markup=False, soft_wrap=True,
    )
