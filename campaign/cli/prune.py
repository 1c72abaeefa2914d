"""``campaign prune --older-than DAYS``: the retention policy (docs/operations.md)."""

from __future__ import annotations

from datetime import UTC, datetime

import typer

from campaign.cli.common import console, err_console, progress_bar, state


def prune_command(
    ctx: typer.Context,
    older_than: int = typer.Option(
        ..., "--older-than", min=1, metavar="DAYS",
        help="Remove what is older than this many days (at least the longer of "
        "[attribution] window_days and [model] horizon_days).",
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Count what would be removed; change nothing."
    ),
    yes: bool = typer.Option(False, "--yes", "-y", help="Remove without asking."),
) -> None:
    """Remove old message texts, responses and browsing events; keep every report count.

    Finished messages lose their rendered texts (the rows stay); provider responses
    are deleted, their types kept on the message for the funnel; view, cart, search
    and visit events are deleted, purchases kept. Shows the counts and asks first
    unless --yes. Safe to interrupt and to run again.
    """
    from campaign.common.errors import CampaignError
    from campaign.db.retention import minimum_days, prune

    app_state = state(ctx)
    config = app_state.config()
    engine = app_state.engine()
    now = datetime.now(UTC)
    floor = minimum_days(config.attribution.window_days, config.model.horizon_days)
    preview = prune(engine, older_than_days=older_than, now=now, minimum=floor, dry_run=True)
    counts = (
        f"{preview.message_texts:,} message text(s), {preview.responses:,} response(s), "
        f"{preview.events:,} browsing event(s) from before {preview.cutoff:%Y-%m-%d %H:%M} UTC"
    )
    if dry_run or not preview.total:
        verb = "would remove" if preview.total else "nothing to remove:"
        console.print(f"{verb} {counts}" + (" (dry run: nothing changed)" if dry_run else ""),
                      markup=False, soft_wrap=True)
        return
    if not yes:
        err_console.print(f"about to remove {counts}", markup=False, soft_wrap=True)
        try:
            confirmed = typer.confirm("Remove them for good?", default=False, err=True)
        except typer.Abort:  # end of input: finish the prompt's line
            err_console.print()
            confirmed = False
        if not confirmed:
            raise CampaignError("nothing pruned: not confirmed (--yes skips asking)")
    with progress_bar("pruning", preview.total) as advance:
        report = prune(
            engine, older_than_days=older_than, now=now, minimum=floor, progress=advance
        )
    console.print(
        f"removed {report.message_texts:,} message text(s), {report.responses:,} response(s), "
        f"{report.events:,} browsing event(s) from before {report.cutoff:%Y-%m-%d %H:%M} UTC",
        markup=False, soft_wrap=True,
    )
