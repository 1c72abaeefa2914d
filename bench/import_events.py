"""Benchmark: `campaign import events` against the raw database driver, and its memory.

Generates users, products and N events as CSV, imports them with the real import code
(``campaign.ingest.import_csv``) into SQLite, PostgreSQL and MariaDB/MySQL, and
measures in the same run the raw driver-level bulk rate for the very same rows into
the same schema: one ``sqlite3`` ``executemany`` in a single transaction, ``COPY`` via
psycopg, and one PyMySQL ``executemany`` (multi-row ``INSERT``) in one transaction.
Then imports files of several sizes in child processes and reports each one's peak
RSS, to show memory stays flat as files grow.

    .venv/bin/python bench/import_events.py                 # 1M events, sizes 1M and 3M
    .venv/bin/python bench/import_events.py --smoke         # ~20k events, seconds
    .venv/bin/python bench/import_events.py --pg-url postgresql://postgres@127.0.0.1/test
    .venv/bin/python bench/import_events.py --mysql-url mysql+pymysql://root@127.0.0.1/test

PostgreSQL comes from --pg-url or CAMPAIGN_TEST_DATABASE_URL, MariaDB/MySQL from
--mysql-url or CAMPAIGN_TEST_MYSQL_URL (a private database is created and dropped in
each); without them they are skipped with a message.
Prints ``name: value unit`` lines.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from campaign.db.engine import make_engine  # noqa: E402
from campaign.db.migrate import upgrade  # noqa: E402
from campaign.ingest import import_csv  # noqa: E402
from campaign.ingest.readers import EVENT_COLUMNS  # noqa: E402

PG_ENV = "CAMPAIGN_TEST_DATABASE_URL"
MYSQL_ENV = "CAMPAIGN_TEST_MYSQL_URL"
START = datetime(2025, 5, 1, tzinfo=UTC)
TYPES = ["view"] * 55 + ["cart"] * 15 + ["purchase"] * 10 + ["search"] * 10 + ["visit"] * 10


def say(name: str, value: float, unit: str) -> None:
    """One result line: ``name: value unit``."""
    shown = f"{value:.0f}" if abs(value) >= 100 else f"{value:.3g}"
    print(f"{name}: {shown} {unit}", flush=True)


# -- data ---------------------------------------------------------------------------------


def write_shop(folder: Path, n_users: int, n_products: int) -> tuple[Path, Path]:
    """users.csv and products.csv with ids u1..uN and p1..pN."""
    users = folder / "users.csv"
    with users.open("w", encoding="utf-8") as handle:
        handle.write("user_id,email,consent_email,timezone\n")
        for i in range(1, n_users + 1):
            handle.write(f"u{i},user{i}@example.com,{'yes' if i % 3 else 'no'},Asia/Shanghai\n")
    products = folder / "products.csv"
    with products.open("w", encoding="utf-8") as handle:
        handle.write("product_id,name,category,price,tags\n")
        for i in range(1, n_products + 1):
            handle.write(f"p{i},Product {i},cat{i % 20},{(i % 500) + 0.99:.2f},a|b\n")
    return users, products


def write_events(path: Path, rows: int, n_users: int, n_products: int, seed: int = 7) -> None:
    """``rows`` events: a realistic mix of types, ISO timestamps, amounts on purchases."""
    rng = random.Random(seed)
    span = 540 * 86400
    with path.open("w", encoding="utf-8") as handle:
        handle.write("event_id,user_id,type,ts,product_id,order_id,quantity,amount\n")
        lines = []
        for i in range(rows):
            kind = rng.choice(TYPES)
            ts = (START + timedelta(seconds=rng.randrange(span))).strftime("%Y-%m-%dT%H:%M:%SZ")
            user = rng.randrange(1, n_users + 1)
            if kind in ("view", "cart", "purchase"):
                product = f"p{rng.randrange(1, n_products + 1)}"
            else:
                product = ""
            if kind == "purchase":
                quantity = rng.randrange(1, 4)
                tail = f"o{i},{quantity},{quantity * rng.randrange(100, 50000) / 100:.2f}"
            else:
                tail = ",,"
            lines.append(f"e{i},u{user},{kind},{ts},{product},{tail}\n")
            if len(lines) >= 10_000:
                handle.writelines(lines)
                lines.clear()
        handle.writelines(lines)


# -- databases ------------------------------------------------------------------------------


@contextmanager
def pg_database(admin_url: str) -> Iterator[str]:
    """A private, migrated PostgreSQL database, dropped afterwards."""
    name = f"campaign_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(
        make_url(admin_url).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(admin_url).set(drivername="postgresql+psycopg", database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def mysql_database(admin_url: str) -> Iterator[str]:
    """A private MariaDB/MySQL database (utf8mb4, binary collation), dropped afterwards."""
    name = f"campaign_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(make_url(admin_url).set(drivername="mysql+pymysql"))
    with admin.begin() as connection:
        connection.execute(
            text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
        )
    url = make_url(admin_url).set(drivername="mysql+pymysql", database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
        admin.dispose()


def load_shop(url: str, users: Path, products: Path) -> None:
    engine = make_engine(url)
    upgrade(engine)
    import_csv(engine, "users", users)
    import_csv(engine, "products", products)
    engine.dispose()


def timed_import(url: str, events: Path) -> tuple[float, float, int]:
    """Wall and CPU seconds of the real import, and the rows it inserted."""
    engine = make_engine(url)
    started, cpu = time.perf_counter(), time.process_time()
    report = import_csv(engine, "events", events)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    engine.dispose()
    return elapsed, cpu, report.inserted


def stored_rows(url: str) -> list[tuple[Any, ...]]:
    """The imported events as raw tuples (what the raw baseline re-inserts)."""
    engine = make_engine(url)
    with engine.connect() as connection:
        rows = connection.exec_driver_sql(
            f"SELECT {', '.join(EVENT_COLUMNS)} FROM events ORDER BY id"
        ).all()
    engine.dispose()
    return [tuple(row) for row in rows]


def raw_sqlite(url: str, rows: list[tuple[Any, ...]]) -> tuple[float, float]:
    """Wall and CPU seconds for one executemany of ``rows`` in a single transaction."""
    engine = make_engine(url)
    marks = ", ".join("?" for _ in EVENT_COLUMNS)
    sql = f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) VALUES ({marks})"
    with engine.connect() as connection:
        dbapi = connection.connection.dbapi_connection
        cursor = dbapi.cursor()
        started, cpu = time.perf_counter(), time.process_time()
        cursor.executemany(sql, rows)
        dbapi.commit()
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    engine.dispose()
    return elapsed, cpu


def raw_postgres(url: str, rows: list[tuple[Any, ...]]) -> float:  # wall seconds
    """Seconds for one COPY of ``rows`` straight into ``events``, committed."""
    engine = make_engine(url)
    with engine.connect() as connection:
        dbapi = connection.connection.dbapi_connection
        cursor = dbapi.cursor()
        started = time.perf_counter()
        with cursor.copy(f"COPY events ({', '.join(EVENT_COLUMNS)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)
        dbapi.commit()
        elapsed = time.perf_counter() - started
    engine.dispose()
    return elapsed


def raw_mysql(url: str, rows: list[tuple[Any, ...]]) -> tuple[float, float]:
    """Wall and CPU seconds for one PyMySQL executemany of ``rows``, committed."""
    engine = make_engine(url)
    marks = ", ".join("%s" for _ in EVENT_COLUMNS)
    sql = f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) VALUES ({marks})"
    with engine.connect() as connection:
        dbapi = connection.connection.dbapi_connection
        cursor = dbapi.cursor()
        started, cpu = time.perf_counter(), time.process_time()
        cursor.executemany(sql, rows)
        dbapi.commit()
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    engine.dispose()
    return elapsed, cpu


def truncate_events(url: str) -> None:
    engine = make_engine(url)
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.exec_driver_sql("TRUNCATE events RESTART IDENTITY")
        elif engine.dialect.name == "mysql":
            connection.exec_driver_sql("TRUNCATE TABLE events")
        else:
            connection.exec_driver_sql("DELETE FROM events")
    if engine.dialect.name == "sqlite":
        with engine.connect() as connection:
            connection.exec_driver_sql("VACUUM")
    engine.dispose()


# -- runs ----------------------------------------------------------------------------------


def compare(label: str, url: str, events: Path, rows: int, repeat: int) -> None:
    """Import rate, raw rate for the same rows into the emptied table, and their ratio.

    With ``repeat`` > 1 the two alternate and the best of each counts (a busy machine
    makes single runs noisy). On SQLite and MySQL, where the driver's work is in this
    process, CPU time is reported too: it is far less disturbed by other processes.
    """
    pg = label == "postgresql"
    best_import = best_raw = best_import_cpu = best_raw_cpu = float("inf")
    stored: list[tuple[Any, ...]] | None = None
    for _ in range(repeat):
        truncate_events(url)
        elapsed, cpu, inserted = timed_import(url, events)
        assert inserted == rows, f"{label}: imported {inserted} of {rows}"
        best_import, best_import_cpu = min(best_import, elapsed), min(best_import_cpu, cpu)
        if stored is None:
            stored = stored_rows(url)
        truncate_events(url)
        if pg:
            raw, raw_cpu = raw_postgres(url, stored), float("nan")
        elif label == "mysql":
            raw, raw_cpu = raw_mysql(url, stored)
        else:
            raw, raw_cpu = raw_sqlite(url, stored)
        best_raw, best_raw_cpu = min(best_raw, raw), min(best_raw_cpu, raw_cpu)
    name = "copy" if pg else "executemany"
    say(f"{label}_import_rate", rows / best_import, "rows/s")
    say(f"{label}_raw_{name}_rate", rows / best_raw, "rows/s")
    say(f"{label}_import_vs_raw", best_raw / best_import, "ratio")
    if not pg:
        say(f"{label}_import_cpu_rate", rows / best_import_cpu, "rows/s")
        say(f"{label}_raw_{name}_cpu_rate", rows / best_raw_cpu, "rows/s")
        say(f"{label}_import_vs_raw_cpu", best_raw_cpu / best_import_cpu, "ratio")


def child_peak(folder: Path, events: Path) -> float:
    """Peak RSS in MB of a child process importing ``events`` into a fresh SQLite file."""
    template = folder / "shop.db"
    db = folder / f"memory-{uuid.uuid4().hex[:6]}.db"
    shutil.copyfile(template, db)
    output = subprocess.run(
        [sys.executable, __file__, "--child", str(events), "--db", str(db)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    db.unlink()
    for suffix in ("-wal", "-shm"):
        Path(str(db) + suffix).unlink(missing_ok=True)
    return float(output.strip().splitlines()[-1])


def child(events: Path, db: Path) -> None:
    engine = make_engine(f"sqlite:///{db}")
    import_csv(engine, "events", events)
    engine.dispose()
    print(peak_rss_mb())


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB.

    Linux's VmHWM restarts at exec; ru_maxrss would carry the parent's peak over
    into the child, so it is only the fallback (macOS reports it in bytes).
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=None, help="events to import (1,000,000)")
    parser.add_argument(
        "--sizes",
        default=None,
        help="comma-separated file sizes whose peak memory to compare ('none' to skip)",
    )
    parser.add_argument("--users", type=int, default=None)
    parser.add_argument("--products", type=int, default=None)
    parser.add_argument("--smoke", action="store_true", help="a tiny run (~20k rows)")
    parser.add_argument("--pg-url", default=os.environ.get(PG_ENV))
    parser.add_argument("--no-pg", action="store_true", help="skip PostgreSQL")
    parser.add_argument("--mysql-url", default=os.environ.get(MYSQL_ENV))
    parser.add_argument("--no-mysql", action="store_true", help="skip MariaDB/MySQL")
    parser.add_argument(
        "--only-mysql", action="store_true", help="MariaDB/MySQL alone (no SQLite, PostgreSQL)"
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="alternate import and raw N times, keep the best"
    )
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.db)
        return
    rows = args.rows or (20_000 if args.smoke else 1_000_000)
    default_sizes = f"{rows // 4},{rows // 2}" if args.smoke else "1000000,3000000"
    chosen = args.sizes or default_sizes
    sizes = [] if chosen == "none" else [int(s) for s in chosen.split(",") if s]
    n_users = args.users or (500 if args.smoke else 50_000)
    n_products = args.products or (100 if args.smoke else 5_000)

    with tempfile.TemporaryDirectory(prefix="campaign-bench-") as tmp:
        folder = Path(tmp)
        users, products = write_shop(folder, n_users, n_products)
        events = folder / "events.csv"
        write_events(events, rows, n_users, n_products)
        say("events_rows", rows, "rows")

        template = folder / "shop.db"
        load_shop(f"sqlite:///{template}", users, products)
        sqlite_db = folder / "bench.db"
        shutil.copyfile(template, sqlite_db)
        if not args.only_mysql:
            compare("sqlite", f"sqlite:///{sqlite_db}", events, rows, repeat=args.repeat)

        if args.pg_url and not args.no_pg and not args.only_mysql:
            with pg_database(args.pg_url) as url:
                load_shop(url, users, products)
                compare("postgresql", url, events, rows, repeat=args.repeat)
        else:
            print(f"# postgresql skipped: pass --pg-url or set {PG_ENV}", flush=True)

        if args.mysql_url and not args.no_mysql:
            with mysql_database(args.mysql_url) as url:
                load_shop(url, users, products)
                compare("mysql", url, events, rows, repeat=args.repeat)
        else:
            print(f"# mysql skipped: pass --mysql-url or set {MYSQL_ENV}", flush=True)

        peaks = []
        for size in sizes:
            path = folder / f"events-{size}.csv"
            write_events(path, size, n_users, n_products, seed=size)
            peak = child_peak(folder, path)
            path.unlink()
            peaks.append(peak)
            say(f"peak_rss_{size}_rows", peak, "MB")
        if len(peaks) >= 2:
            say(f"peak_rss_{sizes[-1]}_vs_{sizes[0]}", peaks[-1] / peaks[0], "ratio")


if __name__ == "__main__":
    main()
