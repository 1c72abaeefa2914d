"""``campaign train recommend`` end to end: a real SQLite file, the CLI in a subprocess,
the signed recommender versions in ``model_versions``, champion/challenger, the daemon's
retraining."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select, update
from sqlalchemy.engine import Engine

from campaign.common.errors import ModelError
from campaign.db.models import ModelVersion
from campaign.recommend.registry import (
    RECOMMENDER,
    activate_recommender,
    load_recommender,
    save_recommender,
)
from tests.recommend_shops import END, replenishing_shop

KEY = b"k" * 32
ROOT = Path(__file__).resolve().parents[1]


def _campaign(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, COLUMNS="200", CAMPAIGN_MODEL_KEY="test-key")
    return subprocess.run(
        [sys.executable, "-m", "campaign", "--config", str(config), *args],
        capture_output=True, text=True, env=env, cwd=config.parent, check=False, timeout=600,
    )


@pytest.fixture(scope="module")
def shop_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite shop of cycle replenishers, imported through the CLI's CSV contract."""
    folder = tmp_path_factory.mktemp("tournament")
    events, products = replenishing_shop(users=60, items=30, days=200, churners=0.3)
    with (folder / "users.csv").open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["user_id"])
        writer.writerows([[f"u{u}"] for u in sorted(events["user_id"].unique())])
    with (folder / "products.csv").open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["product_id", "name", "category"])
        writer.writerows([[r.external_id, r.name, f"c{i % 3}"]
                          for i, r in enumerate(products.itertuples())])
    with (folder / "events.csv").open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["user_id", "product_id", "type", "ts", "order_id", "amount"])
        writer.writerows([[f"u{r.user_id}", f"p{r.product_id}", "purchase",
                           r.ts.strftime("%Y-%m-%dT%H:%M:%S"), r.order_id, "1.00"]
                          for r in events.itertuples()])
    config = folder / "config.toml"
    config.write_text(
        f'[database]\nurl = "sqlite:///{folder / "shop.db"}"\n\n'
        "[recommender]\nvalidation_days = 7\nallow_repurchase = true\n"
        "repurchase_window_days = 0\n\n"
        "[model]\nmin_customers = 10\nmin_history_days = 30\n"
        "max_depth_candidates = [2, 3]\nmin_samples_leaf_candidates = [5]\n",
        encoding="utf-8",
    )
    for args in (("db", "upgrade"), ("import", "users", "users.csv"),
                 ("import", "products", "products.csv"), ("import", "events", "events.csv")):
        done = _campaign(config, *args)
        assert done.returncode == 0, done.stderr
    return config


def _versions(config: Path) -> list[tuple[int, bool, dict[str, object]]]:
    url = config.read_text().split('"')[1]
    engine = create_engine(url)
    with engine.connect() as connection:
        rows = connection.execute(
            select(ModelVersion.id, ModelVersion.active, ModelVersion.params)
            .where(ModelVersion.kind == RECOMMENDER).order_by(ModelVersion.id)
        ).all()
    engine.dispose()
    return [(int(i), bool(a), dict(p)) for i, a, p in rows]


def test_train_recommend_elects_stores_and_serves_the_winner(shop_file: Path) -> None:
    as_of = END.strftime("%Y-%m-%dT%H:%M:%S")
    before = _campaign(shop_file, "recommend", "-k", "5", "--as-of", as_of)
    assert before.returncode == 0, before.stderr
    trained = _campaign(shop_file, "train", "recommend", "--as-of", as_of)
    assert trained.returncode == 0, trained.stderr
    assert "winner, repeat purchases allowed: replenish" in trained.stdout
    assert "activated recommender version" in trained.stdout
    versions = _versions(shop_file)
    assert len(versions) == 1 and versions[0][1]
    recipes = versions[0][2]["recipes"]
    assert recipes["repeat"][0][0] == "replenish"  # type: ignore[index]

    served = _campaign(shop_file, "recommend", "-k", "5", "--as-of", as_of, "--raw")
    assert served.returncode == 0, served.stderr
    rows = list(csv.DictReader(served.stdout.splitlines()))
    assert {r["reason"] for r in rows} <= {"buy again", "popular now"} | {
        r["reason"] for r in rows if r["reason"].startswith(("popular in", "because you"))
    }
    assert len({r["user_id"] for r in rows}) == 60
    assert all(r["reason"] for r in rows)
    _the_planner_picks_what_recommend_serves(shop_file, rows)
    # A second tournament on the same window is not worse: it becomes the champion.
    again = _campaign(shop_file, "train", "recommend", "--as-of", as_of)
    assert again.returncode == 0, again.stderr
    assert "not worse than version" in again.stdout
    assert [active for _, active, _ in _versions(shop_file)] == [False, True]

    table = _campaign(shop_file, "evaluate", "recommend", "--format", "json")
    assert table.returncode == 0, table.stderr
    rows = json.loads(table.stdout)["tournament"]
    winners = [r for r in rows if r["winner"]]
    assert {r["scope"] for r in winners} == {"repeat", "new"}
    assert rows[0]["version"] == versions[0][0] + 1
    text = _campaign(shop_file, "evaluate", "recommend")
    assert "the active recommender, version" in text.stdout and "replenish" in text.stdout


