"""`campaign score` on Spark: the same stored scores as the SQL path, and a failing
Spark job leaves the scores table as it was, with one error line from the CLI."""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import func, inspect, select

from campaign.churn.artifacts import model_key
from campaign.churn.registry import load_model
from campaign.churn.scoring import score_and_store
from campaign.common.errors import EngineError
from campaign.config import EngineConfig, load_config
from campaign.db.engine import make_engine
from campaign.db.models import ChurnScore
from campaign.profile.queries import newest_event_at
from tests.demo_helpers import campaign_cli, clean_env
from tests.spark_helpers import BadInput

pytestmark = [pytest.mark.spark, pytest.mark.filterwarnings("ignore::FutureWarning")]

ENGINE = EngineConfig(kind="spark", master="local[2]", partitions=2)


def _shop(spark_demo: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "shop"
    shutil.copytree(spark_demo.parent, folder)
    return folder


def _stored(engine: Any) -> pd.DataFrame:
    with engine.connect() as connection:
        rows = connection.execute(
            select(ChurnScore.user_id, ChurnScore.model_version_id, ChurnScore.as_of,
                   ChurnScore.risk, ChurnScore.tier, ChurnScore.reason)
        ).all()
    frame = pd.DataFrame([tuple(r) for r in rows],
                         columns=["user_id", "model", "as_of", "risk", "tier", "reason"])
    return frame.sort_values(["model", "as_of", "user_id"]).reset_index(drop=True)


def test_spark_stores_the_scores_the_sql_path_stores(
    spark: Any, spark_demo: Path, tmp_path: Path
) -> None:
    from campaign.engine.scoring import score_with_spark

    folder = _shop(spark_demo, tmp_path)
    config = load_config(folder / "config.toml", environ={})
    engine = make_engine(f"sqlite:///{folder / 'campaign.db'}")
    with engine.connect() as connection:
        as_of: datetime = newest_event_at(connection)
    on_sql = score_and_store(engine, config.model, as_of)
    stored_by_sql = _stored(engine)
    told: list[int] = []
    on_spark = score_with_spark(engine, ENGINE, config.model, as_of, told.append)
    assert len(on_sql) > 50 and set(on_sql["tier"]) >= {"high"} | set()
    pd.testing.assert_frame_equal(on_spark, on_sql, check_exact=True)
    # Replaced, not added: the table holds exactly what the SQL path stored.
    pd.testing.assert_frame_equal(_stored(engine), stored_by_sql, check_exact=True)
    assert sum(told) == len(on_sql)
    engine.dispose()


def test_a_failing_job_leaves_the_scores_as_they_were(
    spark: Any, spark_demo: Path, tmp_path: Path
) -> None:
    from campaign.engine.scoring import score_on_spark
    from campaign.engine.session import spark_errors
    from campaign.engine.sources import load_tables

    folder = _shop(spark_demo, tmp_path)
    config = load_config(folder / "config.toml", environ={})
    engine = make_engine(f"sqlite:///{folder / 'campaign.db'}")
    with engine.connect() as connection:
        as_of = newest_event_at(connection)
        model = load_model(connection, key=model_key(config.model))
    score_and_store(engine, config.model, as_of)
    before = _stored(engine)
    last_user = int(before["user_id"].max())

    with pytest.raises(EngineError) as info, spark_errors("scoring"):
        tables = load_tables(spark, engine, ENGINE)
        score_on_spark(spark, engine, tables, model.id, BadInput(model.pipeline, last_user),
                       config.model, as_of)
    assert str(info.value).startswith("scoring failed on Spark: ")
    assert "\n" not in str(info.value)
    pd.testing.assert_frame_equal(_stored(engine), before, check_exact=True)
    # The staging table is gone too.
    assert not [t for t in inspect(engine).get_table_names() if "staging" in t]
    engine.dispose()


def test_the_cli_prints_one_line_when_the_spark_job_fails(
    spark: object, spark_demo: Path, tmp_path: Path
) -> None:
    # ``spark``: the job must get as far as Spark (without the extra it stops earlier).
    folder = _shop(spark_demo, tmp_path)
    engine = make_engine(f"sqlite:///{folder / 'campaign.db'}")
    with engine.connect() as connection:
        count_before = connection.execute(select(func.count()).select_from(ChurnScore)).scalar()
    config = folder / "config.toml"
    # Without its JDBC driver the job's first read fails inside Spark.
    config.write_text(config.read_text() + '\n[engine]\nkind = "spark"\nmaster = "local[1]"\n'
                      'jars = ["/nonexistent/no-driver.jar"]\n')
    done = campaign_cli("--config", str(config), "score", cwd=folder, env=clean_env())
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, done.stderr[-2000:]
    assert "Spark" in errors[0]
    assert "Traceback" not in done.stderr
    with engine.connect() as connection:
        assert connection.execute(
            select(func.count()).select_from(ChurnScore)
        ).scalar() == count_before
    engine.dispose()
