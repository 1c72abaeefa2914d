"""``campaign import users|products|events|responses|experiments FILE.csv``: validated
bulk import; ``campaign import events`` also takes ``FILE.parquet`` or a folder of
Parquet files."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from campaign.cli.common import console, err_console, progress_bar, state

if TYPE_CHECKING:
    from campaign.ingest.readers import Kind

app = typer.Typer(
    help="Import the shop's users, products, events, responses, past experiments or"
    " suppressions from CSV, events also from Parquet"
    " (docs/import.md).",
    no_args_is_help=True,
)

_FILE = typer.Argument(..., help="The CSV file (UTF-8, comma-separated, header row).")
_EVENTS_FILE = typer.Argument(
    ...,
    help="The CSV file, a Parquet file (FILE.parquet), or a folder of Parquet files as a"
    " lake export writes them (partition folders too); Parquet needs the parquet extra.",
)
_SKIP = typer.Option(
    False,
    "--skip-invalid",
    help="Import the valid rows and write the rejected ones to a side file.",
)
_STRICT = typer.Option(
    False,
    "--strict",
    help="Refuse the file when a column looks like a mistyped one (e_mail for email) "
    "instead of keeping it as an attribute with a warning.",
)
_REJECTS = typer.Option(
    None,
    "--rejects",
    help="Where --skip-invalid writes rejected rows (default: FILE.rejected.csv).",
)


def _run(
    ctx: typer.Context,
    kind: Kind,
    file: Path,
    skip_invalid: bool,
    rejects: Path | None,
    strict: bool = False,
) -> None:
    from campaign.common.errors import InputError
    from campaign.ingest import count_rows, import_file

    if rejects is not None and not skip_invalid:
        raise typer.BadParameter("--rejects needs --skip-invalid", param_hint="--rejects")
    app_state = state(ctx)
    engine = app_state.engine()
    config = app_state.config()
    media = {name: channel.medium for name, channel in config.channels.items()}
    with progress_bar(f"importing {file.name}", count_rows(file)) as advance:
        report = import_file(
            engine,
            kind,
            file,
            skip_invalid=skip_invalid,
            rejects_path=rejects,
            progress=advance,
            now=datetime.now(UTC),
            media=media,
            currency=config.shop.currency,
            phone_region=config.shop.phone_region,
            strict=strict,
        )
    for warning in report.warnings:
        err_console.print(f"warning: {warning}", markup=False, soft_wrap=True)
    console.print(report.summary(), markup=False, soft_wrap=True)
    if report.all_rejected:
        # --skip-invalid must not turn a file of nothing but bad rows into a success.
        raise InputError(
            report.source,
            f"every row was rejected ({report.rejected}); nothing imported",
        )


@app.command("users")
def users_command(
    ctx: typer.Context,
    file: Path = _FILE,
    skip_invalid: bool = _SKIP,
    rejects: Path | None = _REJECTS,
    strict: bool = _STRICT,
) -> None:
    """Upsert users on user_id (never lifts a suppression)."""
    _run(ctx, "users", file, skip_invalid, rejects, strict)


@app.command("products")
def products_command(
    ctx: typer.Context,
    file: Path = _FILE,
    skip_invalid: bool = _SKIP,
    rejects: Path | None = _REJECTS,
    strict: bool = _STRICT,
) -> None:
    """Upsert products on product_id."""
    _run(ctx, "products", file, skip_invalid, rejects, strict)


@app.command("events")
def events_command(
    ctx: typer.Context,
    file: Path = _EVENTS_FILE,
    skip_invalid: bool = _SKIP,
    rejects: Path | None = _REJECTS,
    strict: bool = _STRICT,
) -> None:
    """Add events from CSV or Parquet (deduplicated on event_id, or on content without
    one)."""
    _run(ctx, "events", file, skip_invalid, rejects, strict)


@app.command("responses")
def responses_command(
    ctx: typer.Context,
    file: Path = _FILE,
    skip_invalid: bool = _SKIP,
    rejects: Path | None = _REJECTS,
    strict: bool = _STRICT,
) -> None:
    """Add message responses (unknown message ids are kept as unmatched)."""
    _run(ctx, "responses", file, skip_invalid, rejects, strict)


@app.command("experiments")
def experiments_command(
    ctx: typer.Context,
    file: Path = _FILE,
    skip_invalid: bool = _SKIP,
    rejects: Path | None = _REJECTS,
) -> None:
    """Upsert past A/B tests (user_id,campaign,group,assigned_at,converted) for the uplift
    model."""
    _run(ctx, "experiments", file, skip_invalid, rejects)


@app.command("suppressions")
def suppressions_command(ctx: typer.Context, file: Path = _FILE) -> None:
    """Add a do-not-contact list (address, channel, reason), e.g. from another provider."""
    from campaign.ingest.suppressions import import_suppressions

    app_state = state(ctx)
    config = app_state.config()
    report = import_suppressions(
        app_state.engine(),
        file,
        now=datetime.now(UTC),
        channels=set(config.channels),
        phone_region=config.shop.phone_region,
    )
    console.print(report.summary(), markup=False, soft_wrap=True)
