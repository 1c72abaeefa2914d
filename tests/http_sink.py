"""A real HTTP server on 127.0.0.1 in a thread that records requests and misbehaves on cue.

Actions, consumed in order per idempotency key (``plan``) or globally (``script``), else
``ok``:

* ``"ok"`` - 200 with ``{"id": "prov-<n>", "sid": "SM<n>"}`` and ``X-Message-Id``;
* ``"500"``, ``"400"``, any status code;
* ``"429:7"`` - 429 with ``Retry-After: 7``; ``"429:date:7"`` - the HTTP-date form;
* ``"hang"`` - sleep ``hang_seconds`` before answering (past the client's timeout);
* ``"drop"`` - close the connection without an answer.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class _Server(ThreadingHTTPServer):
    # The default backlog of 5 drops SYNs under concurrent connects (ConnectTimeout).
    request_queue_size = 256
    daemon_threads = True


@dataclass
class Recorded:
    """One request the sink received (whatever it answered)."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    action: str

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def key(self) -> str | None:
        return self.headers.get("idempotency-key")


class HttpSink:
    """Start with ``with HttpSink() as sink:``; ``sink.url`` is its base URL."""

    def __init__(self, hang_seconds: float = 2.0) -> None:
        self.hang_seconds = hang_seconds
        self.requests: list[Recorded] = []
        self._script: deque[str] = deque()
        self._plans: dict[str, deque[str]] = {}
        self._lock = threading.Lock()
        self._counter = 0
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                headers = {k.lower(): v for k, v in self.headers.items()}
                if len(body) < length:
                    # The client died mid-request: nothing arrived that could be accepted.
                    with sink._lock:
                        sink.requests.append(
                            Recorded("POST", self.path, headers, body, "incomplete")
                        )
                    self.close_connection = True
                    return
                action = sink._next_action(headers.get("idempotency-key"))
                with sink._lock:
                    sink._counter += 1
                    n = sink._counter
                    sink.requests.append(Recorded("POST", self.path, headers, body, action))
                if action == "drop":
                    self.close_connection = True
                    try:
                        self.connection.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    return
                if action == "hang":
                    time.sleep(sink.hang_seconds)
                    action = "ok"
                extra: dict[str, str] = {}
                if action == "ok":
                    status = 200
                    payload = json.dumps({"id": f"prov-{n}", "sid": f"SM{n}"}).encode()
                    extra["X-Message-Id"] = f"xmsg-{n}"
                else:
                    parts = action.split(":")
                    status = int(parts[0])
                    payload = json.dumps({"error": action}).encode()
                    if status == 429 and len(parts) == 2:
                        extra["Retry-After"] = parts[1]
                    elif status == 429 and len(parts) == 3:
                        when = datetime.now(UTC) + timedelta(seconds=int(parts[2]))
                        extra["Retry-After"] = format_datetime(when, usegmt=True)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for key, value in extra.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except OSError:
                    pass

        self._server = _Server(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def script(self, *actions: str) -> None:
        """Answer the next requests (any key) with these actions, in order."""
        with self._lock:
            self._script.extend(actions)

    def plan(self, key: str, *actions: str) -> None:
        """Answer the next requests carrying idempotency ``key`` with these actions."""
        with self._lock:
            self._plans.setdefault(key, deque()).extend(actions)

    def _next_action(self, key: str | None) -> str:
        with self._lock:
            if key is not None and self._plans.get(key):
                return self._plans[key].popleft()
            if self._script:
                return self._script.popleft()
        return "ok"

    def accepted(self) -> list[Recorded]:
        """Requests that were answered 2xx."""
        return [r for r in self.requests if r.action in ("ok", "hang")]

    def __enter__(self) -> HttpSink:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
