"""``campaign forget USER``: erase a person's personal data (GDPR Art. 17)."""

from __future__ import annotations

from datetime import UTC, datetime

import typer

from campaign.cli.common import console, state


def forget_command(
    ctx: typer.Context,
    user: str = typer.Argument(..., help="The shop's own user id (users.csv user_id)."),
) -> None:
    """Erase a user's contact details and message texts; keep counts; never message again.

    Email, phone, name, attributes, rendered messages and response payloads are
    removed; events and message rows stay for aggregate reports; the addresses stay
    only as hashed suppressions on all channels. Safe to repeat.
    """
    from campaign.responses.forget import forget_user

    engine = state(ctx).engine()
    report = forget_user(engine, user, now=datetime.now(UTC))
    again = " (was already forgotten)" if report.already_forgotten else ""
    console.print(
        f"forgot user {report.user}{again}: {report.messages_scrubbed} message(s) and "
        f"{report.responses_scrubbed} response(s) scrubbed, "
        f"{report.suppressions_added} suppression(s) added",
        markup=False,
        soft_wrap=True,
    )
