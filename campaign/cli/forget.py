"""``campaign forget USER``: erase a person's personal data (GDPR Art. 17)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

import typer

from campaign.cli.common import console, err_console, state

if TYPE_CHECKING:
    from campaign.responses.forget import ForgetReport


def _describe(report: ForgetReport) -> str:
    fields = ", ".join(report.erased_fields) or "no contact details"
    return (
        f"{fields}; {report.messages_scrubbed} message text(s) and "
        f"{report.responses_scrubbed} response payload(s) scrubbed, "
        f"{report.suppressions_added} suppression(s) added"
    )


def forget_command(
    ctx: typer.Context,
    user: str = typer.Argument(..., help="The shop's own user id (users.csv user_id)."),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Show what would be erased, with counts; change nothing."
    ),
    yes: bool = typer.Option(
        False, "--yes", "-y", help="Erase without asking (for scripts and tickets)."
    ),
) -> None:
    """Erase a user's contact details and message texts; keep counts; never message again.

    Email, phone, name, attributes, rendered messages and response payloads are
    removed; events and message rows stay for aggregate reports; the addresses stay
    only as hashed suppressions on all channels. Shows what would go and asks first
    unless --yes. Safe to repeat.
    """
    from campaign.common.errors import CampaignError
    from campaign.responses.forget import forget_user

    engine = state(ctx).engine()
    now = datetime.now(UTC)
    preview = forget_user(engine, user, now=now, dry_run=True)
    again = " (was already forgotten)" if preview.already_forgotten else ""
    if dry_run:
        console.print(
            f"would forget user {preview.user}{again}: {_describe(preview)} "
            "(dry run: nothing changed)",
            markup=False,
            soft_wrap=True,
        )
        return
    if not yes:
        err_console.print(
            f"about to forget user {preview.user}{again}: {_describe(preview)}",
            markup=False,
            soft_wrap=True,
        )
        # An erasure cannot be undone: no answer (a script without --yes) means no.
        try:
            confirmed = typer.confirm("Erase this for good?", default=False, err=True)
        except typer.Abort:  # end of input: finish the prompt's line
            err_console.print()
            confirmed = False
        if not confirmed:
            raise CampaignError(f"user {user} not forgotten: not confirmed (--yes skips asking)")
    report = forget_user(engine, user, now=now)
    console.print(
        f"forgot user {report.user}{again}: {_describe(report)}",
        markup=False,
        soft_wrap=True,
    )
