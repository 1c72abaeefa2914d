"""Run the console under uvicorn (``campaign console``)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from datetime import datetime

import uvicorn
from sqlalchemy.engine import Engine

from campaign.config import Config
from campaign.console.app import create_app

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


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
    # uvicorn re-raises the signal that stopped it; a graceful stop is a success (exit 0).
    in_main = threading.current_thread() is threading.main_thread()
    previous = {sig: signal.signal(sig, _ignore) for sig in _STOP_SIGNALS} if in_main else {}
    try:
        uvicorn.Server(uvicorn_config).run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _ignore(signum: int, frame: object) -> None:
    """A signal handler that does nothing (see ``serve_console``)."""
