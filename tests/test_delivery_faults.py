"""Provider faults through the real sender on every provider kind, on SQLite and PostgreSQL.

Twilio and SendGrid run against a real HTTP server on 127.0.0.1, SMTP against a real
aiosmtpd server: a 500 (SMTP 451), a 429 with ``Retry-After`` (SMTP 421), a hang past
the timeout and a connection reset each retry with the same idempotency key and end
``sent``; only a hang (the provider may have accepted) can reach the provider twice.
Then a SIGKILL loop of real sender processes on each kind loses nothing.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from email import message_from_bytes
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import pytest
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from campaign.db.engine import make_engine
from campaign.db.models import Message
from campaign.delivery.sender import drain_outbox
from tests.delivery_helpers import (
    ALWAYS_OPEN,
    Clock,
    delivery_config,
    fault_channel,
    seed,
    statuses,
)
from tests.http_sink import HttpSink, Recorded

ROOT = Path(__file__).resolve().parents[1]
CHILD = "from tests.delivery_helpers import crash_child; crash_child()"


class SmtpSink:
    """A real SMTP server on 127.0.0.1 that records mail and misbehaves on cue.

    Actions per DATA, in order (then ``ok``): ``ok`` (250), ``451`` / ``421`` (transient
    replies), ``hang`` (accept after ``hang_seconds``, past the client's timeout),
    ``drop`` (close the connection without a reply).
    """

    def __init__(self, hang_seconds: float = 1.0) -> None:
        from aiosmtpd.controller import Controller

        self.hang_seconds = hang_seconds
        self.accepted: list[Any] = []
        self.attempts = 0
        self.script: list[str] = []
        self._lock = threading.Lock()
        with socket.socket() as probe:  # aiosmtpd's self-check cannot use port 0
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self._lock:
            self.attempts += 1
            action = self.script.pop(0) if self.script else "ok"
        if action == "drop":
            server.transport.close()
            return "250 OK"  # never reaches the client: the connection is gone
        if action == "hang":
            await asyncio.sleep(self.hang_seconds)
        elif action != "ok":
            return f"{action} try again later"
        with self._lock:
            self.accepted.append(envelope)
        return "250 OK"

    def keys(self) -> list[str]:
        """The idempotency key of every accepted mail."""
        return [message_from_bytes(e.content)["Idempotency-Key"] for e in self.accepted]

    def __enter__(self) -> SmtpSink:
        self.controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.controller.stop()


def _http_keys(requests: list[Recorded], kind: str) -> list[str]:
    """The message keys carried by accepted requests (each SendGrid personalization)."""
    keys: list[str] = []
    for request in requests:
        if kind == "sendgrid":
            body = json.loads(request.body)
            keys += [p["custom_args"]["idempotency_key"] for p in body["personalizations"]]
        elif kind == "twilio":
            keys.append(request.headers["idempotency-key"])
            assert dict(parse_qsl(request.body.decode()))["To"].startswith("+1555")
        else:
            keys.append(request.headers["idempotency-key"])
    return keys


@pytest.fixture(params=["twilio", "sendgrid", "smtp"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


class _Provider:
    def __init__(self, kind: str, sink: HttpSink | SmtpSink) -> None:
        self.kind, self.sink = kind, sink

    @property
    def url(self) -> str:
        return self.sink.url

    def fail_next(self, action: str) -> None:
        """Make the next request fail with ``action`` (HTTP spelling; SMTP maps it)."""
        if isinstance(self.sink, SmtpSink):
            smtp = {"500": "451", "429:40": "421", "hang": "hang", "drop": "drop"}[action]
            self.sink.script.append(smtp)
        else:
            self.sink.script(action)

    def delivered(self) -> list[str]:
        if isinstance(self.sink, SmtpSink):
            return self.sink.keys()
        return _http_keys(self.sink.accepted(), self.kind)

    def requests(self) -> int:
        if isinstance(self.sink, SmtpSink):
            return self.sink.attempts
        return len(self.sink.requests)


@pytest.fixture
def provider(kind: str) -> Iterator[_Provider]:
    sink: HttpSink | SmtpSink = SmtpSink() if kind == "smtp" else HttpSink(hang_seconds=1.0)
    with sink:
        yield _Provider(kind, sink)


def _drain(engine: Engine, provider: _Provider, clock: Clock, timeout: float = 5.0) -> Any:
    config = delivery_config(
        {"text": fault_channel(provider.kind, provider.url)},
        quiet_hours=ALWAYS_OPEN, quiet_hours_by_medium={}, frequency_cap={},
        concurrency=1, timeout_seconds=timeout, max_attempts=3,
    )
    return drain_outbox(engine, config, once=True, now=clock, rng=random.Random(0))


def _keys(engine: Engine) -> list[str]:
    with Session(engine) as session:
        return list(session.scalars(select(Message.idempotency_key).order_by(Message.id)))


@pytest.mark.timeout(120)
@pytest.mark.parametrize("fault", ["500", "429:40", "hang", "drop"])
def test_provider_faults_retry_with_the_same_key_and_end_sent(
    engine: Engine, provider: _Provider, fault: str
) -> None:
    seed(engine, 6, channel="text", expires_at=None)
    keys = _keys(engine)
    clock = Clock()
    provider.fail_next(fault)
    # Hangs last 1 s: a 0.5 s timeout gives up on them; else a loaded machine's slow
    # answers must not count as faults.
    timeout = 0.5 if fault == "hang" else 5.0
    first = _drain(engine, provider, clock, timeout)
    assert first.retried == (5 if provider.kind == "sendgrid" else 1), first
    retrying = [i for i, (s, _, _) in statuses(engine).items() if s == "queued"]
    with Session(engine) as session:
        for message_id in retrying:
            row = session.get(Message, message_id)
            assert row is not None and row.attempts == 1 and row.last_error
            if fault == "429:40" and provider.kind != "smtp":
                # Retry-After is a floor under the backoff.
                assert row.next_attempt_at >= clock() + timedelta(seconds=40)
    clock.advance(seconds=3600)
    second = _drain(engine, provider, clock)
    assert second.sent == len(retrying)
    assert [s for s, _, _ in statuses(engine).values()] == ["sent"] * 6
    delivered = Counter(provider.delivered())
    assert set(delivered) == set(keys)
    repeated = {key for key, n in delivered.items() if n > 1}
    # Only a hang leaves the outcome unknown (the provider answered after we gave up).
    assert not repeated or fault == "hang"
    with Session(engine) as session:
        attempts = {m.idempotency_key: m.attempts for m in session.scalars(select(Message))}
    assert sum(attempts.values()) == 6 + len(retrying)


@pytest.mark.timeout(120)
def test_a_hang_on_the_last_attempt_is_not_recorded_dead(
    engine: Engine, provider: _Provider
) -> None:
    # Every try times out but the provider accepts each one: never "dead" (which
    # --requeue-dead would send once more); it keeps its key until it lands or expires.
    seed(engine, 1, channel="text", expires_at=Clock()() + timedelta(days=2))
    clock = Clock()
    for _ in range(4):
        provider.fail_next("hang")
        _drain(engine, provider, clock, timeout=0.5)
        clock.advance(seconds=3600)
    ((status, _, attempts),) = statuses(engine).values()
    assert status == "queued" and attempts == 4
    _drain(engine, provider, clock)
    assert [s for s, _, _ in statuses(engine).values()] == ["sent"]


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_sigkilled_senders_on_every_provider_kind_lose_nothing(
    db_url: str, provider: _Provider
) -> None:
    engine = make_engine(db_url)
    seed(engine, 60, channel="text", expires_at=None)
    keys = _keys(engine)
    offset = 0.0
    per_request = 5 if provider.kind == "sendgrid" else 1
    for target in (12 // per_request,):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, db_url, provider.url, str(offset), provider.kind],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + 60
        while provider.requests() < target and child.poll() is None:
            assert time.monotonic() < deadline, "the sender made no progress"
            time.sleep(0.005)
        if child.poll() is None:
            os.kill(child.pid, signal.SIGKILL)
        child.wait()
        offset += 10  # past the 5 s lease: the next sender may take over
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, db_url, provider.url, str(offset), provider.kind],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    _, err = child.communicate(timeout=120)
    assert child.returncode == 0, err.decode()
    assert [s for s, _, _ in statuses(engine).values()] == ["sent"] * 60
    assert set(provider.delivered()) == set(keys)
    with Session(engine) as session:
        rows = session.scalars(select(Message)).all()
        # Attempts count requests whose outcome was recorded: never more than made.
        assert all(1 <= m.attempts <= m.claims for m in rows)
    engine.dispose()
