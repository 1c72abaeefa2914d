"""The Spark tests' shared pieces: the skip (or failure) without PySpark, and the
small demo shop they run on."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

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


class BadInput:
    """A real tree, except that one customer's row breaks it on the executor (an
    importable class: Spark ships broadcasts with the standard pickle)."""

    def __init__(self, real: Any, bad_user: int) -> None:
        self.real = real
        self.bad_user = bad_user

    def __getattr__(self, name: str) -> Any:
        if name in ("real", "bad_user"):
            raise AttributeError(name)
        return getattr(self.real, name)

    def predict_proba(self, rows: Any) -> Any:
        if self.bad_user in rows.index:
            raise ValueError("bad input row")
        return self.real.predict_proba(rows)
