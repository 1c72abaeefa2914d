"""Churn scoring on Spark: the customers' summary from the Spark profile, the fitted
tree broadcast to the executors, risk, tier and reason computed there by the same
:func:`campaign.churn.scoring.score_summary`, and the scores written back in bulk.

Nothing half-written: the executors append to a staging table of their own; only when
the whole Spark job has succeeded does one transaction replace the model's scores at
the as-of time with the staged rows (then the staging table is dropped, also when the
job failed). A reader of ``churn_scores`` sees the old scores or the new, never a mix.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    MetaData,
    String,
    Table,
    Text,
    bindparam,
    delete,
    text,
)
from sqlalchemy.engine import Engine

from campaign.churn.btyd import expected_orders, fit_bgnbd
from campaign.churn.model import snapshot_horizon
from campaign.churn.scoring import score_summary
from campaign.churn.summary import BTYD_COLUMN, MAX_EXPECTED, btyd_history, buyer_summary
from campaign.config import ModelConfig
from campaign.db.base import UTCDateTime, table_of
from campaign.db.models import ChurnScore, User
from campaign.engine.sources import Tables, jdbc_of

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

Progress = Callable[[int], None] | None

_SUMMARY_DDL = (
    "user_id bigint, days_since_last_purchase double, days_since_first_purchase double, "
    "orders_total bigint, orders_30d bigint, orders_90d bigint, orders_365d bigint, "
    "spend_365d_cents bigint, days_since_last_event double, views_30d bigint, "
    "carts_30d bigint, abandoned_carts_30d bigint"
)


def customer_summary(
    spark: SparkSession, tables: Tables, as_of: datetime, *, lookback_days: int,
    horizon_days: int | None,
) -> DataFrame:
    """:func:`campaign.churn.data.load_summary` on Spark: the customers' summary rows.

    The BG/NBD fit needs every buyer's three history figures on the driver (four
    numbers result); they are collected in user order, as the SQL path fits them.
    """
    from pyspark.sql import functions as F

    from campaign.engine.profile import profile_features

    def summarise(chunks: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        for chunk in chunks:
            yield buyer_summary(chunk.set_index("user_id")).reset_index()

    buyers = profile_features(tables, as_of).mapInPandas(  # type: ignore[arg-type]
        summarise, _SUMMARY_DDL
    )
    if horizon_days is not None:
        history = buyers.select(
            "user_id", "days_since_first_purchase", "days_since_last_purchase", "orders_total"
        ).toPandas()
        history = history.sort_values("user_id", kind="stable")  # type: ignore[attr-defined]
        ddl = f"{_SUMMARY_DDL}, {BTYD_COLUMN} double"
        if len(history):
            params = fit_bgnbd(*btyd_history(history))

            def expect(chunks: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
                for chunk in chunks:
                    x, t_x, t = btyd_history(chunk)
                    chunk[BTYD_COLUMN] = np.minimum(
                        expected_orders(params, x, t_x, t, horizon_days), MAX_EXPECTED
                    )
                    yield chunk

            buyers = buyers.mapInPandas(expect, ddl)  # type: ignore[arg-type]
        else:
            buyers = buyers.withColumn(BTYD_COLUMN, F.lit(None).cast("double"))
    return buyers.where(F.col("days_since_last_purchase") <= lookback_days)


def _staging(name: str) -> Table:
    return Table(
        name, MetaData(),
        Column("user_id", BigInteger), Column("risk", Float),
        Column("tier", String(16)), Column("reason", Text),
    )


def _watch(accumulator: Any, progress: Progress, stop: threading.Event) -> None:
    """Tell ``progress`` the rows the executors have scored, as their tasks finish."""
    told = 0
    while progress is not None:
        done = int(accumulator.value)
        if done > told:
            progress(done - told)
            told = done
        if stop.wait(0.5):
            done = int(accumulator.value)
            if done > told:
                progress(done - told)
            return


def score_on_spark(
    spark: SparkSession,
    engine: Engine,
    tables: Tables,
    version_id: int,
    pipeline: object,
    config: ModelConfig,
    as_of: datetime,
    progress: Progress = None,
) -> int:
    """Score every customer at ``as_of`` on Spark and store the scores under model
    ``version_id``, replacing that model's scores at ``as_of`` in one transaction.

    Returns how many customers were scored. A failing job raises (see
    :func:`campaign.engine.session.spark_errors`) and leaves ``churn_scores`` as it was.
    """
    from pyspark.sql import functions as F

    summary = customer_summary(
        spark, tables, as_of, lookback_days=config.lookback_days,
        horizon_days=snapshot_horizon(pipeline),
    )
    locales = tables.users.select(F.col("id").alias("user_id"), "locale")
    rows = summary.join(locales, "user_id", "left")
    context = getattr(spark, "sparkContext", None)
    shipped = context.broadcast(pipeline) if context is not None else None
    counter = context.accumulator(0) if context is not None else None
    thresholds = dict(config.tier_thresholds)

    def score(chunks: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        model = shipped.value if shipped is not None else pipeline
        for chunk in chunks:
            chunk = chunk.set_index("user_id")
            locale = chunk.pop("locale")
            scored = score_summary(model, chunk, locale, thresholds)
            if counter is not None:
                counter.add(len(scored))
            yield scored.reset_index()

    scored = rows.mapInPandas(  # type: ignore[arg-type]
        score, "user_id bigint, risk double, tier string, reason string"
    )
    jdbc = jdbc_of(engine.url.render_as_string(hide_password=False))
    if jdbc.dialect == "sqlite":
        scored = scored.repartition(1)  # SQLite has one writer at a time
    name = f"churn_scores_staging_{secrets.token_hex(4)}"
    staging = _staging(name)
    staging.create(engine)
    stop = threading.Event()
    watcher = threading.Thread(target=_watch, args=(counter, progress, stop), daemon=True)
    try:
        if counter is not None and progress is not None:
            watcher.start()
        writer = scored.write.format("jdbc").options(**jdbc.options())
        writer.option("dbtable", name).option("batchsize", "10000").mode("append").save()
        stop.set()
        if watcher.is_alive():
            watcher.join()
        return _swap(engine, staging, version_id, as_of)
    finally:
        stop.set()
        staging.drop(engine, checkfirst=True)


def _swap(engine: Engine, staging: Table, version_id: int, as_of: datetime) -> int:
    """Replace the model's scores at ``as_of`` with the staged ones: one transaction."""
    table = table_of(ChurnScore)
    with engine.begin() as connection:
        connection.execute(
            delete(table).where(table.c.model_version_id == version_id, table.c.as_of == as_of)
        )
        insert = text(
            "INSERT INTO churn_scores (user_id, model_version_id, as_of, risk, tier, reason) "
            f"SELECT user_id, :version, :as_of, risk, tier, reason FROM {staging.name}"
        ).bindparams(bindparam("as_of", type_=UTCDateTime()))
        result = connection.execute(insert, {"version": version_id, "as_of": as_of})
        return int(result.rowcount or 0)


