"""``campaign run`` and ``campaign preview``: plan a campaign run, or look before you leap."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from campaign.cli.common import (
    AS_OF_DEFAULT,
    AppState,
    console,
    err_console,
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
    print_table,
    records,
)

if TYPE_CHECKING:
    from campaign.config import Config
    from campaign.planner.outcomes import RunReport


def _times(
    default_as_of: datetime, as_of: str | None, slot: str | None
) -> tuple[datetime, datetime]:
    """as_of defaults to now (or the config's pinned clock).

    The slot of a manual run is the as-of date at 00:00 UTC.
    """
    when = parse_when(as_of, "--as-of") or default_as_of
    slot_at = parse_when(slot, "--slot") or when.replace(hour=0, minute=0, second=0, microsecond=0)
    return when, slot_at


def _real_now() -> datetime:
    """The real clock. A pinned ``[clock] as_of`` picks what a run looks at, never when
    its messages are due or expire, nor its coupons' validity (docs/planning.md)."""
    return datetime.now(UTC)


class _Terminated(KeyboardInterrupt):
    """SIGTERM during a run: unwinds like Ctrl-C, so the transaction rolls back."""


@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    def handle(_signum: int, _frame: FrameType | None) -> None:
        raise _Terminated

    previous = signal.signal(signal.SIGTERM, handle)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _counts_table(report: RunReport) -> Table:
    table = Table(title=f"{report.campaign} at {report.slot:%Y-%m-%d %H:%M} UTC")
    table.add_column("outcome")
    table.add_column("users", justify="right")
    for key in ("queued", "held_out", "skipped"):
        if key in report.counts:
            table.add_row(key, count(report.counts[key]))
    for key, value in sorted(report.counts.items()):
        if key.startswith("skipped."):
            table.add_row(f"  {key.split('.', 1)[1]}", count(value))
    for key in ("learning.queued", "learning.held_out"):
        if key in report.counts:
            table.add_row(f"{key.replace('.', ' ')} (in the above)", count(report.counts[key]))
    return table


def run_command(
    ctx: typer.Context,
    campaign: str = typer.Argument(..., help="Campaign name from the config."),
    as_of: str | None = typer.Option(
        None, "--as-of", help=f"Score and recommend as of this time ({AS_OF_DEFAULT})."
    ),
    slot: str | None = typer.Option(
        None, "--slot", help="Scheduled slot this run fills (default: the as-of date, 00:00 UTC)."
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Decide and render; write nothing."),
    test_to: Path | None = typer.Option(
        None, "--test-to", help="Send real messages of a few sample users to the seed "
        "addresses in this file (one a line) only.", exists=True, dir_okay=False,
    ),
) -> None:
    """Plan one run of a campaign: every decision goes to the outbox in one transaction."""
    from campaign.app import runs
    from campaign.db.migrate import require_current
    from campaign.planner.content import validate_campaign_templates
    from campaign.planner.outcomes import ALREADY_PLANNED, PAUSED
    from campaign.planner.preview import open_read_only

    app_state = state(ctx)
    # Planning signs unsubscribe links and tells the shop of new codes; a dry run neither.
    config = app_state.config(secrets=() if dry_run else ("links", "shop"))
    validate_campaign_templates(config)
    when, slot_at = _times(app_state.default_as_of(), as_of, slot)
    if test_to is not None:
        report = runs.test_send(
            app_state.engine(), config, campaign, test_to.read_text(encoding="utf-8"),
            str(test_to), as_of=when, now=_real_now,
        )
        console.print(f"test send of {campaign}: {count(len(report.messages))} message(s) queued")
        for message in report.messages:
            console.print(
                f"  {message.address} <- {message.channel} ({message.variant}) as "
                f"{message.external_id}: {message.subject or message.text[:60]}",
                markup=False,
            )
        return
    engine = open_read_only(app_state.database_url()) if dry_run else app_state.engine()
    try:
        if dry_run:
            require_current(engine)
        with _terminate_as_interrupt(), progress_bar(f"planning {campaign}", None) as advance:
            report = runs.plan(
                engine, config, campaign, as_of=when, slot=slot_at, dry_run=dry_run,
                progress=advance, now=_real_now,
            )
    except KeyboardInterrupt as exc:
        # One line, no traceback: the run's transaction rolled back as it unwound.
        how = "terminated" if isinstance(exc, _Terminated) else "interrupted"
        err_console.print(
            f"{how}: run of {campaign} rolled back, nothing planned and no coupon reserved",
            markup=False,
        )
        raise typer.Exit(143 if isinstance(exc, _Terminated) else 130) from None
    finally:
        if dry_run:
            engine.dispose()
    if report.outcome in (PAUSED, ALREADY_PLANNED):
        for note in report.notes:
            console.print(note, markup=False)
        return
    print_table(_counts_table(report))
    if report.targeting:
        console.print(report.targeting, markup=False, soft_wrap=True)
    for note in report.notes:
        err_console.print(f"warning: {note}", markup=False)
    if dry_run:
        console.print("dry run: nothing was written, no coupon reserved")
    else:
        console.print(
            f"run {report.run_id} planned: {count(report.counts.get('queued', 0))} queued"
        )
        if report.run_id is not None:
            _notify_shop(config, app_state, report.run_id)


def _notify_shop(config: Config, app_state: AppState, run_id: int) -> None:
    """Announce the run's codes to the shop's checkout, when configured; a failure is a
    warning, not an error: the codes are reserved, the daemon (or `campaign coupons
    announce`) retries, and `campaign coupons export` has them."""
    from campaign.app.runs import announce_codes

    outcome = announce_codes(app_state.engine(), config, run_id, now=_real_now())
    if outcome is None or outcome.outcome == "nothing":
        return
    if outcome.outcome == "failed":
        err_console.print(
            f"warning: shop not told of the new coupon codes ({outcome.error}); "
            "the daemon retries it (or run `campaign coupons announce`), and "
            "`campaign coupons export` lists them", markup=False, soft_wrap=True,
        )
        return
    console.print(f"shop told of {count(outcome.codes)} new coupon code(s)")


DECISION_FIELDS = ("user_id", "risk", "tier", "channel", "status", "skip_reason", "variant",
                   "coupon_code", "percent_off", "subject", "error", "uplift",
                   "uplift_segment", "learning")
MESSAGE_FIELDS = ("user_id", "channel", "medium", "variant", "template", "locale", "subject",
                  "text", "coupon_code", "percent_off", "products")


def preview_sections(report: RunReport, limit: int) -> dict[str, Section]:
    """A preview for ``--format json|csv`` (fields in docs/output.md; no addresses)."""
    decisions = report.decisions.head(limit)
    rows = []
    if not decisions.empty:
        frame = decisions.rename(columns={"external_id": "user_id_shop"})
        for row in records(frame, [c for c in frame.columns if c != "user_id"]):
            row["user_id"] = row.pop("user_id_shop")
            row["error"] = row.pop("last_error", None)
            rows.append(row)
    return {
        "preview": Section(
            ("campaign", "slot", "as_of", "outcome", "ranked_by", "targeting", "notes"),
            [{"campaign": report.campaign, "slot": report.slot, "as_of": report.as_of,
              "outcome": report.outcome, "ranked_by": report.ranked_by,
              "targeting": report.targeting, "notes": " ".join(report.notes) or None}],
        ),
        "decisions": Section(DECISION_FIELDS, rows),
        "counts": Section(("outcome", "users"), [
            {"outcome": key, "users": value} for key, value in sorted(report.counts.items())
        ]),
        "messages": Section(MESSAGE_FIELDS, [
            {"user_id": m.external_id, "channel": m.channel, "medium": m.medium,
             "variant": m.variant, "template": m.template, "locale": m.locale,
             "subject": m.subject, "text": m.text, "coupon_code": m.coupon_code,
             "percent_off": m.percent_off, "products": [p.get("id") for p in m.products]}
            for m in report.messages[:limit]
        ]),
    }


def preview_command(
    ctx: typer.Context,
    campaign: str = typer.Argument(..., help="Campaign name from the config."),
    limit: int = typer.Option(10, "--limit", min=1, help="Rows shown and messages rendered."),
    user: str | None = typer.Option(None, "--user", help="Only this user (the shop's id)."),
    as_of: str | None = typer.Option(
        None, "--as-of", help=f"As of this time ({AS_OF_DEFAULT})."
    ),
    html: Path | None = typer.Option(
        None, "--html", help="Also write an HTML page of the preview here.", dir_okay=False
    ),
    fmt: OutputFormat = format_option(),
) -> None:
    """Show who would get what and why, with rendered messages; writes and sends nothing."""
    from campaign.app.runs import preview
    from campaign.planner.content import validate_campaign_templates
    from campaign.planner.outcomes import PAUSED
    from campaign.planner.preview import write_preview_html

    config = state(ctx).config()
    validate_campaign_templates(config)
    when, slot_at = _times(state(ctx).default_as_of(), as_of, None)
    report = preview(
        state(ctx).database_url(), config, campaign, as_of=when, slot=slot_at,
        now=_real_now, limit=limit, user=user,
    )
    if fmt is not OutputFormat.table:
        emit(preview_sections(report, limit), fmt)
        if html is not None:
            write_preview_html(report, html)
            err_console.print(f"wrote {html}", markup=False)
        return
    if report.outcome == PAUSED:
        for note in report.notes:
            console.print(note, markup=False)
        return
    if user is not None and report.decisions.empty:
        console.print(
            f"user {user} is not in the audience of {campaign}: unknown, forgotten, or no"
            " churn score in the campaign's risk range",
            markup=False,
        )
        return
    table = Table(title=f"preview of {campaign} (nothing written)")
    table.add_column("user", no_wrap=True)
    table.add_column("risk", justify="right")
    table.add_column("channel", overflow="fold")
    table.add_column("decision", no_wrap=True)
    for column in ("variant", "coupon", "subject / error"):
        table.add_column(column, overflow="fold")
    for row in report.decisions.head(limit).itertuples(index=False):
        decision = f"skipped: {row.skip_reason}" if row.skip_reason else str(row.status)
        table.add_row(
            str(row.external_id), f"{row.risk:.2f}", str(row.channel), decision,
            str(row.variant or ""),
            f"-{row.percent_off}% {row.coupon_code}" if row.coupon_code else "",
            str(row.subject or row.last_error or ""),
        )
    print_table(table)
    print_table(_counts_table(report))
    if report.targeting:
        console.print(report.targeting, markup=False, soft_wrap=True)
    for message in report.messages[:3]:
        console.rule(f"{message.external_id} via {message.channel} ({message.variant})")
        if message.subject:
            console.print(f"Subject: {message.subject}", markup=False)
        console.print(message.text, markup=False)
        if message.products:
            picks = ", ".join(f"{p['id']} ({p['reason']})" for p in message.products)
            console.print(f"products: {picks}", markup=False)
    if html is not None:
        write_preview_html(report, html)
        console.print(f"wrote {html}")
