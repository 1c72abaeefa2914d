"""Delivery throughput: the outbox drained through real channels to a local sink.

Prints ``name: value unit`` lines and ratios measured in the same run:

* ``raw_socket``: a minimal asyncio raw-socket client (64 keep-alive connections) -
  the machine's limit for this sink;
* ``raw_httpx``: bare httpx POSTs of the same payloads, no database, in its best
  configuration (several small clients; also one big client for comparison);
* ``drain_webhook_<db>``: ``drain_outbox`` end to end (claim, re-check, signed POST,
  every status written) on SQLite and PostgreSQL;
* ``drain_sendgrid_<db>``: the same through the batch-capable SendGrid-style channel
  (1000 personalizations per request);
* ``drain_<kind>_<db>_per_cpu_second``: messages per CPU-second of this process plus
  its PostgreSQL backends - comparable between runs on a loaded, shared machine where
  wall-clock rates of identical code swing 2x.

The sink is a small raw asyncio HTTP/1.1 server in a subprocess. PostgreSQL runs when
``CAMPAIGN_BENCH_DATABASE_URL`` or ``CAMPAIGN_TEST_DATABASE_URL`` names a server (a
scratch database is created and dropped).

    .venv/bin/python bench/send.py            # 50,000 messages
    .venv/bin/python bench/send.py --smoke    # 2,000, a few seconds
    .venv/bin/python bench/send.py --kind sendgrid --db postgresql --skip-httpx --repeat 3
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from datetime import time as dtime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


# -- the sink (runs in a subprocess) ------------------------------------------------


class _SinkProtocol(asyncio.Protocol):
    RESPONSE = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n"
        b"X-Message-Id: sink\r\n\r\n{\"ok\":true}"
    )

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        out = []
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                break
            head = self.buffer[:end].lower()
            length = 0
            at = head.find(b"content-length:")
            if at >= 0:
                length = int(
                    head[at + 15 : head.find(b"\r\n", at) if head.find(b"\r\n", at) > 0 else None]
                )
            total = end + 4 + length
            if len(self.buffer) < total:
                break
            self.buffer = self.buffer[total:]
            out.append(self.RESPONSE)
        if out:
            self.transport.write(b"".join(out))  # type: ignore[attr-defined]


def run_sink(port_file: str) -> None:
    """Serve until killed; write the chosen port to ``port_file``."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_SinkProtocol, "127.0.0.1", 0, backlog=1024)
        Path(port_file).write_text(str(server.sockets[0].getsockname()[1]))
        await server.serve_forever()

    asyncio.run(main())


def start_sink() -> tuple[subprocess.Popen[bytes], str]:
    port_file = tempfile.mktemp()
    process = subprocess.Popen([sys.executable, __file__, "--sink", port_file])
    for _ in range(200):
        if os.path.exists(port_file) and Path(port_file).read_text():
            break
        time.sleep(0.02)
    return process, f"http://127.0.0.1:{Path(port_file).read_text()}"


# -- payloads and baselines ----------------------------------------------------------


def payloads(n: int) -> list[bytes]:
    from campaign.delivery.channels.base import OutgoingMessage
    from campaign.delivery.channels.webhook import webhook_payload

    return [
        json.dumps(
            webhook_payload(
                OutgoingMessage(
                    message_id=i,
                    idempotency_key=f"bench:{i}",
                    channel="hook",
                    medium="email",
                    to=f"u{i}@example.com",
                    campaign="bench",
                    subject="We miss you",
                    html=f"<p>Hello user {i}, here is 10% off.</p>",
                    text=f"Hello user {i}, here is 10% off.",
                )
            )
        ).encode()
        for i in range(n)
    ]


async def _raw_httpx(url: str, bodies: list[bytes], clients: int, per_client: int) -> float:
    import httpx

    limits = httpx.Limits(max_connections=per_client, max_keepalive_connections=per_client)
    pool = [httpx.AsyncClient(limits=limits, timeout=30) for _ in range(clients)]
    workers = clients * per_client
    queue = list(range(len(bodies)))
    started = time.perf_counter()

    async def worker(lane: int) -> None:
        client = pool[lane % clients]
        while queue:
            i = queue.pop()
            response = await client.post(
                url, content=bodies[i], headers={"Idempotency-Key": f"bench:{i}"}
            )
            response.raise_for_status()

    await asyncio.gather(*(worker(lane) for lane in range(workers)))
    elapsed = time.perf_counter() - started
    for client in pool:
        await client.aclose()
    return len(bodies) / elapsed


