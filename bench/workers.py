"""Scale-out: the outbox drained by 1, 2 and 4 ``campaign worker`` processes on PostgreSQL.

The sink is a small asyncio HTTP/1.1 server in a subprocess that answers every POST
after 50 ms, like a real provider, and counts Idempotency-Keys. Each worker count gets
a fresh scratch database with the same queued messages. Timing starts when every
worker is up (they start under ``campaign pause --all``, so nobody claims early; the
clock starts at the resume) and stops when the last message is ``sent``.

Prints ``name: value unit`` lines, the speed-up over one worker measured in the same
run, and fails (exit 1) on any duplicate or lost message.

    CAMPAIGN_TEST_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test \\
        .venv/bin/python bench/workers.py                 # 50,000 messages, 1/2/4 workers
    .venv/bin/python bench/workers.py --smoke             # 2,000 messages, 1/2 workers
    .venv/bin/python bench/workers.py --messages 20000 --workers 1 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DELAY_SECONDS = 0.05


# -- the sink (a subprocess) -----------------------------------------------------------


async def _serve(port_file: str, delay: float) -> None:
    keys: Counter[str] = Counter()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method = lines[0].split(" ", 1)[0]
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length", "0"))
                if length:
                    await reader.readexactly(length)
                if method == "GET":
                    body = json.dumps(
                        {
                            "requests": sum(keys.values()),
                            "distinct": len(keys),
                            "duplicates": sum(n - 1 for n in keys.values() if n > 1),
                        }
                    ).encode()
                else:
                    key = headers.get("idempotency-key")
                    if key:
                        keys[key] += 1
                    await asyncio.sleep(delay)
                    body = b'{"id":"sink"}'
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                    + str(len(body)).encode()
                    + b"\r\n\r\n"
                    + body
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, backlog=1024)
    port = server.sockets[0].getsockname()[1]
    Path(port_file).write_text(str(port))
    async with server:
        await server.serve_forever()


def start_sink(delay: float) -> tuple[subprocess.Popen[bytes], str]:
    port_file = Path(tempfile.mkdtemp()) / "port"
    process = subprocess.Popen(
        [sys.executable, __file__, "--sink", str(port_file), "--delay", str(delay)]
    )
    deadline = time.monotonic() + 30
    while not port_file.exists() or not port_file.read_text():
        if time.monotonic() > deadline:
            raise RuntimeError("sink did not start")
        time.sleep(0.05)
    return process, f"http://127.0.0.1:{port_file.read_text()}"


def sink_stats(url: str) -> dict[str, int]:
    with urllib.request.urlopen(f"{url}/stats", timeout=10) as response:
        return dict(json.loads(response.read()))


# -- one measured phase --------------------------------------------------------------------


def scratch_database(admin_url: str) -> tuple[str, str]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"campaign_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(
        make_url(admin_url).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    url = make_url(admin_url).set(drivername="postgresql+psycopg", database=name)
    return name, url.render_as_string(hide_password=False)


def drop_database(admin_url: str, name: str) -> None:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = create_engine(
        make_url(admin_url).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def write_config(folder: Path, url: str, sink_url: str, concurrency: int) -> Path:
    path = folder / "config.toml"
    path.write_text(
        f"""
