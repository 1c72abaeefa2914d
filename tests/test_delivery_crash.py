"""A sender killed with SIGKILL between claim, send and record loses and misroutes nothing."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from campaign.db.engine import make_engine
from tests.delivery_helpers import make_run, make_user, queue_message, statuses
from tests.http_sink import HttpSink

ROOT = Path(__file__).resolve().parents[1]
CHILD = "from tests.delivery_helpers import crash_child; crash_child()"


def start_child(url: str, sink_url: str, offset: float) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, url, sink_url, str(offset)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


@pytest.mark.slow
def test_sigkilled_sender_resumes_without_loss_and_repeats_carry_the_same_key(
    db_url: str,
) -> None:
    # SMS keeps the child light (email links import the planner); the outbox is the same.
    engine = make_engine(db_url)
    with Session(engine) as session:
        run = make_run(session)
        planned, opted_out, held_out = [], [], []
        for i in range(150):
            user = make_user(session, i, consent_sms=i % 15 != 0)
            status = "held_out" if i % 25 == 1 else "queued"
            m = queue_message(session, run, user, "text", status=status, expires_at=None)
            if status == "held_out":
                held_out.append(m.idempotency_key)
            elif not user.consent_sms:
                opted_out.append(m.idempotency_key)
            else:
                planned.append(m.idempotency_key)
        session.commit()
    with HttpSink(hang_seconds=0.8) as sink:
        for key in planned[::17]:
            sink.plan(key, "hang")  # some kills land while a request is in flight
        offset = 0.0
        for target in (10, 40, 75, 105):
            child = start_child(db_url, sink.url, offset)
            deadline = time.monotonic() + 60
            while len(sink.requests) < target and child.poll() is None:
                assert time.monotonic() < deadline, "the sender made no progress"
                time.sleep(0.01)
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
            offset += 10  # past the 5 s lease: the next sender may take over
        child = start_child(db_url, sink.url, offset)
        _, err = child.communicate(timeout=120)
        assert child.returncode == 0, err.decode()
    found = statuses(engine)
    with Session(engine) as session:
        from campaign.db.models import Message

        by_key = {m.idempotency_key: m.id for m in session.query(Message)}
    for key in planned:
        assert found[by_key[key]][0] == "sent", key
    for key in opted_out:
        assert found[by_key[key]][:2] == ("skipped", "no_consent")
    for key in held_out:
        assert found[by_key[key]][0] == "held_out"
    received = Counter(r.key for r in sink.requests)
    # Every planned message reached the provider, and only planned ones did.
    assert set(received) == set(planned)
    accepted = Counter(r.key for r in sink.accepted())
    assert set(accepted) == set(planned)
    # Repeats exist only where a crash left the outcome unknown; each carries the key of
    # its message (a request's key is its message's key, so repeats are recognisable),
    # and the body matches the first attempt.
    for key, count in received.items():
        if count > 1:
            bodies = {r.json()["message_id"] for r in sink.accepted() if r.key == key}
            assert bodies == {by_key[key]}
    engine.dispose()
