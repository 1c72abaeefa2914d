"""The demo's customers answer through the real webhook server: the response app under
uvicorn on 127.0.0.1 in a thread, and signed Standard Webhooks events posted to it."""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from urllib.parse import urlsplit

import uvicorn
from sqlalchemy.engine import Engine

from campaign.common.errors import CampaignError
from campaign.common.signing import sign_headers
from campaign.config import Config

DEMO_SECRET = "demo-loop-webhook-secret"


@contextmanager
def running_server(config: Config, engine: Engine, *, clock_at: datetime) -> Iterator[str]:
    """The real response app under uvicorn on 127.0.0.1 (ephemeral port) in a thread.

    Yields its base URL; the app's clock is fixed at ``clock_at``. Stops it on exit.
    """
    from campaign.responses.app import create_app

    app = create_app(config, engine, clock=lambda: clock_at)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                           access_log=False, lifespan="on"))
    thread = threading.Thread(target=server.run, name="demo-webhooks", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise CampaignError("the demo's webhook server did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)


def post_webhooks(
    base_url: str, webhooks: Sequence[tuple[str, bytes]], *, at: datetime,
    progress: Callable[[int], None] | None = None,
) -> dict[int, int]:
    """POST each signed event to ``/webhooks/events``; returns HTTP status → count.

    Signed with :data:`DEMO_SECRET` and a timestamp of ``at`` (the server's clock);
    the event's own time travels in its body. One keep-alive connection (the standard
    library's client: httpx belongs to the delivery part).
    """
    counts: dict[int, int] = {}
    stamp = int(at.timestamp())
    target = urlsplit(base_url)
    connection = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port,
                                            timeout=30)
    try:
        for event_id, body in webhooks:
            headers = sign_headers(DEMO_SECRET, event_id, stamp, body)
            headers["content-type"] = "application/json"
            connection.request("POST", "/webhooks/events", body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            counts[response.status] = counts.get(response.status, 0) + 1
            if progress is not None:
                progress(1)
    finally:
        connection.close()
    return counts


def with_demo_secret(config: Config) -> Config:
    """``config`` whose server accepts events signed with :data:`DEMO_SECRET`."""
    from pydantic import SecretStr

    server = config.server.model_copy(update={"secrets": (SecretStr(DEMO_SECRET),)})
    return config.model_copy(update={"server": server})
