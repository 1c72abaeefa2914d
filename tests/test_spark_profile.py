"""Profile features on Spark equal the SQL ones exactly, column by column and dtype by
dtype: on the demo shop (SQLite over JDBC, with its messages and coupons) and on a
random shop with microsecond timestamps on every database."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import insert

from campaign.config import EngineConfig
from campaign.db.engine import make_engine
from campaign.db.models import Event, Product, User
from campaign.profile import profile_frame
from campaign.profile.queries import newest_event_at
from tests.test_profile_queries import T, _random_shop

pytestmark = [pytest.mark.spark, pytest.mark.filterwarnings("ignore::FutureWarning")]

ENGINE = EngineConfig(kind="spark", master="local[2]", partitions=2)


def _spark_profile(spark: Any, url: str, as_of: Any, **kwargs: Any) -> pd.DataFrame:
    from campaign.engine.profile import profile_features, to_frame
    from campaign.engine.sources import load_tables

    engine = make_engine(url)
    try:
        tables = load_tables(spark, engine, ENGINE)
        return to_frame(profile_features(tables, as_of, **kwargs))
    finally:
        engine.dispose()


def test_the_demo_shop_gives_the_sql_frame(spark: Any, spark_demo: Path) -> None:
    url = f"sqlite:///{spark_demo}"
    engine = make_engine(url)
    with engine.connect() as connection:
        newest = newest_event_at(connection)
    wanted = []
    for as_of, lookback in ((newest, None), (newest - timedelta(days=123.4), 90)):
        want = profile_frame(engine, as_of, lookback_days=lookback)
        got = _spark_profile(spark, url, as_of, lookback_days=lookback)
        assert len(want) > 150
        pd.testing.assert_frame_equal(got, want, check_exact=True)
        wanted.append(want)
    # The demo's campaigns reached people: the message and coupon columns are exercised.
    assert (wanted[0]["messages_received"] > 0).any() and (wanted[0]["coupons_issued"] > 0).any()
    engine.dispose()


def test_every_database_gives_the_sql_frame_on_spark(spark: Any, db_url: str) -> None:
    shop = _random_shop(seed=5)
    engine = make_engine(db_url)
    with engine.begin() as connection:
        connection.execute(insert(User), shop["users"])
        connection.execute(insert(Product), shop["products"])
        connection.execute(insert(Event), shop["events"])
    want = profile_frame(engine, T - timedelta(days=0.5), lookback_days=200)
    engine.dispose()
    got = _spark_profile(spark, db_url, T - timedelta(days=0.5), lookback_days=200)
    assert len(want) > 50
    pd.testing.assert_frame_equal(got, want, check_exact=True)