def _the_planner_picks_what_recommend_serves(config: Path, rows: list[dict[str, str]]) -> None:
    from campaign.config import load_config
    from campaign.planner.content import recommend
    from campaign.recommend.data import user_ids_by_external

    loaded = load_config(config, {"CAMPAIGN_MODEL_KEY": "test-key"})
    engine = create_engine(loaded.database_url())
    first = rows[0]["user_id"]
    with engine.connect() as connection:
        internal = user_ids_by_external(connection, [first])[first]
        picks = recommend(connection, loaded, {True: [internal]}, END)
    engine.dispose()
    served = [(r["product_id"], r["reason"]) for r in rows if r["user_id"] == first]
    planned = [(p.view["id"], p.view["reason"]) for p in picks[internal]]
    assert planned[: len(served)] == served


def test_bare_train_and_score_still_do_the_churn_models_work(shop_file: Path) -> None:
    as_of = END.strftime("%Y-%m-%dT%H:%M:%S")
    help_text = _campaign(shop_file, "train", "--help").stdout
    assert "recommend" in help_text and "churn" in help_text
    trained = _campaign(shop_file, "train", "--as-of", as_of, "--horizon-days", "30")
    assert trained.returncode == 0, trained.stderr
    assert "model version" in trained.stdout
    scored = _campaign(shop_file, "score", "churn", "--as-of", as_of)
    assert scored.returncode == 0, scored.stderr
    assert "customers scored" in scored.stdout


def test_a_tampered_recommender_version_is_refused_in_one_line(
    shop_file: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "shop.db"
    copy.write_bytes(Path(shop_file.read_text().split('"')[1][len("sqlite:///"):]).read_bytes())
    config = tmp_path / "config.toml"
    config.write_text(
        shop_file.read_text().replace(str(shop_file.parent / "shop.db"), str(copy)),
        encoding="utf-8",
    )
    as_of = END.strftime("%Y-%m-%dT%H:%M:%S")
    assert _campaign(config, "train", "recommend", "--as-of", as_of).returncode == 0
    engine = create_engine(f"sqlite:///{copy}")
    with engine.begin() as connection:
        connection.execute(
            update(ModelVersion).where(ModelVersion.kind == RECOMMENDER, ModelVersion.active)
            .values(artifact=b'{"format":1,"recipes":{"new":[["popular",1.0]],'
                    b'"repeat":[["popular",1.0]]},"settings":{}}')
        )
    engine.dispose()
    done = _campaign(config, "recommend", "--as-of", as_of)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "recommender model version" in lines[0]
    assert "campaign train recommend" in lines[0]


def test_a_recommender_version_round_trips_through_the_registry(engine: Engine) -> None:
    recipes = {"repeat": {"replenish": 1.0, "item_cf": 0.1}, "new": {"popular": 1.0}}
    with engine.begin() as connection:
        version = save_recommender(
            connection, recipes=recipes, settings={"neighbours": 20}, trained_at=END,
            as_of=END, window_days=28, metrics={"table": []}, key=KEY,
        )
        assert load_recommender(connection, KEY) is None  # stored inactive
        activate_recommender(connection, version)
    with engine.connect() as connection:
        loaded = load_recommender(connection, lambda: KEY)
        assert loaded is not None
        assert (loaded.id, loaded.recipes, loaded.settings) == (version, recipes,
                                                                {"neighbours": 20})
        assert list(loaded.recipes["repeat"]) == ["replenish", "item_cf"]  # order kept
        with pytest.raises(ModelError, match="signed with another key"):
            load_recommender(connection, b"x" * 32)


def test_a_shop_without_a_trained_recommender_never_needs_the_key(engine: Engine) -> None:
    def no_key() -> bytes:
        raise AssertionError("the key was asked for")

    with engine.connect() as connection:
        assert load_recommender(connection, no_key) is None


def test_the_daemons_retraining_job_trains_churn_then_the_recommender(
    shop_file: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    from campaign.config import load_config
    from campaign.daemon.jobs import JobContext, retrain
    from campaign.daemon.metrics import Metrics
    from campaign.db.engine import make_engine

    copy = tmp_path / "shop.db"
    copy.write_bytes(Path(shop_file.read_text().split('"')[1][len("sqlite:///"):]).read_bytes())
    config_file = tmp_path / "config.toml"
    config_file.write_text(
        shop_file.read_text().replace(str(shop_file.parent / "shop.db"), str(copy))
        + "horizon_days = 30\n",
        encoding="utf-8",
    )
    # The key the CLI signed the copied shop's versions with (CAMPAIGN_MODEL_KEY).
    config = load_config(config_file, {"CAMPAIGN_MODEL_KEY": "test-key"})
    engine = make_engine(f"sqlite:///{copy}")

    def counts() -> dict[str, int]:
        with engine.connect() as connection:
            kinds = connection.execute(select(ModelVersion.kind)).scalars().all()
        return {kind: kinds.count(kind) for kind in ("churn", "recommender")}

    before = counts()
    with caplog.at_level(logging.INFO):
        retrain(JobContext(engine, config, lambda: datetime.now(UTC), Metrics()))
    after = counts()
    engine.dispose()
    assert after == {"churn": before["churn"] + 1, "recommender": before["recommender"] + 1}
    messages = " ".join(record.getMessage() for record in caplog.records)
    assert "model.retrain.finished" in messages
    assert "recommender.retrain.finished" in messages
