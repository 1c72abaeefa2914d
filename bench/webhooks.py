"""Response intake under load: signed events posted to a real ``campaign serve``.

A bounded load on 127.0.0.1 only. ``--events`` unique valid events (default 50,000)
plus a share of replays (same ``webhook-id``, re-signed) and of bad signatures are
shuffled and posted by a raw asyncio HTTP/1.1 client over ``--concurrency``
keep-alive connections (64; TCP_NODELAY on; httpx would be the bottleneck). Then:

* ``<db>_valid_events_per_s``: unique valid events / wall time of the load;
* ``<db>_requests_per_s`` and ``<db>_latency_p50/p99``;
* a check that every valid event is stored exactly once and no invalid one is;
* ``<db>_sequential_p50/p99/max``: one request at a time on one connection, each
  must answer in under 5 ms (delayed ACKs without TCP_NODELAY cost ~40 ms each);
* ``baseline_requests_per_s``: a bare starlette app (no verification, no database)
  under the same uvicorn and client, and the ratio to it.

PostgreSQL runs when ``CAMPAIGN_BENCH_DATABASE_URL`` or ``CAMPAIGN_TEST_DATABASE_URL``
names a server (a scratch database is created and dropped).

    .venv/bin/python bench/webhooks.py              # 50,000 events, SQLite + PostgreSQL
    .venv/bin/python bench/webhooks.py --smoke      # 2,000 events, a few seconds
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SECRET = "whsec_" + "YmVuY2gtc2VjcmV0LWtleS0wMTIzNDU2Nzg5"
SECRET_ENV = "CAMPAIGN_BENCH_WEBHOOK_SECRET"
MESSAGES = 5000
TYPES = ("delivered", "opened", "clicked")

BASELINE_APP = """
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

async def ok(request):
    await request.body()
    return JSONResponse({"stored": 1, "duplicates": 0, "unmatched": 0})

app = Starlette(routes=[Route("/webhooks/events", ok, methods=["POST"])])
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- the raw client -------------------------------------------------------------------


def _request(path: str, body: bytes, headers: dict[str, str]) -> bytes:
    head = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}"]
    head += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lowered = head.lower()
    at = lowered.find(b"content-length:")
    if at >= 0:
        end = lowered.find(b"\r\n", at)
        length = int(lowered[at + 15 : end])
        if length:
            await reader.readexactly(length)
    return status


async def _connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return reader, writer


async def _load(
    port: int, requests: list[bytes], concurrency: int
) -> tuple[list[int], list[float], float]:
    statuses = [0] * len(requests)
    latencies = [0.0] * len(requests)
    cursor = iter(range(len(requests)))

    async def worker() -> None:
        reader, writer = await _connect(port)
        try:
            for index in cursor:
                started = time.perf_counter()
                writer.write(requests[index])
                statuses[index] = await _read_response(reader)
                latencies[index] = time.perf_counter() - started
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return statuses, latencies, time.perf_counter() - started


async def _sequential(port: int, requests: list[bytes]) -> tuple[list[int], list[float]]:
    reader, writer = await _connect(port)
    statuses, latencies = [], []
    try:
        for request in requests:
            started = time.perf_counter()
            writer.write(request)
            statuses.append(await _read_response(reader))
            latencies.append(time.perf_counter() - started)
    finally:
        writer.close()
    return statuses, latencies


