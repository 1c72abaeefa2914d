"""Where CI requires the services, a PostgreSQL or MariaDB test without its database
fails, not skips."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# One test that needs PostgreSQL (through the shared pg_database fixture).
PG_TEST = "tests/test_churn_db.py::test_sql_labels_and_summary_match_the_pure_reference"


SERVICES = ("CAMPAIGN_TEST_DATABASE_URL", "CAMPAIGN_TEST_MYSQL_URL", "CAMPAIGN_REQUIRE_SERVICES")


def _pytest(require: str | None, dialect: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in SERVICES}
    if require is not None:
        env["CAMPAIGN_REQUIRE_SERVICES"] = require
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-n", "0", "-p", "no:cacheprovider",
         f"{PG_TEST}[{dialect}]"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )


@pytest.mark.parametrize(
    "dialect,variable",
    [("postgresql", "CAMPAIGN_TEST_DATABASE_URL"), ("mysql", "CAMPAIGN_TEST_MYSQL_URL")],
)
def test_a_missing_database_skips_by_default_and_fails_where_required(
    dialect: str, variable: str
) -> None:
    skipped = _pytest(None, dialect)
    assert skipped.returncode == 0 and "1 skipped" in skipped.stdout, skipped.stdout
    failed = _pytest("1", dialect)
    assert failed.returncode == 1, failed.stdout
    assert variable in failed.stdout and "CAMPAIGN_REQUIRE_SERVICES=1" in failed.stdout