[database]
url = "{url}"
[daemon]
health_port = 0
heartbeat_seconds = 1.0
shutdown_grace_seconds = 20.0
[delivery]
concurrency = {concurrency}
batch_size = 200
lease_seconds = 120
poll_interval_seconds = 0.2
frequency_cap = {{ email = 1000 }}
quiet_hours = {{ start = "00:00:00", end = "00:00:00" }}
quiet_hours_by_medium = {{}}
[channels.email]
kind = "webhook"
url = "{sink_url}/hook"
rate_per_second = 1000000.0
"""
    )
    return path


def seed(url: str, n: int) -> None:
    from campaign.db.engine import make_engine
    from campaign.db.migrate import upgrade
    from tests.daemon_helpers import seed_bulk

    engine = make_engine(url)
    upgrade(engine)
    for start in range(0, n, 10_000):
        seed_bulk(engine, min(10_000, n - start), campaign=f"bench{start}")
    engine.dispose()


def count_sent(engine: object) -> tuple[int, int]:
    from sqlalchemy import func, select

    from campaign.db.models import Message

    with engine.connect() as connection:  # type: ignore[attr-defined]
        rows = dict(
            connection.execute(select(Message.status, func.count()).group_by(Message.status)).all()
        )
    return rows.get("sent", 0), sum(rows.values())


def live_senders(engine: object) -> int:
    from sqlalchemy import func, select

    from campaign.db.models import WorkerHeartbeat

    with engine.connect() as connection:  # type: ignore[attr-defined]
        return int(
            connection.execute(select(func.count()).select_from(WorkerHeartbeat)).scalar_one()
        )


def phase(
    admin_url: str, workers: int, n: int, concurrency: int
) -> tuple[float, dict[str, int], int]:
    """Drain ``n`` messages with ``workers`` processes; (seconds, sink stats, sent)."""
    from campaign.db.engine import make_engine

    name, url = scratch_database(admin_url)
    sink, sink_url = start_sink(DELAY_SECONDS)
    folder = Path(tempfile.mkdtemp(prefix="bench-workers-"))
    processes: list[subprocess.Popen[bytes]] = []
    try:
        seed(url, n)
        config = write_config(folder, url, sink_url, concurrency)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        campaign = [sys.executable, "-m", "campaign", "--config", str(config)]
        subprocess.run(
            [*campaign, "pause", "--all"], check=True, env=env, stdout=subprocess.DEVNULL
        )
        for i in range(workers):
            log = (folder / f"worker{i}.log").open("wb")
            processes.append(
                subprocess.Popen(
                    [*campaign, "worker"], env=env, stdout=log, stderr=subprocess.STDOUT
                )
            )
        engine = make_engine(url)
        deadline = time.monotonic() + 120
        while live_senders(engine) < workers:
            if time.monotonic() > deadline:
                raise RuntimeError("workers did not start")
            time.sleep(0.1)
        started = time.perf_counter()
        subprocess.run(
            [*campaign, "resume", "--all"], check=True, env=env, stdout=subprocess.DEVNULL
        )
        while True:
            sent, total = count_sent(engine)
            if sent >= total:
                break
            time.sleep(0.05)
        seconds = time.perf_counter() - started
        engine.dispose()
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            process.wait(60)
        return seconds, sink_stats(sink_url), sent
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
        sink.terminate()
        sink.wait()
        drop_database(admin_url, name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--workers", type=int, nargs="+", default=None)
    parser.add_argument("--smoke", action="store_true", help="2,000 messages, 1 and 2 workers")
    parser.add_argument(
        "--concurrency",
        type=int,
        default=8,
        help="requests in flight per worker (default 8: latency-bound, like a provider that "
        "limits connections; at 64 one worker is CPU-bound on httpx on a 2-core machine)",
    )
    parser.add_argument("--sink", help=argparse.SUPPRESS)
    parser.add_argument("--delay", type=float, default=DELAY_SECONDS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sink:
        asyncio.run(_serve(args.sink, args.delay))
        return
    admin_url = os.environ.get("CAMPAIGN_BENCH_DATABASE_URL") or os.environ.get(
        "CAMPAIGN_TEST_DATABASE_URL"
    )
    if not admin_url:
        sys.exit(
            "set CAMPAIGN_BENCH_DATABASE_URL or CAMPAIGN_TEST_DATABASE_URL to a PostgreSQL server"
        )
    n = 2_000 if args.smoke else args.messages
    counts = args.workers or ([1, 2] if args.smoke else [1, 2, 4])
    print(f"messages: {n} count")
    print(f"sink_latency: {DELAY_SECONDS * 1000:.0f} ms")
    print(f"concurrency_per_worker: {args.concurrency} requests")
    print(f"latency_bound_limit_per_worker: {args.concurrency / DELAY_SECONDS:.0f} messages/s")
    baseline = None
    ok = True
    for workers in counts:
        seconds, stats, sent = phase(admin_url, workers, n, args.concurrency)
        rate = n / seconds
        baseline = baseline or rate
        print(f"workers_{workers}: {rate:.0f} messages/s ({seconds:.1f} s)")
        print(f"workers_{workers}_speedup: {rate / baseline:.2f}x vs 1 worker")
        print(f"workers_{workers}_duplicates: {stats['duplicates']} count")
        if stats["duplicates"] or stats["distinct"] != n or sent != n:
            print(f"workers_{workers}_error: sent={sent} distinct={stats['distinct']} of {n}")
            ok = False
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
