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


@app.command("fix-money")
def fix_money_command(
    ctx: typer.Context,
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Report what would be rescaled; change nothing."
    ),
) -> None:
    """Once after upgrading: rescale amounts stored before money followed [shop] currency.

    Earlier versions stored every amount as hundredths of the currency unit, so a shop
    in a currency without two decimals (JPY, KWD, ...) has prices, event amounts and
    coupon minimum orders 100x (or 1/10) off. This rescales them once to the currency's
    minor units (docs/operations.md, Upgrades); for a two-decimal currency it only
    records that nothing needs doing. Safe to run again.
    """
    from campaign.db.money_fix import fix_money

    app_state = state(ctx)
    config = app_state.config()
    report = fix_money(app_state.engine(), config.shop.currency, dry_run=dry_run)
    console.print(report.summary(), markup=False, soft_wrap=True)
    if report.status == "applied":
        console.print(
            "retrain the churn model (`campaign train`): its spend inputs were in the old scale",
            markup=False,
        )
