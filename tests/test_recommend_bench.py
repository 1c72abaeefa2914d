"""The recommender speed benchmark still runs: a tiny smoke run, asserting only its
output shape (speed is measured by running it for real, never in the tests)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench" / "recommend.py"


def test_the_recommender_benchmark_runs_and_prints_name_value_unit_lines() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH), "--users", "1500", "--items", "200", "--jobs", "1"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    shape = re.compile(r"[a-z0-9_.@-]+: [0-9.e+-]+ (s|x|rows|events|users/s|ratio)")
    assert lines and all(shape.fullmatch(line) for line in lines), lines
    names = {line.split(":")[0] for line in lines}
    assert {"hybrid.fit", "hybrid.top10_all_users", "hybrid.recall@10"} <= names
    # The baseline (implicit when installed, else a scipy item-item cosine) and the
    # ratios to it come from the same run.
    assert any(name.startswith("ratio.total_vs_") for name in names)
    rows = next(line for line in lines if line.startswith("hybrid.recommendations"))
    assert rows == "hybrid.recommendations: 15000 rows"  # full lists for every user


def test_the_benchmark_compares_catalogue_sizes_with_the_growth_per_size() -> None:
    result = subprocess.run(
        [sys.executable, str(BENCH), "--users", "800", "--items", "200", "600", "--jobs", "1"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    values = dict(line.split(": ", 1) for line in result.stdout.splitlines())
    assert values["items_200.hybrid.recommendations"] == "8000 rows"
    assert values["items_600.hybrid.recommendations"] == "8000 rows"
    assert values["scaling.items_ratio"] == "3.00 x"
    # Time ratio over size ratio, for the hybrid and its baseline, from the same run.
    assert "scaling.hybrid_per_size_ratio" in values
    assert any(n.startswith("scaling.") and n.endswith("_cpu_per_size_ratio") for n in values)
