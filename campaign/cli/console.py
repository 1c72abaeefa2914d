"""``campaign console`` (the marketer's web console) and ``campaign users`` (its accounts)."""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime

import typer
from rich.table import Table

from campaign.cli.common import console, err_console, state

PASSWORD_ENV = "CAMPAIGN_PASSWORD"
ROLE_HELP = "marketer (templates), analyst (read only) or operator (everything)."

users_app = typer.Typer(help="Accounts of the console (campaign console).", no_args_is_help=True)


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _actor() -> str:
    from campaign.cli.daemon import operator_name

    return f"cli:{operator_name()}"


def _password(name: str) -> str:
    """The new password: ``$CAMPAIGN_PASSWORD`` (scripts), else asked twice, hidden."""
    from campaign.common.errors import InputError

    given = os.environ.get(PASSWORD_ENV)
    if given:
        return given
    if not sys.stdin.isatty():
        raise InputError(
            "password", f"no terminal to ask on: set {PASSWORD_ENV} to the new password"
        )
    value: str = typer.prompt(
        f"Password for {name}", hide_input=True, confirmation_prompt=True
    )
    return value


def console_command(
    ctx: typer.Context,
    host: str | None = typer.Option(
        None, "--host", help="Address to bind (default: [console] host)."
    ),
    port: int | None = typer.Option(
        None, "--port", min=1, max=65535, help="Port (default: [console] port, 8081)."
    ),
    log_level: str = typer.Option("info", "--log-level", help="uvicorn log level."),
) -> None:
    """Serve the marketer's console: campaigns, templates with live lint and preview.

    Log in with an account of campaign users add. Ctrl-C or SIGTERM stops it.
    """
    import logging

    from campaign.cli.serve import _check_port
    from campaign.common.errors import ConfigError
    from campaign.console.server import serve_console

    app_state = state(ctx)
    config = app_state.config(secrets=("console",))
    bind_host = host or config.console.host
    bind_port = port or config.console.port
    try:
        _check_port(config, bind_host, bind_port)
    except ConfigError as exc:
        raise ConfigError(config.source, "console.port", exc.reason) from None
    engine = app_state.engine()
    logging.basicConfig(level=log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    err_console.print(f"console on http://{bind_host}:{bind_port}", markup=False)
    serve_console(config, engine, clock=_utcnow, host=host, port=port, log_level=log_level)


@users_app.command("add")
def add_command(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Account name (letters, digits, _ . @ -)."),
    role: str = typer.Option("marketer", "--role", help=ROLE_HELP),
) -> None:
    """Add a console account; the password is asked (or read from $CAMPAIGN_PASSWORD)."""
    from campaign.app.accounts import add_account

    engine = state(ctx).engine()
    account = add_account(
        engine, name, role, _password(name), actor=_actor(), now=_utcnow()
    )
    console.print(f"account {account.name} added ({account.role})", markup=False)


@users_app.command("list")
def list_command(ctx: typer.Context) -> None:
    """List the console accounts: name, role, state, last login."""
    from campaign.app.accounts import list_accounts
    from campaign.cli.output import print_table

    accounts = list_accounts(state(ctx).engine())
    if not accounts:
        console.print("no console accounts (add one with: campaign users add NAME)")
        return
    table = Table(title="console accounts", title_justify="left")
    for column in ("name", "role", "state", "created", "last login"):
        table.add_column(column)
    for account in accounts:
        table.add_row(
            account.name, account.role, "disabled" if account.disabled else "enabled",
            f"{account.created_at:%Y-%m-%d %H:%M}",
            f"{account.last_login_at:%Y-%m-%d %H:%M}" if account.last_login_at else "never",
        )
    print_table(table)


@users_app.command("disable")
def disable_command(
    ctx: typer.Context, name: str = typer.Argument(..., help="Account name.")
) -> None:
    """Disable an account: it cannot log in, its open sessions end."""
    from campaign.app.accounts import disable_account

    disable_account(state(ctx).engine(), name, actor=_actor(), now=_utcnow())
    console.print(f"account {name} disabled", markup=False)


@users_app.command("reset")
def reset_command(
    ctx: typer.Context,
    name: str = typer.Argument(..., help="Account name."),
    role: str | None = typer.Option(None, "--role", help=f"Also change the role: {ROLE_HELP}"),
) -> None:
    """Set a new password (and role), enabling the account again; its sessions end."""
    from campaign.app.accounts import reset_account

    account = reset_account(
        state(ctx).engine(), name, _password(name), actor=_actor(), now=_utcnow(), role=role
    )
    console.print(f"account {account.name} reset ({account.role}, enabled)", markup=False)
