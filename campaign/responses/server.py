"""Run the response app under uvicorn (``campaign serve``, and the daemon later).

httptools and uvloop (``uvicorn[standard]``) are used when installed: about three
times the requests per second of h11 on asyncio. One process: the writer already
batches, and several workers on SQLite would only queue for its one write lock.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from collections.abc import Callable
from datetime import datetime

import uvicorn
from sqlalchemy.engine import Engine

from campaign.config import Config
from campaign.responses.app import create_app

log = logging.getLogger(__name__)


def serve(
    config: Config,
    engine: Engine,
    *,
    clock: Callable[[], datetime],
    host: str | None = None,
    port: int | None = None,
    log_level: str = "info",
) -> None:
    """Serve until SIGINT/SIGTERM (uvicorn finishes in-flight requests, then the
    writer commits what is queued). ``host``/``port`` default to ``[server]``."""
    server = config.server
    if not server.secrets:
        log.warning("no [server] secret_envs secret is set: generic webhook events get 401")
    app = create_app(config, engine, clock=clock)
    # The writer thread hands the GIL back and forth with the event loop at every
    # database round trip; at the default 5 ms switch interval a busy loop makes each
    # PostgreSQL batch wait tens of milliseconds for the GIL (a convoy).
    sys.setswitchinterval(0.0005)
    uvicorn_config = uvicorn.Config(
        app,
        host=host or server.host,
        port=port or server.port,
        loop="auto",
        http="auto",
        log_level=log_level,
        access_log=False,
        # Providers hold connections open between batches; keep them.
        timeout_keep_alive=30,
        server_header=False,
    )
    run_until_stopped(uvicorn_config)


def run_until_stopped(uvicorn_config: uvicorn.Config) -> None:
    """Run a uvicorn server until SIGINT/SIGTERM, in-flight requests finishing.

    uvicorn re-raises the signal that stopped it once it has shut down, so a graceful
    stop ended as "killed by SIGTERM"; it is a success (exit 0, as the daemon's): the
    re-raised signal lands on a handler that ignores it. The webhook server and the
    console both run this way.
    """
    in_main = threading.current_thread() is threading.main_thread()
    previous = {sig: signal.signal(sig, _ignore) for sig in _STOP_SIGNALS} if in_main else {}
    try:
        uvicorn.Server(uvicorn_config).run()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _ignore(signum: int, frame: object) -> None:
    """A signal handler that does nothing (see :func:`run_until_stopped`)."""
