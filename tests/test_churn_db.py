"""Churn on a real database (SQLite and PostgreSQL): train, champion/challenger, score, CLI."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from campaign.churn.data import load_buyers, load_labels, load_summary
from campaign.churn.labels import churn_labels
from campaign.churn.registry import load_model
from campaign.churn.scoring import latest_scores, score_and_store
from campaign.churn.summary import purchase_summary
from campaign.churn.training import evaluate_churn, train_churn
from campaign.cli import app
from campaign.common.errors import ModelError, NotFound
from campaign.config import ModelConfig
from campaign.db.models import ChurnScore, Event, ModelVersion, User
from tests.test_churn_model import T, synthetic_purchases

CONFIG = ModelConfig(
    min_customers=50,
    min_history_days=100,
    snapshots=2,
    max_depth_candidates=(3, 4),
    min_samples_leaf_candidates=(20,),
    signing_key="test model signing key",  # type: ignore[arg-type]
)
NOW = datetime(2027, 1, 1, tzinfo=UTC)
KEY = b"test model signing key"


def load_shop(engine: Engine, purchases: pd.DataFrame) -> None:
    """Users U0001... (every third opted out, every other one zh-CN) and their purchases."""
    users = sorted(purchases["user_id"].unique())
    with engine.begin() as connection:
        connection.execute(
            User.__table__.insert(),
            [
                {
                    "id": int(u),
                    "external_id": f"U{u:04d}",
                    "locale": "zh-CN" if u % 2 else "en",
                    "consent_email": u % 3 != 0,
                    "attributes": {},
                }
                for u in users
            ],
        )
        connection.execute(
            Event.__table__.insert(),
            [
                {
                    "user_id": int(row.user_id),
                    "type": "purchase",
                    "ts": row.ts.to_pydatetime(),
                    "quantity": 1,
                    "amount_cents": int(row.amount_cents),
                    "source_event_id": f"e{i}",
                }
                for i, row in enumerate(purchases.itertuples(index=False))
            ],
        )


@pytest.fixture(scope="module")
def purchases() -> pd.DataFrame:
    frame = synthetic_purchases(n_users=400, seed=3)
    # Whole seconds: SQLite and PostgreSQL then agree to the microsecond.
    frame["ts"] = frame["ts"].dt.floor("s")
    return frame[frame["ts"] <= T]


@pytest.fixture
def shop(engine: Engine, purchases: pd.DataFrame) -> Engine:
    load_shop(engine, purchases)
    return engine


def test_sql_labels_and_summary_match_the_pure_reference(shop: Engine, purchases) -> None:  # type: ignore[no-untyped-def]
    at = T - timedelta(days=90)
    with shop.connect() as connection:
        summary = load_summary(connection, at, lookback_days=365)
        labels = load_labels(connection, summary.index, at, 90)
        buyers = load_buyers(connection, at, at + timedelta(days=90))
    reference = purchase_summary(purchases, at, lookback_days=365)
    assert list(summary.index) == list(reference.index)
    for column in reference.columns:
        assert summary[column].to_numpy() == pytest.approx(reference[column].to_numpy(), abs=1e-6)
    pd.testing.assert_series_equal(labels, churn_labels(purchases, reference.index, at, 90))
    assert set(buyers) == set(
        purchases.loc[(purchases["ts"] > at) & (purchases["ts"] <= T), "user_id"]
    )


def test_train_activates_then_score_stores_every_customer(shop: Engine) -> None:
    report = train_churn(shop, CONFIG, T, now=NOW)
    assert report.activated and "no active model yet" in report.decision
    assert report.evaluation is not None
    table = report.evaluation.table
    assert {"tree", "recency baseline", "BG/NBD baseline"} == set(table.columns)
    assert table.at["roc_auc", "tree"] > 0.7
    with shop.connect() as connection:
        version = connection.execute(select(ModelVersion.__table__)).mappings().one()
    assert version["active"] and version["horizon_days"] == 90
    assert set(version["library_versions"]) == {"sklearn", "numpy", "pandas", "python"}
    assert version["metrics"]["holdout"]["roc_auc"] == pytest.approx(table.at["roc_auc", "tree"])
    assert version["metrics"]["holdout_bgnbd"]["roc_auc"] == pytest.approx(
        table.at["roc_auc", "BG/NBD baseline"]
    )

    scores = score_and_store(shop, CONFIG, T)
    with shop.connect() as connection:
        customers = load_summary(connection, T, lookback_days=CONFIG.lookback_days)
        stored = latest_scores(connection, T + timedelta(days=1))
        opted_out = connection.execute(
            select(User.id).where(User.consent_email.is_(False))
        ).scalars().all()
    assert set(scores.index) == set(customers.index)
    assert set(customers.index) & set(opted_out)  # opted-out customers are scored too
    pd.testing.assert_frame_equal(
        stored.sort_index(), scores[["risk", "tier", "reason"]].sort_index(), check_dtype=False
    )
    assert scores["risk"].between(0, 1).all()
    assert set(scores["tier"]) <= {"high", "medium", "low"}
    chinese = scores.loc[[u for u in scores.index if u % 2]]
    assert chinese["reason"].str.contains("；|（", regex=True).all()
    # Scoring again replaces rather than duplicates.
    score_and_store(shop, CONFIG, T)
    with shop.connect() as connection:
        count = len(connection.execute(select(ChurnScore.__table__.c.id)).all())
    assert count == len(scores)


def test_retraining_on_the_same_data_ties_and_activates(shop: Engine) -> None:
    first = train_churn(shop, CONFIG, T, now=NOW)
    second = train_churn(shop, CONFIG, T, now=NOW)
    assert second.activated and second.champion_id == first.version_id
    assert second.champion_roc_auc is not None
    with shop.connect() as connection:
        assert load_model(connection, key=KEY).id == second.version_id


def test_an_activated_model_has_its_scores_in_the_same_commit(shop: Engine) -> None:
    first = train_churn(shop, CONFIG, T, now=NOW)
    with shop.connect() as connection:
        customers = load_summary(connection, T, lookback_days=CONFIG.lookback_days)
        stored = latest_scores(connection, T)
        versions = set(connection.execute(
            select(ChurnScore.__table__.c.model_version_id)).scalars())
    assert set(stored.index) == set(customers.index) and versions == {first.version_id}
    # A model that loses keeps no scores of its own; the champion's stay readable.
    stump = CONFIG.model_copy(update={"max_depth_candidates": (1,)})
    assert not train_churn(shop, stump, T, now=NOW).activated
    with shop.connect() as connection:
        assert len(latest_scores(connection, T)) == len(customers)
        assert set(connection.execute(
            select(ChurnScore.__table__.c.model_version_id)).scalars()) == {first.version_id}


def test_a_better_champion_keeps_its_title(shop: Engine) -> None:
    first = train_churn(shop, CONFIG, T, now=NOW)
    # A challenger limited to a one-split tree cannot match the champion.
    stump = CONFIG.model_copy(update={"max_depth_candidates": (1,)})
    second = train_churn(shop, stump, T, now=NOW)
    assert not second.activated
    assert f"kept model {first.version_id} active" in second.decision
    with shop.connect() as connection:
        assert load_model(connection, key=KEY).id == first.version_id


def test_too_little_data_is_refused_with_the_config_key(shop: Engine) -> None:
    with pytest.raises(ModelError, match="min_customers"):
        train_churn(shop, CONFIG.model_copy(update={"min_customers": 100_000}), T, now=NOW)
    with pytest.raises(ModelError, match="min_history_days"):
        train_churn(shop, CONFIG, T - timedelta(days=520), now=NOW)


def test_artifact_from_another_sklearn_major_is_refused(shop: Engine) -> None:
    report = train_churn(shop, CONFIG, T, now=NOW)
    table = ModelVersion.__table__
    with shop.begin() as connection:
        connection.execute(
            update(table)
            .where(table.c.id == report.version_id)
            .values(library_versions={"sklearn": "0.24.2", "numpy": "1", "pandas": "1"})
        )
    with shop.connect() as connection, pytest.raises(ModelError, match="scikit-learn 0.24.2"):
        load_model(connection, key=KEY)


def test_scoring_without_a_model_says_so(shop: Engine) -> None:
    with pytest.raises(NotFound, match="campaign train"):
        score_and_store(shop, CONFIG, T)
    with shop.connect() as connection:
        assert latest_scores(connection, T).empty


def test_evaluate_counts_opted_out_customers(shop: Engine) -> None:
    evaluation = evaluate_churn(shop, CONFIG, T)
    summary, labels = evaluation.holdout
    assert evaluation.table.at["customers", "tree"] == len(labels)
    assert (summary.index % 3 == 0).any()


def test_cli_train_score_and_evaluate(sqlite_url: str, purchases, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from campaign.db.engine import make_engine

    engine = make_engine(sqlite_url)
    load_shop(engine, purchases)
    engine.dispose()
    config = tmp_path / "config.toml"
    config.write_text(
        f'[database]\nurl = "{sqlite_url}"\n[model]\nmin_customers = 50\n'
        "min_history_days = 100\nsnapshots = 2\nmax_depth_candidates = [3]\n"
        "min_samples_leaf_candidates = [20]\n"
    )
    runner = CliRunner()
    result = runner.invoke(app, ["--config", str(config), "train"])
    assert result.exit_code == 0, result.output
    assert "ROC AUC" in result.output and "recency baseline" in result.output
    assert "BG/NBD baseline" in result.output
    assert "activated" in result.output
    output = tmp_path / "scores.csv"
    result = runner.invoke(app, ["--config", str(config), "score", "--output", str(output)])
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(output)
    assert list(frame.columns) == ["user_id", "risk", "tier", "reason"]
    assert frame["user_id"].str.match(r"^U\d{4}$").all()
    result = runner.invoke(app, ["--config", str(config), "evaluate", "churn"])
    assert result.exit_code == 0, result.output
    assert "lift in top 10%" in result.output
    result = runner.invoke(app, ["--config", str(config), "train", "--as-of", "yesterday"])
    assert result.exit_code == 2 and "--as-of" in result.output


def test_one_model_one_split_one_figure_named_alike_everywhere(  # type: ignore[no-untyped-def]
    sqlite_url: str, purchases, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import re

    from campaign.cli import common
    from campaign.db.engine import make_engine

    monkeypatch.setattr(common.console, "width", 250)  # a wide terminal: no cut cells

    engine = make_engine(sqlite_url)
    load_shop(engine, purchases)
    engine.dispose()
    config = tmp_path / "config.toml"
    config.write_text(
        f'[database]\nurl = "{sqlite_url}"\n[model]\nmin_customers = 50\n'
        "min_history_days = 100\nsnapshots = 2\nmax_depth_candidates = [3]\n"
        "min_samples_leaf_candidates = [20]\n"
    )
    at = f"{T:%Y-%m-%d}"
    split = f"holdout {T - timedelta(days=90):%Y-%m-%d} to {T:%Y-%m-%d}"
    runner = CliRunner()

    def cli(*args: str) -> str:
        result = runner.invoke(app, ["--config", str(config), *args], terminal_width=250)
        assert result.exit_code == 0, result.output
        return result.stdout

    def tree_auc(text: str) -> str:
        return re.search(r"ROC AUC\s*│\s*(\d\.\d{3})\s", text).group(1)  # type: ignore[union-attr]

    trained = cli("train", "--as-of", at)
    assert f"this recipe on the {split}" in trained
    figure = tree_auc(trained)
    evaluated = cli("evaluate", "churn", "--as-of", at)
    assert f"churn, {split}" in evaluated and f"({split};" in evaluated
    assert tree_auc(evaluated) == figure  # the same split gives the same figure
    history = cli("report", "--model")
    (row,) = [line for line in history.splitlines() if line.startswith("│") and "1 │" in line]
    assert split in row and f" {figure} " in row
    # A retrain names the split both figures were measured on, at the shown precision.
    again = cli("train", "--as-of", at)
    decision = again.strip().splitlines()[-1]
    assert re.fullmatch(
        rf"activated: ROC AUC \d\.\d{{3}} on the {split} is not worse than active model 1's "
        r"\d\.\d{3} on the same split \(.+\)", decision
    ), decision


def test_every_as_of_defaults_to_the_pinned_clock(  # type: ignore[no-untyped-def]
    sqlite_url: str, purchases, tmp_path: Path
) -> None:
    from campaign.db.engine import make_engine

    engine = make_engine(sqlite_url)
    load_shop(engine, purchases)
    engine.dispose()
    config = tmp_path / "config.toml"
    config.write_text(
        f'[clock]\nas_of = {T:%Y-%m-%dT%H:%M:%SZ}\n[database]\nurl = "{sqlite_url}"\n'
        "[model]\nmin_customers = 50\nmin_history_days = 100\nsnapshots = 2\n"
        "max_depth_candidates = [3]\nmin_samples_leaf_candidates = [20]\n"
    )
    runner = CliRunner()

    def cli(*args: str) -> str:
        result = runner.invoke(app, ["--config", str(config), *args], terminal_width=250)
        assert result.exit_code == 0, result.output
        assert "note: the newest event" not in result.stderr
        return result.stdout

    stamp = f"{T:%Y-%m-%d %H:%M} UTC"
    assert f"T = {stamp}" in cli("evaluate", "churn")
    assert f"holdout {T - timedelta(days=90):%Y-%m-%d} to {T:%Y-%m-%d}" in cli("train")
    assert f"scored as of {stamp}" in cli("score")
    assert f"segmented as of {stamp}" in cli("segments", "-k", "2")
    assert f"Report at {stamp}" in cli("report")
    # Without the pin, T is now: this shop's newest event is long past, and that is said.
    config.write_text(config.read_text().replace("[clock]", "[ignored_clock]", 1)
                      .replace(f"as_of = {T:%Y-%m-%dT%H:%M:%SZ}\n", "", 1)
                      .replace("[ignored_clock]\n", "", 1))
    late = runner.invoke(app, ["--config", str(config), "score"])
    assert late.exit_code == 0, late.output
    assert "note: the newest event (" in late.stderr and "days before T" in late.stderr
