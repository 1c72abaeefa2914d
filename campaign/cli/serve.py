"""``campaign serve``: the response webhook server (uvicorn)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import typer

from campaign.cli.common import err_console, state

if TYPE_CHECKING:
    from campaign.config import Config


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _check_port(config: Config, host: str, port: int) -> None:
    """One line instead of uvicorn's bind error when the port is taken."""
    import socket

    from campaign.common.errors import ConfigError

    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        raise ConfigError(
            config.source, "server.port",
            f"cannot listen on {host}:{port} ({exc.strerror or exc}): another server or "
            "daemon uses it; stop it, or choose another with --port N or [server] port",
        ) from None


def serve_command(
    ctx: typer.Context,
    host: str | None = typer.Option(
        None, "--host", help="Address to bind (default: [server] host)."
    ),
    port: int | None = typer.Option(
        None, "--port", min=1, max=65535, help="Port (default: [server] port)."
    ),
    log_level: str = typer.Option("info", "--log-level", help="uvicorn log level."),
) -> None:
    """Receive provider webhooks (events, Twilio, SendGrid) and unsubscribe links.

    Events are verified, deduplicated and stored; engagement moves forward only and
    unsubscribes, complaints and hard bounces suppress at once (docs/responses.md).
    Ctrl-C or SIGTERM finishes in-flight requests, then exits.
    """
    from campaign.responses.server import serve

    app_state = state(ctx)
    config = app_state.config(secrets=("serve", "links"))
    _check_port(config, host or config.server.host, port or config.server.port)
    engine = app_state.engine()
    logging.basicConfig(level=log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    err_console.print(
        f"serving responses on http://{host or config.server.host}:{port or config.server.port}",
        markup=False,
    )
    serve(config, engine, clock=_utcnow, host=host, port=port, log_level=log_level)
