"""Benchmark: `campaign import events FILE.parquet`, its rate and its memory as files grow.

Writes the same generated events (bench/import_events.py's generator) as CSV and as
typed Parquet (timestamps, integer quantities, decimal amounts; one row group per
CSV block of about 1 MB, as a streaming writer leaves them) for N and 4N events,
imports each with the real import code (``campaign.ingest.import_file``) into a fresh
SQLite file in a child process, and prints each import's rate (wall and CPU) and
peak RSS, the 4N/N memory ratio, and the CSV import of the same rows as the baseline
of the same run (loading pyarrow, once per process, is outside the timing).

    nice -n 19 .venv/bin/python bench/import_parquet.py              # 50k and 200k events
    nice -n 19 .venv/bin/python bench/import_parquet.py --rows 250000

Needs pyarrow (``pip install -e '.[parquet]'``). Prints ``name: value unit`` lines.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from import_events import load_shop, peak_rss_mb, say, write_events, write_shop  # noqa: E402

from campaign.db.engine import make_engine  # noqa: E402
from campaign.ingest import import_file  # noqa: E402


def write_parquet(csv_path: Path, parquet_path: Path) -> int:
    """The events of ``csv_path`` as typed Parquet, streamed block by block (one row
    group each); returns the row groups written."""
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    types = {
        "event_id": pa.string(), "user_id": pa.string(), "type": pa.string(),
        "ts": pa.timestamp("s", tz="UTC"), "product_id": pa.string(),
        "order_id": pa.string(), "quantity": pa.int32(), "amount": pa.decimal128(12, 2),
    }
    reader = pacsv.open_csv(
        str(csv_path),
        convert_options=pacsv.ConvertOptions(column_types=types, strings_can_be_null=True),
    )
    groups = 0
    with pq.ParquetWriter(str(parquet_path), reader.schema) as writer:
        for batch in reader:
            writer.write_table(pa.Table.from_batches([batch]))
            groups += 1
    return groups


def child_import(folder: Path, events: Path) -> tuple[float, float, float, int]:
    """Wall and CPU seconds, peak RSS (MB) and rows inserted of a child process
    importing ``events`` into a fresh copy of the shop's SQLite file."""
    db = folder / f"run-{uuid.uuid4().hex[:6]}.db"
    shutil.copyfile(folder / "shop.db", db)
    output = subprocess.run(
        [sys.executable, __file__, "--child", str(events), "--db", str(db)],
        check=True, capture_output=True, text=True,
    ).stdout
    for path in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
        path.unlink(missing_ok=True)
    elapsed, cpu, peak, inserted = output.strip().splitlines()[-1].split()
    return float(elapsed), float(cpu), float(peak), int(inserted)


def child(events: Path, db: Path) -> None:
    if events.suffix == ".parquet":
        # Loading the library (a few tenths of a second, once per process) is not
        # part of the rate; its memory is part of the peak.
        import pyarrow.parquet  # noqa: F401
    engine = make_engine(f"sqlite:///{db}")
    started, cpu = time.perf_counter(), time.process_time()
    report = import_file(engine, "events", events)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    engine.dispose()
    print(f"{elapsed} {cpu} {peak_rss_mb()} {report.inserted}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=50_000, help="N (also writes 4N)")
    parser.add_argument("--users", type=int, default=5_000)
    parser.add_argument("--products", type=int, default=1_000)
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--db", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.db)
        return
    rows = args.rows
    with tempfile.TemporaryDirectory(prefix="campaign-bench-parquet-") as tmp:
        folder = Path(tmp)
        users, products = write_shop(folder, args.users, args.products)
        load_shop(f"sqlite:///{folder / 'shop.db'}", users, products)
        say("events_rows", rows, "rows")
        peaks = []
        for size in (rows, 4 * rows):
            csv_path = folder / f"events-{size}.csv"
            write_events(csv_path, size, args.users, args.products, seed=size)
            parquet = folder / f"events-{size}.parquet"
            groups = write_parquet(csv_path, parquet)
            # The same rows as CSV: the baseline, measured in the same run.
            elapsed, cpu, csv_peak, inserted = child_import(folder, csv_path)
            assert inserted == size, f"csv: imported {inserted} of {size}"
            csv_path.unlink()
            csv_rate, csv_cpu_rate = size / elapsed, size / cpu
            say(f"csv_import_rate_{size}_rows", csv_rate, "rows/s")
            say(f"csv_import_cpu_rate_{size}_rows", csv_cpu_rate, "rows/s")
            say(f"csv_peak_rss_{size}_rows", csv_peak, "MB")
            elapsed, cpu, peak, inserted = child_import(folder, parquet)
            assert inserted == size, f"parquet: imported {inserted} of {size}"
            parquet.unlink()
            peaks.append(peak)
            say(f"parquet_row_groups_{size}_rows", groups, "groups")
            say(f"parquet_import_rate_{size}_rows", size / elapsed, "rows/s")
            say(f"parquet_import_cpu_rate_{size}_rows", size / cpu, "rows/s")
            say(f"parquet_peak_rss_{size}_rows", peak, "MB")
            # Wall time swings with the other jobs on a shared machine; CPU time is
            # the steadier comparison.
            say(f"parquet_vs_csv_rate_{size}_rows", (size / elapsed) / csv_rate, "ratio")
            say(f"parquet_vs_csv_cpu_rate_{size}_rows", (size / cpu) / csv_cpu_rate, "ratio")
        say(f"parquet_peak_rss_{4 * rows}_vs_{rows}", peaks[1] / peaks[0], "ratio")

if __name__ == "__main__":
    main()
