"""The app under a real uvicorn on 127.0.0.1: concurrent signed posts, each stored once."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
import uvicorn
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from campaign.responses.app import create_app
from tests.factories import make_user
from tests.responses_helpers import (
    NOW,
    count_responses,
    engagement_of,
    make_config,
    make_sent_message,
    signed,
)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def base_url(engine: Engine) -> Iterator[str]:
    port = _free_port()
    app = create_app(make_config(), engine, clock=lambda: NOW)
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def test_concurrent_posts_and_replays_to_a_real_server_store_each_event_once(
    base_url: str, engine: Engine, session_factory: sessionmaker[Session]
) -> None:
    with session_factory() as session:
        user = make_user(session)
        ids = [make_sent_message(session, user).id for _ in range(5)]
        session.commit()
    requests = []
    for n in range(60):
        body = {"type": ["delivered", "opened", "clicked"][n % 3], "message_id": ids[n % 5]}
        requests.append(signed(body, f"srv-{n}"))
    bad = signed({"type": "opened", "message_id": ids[0]}, "srv-bad", secret="wrong")

    # One client shared by the threads (it is thread-safe; creating one costs ~50 ms).
    with httpx.Client(base_url=base_url, timeout=30) as client:

        def post(item: tuple[bytes, dict[str, str]]) -> int:
            return client.post("/webhooks/events", content=item[0], headers=item[1]).status_code

        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(post, requests + requests[:20] + [bad]))
        assert client.get("/healthz").json() == {"status": "ok"}
    assert codes.count(200) == 80 and codes[-1] == 401
    assert count_responses(engine) == 60
    assert all(engagement_of(engine, mid) == "clicked" for mid in ids)
