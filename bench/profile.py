"""Benchmark: the profile's SQL aggregation for N users / M events, SQLite, PostgreSQL and
MariaDB/MySQL.

    .venv/bin/python bench/profile.py --users 1000000 --events 10000000

Data is generated once (seeded) and cached: SQLite files under ``bench/.cache/``, and
PostgreSQL databases named ``campaign_bench_u<N>_e<M>`` on the server named by
``--pg-url`` (default: $CAMPAIGN_BENCH_DATABASE_URL, else $CAMPAIGN_TEST_DATABASE_URL;
PostgreSQL is skipped without one), and MariaDB/MySQL databases of the same name on
the server named by ``--mysql-url`` (default: $CAMPAIGN_BENCH_MYSQL_URL, else
$CAMPAIGN_TEST_MYSQL_URL), loaded with ``LOAD DATA LOCAL INFILE``. Prints
``name: value unit`` lines: the time of the SQL aggregation alone
(``load_profile_aggregates``), of the pandas derivations on its result
(``derive_features``), their sum (= ``profile_frame``), rows/s, and the ratio
of the whole to the aggregation alone, all from the same run.

Other benchmarks build on this module: ``sqlite_database``, ``postgres_database``,
``mysql_database`` and ``time_aggregation`` are importable (``bench/score.py`` adds scoring on top).
"""

from __future__ import annotations

import argparse
import io
import os
import sqlite3
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import create_engine, text
from sqlalchemy.engine import Engine, make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from campaign.db.engine import make_engine  # noqa: E402
from campaign.db.migrate import upgrade  # noqa: E402
from campaign.ingest.readers import EVENT_COLUMNS  # noqa: E402  (the events table's load order)
from campaign.profile.features import derive_features  # noqa: E402
from campaign.profile.queries import load_profile_aggregates  # noqa: E402

CACHE = Path(__file__).resolve().parent / ".cache"
AS_OF = datetime(2026, 11, 1, tzinfo=UTC)
HISTORY_DAYS = 540
N_PRODUCTS = 10_000
N_CATEGORIES = 60
CHUNK = 1_000_000
TYPES = np.array(["view", "visit", "cart", "purchase", "search"])
TYPE_SHARE = np.array([0.55, 0.15, 0.12, 0.10, 0.08])


def _user_activity(rng: np.random.Generator, n_users: int) -> tuple[np.ndarray, ...]:
    """Per-user weight (power law), active-from and active-until (seconds before AS_OF)."""
    weight = rng.pareto(1.5, n_users) + 0.2
    weight /= weight.sum()
    span = HISTORY_DAYS * 86_400
    start = rng.uniform(0.05, 1.0, n_users) * span  # seconds before AS_OF
    # a third of the customers stopped some time ago (churned)
    stopped = rng.random(n_users) < 0.35
    end = np.where(stopped, rng.uniform(0.0, 1.0, n_users) * start, 0.0)
    return weight, start, end


