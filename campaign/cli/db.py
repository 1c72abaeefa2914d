"""``campaign db``: schema management."""

from __future__ import annotations

import typer

from campaign.cli.common import console, state

app = typer.Typer(help="Database schema management.", no_args_is_help=True)


@app.command("upgrade")
def upgrade_command(
    ctx: typer.Context,
    url: str | None = typer.Option(None, "--url", help="Database URL; overrides the config."),
) -> None:
    """Apply every pending migration (safe to run again; run it first after upgrading)."""
    from campaign.db.engine import check_supported, make_engine, mask_url
    from campaign.db.migrate import current_revision, upgrade

    config = state(ctx).config()
    target = url or config.database_url()
    check_supported(target)
    engine = make_engine(target, busy_timeout_seconds=config.database.busy_timeout_seconds)
    try:
        before = current_revision(engine)
        upgrade(engine)
        after = current_revision(engine)
    finally:
        engine.dispose()
    if before == after:
        console.print(f"{mask_url(target)}: already at revision {after}")
    else:
        console.print(f"{mask_url(target)}: upgraded {before or 'empty'} -> {after}")
