"""Run the console under uvicorn (``campaign console``)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import uvicorn
from sqlalchemy.engine import Engine

from campaign.config import Config
from campaign.console.app import create_app
from campaign.responses.server import run_until_stopped


def serve_console(
    config: Config,
    engine: Engine,
    *,
    clock: Callable[[], datetime],
    host: str | None = None,
    port: int | None = None,
    log_level: str = "info",
) -> None:
    """Serve until SIGINT/SIGTERM (in-flight requests finish); ``host``/``port``
    default to ``[console]``."""
    app = create_app(config, engine, clock=clock)
    uvicorn_config = uvicorn.Config(
        app,
        host=host or config.console.host,
        port=port or config.console.port,
        log_level=log_level,
        access_log=False,
        server_header=False,
    )
    run_until_stopped(uvicorn_config)
