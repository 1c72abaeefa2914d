"""The batch on Apache Spark (``[engine] kind = "spark"``, docs/operations.md).

The same work as the SQL path, for shops whose events outgrow one database's GROUP BY:
the profile features (:mod:`campaign.engine.profile`), the churn summary, snapshots
and labels (:mod:`campaign.engine.churn`), scoring with the tree broadcast to the
executors (:mod:`campaign.engine.scoring`) and the recommender's interaction matrix
(:mod:`campaign.engine.interactions`). Every derivation that already exists in pandas
runs unchanged on each partition through ``mapInPandas``, so it has one copy.

PySpark is the optional ``spark`` extra: nothing here imports it at module level
except the modules that need it, and :func:`campaign.engine.session.spark_session`
says how to install it when it is missing.
"""

from __future__ import annotations

INSTALL_HINT = (
    "the spark engine needs the [spark] extra: pip install -e '.[spark]' "
    "(and Java 17), or set [engine] kind = \"sql\""
)


def spark_available() -> bool:
    """Whether PySpark (the ``spark`` extra) can be imported."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return False
    return True
