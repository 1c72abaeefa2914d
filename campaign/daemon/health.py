"""``/healthz`` and ``/metrics`` on a local port (``[daemon] health_host/health_port``).

A tiny ``http.server`` in a thread: health checks must answer even when the event
loops of the sender or the response server are busy, and it needs no dependency.

``/healthz`` answers 200 when the database is reachable, the sender loop runs and,
on the leader, the scheduler runs; otherwise 503. The JSON body says which part is
unwell and shows the newest run of every campaign.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from sqlalchemy.engine import Engine

from campaign.daemon.metrics import Metrics, _latest_runs

log = logging.getLogger("campaign.daemon")


def database_status(engine: Engine) -> str:
    """``"ok"`` or the first line of the connection error."""
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return "ok"
    except Exception as exc:
        return (str(exc).strip().splitlines() or ["error"])[0][:300]


def last_runs(engine: Engine) -> dict[str, dict[str, Any]]:
    """Campaign → its newest run (slot, status, finished_at, error); read-only."""
    with engine.connect() as connection:
        return {
            row.campaign: {
                "slot": row.slot.isoformat(),
                "status": row.status,
                "finished_at": row.finished_at.isoformat() if row.finished_at else None,
                "error": row.error,
            }
            for row in _latest_runs(connection)
        }


def health_report(
    engine: Engine,
    *,
    role: str,
    leader: bool,
    scheduler_running: bool,
    sender_alive: bool | None,
    started_at: datetime,
    now: datetime,
) -> tuple[int, dict[str, Any]]:
    """The HTTP status and JSON body of ``/healthz``."""
    database = database_status(engine)
    runs: dict[str, Any] = {}
    if database == "ok":
        try:
            runs = last_runs(engine)
        except Exception as exc:  # a half-migrated database: say so, stay up
            database = f"cannot read campaign_runs: {exc}"[:300]
    problems = []
    if database != "ok":
        problems.append("database")
    if sender_alive is False:
        problems.append("sender")
    if leader and not scheduler_running:
        problems.append("scheduler")
    body = {
        "status": "ok" if not problems else "unhealthy",
        "problems": problems,
        "role": role,
        "scheduler": {"leader": leader, "running": scheduler_running},
        "sender": {"alive": sender_alive},
        "database": database,
        "started_at": started_at.isoformat(),
        "now": now.isoformat(),
        "last_runs": runs,
    }
    return (200 if not problems else 503), body


class HealthServer:
    """Serves ``/healthz`` (from ``report()``) and ``/metrics`` (from ``metrics``)."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        report: Callable[[], tuple[int, dict[str, Any]]],
        metrics: Metrics,
    ) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                path = self.path.split("?", 1)[0]
                try:
                    if path == "/healthz":
                        status, body = outer.report()
                        payload = json.dumps(body, default=str).encode()
                        content_type = "application/json"
                    elif path == "/metrics":
                        status, payload = 200, generate_latest(outer.metrics.registry)
                        content_type = CONTENT_TYPE_LATEST
                    else:
                        status, payload, content_type = 404, b"not found\n", "text/plain"
                except Exception:
                    log.error("daemon.health.failed path=%s", path, exc_info=True)
                    status, payload, content_type = 500, b"internal error\n", "text/plain"
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.report = report
        self.metrics = metrics
        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
            name="health", daemon=True,
        )

    @property
    def port(self) -> int:
        """The bound port (useful with port 0 in tests)."""
        return int(self._server.server_address[1])

    def start(self) -> None:
        """Serve in a background thread."""
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        self._server.shutdown()
        self._server.server_close()
