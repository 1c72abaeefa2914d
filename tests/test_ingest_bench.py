"""The import benchmark still runs: a tiny smoke run, asserting only its output shape."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench" / "import_events.py"


def test_the_import_benchmark_runs_and_prints_name_value_unit_lines() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH), "--smoke", "--rows", "2000", "--sizes", "500,1000", "--no-pg"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if not line.startswith("#")]
    shape = re.compile(r"[a-z0-9_]+: [0-9.e+-]+ (rows/s|rows|ratio|MB)")
    assert lines and all(shape.fullmatch(line) for line in lines), lines
    names = {line.split(":")[0] for line in lines}
    assert {"sqlite_import_rate", "sqlite_raw_executemany_rate", "sqlite_import_vs_raw",
            "peak_rss_1000_rows", "peak_rss_1000_vs_500"} <= names
