"""``campaign status``: what the sender and the scheduler are doing, at a glance."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import typer
from rich.table import Table

from campaign.cli.common import console, state
from campaign.cli.output import OutputFormat, Section, count, emit, format_option, print_table

if TYPE_CHECKING:
    from campaign.measurement.reports.status import StatusReport

def _when(value: Any, now: datetime | None = None) -> str:
    if not isinstance(value, datetime):
        return ""
    text = f"{value:%Y-%m-%d %H:%M}"
    if now is not None:
        seconds = (value - now).total_seconds()
        if abs(seconds) < 60:
            return f"{text} (now)"
        minutes = int(abs(seconds) // 60)
        span = f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"
        text += f" (in {span})" if seconds > 0 else f" ({span} ago)"
    return text


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def redacted(report: StatusReport) -> StatusReport:
    """The report with addresses and phone numbers masked in every free text."""
    from campaign.daemon.logging import redact

    for section in (report.errors, report.runs, report.pauses, report.pause_history):
        for row in section:
            for key in ("reason", "error"):
                if isinstance(row.get(key), str):
                    row[key] = redact(row[key])
    return report


def _print(report: StatusReport) -> None:
    now = report.now
    console.print(f"Status at {now:%Y-%m-%d %H:%M:%S} UTC (all times UTC)", markup=False)
    if report.outbox:
        statuses = sorted({r["status"] for r in report.outbox})
        channels = sorted({r["channel"] for r in report.outbox})
        by = {(r["channel"], r["status"]): r["messages"] for r in report.outbox}
        table = Table(title="Outbox by channel and status", title_justify="left")
        table.add_column("channel")
        for status in statuses:
            table.add_column(status, justify="right")
        for channel in channels:
            table.add_row(channel, *(count(by.get((channel, s), 0)) for s in statuses))
        print_table(table)
    else:
        console.print("Outbox: empty (nothing planned yet)")
    if report.queue:
        table = Table(title="Queue", title_justify="left")
        for name in ("channel", "queued", "due now", "retrying", "next due", "oldest queued",
                     "sending", "expired leases"):
            table.add_column(name, justify="left" if name == "channel" else "right")
        for r in report.queue:
            table.add_row(
                r["channel"], count(r["queued"]), count(r["due_now"]), count(r["retrying"]),
                _when(r["next_due_at"], now), _when(r["oldest_queued_at"], now),
                count(r["sending"]), count(r["expired_leases"]),
            )
        print_table(table)
    if report.errors:
        table = Table(title="Latest delivery errors", title_justify="left")
        for name in ("channel", "status", "messages", "last", "campaigns", "reason"):
            table.add_column(name, justify="right" if name in ("messages", "last") else "left")
        for r in report.errors:
            table.add_row(r["channel"], r["status"], count(r["messages"]), _when(r["last_at"]),
                          r["campaigns"], r["reason"])
        print_table(table)
    table = Table(title="Pauses", title_justify="left")
    for name in ("campaign", "state", "since", "by", "reason"):
        table.add_column(name, justify="right" if name == "since" else "left")
    for r in report.pauses:
        table.add_row("(all)" if r["campaign"] == "*" else r["campaign"], r["state"],
                      _when(r["at"]), _text(r["by"]), _text(r["reason"]))
    if report.pauses:
        print_table(table)
    else:
        console.print("Pauses: none (every campaign runs)")
    if report.pause_history:
        table = Table(title="Pause history (newest first)", title_justify="left")
        for name in ("at", "campaign", "action", "by", "reason"):
            table.add_column(name, justify="right" if name == "at" else "left")
        for r in report.pause_history:
            table.add_row(_when(r["at"]), "(all)" if r["campaign"] == "*" else r["campaign"],
                          r["action"], _text(r["by"]), _text(r["reason"]))
        print_table(table)
    if report.models:
        table = Table(title="Active models", title_justify="left")
        for name in ("kind", "version", "trained", "as of", "horizon days", "ROC AUC (holdout)"):
            table.add_column(name, justify="left" if name == "kind" else "right")
        for r in report.models:
            auc = r["roc_auc"]
            table.add_row(r["kind"], str(r["version"]), _when(r["trained_at"]),
                          _when(r["as_of"]), _text(r["horizon_days"]),
                          "n/a" if auc is None else f"{auc:.3f}")
        print_table(table)
    else:
        console.print("Active models: none (run campaign train)")
    if report.runs:
        table = Table(title="Last run of each campaign", title_justify="left")
        for name in ("campaign", "run", "slot", "status", "queued", "held out", "skipped",
                     "ranked by", "finished", "error"):
            table.add_column(name, justify="left" if name in ("campaign", "status", "error")
                             else "right")
        for r in report.runs:
            table.add_row(
                r["campaign"], str(r["run_id"]), _when(r["slot"]), r["status"],
                count(r["queued"]) if r["queued"] is not None else "",
                count(r["held_out"]) if r["held_out"] is not None else "",
                count(r["skipped"]) if r["skipped"] is not None else "",
                _text(r["ranked_by"]), _when(r["finished_at"]), _text(r["error"]),
            )
        print_table(table)
        for r in report.runs:
            # A run that could not rank as configured (no uplift model yet) says why.
            if r.get("targeting") and " instead of " in str(r["targeting"]):
                console.print(f"{r['campaign']}: {r['targeting']}", markup=False,
                              soft_wrap=True)
    else:
        console.print("Runs: none yet")
    if report.senders:
        table = Table(title="Senders", title_justify="left")
        for name in ("owner", "kind", "started", "last heartbeat", "alive"):
            table.add_column(name, justify="right" if name in ("started", "last heartbeat")
                             else "left")
        for r in report.senders:
            table.add_row(r["owner"], r["kind"], _when(r["started_at"]),
                          _when(r["heartbeat_at"], now), "yes" if r["alive"] else "no")
        print_table(table)


def status_command(
    ctx: typer.Context,
    fmt: OutputFormat = format_option(),
    errors: int = typer.Option(10, "--errors", min=1, help="Error groups shown."),
) -> None:
    """Show the outbox by channel and status, due times, the latest errors with their
    reasons, pauses (who, why, when), active models, the last runs and the senders."""
    from campaign.app.campaigns import agent_status
    from campaign.measurement.reports.status import FIELDS

    app_state = state(ctx)
    config = app_state.config()
    now = datetime.now(UTC)
    report = redacted(agent_status(app_state.engine(), config, now=now, errors=errors))
    if fmt is OutputFormat.table:
        _print(report)
        return
    sections = {name: Section(FIELDS[name], rows) for name, rows in report.sections().items()}
    sections = {"status": Section(("now",), [{"now": now}]), **sections}
    emit(sections, fmt)