async def _raw_socket(url: str, bodies: list[bytes], connections: int = 64) -> float:
    host, port = url.removeprefix("http://").split(":")
    queue = list(range(len(bodies)))
    started = time.perf_counter()

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        while queue:
            body = bodies[queue.pop()]
            writer.write(
                b"POST / HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            head = await reader.readuntil(b"\r\n\r\n")
            at = head.lower().find(b"content-length:")
            length = int(head[at + 15 : head.find(b"\r\n", at)])
            await reader.readexactly(length)
        writer.close()

    await asyncio.gather(*(worker() for _ in range(connections)))
    return len(bodies) / (time.perf_counter() - started)


def _run(coro_factory: Callable[[], object]) -> float:
    try:
        import uvloop

        factory = uvloop.new_event_loop
    except ImportError:
        factory = None
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(coro_factory())  # type: ignore[arg-type]


# -- the drain ------------------------------------------------------------------------


def seed(url: str, n: int) -> None:
    from sqlalchemy import insert

    from campaign.db.engine import make_engine
    from campaign.db.models import CampaignRun, Message, User

    engine = make_engine(url)
    now = datetime(2026, 6, 1, 4, tzinfo=UTC)
    with engine.begin() as connection:
        run_id = connection.execute(
            insert(CampaignRun)
            .values(campaign="bench", slot=now, as_of=now, status="done", counts={})
            .returning(CampaignRun.id)
        ).scalar_one()
        for start in range(0, n, 5000):
            ids = range(start, min(n, start + 5000))
            connection.execute(
                insert(User),
                [
                    {
                        "external_id": f"u{i}",
                        "email": f"u{i}@example.com",
                        "consent_email": True,
                        "consent_sms": False,
                        "attributes": {},
                    }
                    for i in ids
                ],
            )
        user_ids = [
            r[0]
            for r in connection.execute(
                User.__table__.select().with_only_columns(User.id).order_by(User.id)
            )
        ]
        for start in range(0, n, 5000):
            connection.execute(
                insert(Message),
                [
                    {
                        "run_id": run_id,
                        "user_id": user_ids[i],
                        "campaign": "bench",
                        "channel": "hook",
                        "variant": "a",
                        "template": "winback",
                        "subject": "We miss you",
                        "body": f"<p>Hello user {i}, here is 10% off.</p>",
                        "text_body": f"Hello user {i}, here is 10% off.",
                        "products": [],
                        "idempotency_key": f"bench:{i}",
                        "status": "queued",
                        "attempts": 0,
                        "created_at": now,
                        "is_test": False,
                    }
                    for i in range(start, min(n, start + 5000))
                ],
            )
    engine.dispose()


def drain(
    url: str, sink_url: str, kind: str, n: int, caps: bool = True
) -> tuple[float, dict[str, int]]:
    from campaign.config import ChannelConfig, Config, DeliveryConfig, QuietHours
    from campaign.db.engine import make_engine
    from campaign.delivery.outbox import count_by_status
    from campaign.delivery.sender import drain_outbox

    channel = ChannelConfig(
        kind=kind,
        medium="email",
        url=sink_url + ("/v3/mail/send" if kind == "sendgrid" else "/"),
        rate_per_second=1e9,
        batch_size=1000 if kind == "sendgrid" else 1,
        secret=os.environ.get("BENCH_SECRET", "bench-secret"),
    )
    always = QuietHours(start=dtime(0), end=dtime(0))
    config = Config(
        channels={"hook": channel},
        delivery=DeliveryConfig(
            concurrency=64,
            batch_size=2000 if kind == "sendgrid" else 1000,
            quiet_hours=always,
            quiet_hours_by_medium={},
            http_clients=8,
            http_connections_per_client=8,
            **({} if caps else {"frequency_cap": {}}),
        ),
    )
    engine = make_engine(url)
    started = time.perf_counter()
    cpu_started = time.process_time()
    report = drain_outbox(
        engine, config, once=True, now=lambda: datetime.now(UTC), rng=random.Random(0)
    )
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started + _server_cpu_seconds(engine)
    counts = count_by_status(engine)
    engine.dispose()
    assert report.sent == n, (report, counts)
    counts["cpu_rate"] = round(n / cpu)
    return n / elapsed, counts


def _server_cpu_seconds(engine: object) -> float:
    """CPU seconds used by this database's PostgreSQL backends (local server; else 0).

    On a shared, loaded machine wall-clock rates swing 2x between identical runs; CPU
    seconds per message (sender process + its database backends) stay comparable.
    """
    from sqlalchemy import text

    if engine.dialect.name != "postgresql":  # type: ignore[attr-defined]
        return 0.0
    with engine.connect() as connection:  # type: ignore[attr-defined]
        pids = (
            connection.execute(
                text("SELECT pid FROM pg_stat_activity WHERE datname = current_database()")
            )
            .scalars()
            .all()
        )
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        total += (int(fields[11]) + int(fields[12])) / ticks  # utime + stime
    return total


def database_urls(folder: Path) -> list[tuple[str, str, Callable[[], None]]]:
    """(name, url, cleanup) per dialect, each a fresh migrated database."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from campaign.db.engine import make_engine
    from campaign.db.migrate import upgrade

    out: list[tuple[str, str, Callable[[], None]]] = []
    path = folder / f"bench-{uuid.uuid4().hex[:6]}.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    out.append(("sqlite", f"sqlite:///{path}", lambda: None))
    admin = os.environ.get("CAMPAIGN_BENCH_DATABASE_URL") or os.environ.get(
        "CAMPAIGN_TEST_DATABASE_URL"
    )
    if admin:
        name = f"campaign_bench_{uuid.uuid4().hex[:8]}"
        admin_url = make_url(admin).set(drivername="postgresql+psycopg")
        admin_engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin_engine.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        url = admin_url.set(database=name).render_as_string(hide_password=False)
        engine = make_engine(url)
        upgrade(engine)
        engine.dispose()

        def drop() -> None:
            with admin_engine.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

        out.append(("postgresql", url, drop))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--smoke", action="store_true", help="2,000 messages, quick check")
    parser.add_argument(
        "--kind",
        action="append",
        choices=["webhook", "sendgrid"],
        help="only this channel kind (repeatable; default both)",
    )
    parser.add_argument(
        "--db",
        action="append",
        choices=["sqlite", "postgresql"],
        help="only this database (repeatable; default every available)",
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="drain each (database, kind) this many times, alternating",
    )
    parser.add_argument(
        "--skip-httpx",
        action="store_true",
        help="skip the raw httpx baselines (slow at 50,000 messages)",
    )
    parser.add_argument(
        "--no-caps", action="store_true", help="no frequency caps (skips the send-time cap query)"
    )
    parser.add_argument("--sink", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.sink:
        run_sink(args.sink)
        return
    n = 2_000 if args.smoke else args.messages
    sink, url = start_sink()
    try:
        bodies = payloads(n)
        socket_rate = _run(lambda: _raw_socket(url, bodies))
        print(f"raw_socket: {socket_rate:.0f} messages/s")
        best_httpx = float("nan")
        if not args.skip_httpx:
            httpx_rate = _run(lambda: _raw_httpx(url, bodies, 8, 8))
            print(f"raw_httpx_8x8: {httpx_rate:.0f} messages/s")
            one = bodies[: min(n, 2_000)]
            single_rate = _run(lambda: _raw_httpx(url, one, 1, 64))
            print(f"raw_httpx_1x64: {single_rate:.0f} messages/s")
            best_httpx = max(httpx_rate, single_rate)
        with tempfile.TemporaryDirectory() as folder:
            for dialect, db_url, cleanup in database_urls(Path(folder)):
                if args.db and dialect not in args.db:
                    cleanup()
                    continue
                try:
                    for kind in [
                        k for _ in range(args.repeat) for k in args.kind or ("webhook", "sendgrid")
                    ]:
                        seed_started = time.perf_counter()
                        cleanup_db(db_url)
                        seed(db_url, n)
                        seeded = time.perf_counter() - seed_started
                        rate, counts = drain(db_url, url, kind, n, caps=not args.no_caps)
                        cpu_rate = counts.pop("cpu_rate")
                        print(
                            f"drain_{kind}_{dialect}: {rate:.0f} messages/s"
                            f" (seeded {n} in {seeded:.1f} s; statuses {counts})"
                        )
                        print(
                            f"drain_{kind}_{dialect}_per_cpu_second: {cpu_rate} messages"
                            " (sender process + its PostgreSQL backends)"
                        )
                        if best_httpx == best_httpx:  # measured (not NaN)
                            ratio = rate / best_httpx
                            print(f"drain_{kind}_{dialect}_vs_raw_httpx: {ratio:.2f} ratio")
                        print(
                            f"drain_{kind}_{dialect}_vs_raw_socket: {rate / socket_rate:.2f} ratio"
                        )
                finally:
                    cleanup()
    finally:
        sink.kill()
        sink.wait()


def cleanup_db(url: str) -> None:
    """Empty the outbox, users and runs between two drains on one database."""
    from sqlalchemy import text

    from campaign.db.engine import make_engine

    engine = make_engine(url)
    with engine.begin() as connection:
        for table in ("messages", "campaign_runs", "users"):
            connection.execute(text(f"DELETE FROM {table}"))
    engine.dispose()


if __name__ == "__main__":
    main()