def event_chunks(n_users: int, n_events: int, seed: int = 11) -> Iterator[pd.DataFrame]:
    """Seeded synthetic events in chunks (columns EVENT_COLUMNS; ts as datetime64[us])."""
    rng = np.random.default_rng(seed)
    weight, start, end = _user_activity(rng, n_users)
    as_of_us = np.datetime64(AS_OF.replace(tzinfo=None), "us")
    popularity = 1.0 / np.arange(1, N_PRODUCTS + 1) ** 0.9
    popularity /= popularity.sum()
    done = 0
    while done < n_events:
        size = min(CHUNK, n_events - done)
        users = rng.choice(n_users, size=size, p=weight)
        back = end[users] + rng.random(size) * (start[users] - end[users])
        ts = as_of_us - (back * 1e6).astype("int64").astype("timedelta64[us]")
        kind = TYPES[rng.choice(len(TYPES), size=size, p=TYPE_SHARE)]
        purchase = kind == "purchase"
        product = rng.choice(N_PRODUCTS, size=size, p=popularity) + 1
        day = (back // 86_400).astype("int64")
        with_order = purchase & (rng.random(size) < 0.5)
        order_id = np.where(
            with_order,
            pd.Series(users).astype(str).str.cat(pd.Series(day).astype(str), sep="-").to_numpy(),
            None,
        )
        frame = pd.DataFrame(
            {
                "user_id": users + 1,
                "product_id": np.where(kind == "visit", -1, product),
                "type": kind,
                "ts": ts,
                "order_id": order_id,
                "quantity": 1,
                "amount_cents": np.where(
                    purchase, np.round(rng.lognormal(8.0, 0.9, size)).astype("int64"), -1
                ),
                "coupon_code": np.where(purchase & (rng.random(size) < 0.15), "SAVE10", None),
                "source_event_id": [f"b{i:010d}" for i in range(done, done + size)],
            }
        )
        frame["product_id"] = frame["product_id"].astype("Int64").replace(-1, pd.NA)
        frame["amount_cents"] = frame["amount_cents"].astype("Int64").replace(-1, pd.NA)
        # Arrival order: the table is in time order, users interleaved, like a real log.
        yield frame.sort_values("ts", kind="stable")
        done += size


def _users_frame(n_users: int, seed: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    created = np.datetime64(AS_OF.replace(tzinfo=None), "us") - (
        rng.uniform(0, HISTORY_DAYS + 200, n_users) * 86_400e6
    ).astype("int64").astype("timedelta64[us]")
    return pd.DataFrame(
        {
            "id": np.arange(1, n_users + 1),
            "external_id": [f"u{i}" for i in range(1, n_users + 1)],
            "consent_email": True,
            "consent_sms": False,
            "created_at": created,
            "attributes": "{}",
        }
    )


def _products_frame() -> pd.DataFrame:
    ids = np.arange(1, N_PRODUCTS + 1)
    return pd.DataFrame(
        {
            "id": ids,
            "external_id": [f"p{i}" for i in ids],
            "category": [f"cat{i % N_CATEGORIES}" for i in ids],
            "price_cents": 1000 + ids % 500 * 100,
            "tags": "[]",
            "in_stock": True,
            "attributes": "{}",
        }
    )


def _sqlite_text(values: pd.Series) -> pd.Series:
    # The storage format of campaign.db.base.UTCDateTime on SQLite.
    return pd.Series(
        np.char.replace(np.datetime_as_string(values.to_numpy("datetime64[us]")), "T", " "),
        index=values.index,
    )


def _rows(frame: pd.DataFrame) -> list[tuple[object, ...]]:
    clean = frame.astype(object).where(frame.notna(), None)
    return list(clean.itertuples(index=False, name=None))


def sqlite_database(n_users: int, n_events: int) -> str:
    """URL of the cached SQLite benchmark database, built on first use (minutes)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"profile-u{n_users}-e{n_events}.db"
    if path.exists():
        return f"sqlite:///{path}"
    building = path.with_suffix(".building")
    building.unlink(missing_ok=True)
    engine = make_engine(f"sqlite:///{building}")
    upgrade(engine)
    engine.dispose()
    started = time.perf_counter()
    db = sqlite3.connect(building)
    db.execute("PRAGMA journal_mode=OFF")
    db.execute("PRAGMA synchronous=OFF")
    db.execute("DROP INDEX ix_events_user_id_ts")
    users = _users_frame(n_users)
    users["created_at"] = _sqlite_text(users["created_at"])
    db.executemany(
        f"INSERT INTO users ({', '.join(users.columns)}) VALUES "
        f"({', '.join('?' * len(users.columns))})",
        _rows(users),
    )
    products = _products_frame()
    db.executemany(
        f"INSERT INTO products ({', '.join(products.columns)}) VALUES "
        f"({', '.join('?' * len(products.columns))})",
        _rows(products),
    )
    insert = (
        f"INSERT INTO events ({', '.join(EVENT_COLUMNS)}) VALUES "
        f"({', '.join('?' * len(EVENT_COLUMNS))})"
    )
    for chunk in event_chunks(n_users, n_events):
        chunk["ts"] = _sqlite_text(chunk["ts"])
        db.executemany(insert, _rows(chunk))
        print(f"  sqlite: loaded {len(chunk)} events", file=sys.stderr)
    db.execute("CREATE INDEX ix_events_user_id_ts ON events (user_id, ts)")
    db.commit()
    db.close()
    building.rename(path)
    print(f"build_sqlite: {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return f"sqlite:///{path}"


def _copy(cursor: object, table: str, frame: pd.DataFrame) -> None:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, header=False)
    with cursor.copy(  # type: ignore[attr-defined]
        f"COPY {table} ({', '.join(frame.columns)}) FROM STDIN WITH (FORMAT csv)"
    ) as copy:
        copy.write(buffer.getvalue())


def postgres_database(admin_url: str, n_users: int, n_events: int) -> str:
    """URL of the cached PostgreSQL benchmark database on that server, built on first use."""
    name = f"campaign_bench_u{n_users}_e{n_events}"
    admin = create_engine(
        make_url(admin_url).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT"
    )
    url = make_url(admin_url).set(drivername="postgresql+psycopg", database=name)
    url_text = url.render_as_string(hide_password=False)
    with admin.connect() as connection:
        exists = connection.execute(
            text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}
        ).first()
    if exists:
        engine = make_engine(url_text)
        with engine.connect() as connection:
            ready = connection.execute(
                text("SELECT to_regclass('bench_ready') IS NOT NULL")
            ).scalar()
        engine.dispose()
        if ready:
            admin.dispose()
            return url_text
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    engine = make_engine(url_text)
    upgrade(engine)
    engine.dispose()
    started = time.perf_counter()
    import psycopg

    with psycopg.connect(make_url(url_text).set(drivername="postgresql").render_as_string(
        hide_password=False
    )) as db:
        cursor = db.cursor()
        # Foreign-key triggers off while bulk loading generated (consistent) data.
        cursor.execute("SET session_replication_role = replica")
        cursor.execute("DROP INDEX ix_events_user_id_ts")
        users = _users_frame(n_users)
        users["created_at"] = users["created_at"].dt.strftime("%Y-%m-%d %H:%M:%S.%f+00")
        _copy(cursor, "users", users)
        _copy(cursor, "products", _products_frame())
        for chunk in event_chunks(n_users, n_events):
            chunk["ts"] = chunk["ts"].dt.strftime("%Y-%m-%d %H:%M:%S.%f+00")
            _copy(cursor, "events", chunk)
            print(f"  postgresql: loaded {len(chunk)} events", file=sys.stderr)
        cursor.execute("CREATE INDEX ix_events_user_id_ts ON events (user_id, ts)")
        cursor.execute("ANALYZE")
        cursor.execute("CREATE TABLE bench_ready (done boolean)")
        db.commit()
    print(f"build_postgresql: {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return url_text


def _load_data(cursor: object, folder: Path, table: str, frame: pd.DataFrame) -> None:
    path = folder / f"{table}.csv"
    frame.to_csv(path, index=False, header=False, na_rep="\\N")
    cursor.execute(  # type: ignore[attr-defined]
        f"LOAD DATA LOCAL INFILE '{path}' INTO TABLE {table} CHARACTER SET utf8mb4 "
        "FIELDS TERMINATED BY ',' OPTIONALLY ENCLOSED BY '\"' ESCAPED BY '\\\\' "
        f"LINES TERMINATED BY '\\n' ({', '.join(frame.columns)})"
    )
    path.unlink()


def mysql_database(admin_url: str, n_users: int, n_events: int) -> str:
    """URL of the cached MariaDB/MySQL benchmark database on that server, built on first use."""
    import tempfile

    import pymysql

    name = f"campaign_bench_u{n_users}_e{n_events}"
    base = make_url(admin_url).set(drivername="mysql+pymysql")
    url_text = base.set(database=name).render_as_string(hide_password=False)
    admin = create_engine(base)
    with admin.begin() as connection:
        ready = connection.execute(
            text("SELECT 1 FROM information_schema.tables "
                 "WHERE table_schema = :n AND table_name = 'bench_ready'"), {"n": name}
        ).first()
        if ready:
            admin.dispose()
            return url_text
        connection.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
        connection.execute(
            text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
        )
    admin.dispose()
    engine = make_engine(url_text)
    upgrade(engine)
    engine.dispose()
    started = time.perf_counter()
    db = pymysql.connect(
        host=base.host or "127.0.0.1", port=base.port or 3306, user=base.username,
        password=base.password or "", database=name, local_infile=True, charset="utf8mb4",
    )
    with db.cursor() as cursor, tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        # Generated data is consistent: no key checks while bulk loading.
        cursor.execute("SET foreign_key_checks = 0, unique_checks = 0, time_zone = '+00:00'")
        cursor.execute("ALTER TABLE events DROP INDEX ix_events_user_id_ts")
        users = _users_frame(n_users)
        users["created_at"] = users["created_at"].dt.strftime("%Y-%m-%d %H:%M:%S.%f")
        users["consent_email"], users["consent_sms"] = 1, 0
        _load_data(cursor, folder, "users", users)
        products = _products_frame()
        products["in_stock"] = 1
        _load_data(cursor, folder, "products", products)
        for chunk in event_chunks(n_users, n_events):
            chunk["ts"] = chunk["ts"].dt.strftime("%Y-%m-%d %H:%M:%S.%f")
            _load_data(cursor, folder, "events", chunk)
            db.commit()
            print(f"  mysql: loaded {len(chunk)} events", file=sys.stderr)
        cursor.execute("ALTER TABLE events ADD INDEX ix_events_user_id_ts (user_id, ts)")
        cursor.execute("ANALYZE TABLE users, products, events")
        cursor.fetchall()
        cursor.execute("CREATE TABLE bench_ready (done BOOLEAN)")
        db.commit()
    db.close()
    print(f"build_mysql: {time.perf_counter() - started:.1f} s", file=sys.stderr)
    return url_text


def time_aggregation(engine: Engine, as_of: datetime = AS_OF) -> tuple[float, int]:
    """Seconds of the SQL aggregation alone (raw aggregates into a frame) and its rows."""
    with engine.connect() as connection:
        started = time.perf_counter()
        raw = load_profile_aggregates(connection, as_of)
        return time.perf_counter() - started, len(raw)


def time_profile(engine: Engine, as_of: datetime = AS_OF) -> tuple[float, float, pd.DataFrame]:
    """One profile_frame, timed in its two halves: (SQL aggregation s, derivations s, frame)."""
    with engine.connect() as connection:
        started = time.perf_counter()
        raw = load_profile_aggregates(connection, as_of)
        aggregated = time.perf_counter()
        frame = derive_features(raw, as_of)
        return aggregated - started, time.perf_counter() - aggregated, frame


def _report(dialect: str, url: str, n_events: int) -> None:
    engine = make_engine(url)
    aggregation, derivation, frame = time_profile(engine)
    engine.dispose()
    rows = len(frame)
    print(f"{dialect}.aggregation_seconds: {aggregation:.2f} s")
    print(f"{dialect}.aggregation_users_per_second: {rows / aggregation:,.0f} users/s")
    print(f"{dialect}.aggregation_events_per_second: {n_events / aggregation:,.0f} events/s")
    print(f"{dialect}.derivation_seconds: {derivation:.2f} s")
    total = aggregation + derivation
    print(f"{dialect}.profile_frame_seconds: {total:.2f} s")
    print(f"{dialect}.profile_frame_vs_aggregation: {total / aggregation:.2f} x")
    print(f"{dialect}.users: {rows} users")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--events", type=int, default=1_000_000)
    add_dialect_options(parser)
    args = parser.parse_args(argv)
    print(f"events: {args.events} events")
    for dialect, url in databases(args, args.users, args.events):
        _report(dialect, url, args.events)


def add_dialect_options(parser: argparse.ArgumentParser) -> None:
    """``--dialect`` and the server URLs, shared with ``bench/score.py``."""
    parser.add_argument(
        "--dialect", choices=["sqlite", "postgresql", "mysql", "all"], default="all"
    )
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("CAMPAIGN_BENCH_DATABASE_URL")
        or os.environ.get("CAMPAIGN_TEST_DATABASE_URL"),
    )
    parser.add_argument(
        "--mysql-url",
        default=os.environ.get("CAMPAIGN_BENCH_MYSQL_URL")
        or os.environ.get("CAMPAIGN_TEST_MYSQL_URL"),
    )


def databases(args: argparse.Namespace, n_users: int, n_events: int) -> list[tuple[str, str]]:
    """(dialect, URL) of each cached benchmark database ``args`` asks for, built on first use."""
    chosen = []
    if args.dialect in ("sqlite", "all"):
        chosen.append(("sqlite", sqlite_database(n_users, n_events)))
    if args.dialect in ("postgresql", "all"):
        if args.pg_url:
            chosen.append(("postgresql", postgres_database(args.pg_url, n_users, n_events)))
        else:
            print("postgresql: skipped (no --pg-url or CAMPAIGN_BENCH_DATABASE_URL)")
    if args.dialect in ("mysql", "all"):
        if args.mysql_url:
            chosen.append(("mysql", mysql_database(args.mysql_url, n_users, n_events)))
        else:
            print("mysql: skipped (no --mysql-url or CAMPAIGN_BENCH_MYSQL_URL)")
    return chosen


if __name__ == "__main__":
    main()