def _wait_ready(port: int, process: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                if sock.recv(64).startswith(b"HTTP/1.1"):
                    return
        except OSError:
            time.sleep(0.1)
    raise SystemExit("server did not start")


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


# -- the workload ---------------------------------------------------------------------


def _signed(event_id: str, body: bytes, secret: str) -> bytes:
    from campaign.common import signing

    headers = signing.sign_headers(secret, event_id, int(time.time()), body)
    headers["Content-Type"] = "application/json"
    return _request("/webhooks/events", body, headers)


def _workload(
    n: int, message_ids: list[int], dup_share: float, bad_share: float, rng: random.Random
) -> tuple[list[bytes], set[str], set[str]]:
    valid: list[tuple[str, bytes]] = []
    for i in range(n):
        body = json.dumps({"type": rng.choice(TYPES), "message_id": rng.choice(message_ids)})
        valid.append((f"bench-{i}", body.encode()))
    requests = [_signed(event_id, body, SECRET) for event_id, body in valid]
    for event_id, body in rng.sample(valid, int(n * dup_share)):
        requests.append(_signed(event_id, body, SECRET))
    bad_ids = set()
    for i in range(int(n * bad_share)):
        event_id = f"bad-{i}"
        bad_ids.add(event_id)
        body = json.dumps({"type": "opened", "message_id": rng.choice(message_ids)}).encode()
        requests.append(_signed(event_id, body, "not-the-secret"))
    rng.shuffle(requests)
    return requests, {event_id for event_id, _ in valid}, bad_ids


def _prepare_database(url: str) -> list[int]:
    from campaign.db.engine import make_engine
    from campaign.db.migrate import upgrade
    from campaign.db.models import CampaignRun, Message, User

    engine = make_engine(url)
    upgrade(engine)
    now = datetime.now(UTC)
    with engine.begin() as connection:
        user_id = connection.execute(
            User.__table__.insert().returning(User.__table__.c.id),
            {"external_id": "bench-user", "email": "bench@example.com", "attributes": {}},
        ).scalar_one()
        run_id = connection.execute(
            CampaignRun.__table__.insert().returning(CampaignRun.__table__.c.id),
            {"campaign": "bench", "slot": now, "as_of": now, "status": "done", "counts": {}},
        ).scalar_one()
        connection.execute(
            Message.__table__.insert(),
            [
                {
                    "run_id": run_id,
                    "user_id": user_id,
                    "campaign": "bench",
                    "channel": "email",
                    "idempotency_key": f"bench:{i}",
                    "status": "sent",
                    "products": [],
                    "created_at": now,
                }
                for i in range(MESSAGES)
            ],
        )
        ids = [row[0] for row in connection.exec_driver_sql("SELECT id FROM messages")]
    engine.dispose()
    return ids


def _check(url: str, valid: set[str], bad: set[str]) -> tuple[int, int, int]:
    """(valid stored, distinct valid stored, invalid stored)."""
    from sqlalchemy import select

    from campaign.db.engine import make_engine
    from campaign.db.models import Response

    engine = make_engine(url)
    with engine.connect() as connection:
        stored = list(connection.execute(select(Response.provider_event_id)).scalars())
    engine.dispose()
    valid_rows = [e for e in stored if e in valid]
    return len(valid_rows), len(set(valid_rows)), sum(1 for e in stored if e in bad)


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def bench_database(label: str, url: str, args: argparse.Namespace, workdir: Path) -> float:
    """Run the load against ``campaign serve`` on ``url``; returns valid events/s."""
    rng = random.Random(7)
    message_ids = _prepare_database(url)
    requests, valid, bad = _workload(args.events, message_ids, args.dup_share, args.bad_share, rng)
    sequential = [
        _signed(
            f"seq-{i}",
            json.dumps({"type": "opened", "message_id": message_ids[i]}).encode(),
            SECRET,
        )
        for i in range(args.sequential)
    ]
    port = _free_port()
    config = workdir / f"{label}.toml"
    config.write_text(
        f'[database]\nurl = "{url}"\n\n[server]\nhost = "127.0.0.1"\nport = {port}\n'
        f'secret_envs = ["{SECRET_ENV}"]\n',
        encoding="utf-8",
    )
    env = {**os.environ, SECRET_ENV: SECRET}
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "campaign",
            "--config",
            str(config),
            "serve",
            "--log-level",
            "warning",
        ],
        env=env,
        cwd=workdir,
    )
    try:
        _wait_ready(port, server)
        statuses, latencies, elapsed = asyncio.run(_load(port, requests, args.concurrency))
        seq_statuses, seq_latencies = asyncio.run(_sequential(port, sequential))
    finally:
        _stop(server)
    ok = statuses.count(200)
    unauthorized = statuses.count(401)
    stored, distinct, invalid = _check(url, valid, bad)
    rate = len(valid) / elapsed
    print(
        f"{label}_requests: {len(requests)} requests ({len(valid)} valid, "
        f"{len(requests) - len(valid) - len(bad)} replays, {len(bad)} bad signatures)"
    )
    print(f"{label}_valid_events_per_s: {rate:.0f} events/s")
    print(f"{label}_requests_per_s: {len(requests) / elapsed:.0f} requests/s")
    print(f"{label}_latency_p50: {_ms(_quantile(latencies, 0.50))}")
    print(f"{label}_latency_p99: {_ms(_quantile(latencies, 0.99))}")
    print(
        f"{label}_answers: {ok} x 200, {unauthorized} x 401, "
        f"{len(statuses) - ok - unauthorized} other"
    )
    exact = stored == distinct == len(valid) and invalid == 0
    expected_401 = unauthorized == len(bad) and ok == len(requests) - len(bad)
    print(
        f"{label}_stored_exactly_once: {'ok' if exact and expected_401 else 'FAIL'} "
        f"({distinct}/{len(valid)} valid stored, {stored - distinct} twice, {invalid} invalid)"
    )
    under = sum(1 for s in seq_latencies if s < 0.005)
    print(f"{label}_sequential_p50: {_ms(_quantile(seq_latencies, 0.50))}")
    print(f"{label}_sequential_p99: {_ms(_quantile(seq_latencies, 0.99))}")
    print(f"{label}_sequential_max: {_ms(max(seq_latencies))}")
    print(
        f"{label}_sequential_under_5ms: {under}/{len(seq_latencies)} requests "
        f"({'ok' if under == len(seq_latencies) and set(seq_statuses) == {200} else 'FAIL'})"
    )
    return rate


