"""Inbound opt-outs end to end: every stop word from every phone format stops the next send.

Users are imported from CSV with their phones as shops store them (spaces, dashes, the
``00`` international prefix, national US format); the provider posts the inbound SMS
to the real app under uvicorn on 127.0.0.1 from the E.164 number, signed as Twilio
signs; then the real sender drains the outbox against a real HTTP server: nothing
reaches an opted-out number, and replies that are not opt-outs change nothing.
"""

from __future__ import annotations

import random
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qsl, urlencode

import httpx
import pytest
import uvicorn
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from campaign.config import Config
from campaign.db.models import User
from campaign.db.queries import is_suppressed
from campaign.delivery.sender import drain_outbox
from campaign.ingest import import_csv
from campaign.responses.app import create_app
from campaign.responses.providers import twilio
from tests.delivery_helpers import ALWAYS_OPEN, make_run, queue_message
from tests.http_sink import HttpSink

TOKEN = "twilio-auth-token"
BASE = "https://shop.example"
STOPS = [
    "STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT",
    "T", "TD", "退订", "回T退订", "取消",
    "t", "STOP.", "Stop please", "optout!", "ＴＤ", " 退订。",
]
NOT_STOPS = ["T恤还有吗", "hello", "取消订单", "stopping by later"]


def _formats(n: int) -> list[tuple[str, str, str]]:
    """(stored phone, E.164, locale) in every shape, each its own number."""
    d = [f"{n * 10 + k:08d}" for k in range(4)]
    return [
        (f"+86 100 {d[0][:4]} {d[0][4:]}", f"+86100{d[0]}", "zh-CN"),
        (f"+86-100-{d[1][:4]}-{d[1][4:]}", f"+86100{d[1]}", "zh-CN"),
        (f"0086100{d[2]}", f"+86100{d[2]}", "zh-CN"),
        (f"+86100{d[3]}", f"+86100{d[3]}", "zh-CN"),
        (f"(202) 555-01{n:02d}", f"+120255501{n:02d}", "en-US"),
    ]


def _config(sink_url: str) -> Config:
    return Config.model_validate(
        {
            "shop": {"name": "Test Shop", "base_url": BASE, "default_locale": "en"},
            "channels": {
                "sms": {
                    "kind": "twilio", "medium": "sms", "url": sink_url,
                    "from_address": "+15550009999", "rate_per_second": 1000,
                    "username": "AC1", "secret": TOKEN,
                },
            },
            "server": {"twilio_auth_token": TOKEN},
            "delivery": {
                "quiet_hours": ALWAYS_OPEN.model_dump(), "quiet_hours_by_medium": {},
                "frequency_cap": {}, "timeout_seconds": 2.0, "concurrency": 8,
            },
        }
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def served(engine: Engine) -> Iterator[tuple[str, HttpSink, Config]]:
    with HttpSink() as sink:
        config = _config(sink.url)
        port = _free_port()
        app = create_app(config, engine, clock=lambda: datetime.now(UTC))
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.02)
        yield f"http://127.0.0.1:{port}", sink, config
        server.should_exit = True
        thread.join(timeout=10)


def _inbound(base_url: str, sid: str, sender: str, body: str) -> None:
    params = [("MessageSid", sid), ("From", sender), ("To", "+15550009999"),
              ("Body", body), ("SmsStatus", "received")]
    signature = twilio.signature(TOKEN, f"{BASE}/webhooks/sms", params)
    response = httpx.post(
        f"{base_url}/webhooks/sms", content=urlencode(params).encode(),
        headers={"X-Twilio-Signature": signature,
                 "Content-Type": "application/x-www-form-urlencoded"},
        timeout=10,
    )
    assert response.status_code == 200, response.text


@pytest.mark.timeout(180)
def test_every_stop_word_from_every_phone_format_stops_the_next_send(
    engine: Engine, served: tuple[str, HttpSink, Config], tmp_path: Path
) -> None:
    base_url, sink, config = served
    cases: list[tuple[str, str, str, bool]] = []  # (user id, E.164, body, stops)
    lines = ["user_id,phone,locale,consent_sms"]
    n = 0
    for body, stops in [(w, True) for w in STOPS] + [(w, False) for w in NOT_STOPS]:
        for stored, e164, locale in _formats(n):
            user_id = f"u{len(cases)}"
            lines.append(f'{user_id},"{stored}",{locale},true')
            cases.append((user_id, e164, body, stops))
        n += 1
    users_csv = tmp_path / "users.csv"
    users_csv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    import_csv(engine, "users", users_csv, now=datetime.now(UTC))
    with Session(engine) as session:
        stored = dict(session.execute(select(User.external_id, User.phone)).all())
        assert [stored[c[0]] for c in cases] == [c[1] for c in cases]  # E.164 on import
        ids = dict(session.execute(select(User.external_id, User.id)).all())
        run = make_run(session)
        for user_id, *_ in cases:
            user = session.get(User, ids[user_id])
            assert user is not None
            queue_message(session, run, user, "sms", expires_at=None)
        session.commit()
    for index, (_, e164, body, _) in enumerate(cases):
        _inbound(base_url, f"SMin{index}", e164, body)
    with engine.connect() as connection:
        suppressed = {c[0]: is_suppressed(connection, ids[c[0]], "sms") for c in cases}
    wrong = [(c[2], c[1]) for c in cases if suppressed[c[0]] != c[3]]
    assert not wrong, f"opt-out read wrongly for {wrong}"
    report = drain_outbox(
        engine, config, once=True, now=lambda: datetime.now(UTC), rng=random.Random(0)
    )
    received = {dict(parse_qsl(r.body.decode()))["To"] for r in sink.requests}
    stopped = {c[1] for c in cases if c[3]}
    kept = {c[1] for c in cases if not c[3]}
    assert received == kept and not received & stopped
    assert report.skipped["suppressed"] == sum(1 for c in cases if c[3])
