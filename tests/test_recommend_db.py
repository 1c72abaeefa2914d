"""The recommender against real databases: SQL loaders, the service and the CLI."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from campaign.cli import app
from campaign.config import RecommenderConfig
from campaign.db.models import Product
from campaign.recommend.data import (
    active_user_ids,
    load_events,
    load_products,
    newest_event_time,
    user_external_ids,
    user_ids_by_external,
)
from campaign.recommend.service import recommend_for_users
from tests.factories import DEFAULT_TS, make_events, make_product, make_user

T = DEFAULT_TS


def _shop(session: Session) -> dict[str, int]:
    """A small shop: shoes co-bought, one out-of-stock hat, one future event."""
    runner = make_product(session, external_id="runner", name="Trail Runner", category="shoes")
    road = make_product(session, external_id="road", name="Road Runner", category="shoes")
    hat = make_product(
        session, external_id="hat", name="Sun Hat", category="hats", in_stock=False, tags=[]
    )
    bag = make_product(session, external_id="bag", name="Tote", category="bags", tags=["a", "b"])
    for n in range(6):
        buyer = make_user(session, external_id=f"buyer{n}")
        make_events(
            session,
            buyer,
            [
                {"product": runner, "type": "purchase", "ts": T - timedelta(days=20 + n)},
                {"product": road, "type": "purchase", "ts": T - timedelta(days=10 + n)},
                {"product": hat, "type": "view", "ts": T - timedelta(days=3)},
                {"type": "visit", "ts": T - timedelta(days=2)},
            ],
        )
    alice = make_user(session, external_id="alice")
    make_events(
        session,
        alice,
        [
            {"product": runner, "type": "purchase", "ts": T - timedelta(days=5)},
            {"product": bag, "type": "purchase", "ts": T + timedelta(days=5)},
        ],
    )
    make_user(session, external_id="newcomer")
    session.commit()
    return {"runner": runner.id, "road": road.id, "hat": hat.id, "bag": bag.id, "alice": alice.id}


@pytest.fixture
def shop(session_factory: sessionmaker[Session]) -> dict[str, int]:
    with session_factory() as session:
        return _shop(session)


def test_loaders_read_only_product_events_before_the_cut(
    engine: Engine, shop: dict[str, int]
) -> None:
    with engine.connect() as connection:
        events = load_events(connection, T)
        window = load_events(connection, T + timedelta(days=30), start=T, types={"purchase"})
        products = load_products(connection)
        newest = newest_event_time(connection)
        active = active_user_ids(connection, T)
        mapping = user_ids_by_external(connection, ["alice", "nobody"])
        externals = user_external_ids(connection, [shop["alice"]])
    assert len(events) == 6 * 3 + 1
    assert events["ts"].max() < pd.Timestamp(T)
    assert str(events["ts"].dt.tz) == "UTC"
    assert set(events["type"]) == {"purchase", "view"}
    assert window[["user_id", "product_id"]].values.tolist() == [[shop["alice"], shop["bag"]]]
    assert products["external_id"].tolist() == ["runner", "road", "hat", "bag"]
    assert products.set_index("external_id").loc["hat", "in_stock"] == False  # noqa: E712
    assert products.set_index("external_id").loc["bag", "tags"] == ["a", "b"]
    assert newest == T + timedelta(days=5)
    assert shop["alice"] in active and len(active) == 7
    assert mapping == {"alice": shop["alice"]}
    assert externals[shop["alice"]] == "alice"


def test_service_recommends_co_bought_products_and_filters(
    engine: Engine, shop: dict[str, int]
) -> None:
    config = RecommenderConfig()
    with engine.connect() as connection:
        result = recommend_for_users(connection, config, [shop["alice"]], T, 3)
    assert {"user_id", "rank", "product_id", "score", "reason", "name", "url"} <= set(result)
    ids = result["product_id"].tolist()
    assert ids[0] == shop["road"]
    assert shop["runner"] not in ids  # bought
    assert shop["hat"] not in ids  # out of stock
    assert result["name"].iloc[0] == "Road Runner"


def test_blend_weights_come_from_the_config(engine: Engine, shop: dict[str, int]) -> None:
    def reasons(**weights: float) -> list[str]:
        with engine.connect() as connection:
            result = recommend_for_users(
                connection, RecommenderConfig(**weights), [shop["alice"]], T, 3
            )
        return result["reason"].tolist()

    # No prior: only products near Alice's history. A dominant prior: her top pick
    # (the same Road Runner) is there because it is popular, not because of her.
    assert reasons()[0] == "because you bought Trail Runner"
    assert reasons(popularity_weight=0.0)
    assert not any(r.startswith("popular") for r in reasons(popularity_weight=0.0))
    assert reasons(popularity_weight=1000.0)[0] == "popular in shoes"


def _config(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f'[database]\nurl = "{url}"\n', encoding="utf-8")
    return path


def test_cli_recommend_writes_external_ids(
    engine: Engine, shop: dict[str, int], db_url: str, tmp_path: Path
) -> None:
    config = _config(tmp_path, db_url)
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "--config",
            str(config),
            "recommend",
            "--user",
            "alice",
            "-k",
            "2",
            "--as-of",
            T.isoformat(),
        ],
    )
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert list(rows[0]) == ["user_id", "rank", "product_id", "score", "reason"]
    assert rows[0]["user_id"] == "alice"
    assert rows[0]["product_id"] == "road"
    assert rows[0]["rank"] == "1"
    assert rows[0]["reason"] == "similar to Trail Runner you bought" or rows[0][
        "reason"
    ].startswith("because you bought")

    out = tmp_path / "recs.csv"
    result = runner.invoke(
        app,
        [
            "--config",
            str(config),
            "recommend",
            "-k",
            "2",
            "--output",
            str(out),
            "--as-of",
            T.isoformat(),
        ],
    )
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(out, dtype={"user_id": str})
    # Every user with activity before T: the six buyers and alice, not the newcomer.
    assert set(frame["user_id"]) == {f"buyer{n}" for n in range(6)} | {"alice"}
    assert (frame.groupby("user_id")["rank"].max() <= 2).all()


def test_cli_unknown_user_is_one_line_and_exit_1(
    engine: Engine, shop: dict[str, int], db_url: str, tmp_path: Path
) -> None:
    result = CliRunner().invoke(
        app, ["--config", str(_config(tmp_path, db_url)), "recommend", "--user", "ghost"]
    )
    assert result.exit_code == 1
    assert result.stderr.strip() == "error: user not found: ghost"


def test_cli_evaluate_recommend_prints_every_model(
    engine: Engine, shop: dict[str, int], db_url: str, tmp_path: Path
) -> None:
    result = CliRunner().invoke(
        app, ["--config", str(_config(tmp_path, db_url)), "evaluate", "recommend", "-k", "3"]
    )
    assert result.exit_code == 0, result.output
    for word in (
        "popularity",
        "item-cf",
        "buy-again",
        "hybrid",
        "recall@3",
        "NDCG@3",
        "new items only",
    ):
        assert word in result.stdout


def test_events_read_column_wise_match_the_rows_sqlalchemy_returns(
    engine: Engine, shop: dict[str, int]
) -> None:
    import gc

    from sqlalchemy import select

    from campaign.db.frames import frame_of, plain_columns
    from campaign.db.models import Event

    query = (
        select(Event.user_id, Event.product_id, Event.type, Event.quantity)
        .where(Event.product_id.is_not(None))
        .order_by(Event.id)
    )
    with engine.connect() as connection:
        rows = frame_of(connection.execute(query), ["u", "p", "t", "q"])
        columns = plain_columns(connection.execute(query), ["u", "p", "t", "q"])
        empty = plain_columns(
            connection.execute(query.where(Event.user_id < 0)), ["u", "p", "t", "q"]
        )
        events = load_events(connection, T)
        nothing = load_events(connection, T - timedelta(days=365))
    assert {name: list(values) for name, values in columns.items()} == {
        name: rows[name].tolist() for name in rows
    }
    assert empty == {"u": (), "p": (), "t": (), "q": ()}
    assert gc.isenabled()  # the collector paused while reading is running again
    assert events["type"].map(type).eq(str).all()
    assert events["quantity"].min() >= 1 and str(events["quantity"].dtype) == "int64"
    assert list(nothing.columns) == ["user_id", "product_id", "type", "ts", "quantity", "order_id"]
    assert len(nothing) == 0 and str(nothing["ts"].dt.tz) == "UTC"


def test_a_fit_on_unchanged_data_is_reused_and_new_data_fits_again(
    engine: Engine, session_factory: sessionmaker[Session], shop: dict[str, int]
) -> None:
    # A long-lived process (the console's audience pages) asks for the same fit again:
    # it is the last one, until an event or a product changes, or the settings do.
    from campaign.recommend.service import fit_recommender

    config = RecommenderConfig()
    with engine.connect() as connection:
        first = fit_recommender(connection, config, T)
        assert fit_recommender(connection, config, T) is first
        assert fit_recommender(connection, config, T + timedelta(days=1)) is not first
        again = fit_recommender(connection, config, T)
        changed = fit_recommender(connection, RecommenderConfig(neighbours=5), T)
        assert changed is not again
    with session_factory() as session:
        newcomer = make_user(session, external_id="late")
        make_events(session, newcomer, [{"product": session.get(Product, shop["hat"]),
                                          "type": "view", "ts": T - timedelta(days=1)}])
        session.commit()
    with engine.connect() as connection:
        refit = fit_recommender(connection, RecommenderConfig(neighbours=5), T)
        assert refit is not changed
        assert len(refit.feedback.user_ids) == len(changed.feedback.user_ids) + 1