def bench_baseline(args: argparse.Namespace, workdir: Path) -> float:
    """Requests/s of a bare starlette app under the same uvicorn and client."""
    (workdir / "baseline_app.py").write_text(BASELINE_APP, encoding="utf-8")
    port = _free_port()
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "baseline_app:app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        cwd=workdir,
    )
    body = b'{"type":"opened","message_id":1}'
    requests = [_request("/webhooks/events", body, {"Content-Type": "application/json"})] * len(
        range(min(args.events, 20_000))
    )
    try:
        _wait_ready(port, server)
        _statuses, _latencies, elapsed = asyncio.run(_load(port, requests, args.concurrency))
    finally:
        _stop(server)
    rate = len(requests) / elapsed
    print(f"baseline_requests_per_s: {rate:.0f} requests/s (bare starlette, no database)")
    return rate


def _pg_scratch(admin: str) -> tuple[str, str]:
    return admin, f"campaign_bench_{uuid.uuid4().hex[:10]}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=50_000, help="unique valid events")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--dup-share", type=float, default=0.10, help="replays, share of --events")
    parser.add_argument("--bad-share", type=float, default=0.05, help="bad signatures, share")
    parser.add_argument("--sequential", type=int, default=200, help="one-at-a-time requests")
    parser.add_argument("--smoke", action="store_true", help="2,000 events, quick check")
    parser.add_argument("--only", choices=("sqlite", "postgresql"), help="one database only")
    args = parser.parse_args()
    if args.smoke:
        args.events, args.sequential = 2_000, 50
    with tempfile.TemporaryDirectory() as folder:
        workdir = Path(folder)
        baseline = bench_baseline(args, workdir)
        rates = {}
        if args.only in (None, "sqlite"):
            rates["sqlite"] = bench_database(
                "sqlite", f"sqlite:///{workdir / 'bench.db'}", args, workdir
            )
        admin = os.environ.get("CAMPAIGN_BENCH_DATABASE_URL") or os.environ.get(
            "CAMPAIGN_TEST_DATABASE_URL"
        )
        if args.only in (None, "postgresql") and admin:
            from sqlalchemy import create_engine, text
            from sqlalchemy.engine import make_url

            admin_url = make_url(admin).set(drivername="postgresql+psycopg")
            name = f"campaign_bench_{uuid.uuid4().hex[:10]}"
            admin_engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
            with admin_engine.connect() as connection:
                connection.execute(text(f'CREATE DATABASE "{name}"'))
            try:
                url = admin_url.set(database=name).render_as_string(hide_password=False)
                rates["postgresql"] = bench_database("postgresql", url, args, workdir)
            finally:
                with admin_engine.connect() as connection:
                    connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
                admin_engine.dispose()
        elif args.only == "postgresql":
            print(
                "postgresql: skipped "
                "(set CAMPAIGN_BENCH_DATABASE_URL or CAMPAIGN_TEST_DATABASE_URL)"
            )
        for label, rate in rates.items():
            print(
                f"{label}_goal_1000_events_per_s: {'ok' if rate >= 1000 else 'MISSED'} ({rate:.0f})"
            )
            print(f"{label}_ratio_to_baseline: {rate / baseline:.2f}x")


if __name__ == "__main__":
    main()
