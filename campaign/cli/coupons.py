"""``campaign coupons export|redeem|announce``: the shop's checkout must know our codes."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from campaign.cli.common import console, err_console, state

if TYPE_CHECKING:
    import pandas as pd

app = typer.Typer(
    help="Coupon codes: export for the checkout, redeem from purchases.", no_args_is_help=True
)


def _parse_since(value: str | None) -> datetime | None:
    """``2026-11-01`` or ISO 8601 (naive means UTC) → aware UTC datetime."""
    from campaign.common.errors import InputError

    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InputError(
            "--since", f"{value!r} is not a date (YYYY-MM-DD) or ISO 8601 time"
        ) from None
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _iso(series: pd.Series) -> pd.Series:
    import pandas as pd

    return series.map(lambda v: "" if pd.isna(v) else v.strftime("%Y-%m-%dT%H:%M:%SZ"))


@app.command("export")
def export_command(
    ctx: typer.Context,
    since: str | None = typer.Option(None, "--since", help="Only codes issued at or after DATE."),
    output: Path | None = typer.Option(None, "--output", "-o", help="CSV file (default: stdout)."),
    raw: bool = typer.Option(
        False,
        "--raw",
        help="Write text cells as they are. By default a cell starting with = + - @, tab or CR "
        "gets a leading ' so spreadsheets do not run it as a formula; use --raw for "
        "programs that join on the ids.",
    ),
) -> None:
    """Write the issued codes as CSV for the shop's checkout.

    Columns: code,user_id,percent_off,min_order,issued_at,expires_at,redeemed_at;
    user_id is the shop's own id, min_order a decimal in the shop currency, times
    ISO 8601 UTC; redeemed_at is empty for unused codes. Read-only.
    """
    from campaign.common.errors import InputError
    from campaign.coupons.store import export_coupons

    config = state(ctx).config()
    engine = state(ctx).engine()
    with engine.connect() as connection:
        frame = export_coupons(connection, _parse_since(since), currency=config.shop.currency)
    from decimal import Decimal

    from campaign.common.exports import write_csv

    for column in ("issued_at", "expires_at", "redeemed_at"):
        frame[column] = _iso(frame[column])
    rows = [
        (r.code, r.user_id, int(r.percent_off), Decimal(r.min_order), r.issued_at, r.expires_at,
         r.redeemed_at)
        for r in frame.itertuples(index=False)
    ]
    if output is None:
        write_csv(sys.stdout, list(frame.columns), rows, raw=raw)
        return
    try:
        with output.open("w", encoding="utf-8", newline="") as out:
            write_csv(out, list(frame.columns), rows, raw=raw)
    except OSError as exc:
        raise InputError(str(output), f"cannot write: {exc.strerror or exc}") from None
    err_console.print(
        f"{len(frame):,} code(s) written to {output}", markup=False, soft_wrap=True
    )


@app.command("redeem")
def redeem_command(
    ctx: typer.Context,
    since: str | None = typer.Option(None, "--since", help="Only purchases at or after DATE."),
) -> None:
    """Mark coupons redeemed by imported purchase events carrying their code (idempotent)."""
    from campaign.coupons.store import redeem_from_events

    engine = state(ctx).engine()
    with engine.begin() as connection:
        report = redeem_from_events(connection, since=_parse_since(since))
    err_console.print(
        f"redeemed {report.redeemed}; ignored: {report.unknown_code} unknown code(s), "
        f"{report.wrong_user} issued to someone else, {report.expired} outside validity, "
        f"{report.already_redeemed} already redeemed",
        markup=False,
        soft_wrap=True,
    )


@app.command("announce")
def announce_command(ctx: typer.Context) -> None:
    """Tell the shop's checkout of codes it has not accepted yet ([shop] coupon_webhook_url).

    Retries every announcement that failed (whatever its backoff) and any recent run
    never announced; the daemon does the same every minute. Exit 1 when a run still
    failed.
    """
    from campaign.app.runs import announce_pending_codes
    from campaign.common.errors import InputError

    app_state = state(ctx)
    config = app_state.config()
    if not config.shop.coupon_webhook_url:
        raise InputError("[shop] coupon_webhook_url", "is not set: there is no shop to tell")
    config.require_secrets("shop")
    engine = app_state.engine()
    now = app_state.default_as_of()
    outcomes = announce_pending_codes(engine, config, now=now, ignore_backoff=True)
    if not outcomes:
        console.print("nothing to announce: the shop has every run's codes")
        return
    failed = 0
    for outcome in outcomes:
        if outcome.outcome == "announced":
            console.print(f"run {outcome.run_id}: shop told of {outcome.codes:,} code(s)")
        else:
            failed += 1
            err_console.print(
                f"run {outcome.run_id}: shop not told of {outcome.codes} code(s) "
                f"({outcome.error}); retried after {outcome.next_attempt_at:%Y-%m-%d %H:%M} UTC",
                markup=False, soft_wrap=True,
            )
    if failed:
        raise typer.Exit(1)