def stored_frame(engine: Engine, version_id: int, as_of: datetime) -> pd.DataFrame:
    """The scores just stored, as :func:`campaign.churn.scoring.score_and_store` returns
    them: indexed by ``user_id``, ``external_id``, ``risk``, ``tier``, ``reason``,
    highest risk first."""
    from sqlalchemy import select

    table, users = table_of(ChurnScore), table_of(User)
    statement = select(
        table.c.user_id, users.c.external_id, table.c.risk, table.c.tier, table.c.reason
    ).join(users, users.c.id == table.c.user_id).where(
        table.c.model_version_id == version_id, table.c.as_of == as_of
    )
    with engine.connect() as connection:
        records = [tuple(row) for row in connection.execute(statement)]
    frame = pd.DataFrame.from_records(
        records, columns=["user_id", "external_id", "risk", "tier", "reason"]
    ).set_index("user_id").sort_index()
    # Python strings, as the SQL path's frame holds them.
    frame = frame.astype({"tier": object, "reason": object})
    return frame.sort_values("risk", ascending=False, kind="stable")


def score_with_spark(
    engine: Engine,
    batch: Any,
    config: ModelConfig,
    as_of: datetime,
    progress: Progress = None,
    *,
    base_dir: str = ".",
) -> pd.DataFrame:
    """``campaign score`` on Spark: the active model, scored and stored as above.

    Returns what :func:`campaign.churn.scoring.score_and_store` returns.

    Raises:
        NotFound: no active churn model.
        EngineError: PySpark missing, Spark not starting, or the job failed (one line;
            the stored scores are unchanged).
    """
    from campaign.churn.artifacts import model_key
    from campaign.churn.registry import load_model
    from campaign.engine.session import spark_errors, spark_session
    from campaign.engine.sources import load_tables

    with engine.connect() as connection:
        model = load_model(connection, key=model_key(config))
    spark = spark_session(batch)
    with spark_errors("scoring"):
        tables = load_tables(spark, engine, batch, base_dir)
        score_on_spark(spark, engine, tables, model.id, model.pipeline, config, as_of, progress)
    return stored_frame(engine, model.id, as_of)
