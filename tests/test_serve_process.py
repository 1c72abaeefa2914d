"""``campaign serve`` as a real process: it answers over HTTP, verifies signatures, and
stops cleanly on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from campaign.common import signing

SECRET = "whsec-serve-process"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.slow
def test_serve_runs_as_a_process_answers_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = _free_port()
    (tmp_path / "config.toml").write_text(
        '[database]\nurl = "sqlite:///campaign.db"\n'
        '[channels.email]\nkind = "file"\npath = "out"\n'
        f'[server]\nhost = "127.0.0.1"\nport = {port}\nsecret_envs = ["SERVER_SECRET"]\n',
        encoding="utf-8",
    )
    env = {**os.environ, "SERVER_SECRET": SECRET}
    command = [sys.executable, "-m", "campaign"]
    upgraded = subprocess.run([*command, "db", "upgrade"], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)
    assert upgraded.returncode == 0, upgraded.stderr
    server = subprocess.Popen([*command, "serve"], cwd=tmp_path, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert server.poll() is None and time.monotonic() < deadline, server.stderr
            time.sleep(0.2)

        body = json.dumps({"type": "opened", "message_id": 424242}).encode()
        headers = signing.sign_headers(SECRET, "evt-process-1", int(time.time()), body)
        headers["content-type"] = "application/json"
        accepted = httpx.post(f"{base}/webhooks/events", content=body, headers=headers)
        assert accepted.status_code == 200, accepted.text
        assert accepted.json() == {"stored": 1, "duplicates": 0, "unmatched": 1}

        forged = signing.sign_headers("not-the-secret", "evt-process-2", int(time.time()), body)
        forged["content-type"] = "application/json"
        refused = httpx.post(f"{base}/webhooks/events", content=body, headers=forged)
        assert 400 <= refused.status_code < 500, refused.text

        server.send_signal(signal.SIGTERM)
        # A graceful stop is a success: exit 0, not "killed by SIGTERM".
        assert server.wait(timeout=30) == 0
    finally:
        if server.poll() is None:
            server.kill()
        _, stderr = server.communicate(timeout=30)
    assert "Finished server process" in stderr and "Traceback" not in stderr, stderr
