"""The Spark tests' shared pieces: the skip (or failure) without PySpark, and the
small demo shop they run on."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.demo_helpers import campaign_cli

# Set only by .ci/run's Spark step: there a Spark test that would skip fails instead.
# (The main suite runs without the extra, so CAMPAIGN_REQUIRE_SERVICES does not apply.)
REQUIRE_SPARK_ENV = "CAMPAIGN_REQUIRE_SPARK"
SKIP_REASON = (
    "the Spark engine tests need the spark extra (pip install -e '.[spark]') and Java 17"
)
SPARK_USERS = 300


def require_pyspark() -> None:
    """Skip the calling test without PySpark (fail where the Spark step requires it)."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        if os.environ.get(REQUIRE_SPARK_ENV) == "1":
            pytest.fail(f"{SKIP_REASON}; {REQUIRE_SPARK_ENV}=1 requires it", pytrace=False)
        pytest.skip(SKIP_REASON)


def small_demo(folder: Path) -> Path:
    """A real ``campaign demo`` of :data:`SPARK_USERS` users (with its messages, coupons
    and trained model) in ``folder``; returns the SQLite file."""
    done = campaign_cli("demo", "--users", str(SPARK_USERS), "--seed", "2",
                        "--dir", str(folder), cwd=folder.parent, timeout=600)
    assert done.returncode == 0, done.stderr
    return folder / "campaign.db"
