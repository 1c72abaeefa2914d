"""``campaign send``: drain the outbox (or requeue dead messages)."""

from __future__ import annotations

import signal
import threading
from datetime import UTC, datetime
from types import FrameType
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from campaign.cli.common import console, err_console, progress_bar, state
from campaign.cli.output import count, print_table

if TYPE_CHECKING:
    from campaign.delivery.sender import DrainReport


def _utcnow() -> datetime:
    return datetime.now(UTC)


def send_command(
    ctx: typer.Context,
    once: bool = typer.Option(
        False, "--once", help="Send what is due now, then exit (default: keep polling)."
    ),
    requeue_dead_: bool = typer.Option(
        False,
        "--requeue-dead",
        help="Move dead messages back to the queue (after fixing a provider), then exit.",
    ),
    campaign: str | None = typer.Option(
        None, "--campaign", help="With --requeue-dead: only this campaign's messages."
    ),
) -> None:
    """Deliver queued messages through their channels, with retries and quiet hours.

    Prints what happened with the reasons of failures. Without --once it keeps
    polling and logs every outcome (delivery.message.*, addresses masked); the first
    Ctrl-C or SIGTERM stops claiming and lets in-flight sends finish, a second one
    exits at once.
    """
    from campaign.delivery.outbox import count_due
    from campaign.delivery.sender import drain_outbox

    if campaign is not None and not requeue_dead_:
        raise typer.BadParameter("--campaign needs --requeue-dead", param_hint="--campaign")
    app_state = state(ctx)
    if requeue_dead_:
        config = app_state.config()
        engine = app_state.engine()
        if campaign is not None:
            config.campaign(campaign)
        from campaign.app.campaigns import requeue_dead_messages
        from campaign.cli.daemon import operator_name

        moved = requeue_dead_messages(
            engine, config, by=f"cli:{operator_name()}", now=_utcnow(), campaign=campaign
        )
        console.print(f"requeued {count(moved)} dead message(s)")
        return
    config = app_state.config(secrets=("send", "links"))
    engine = app_state.engine()
    if not once:
        from campaign.daemon.logging import configure_logging

        configure_logging(config.daemon.log_format, config.daemon.log_level)
    stop = threading.Event()
    previous = _install_stop_handlers(stop)
    if not once:
        err_console.print(
            "polling the outbox (Ctrl-C or SIGTERM: finish in-flight sends, then stop)",
            markup=False,
        )
    try:
        # Without --once more may come due while it runs: the bar then fills past it.
        with progress_bar("sending", count_due(engine, now=_utcnow())) as advance:
            report = drain_outbox(
                engine, config, once=once, now=_utcnow, progress=advance, stop=stop
            )
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    _print_report(report)


def _install_stop_handlers(stop: threading.Event) -> dict[int, Any]:
    def handle(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        err_console.print("stopping: finishing in-flight sends (again to quit now)")
        stop.set()

    previous: dict[int, Any] = {}  # whatever signal.signal returned: handler or constant
    for signum in (signal.SIGINT, signal.SIGTERM):
        previous[signum] = signal.signal(signum, handle)
    return previous


def _print_report(report: DrainReport) -> None:
    from campaign.daemon.logging import redact

    table = Table(title="delivery", show_header=True)
    table.add_column("outcome")
    table.add_column("messages", justify="right")
    table.add_row("sent", count(report.sent))
    table.add_row("retry later", count(report.retried))
    table.add_row("deferred (quiet hours)", count(report.deferred))
    table.add_row("dead", count(report.dead))
    for reason, n in sorted(report.skipped.items()):
        table.add_row(f"skipped: {reason}", count(n))
    if report.released:
        table.add_row("released (not sent)", count(report.released))
    if report.lost:
        table.add_row("lost to another sender (not sent)", count(report.lost))
    if report.stale:
        table.add_row("sent after the lease ran out", count(report.stale))
    if report.duplicates:
        table.add_row("sent twice (provider got a repeat)", count(report.duplicates))
    print_table(table)
    if report.reasons:
        reasons = Table(title="why (by channel)", title_justify="left")
        reasons.add_column("outcome")
        reasons.add_column("channel")
        reasons.add_column("messages", justify="right")
        reasons.add_column("reason", overflow="fold")
        for (outcome, channel, reason), n in sorted(
            report.reasons.items(), key=lambda item: (-item[1], item[0])
        ):
            label = "retry later" if outcome == "retry" else outcome
            reasons.add_row(label, channel, count(n), redact(reason))
        print_table(reasons)
    rate = report.finished / report.elapsed_seconds if report.elapsed_seconds else 0.0
    console.print(
        f"{count(report.claimed)} claimed, {count(report.requests)} provider request(s) in "
        f"{report.elapsed_seconds:.1f} s ({rate:,.0f} messages/s)"
    )
