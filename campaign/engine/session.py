"""The SparkSession of one process, built from ``[engine]``, and Spark's errors as ours.

One session per process: Spark starts in seconds, and every batch step of a command
reuses it. Time is UTC everywhere (the session time zone and the JVM's own), so the
text timestamps of SQLite and MariaDB and the instants of PostgreSQL all become the
same epoch microseconds.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from campaign.common.errors import CampaignError, EngineError
from campaign.config import EngineConfig
from campaign.engine import INSTALL_HINT

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

_UTC_JVM = "-Duser.timezone=UTC"


def _builder(config: EngineConfig) -> Any:
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise EngineError(INSTALL_HINT) from None
    builder = SparkSession.builder.appName(config.app_name)
    if config.master.startswith("sc://"):
        # Spark Connect: the server has its own jars and JVM options.
        return builder.remote(config.master).config("spark.sql.session.timeZone", "UTC")
    builder = builder.master(config.master)
    jars = config.jar_paths()
    if jars:
        builder = builder.config("spark.jars", ",".join(jars))
    settings = {
        "spark.driver.memory": config.driver_memory,
        "spark.driver.extraJavaOptions": _UTC_JVM,
        "spark.executor.extraJavaOptions": _UTC_JVM,
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        # The command line draws its own progress bar; Spark's would garble it.
        "spark.ui.showConsoleProgress": "false",
        "spark.ui.enabled": "false",
        "spark.log.level": "ERROR",
    }
    if config.master.startswith("local"):
        # Spark's default of 200 shuffle partitions is for clusters; on one machine a few
        # per core are enough (adaptive execution coalesces them further).
        settings["spark.sql.shuffle.partitions"] = "8"
        # Local executors are this machine: the same interpreter (and so the same
        # installed product) as the driver, not whatever `python3` is on the PATH.
        settings["spark.pyspark.python"] = sys.executable
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    for key, value in settings.items():
        builder = builder.config(key, value)
    return builder


def spark_session(config: EngineConfig) -> SparkSession:
    """This process's SparkSession for ``config`` (started on first use).

    Raises:
        EngineError: PySpark is not installed (the message says how to install it) or
            Spark cannot start (bad master, no Java).
    """
    builder = _builder(config)
    try:
        session: SparkSession = builder.getOrCreate()
    except Exception as exc:  # Spark raises Java and Python errors of many kinds
        raise EngineError(
            f"cannot start Spark at master {config.master}: {summary(exc)}"
        ) from None
    return session


def summary(exc: BaseException) -> str:
    """One readable line of a Spark (or Java) error: its first line that says something."""
    text = str(exc).strip() or type(exc).__name__
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("at ", "Traceback", "File ", "JVM stacktrace")):
            return line[:400]
    return type(exc).__name__


@contextmanager
def spark_errors(what: str) -> Iterator[None]:
    """Turn a failing Spark job inside the block into one :class:`EngineError` line."""
    try:
        yield
    except CampaignError:
        raise
    except Exception as exc:
        if not _is_spark_error(exc):
            raise
        raise EngineError(f"{what} failed on Spark: {summary(exc)}") from None


def _is_spark_error(exc: BaseException) -> bool:
    try:
        from py4j.protocol import Py4JError
        from pyspark.errors import PySparkException
    except ImportError:  # pragma: no cover - only reached with the extra installed
        return False
    return isinstance(exc, PySparkException | Py4JError)
