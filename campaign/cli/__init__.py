"""The ``campaign`` command line (typer). Thin: parse options, call the core, print."""

from __future__ import annotations

from pathlib import Path

import typer

from campaign import __version__
from campaign.cli import (
    campaigns,
    console,
    coupons,
    daemon,
    db,
    demo,
    forget,
    imports,
    model,
    models,
    profile,
    prune,
    recommend,
    report,
    send,
    serve,
    status,
    templates,
    uplift,  # noqa: F401 - registers train, score and evaluate uplift
)
from campaign.cli.common import AppState, CampaignGroup

app = typer.Typer(
    name="campaign",
    cls=CampaignGroup,
    help="Finds the shop's customers who are about to leave and wins them back.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"campaign {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    ctx: typer.Context,
    config: Path | None = typer.Option(
        None,
        "--config",
        "-c",
        help="Config file (default: ./config.toml if present, else built-in defaults).",
        envvar="CAMPAIGN_CONFIG",
    ),
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks for expected errors."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    ctx.obj = AppState(config_path=config, debug=debug)


# In the order of the loop, so `campaign --help` reads like the product works.
app.command("demo")(demo.demo_command)
app.add_typer(db.app, name="db")
app.add_typer(imports.app, name="import")
app.command("segments")(profile.segments_command)
app.add_typer(model.train_app, name="train")
app.add_typer(model.score_app, name="score")
app.command("recommend")(recommend.recommend_command)
app.add_typer(model.evaluate_app, name="evaluate")
app.add_typer(models.app, name="models")
app.add_typer(templates.app, name="templates")
app.command("preview")(campaigns.preview_command)
app.command("run")(campaigns.run_command)
app.add_typer(coupons.app, name="coupons")
app.command("send")(send.send_command)
app.command("serve")(serve.serve_command)
app.command("console")(console.console_command)
app.add_typer(console.users_app, name="users")
app.command("report")(report.report_command)
app.command("daemon")(daemon.daemon_command)
app.command("worker")(daemon.worker_command)
app.command("status")(status.status_command)
app.command("pause")(daemon.pause_command)
app.command("resume")(daemon.resume_command)
app.command("forget")(forget.forget_command)
app.command("prune")(prune.prune_command)


def main() -> None:
    """Console-script entry point."""
    app()
