"""``campaign daemon``, ``campaign worker``, ``campaign pause`` and ``campaign resume``."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import typer
from rich.table import Table

from campaign.cli.common import console, state

if TYPE_CHECKING:
    from campaign.config import Config


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _query_urls(config: Config, environ: Mapping[str, str]) -> dict[int, str]:
    """Resolve ``url_env`` of every ingest query (secrets live in the environment)."""
    from campaign.common.errors import ConfigError

    urls: dict[int, str] = {}
    for index, query in enumerate(config.daemon.ingest.queries):
        if query.url_env:
            value = environ.get(query.url_env)
            if not value:
                raise ConfigError(
                    config.source, f"daemon.ingest.queries[{index}].url_env",
                    f"environment variable {query.url_env} is not set",
                )
            urls[index] = value
        elif query.url:
            urls[index] = query.url
    return urls


def _run(ctx: typer.Context, role: str, health_port: int | None, json_logs: bool) -> None:
    from campaign.config import load_config
    from campaign.daemon.lifecycle import EXIT_OK, Daemon
    from campaign.daemon.logging import configure_logging

    app_state = state(ctx)

    def with_flags(config: Config) -> Config:
        # Exactly the secrets this process's parts use: the sender (channels, link key),
        # and on a daemon the shop's coupon webhook and, when it serves, the receiver's.
        needs = ["send", "links"]
        if role == "daemon":
            needs.append("shop")
            if config.daemon.serve_responses:
                needs.append("serve")
        config.require_secrets(*needs)
        if health_port is None:
            return config
        return config.model_copy(
            update={"daemon": config.daemon.model_copy(update={"health_port": health_port})}
        )

    def reload() -> tuple[Config, dict[int, str]]:
        # SIGHUP: the same file (or ./config.toml) and environment as at start.
        fresh = with_flags(load_config(app_state.config_path))
        return fresh, _query_urls(fresh, os.environ) if role == "daemon" else {}

    config = with_flags(app_state.config())
    engine = app_state.engine()
    configure_logging("json" if json_logs else config.daemon.log_format, config.daemon.log_level)
    if role == "worker" and engine.dialect.name != "postgresql":
        logging.getLogger("campaign.daemon").warning(
            "a worker on SQLite adds no throughput (one writer): use PostgreSQL for several"
        )
    daemon = Daemon(
        engine, config, clock=_utcnow, role=role,
        query_urls=_query_urls(config, os.environ) if role == "daemon" else {},
        reload_config=reload,
    )
    daemon.install_signal_handlers()
    code = daemon.run()
    engine.dispose()
    sys.stderr.flush()
    if code != EXIT_OK:
        # Threads may still hold a send or a planning transaction: do not wait for them.
        os._exit(code)


def daemon_command(
    ctx: typer.Context,
    health_port: int | None = typer.Option(
        None, "--health-port", min=0, max=65535,
        help="Port of /healthz and /metrics (default: [daemon] health_port; 0: off).",
    ),
    json_logs: bool = typer.Option(False, "--json-logs", help="Log one JSON object per line."),
) -> None:
    """Run the agent: scheduled campaigns, retraining, ingest and coupon announcements, the
    sender, health.

    On PostgreSQL any number of daemons may run: one holds the scheduler (advisory
    lock) and another takes over if it dies; all of them send. On SQLite a second
    daemon on the same file refuses to start. The first SIGTERM or Ctrl-C stops
    gracefully ([daemon] shutdown_grace_seconds), a second one at once. SIGHUP
    reloads the config (campaigns, schedules, delivery, channels) without a restart;
    a config that does not load is refused and the old one stays.
    """
    _run(ctx, "daemon", health_port, json_logs)


def worker_command(
    ctx: typer.Context,
    health_port: int | None = typer.Option(
        None, "--health-port", min=0, max=65535,
        help="Port of /healthz and /metrics (default: [daemon] health_port; 0: off).",
    ),
    json_logs: bool = typer.Option(False, "--json-logs", help="Log one JSON object per line."),
) -> None:
    """Run an extra sender (no scheduler): add workers on PostgreSQL for throughput.

    Workers claim disjoint batches (FOR UPDATE SKIP LOCKED) and share each channel's
    rate limit among the live senders.
    """
    _run(ctx, "worker", health_port, json_logs)


def operator_name() -> str:
    """Who runs this command: the OS user (``$USER``/``$LOGNAME`` or the account name)."""
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (containers) and no $USER
        return f"uid {os.getuid()}"


def _switch(
    ctx: typer.Context, campaign: str | None, all_: bool, paused: bool, reason: str | None,
    by: str | None,
) -> None:
    from campaign.db.pauses import ALL, set_paused

    if (campaign is None) == (not all_):
        raise typer.BadParameter("name one CAMPAIGN or give --all", param_hint="CAMPAIGN")
    app_state = state(ctx)
    config = app_state.config()
    if campaign is not None:
        config.campaign(campaign)  # unknown names fail here with the known ones
    engine = app_state.engine()
    set_paused(
        engine, ALL if all_ else campaign, paused, now=_utcnow(),  # type: ignore[arg-type]
        reason=reason, by=by or operator_name(),
    )
    if all_:
        message = (
            "pause-all is on: nothing is planned or claimed" if paused
            else "pause-all is off (campaigns paused one by one stay paused)"
        )
    else:
        message = f"{campaign} {'paused' if paused else 'resumed'}"
    console.print(message, markup=False)
    _print_state(ctx)


def _when(at: datetime | None) -> str:
    return f"{at:%Y-%m-%d %H:%M} UTC" if at is not None else ""


def _print_state(ctx: typer.Context) -> None:
    from campaign.cli.output import print_table
    from campaign.db.pauses import ALL, switches

    app_state = state(ctx)
    config = app_state.config()
    with app_state.engine().connect() as connection:
        current = {s.campaign: s for s in switches(connection)}
    paused = {name: s for name, s in current.items() if s.paused}
    table = Table(title="campaign switches", title_justify="left")
    table.add_column("campaign")
    table.add_column("state")
    table.add_column("since", no_wrap=True)
    table.add_column("by")
    table.add_column("reason", overflow="fold")
    if ALL in paused:
        s = paused[ALL]
        table.add_row("(all)", "PAUSED", _when(s.at), s.by or "", s.reason or "")
    for campaign in config.campaigns:
        if campaign.name in paused:
            s = paused[campaign.name]
            table.add_row(campaign.name, "paused", _when(s.at), s.by or "", s.reason or "")
        elif campaign.paused:
            table.add_row(campaign.name, "paused in config.toml", "", "", "")
        else:
            table.add_row(campaign.name, "paused by --all" if ALL in paused else "running",
                          "", "", "")
    print_table(table)


BY_HELP = "Who does it, kept in the history (default: the OS user)."


def pause_command(
    ctx: typer.Context,
    campaign: str | None = typer.Argument(None, help="Campaign to pause (or --all)."),
    all_: bool = typer.Option(False, "--all", help="Pause every campaign (the pause-all switch)."),
    reason: str | None = typer.Option(
        None, "--reason", help="Why, shown by campaign status and pause/resume."
    ),
    by: str | None = typer.Option(None, "--by", help=BY_HELP),
) -> None:
    """Stop a campaign (or all) now: nothing more is planned or claimed for sending.

    Takes effect before the next outbox claim in every daemon and worker, without a
    restart; messages already being sent finish. Queued messages wait (they may
    expire). Every pause and resume is kept with who, why and when (campaign status
    shows them). Undo with campaign resume.
    """
    _switch(ctx, campaign, all_, True, reason, by)


def resume_command(
    ctx: typer.Context,
    campaign: str | None = typer.Argument(None, help="Campaign to resume (or --all)."),
    all_: bool = typer.Option(False, "--all", help="Lift the pause-all switch."),
    reason: str | None = typer.Option(None, "--reason", help="Why, kept in the history."),
    by: str | None = typer.Option(None, "--by", help=BY_HELP),
) -> None:
    """Undo campaign pause: planning and sending of the campaign (or all) go on."""
    _switch(ctx, campaign, all_, False, reason, by)
