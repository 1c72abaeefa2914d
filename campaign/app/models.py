"""The models: train and score churn, train the recommender (its tournament), fit the
active recommender, and the schedule's "retrain, then score"."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.engine import Connection, Engine

from campaign.config import EngineConfig, ModelConfig, RecommenderConfig

if TYPE_CHECKING:
    import pandas as pd

    from campaign.churn.training import Evaluation, TrainReport
    from campaign.recommend.registry import RecommenderModel
    from campaign.recommend.service import FittedRecommender
    from campaign.recommend.training import RecommenderTrainReport

Progress = Callable[[int], None]


@dataclass(frozen=True)
class Retrained:
    """A retraining and the scores stored after it."""

    report: TrainReport
    as_of: datetime
    scored: int
    recommender: RecommenderTrainReport | None = None
    recommender_error: str | None = None


def training_steps(config: ModelConfig) -> int:
    """How many progress steps :func:`train` reports (for a bar with a total)."""
    from campaign.churn.training import training_steps as steps

    return steps(config)


def evaluation_steps(config: ModelConfig) -> int:
    """How many progress steps :func:`evaluate` reports."""
    from campaign.churn.training import evaluation_steps as steps

    return steps(config)


def evaluate(
    engine: Engine,
    config: ModelConfig,
    as_of: datetime | None = None,
    horizon_days: int | None = None,
    *,
    progress: Progress | None = None,
) -> Evaluation:
    """Evaluate the configured recipe on a forward holdout; stores nothing."""
    from campaign.churn.training import evaluate_churn

    return evaluate_churn(engine, config, as_of, horizon_days, progress=progress)


def train(
    engine: Engine,
    config: ModelConfig,
    as_of: datetime | None = None,
    horizon_days: int | None = None,
    *,
    now: datetime,
    progress: Progress | None = None,
) -> TrainReport:
    """Train a churn model and activate it if it is not worse than the active one."""
    from campaign.churn.training import train_churn

    return train_churn(engine, config, as_of, horizon_days, now=now, progress=progress)


def customers_to_score(engine: Engine, config: ModelConfig, as_of: datetime) -> int:
    """How many customers :func:`score` will score at ``as_of``."""
    from campaign.churn.data import count_customers

    with engine.connect() as connection:
        return count_customers(connection, as_of, config.lookback_days)


def score(
    engine: Engine,
    config: ModelConfig,
    as_of: datetime,
    *,
    progress: Progress | None = None,
    batch: EngineConfig | None = None,
) -> pd.DataFrame:
    """Score every customer with the active model at ``as_of`` and store the scores:
    in the database's SQL, or on Spark when ``batch`` (``[engine]``) says so."""
    from campaign.churn.scoring import score_and_store

    if batch is not None and batch.kind == "spark":
        from campaign.engine.scoring import score_with_spark

        return score_with_spark(engine, batch, config, as_of, progress)

    return score_and_store(engine, config, as_of, progress=progress)


def stored_scores(engine: Engine, as_of: datetime) -> pd.DataFrame:
    """The active model's newest stored scores at or before ``as_of`` (what a run at
    ``as_of`` targets with): indexed by user_id, risk, tier, reason. Read-only."""
    from campaign.churn.scoring import latest_scores

    with engine.connect() as connection:
        return latest_scores(connection, as_of)


def retrain_and_score(
    engine: Engine,
    config: ModelConfig,
    *,
    now: datetime,
    recommender: RecommenderConfig | None = None,
) -> Retrained:
    """Train churn at the newest event (activating if not worse), then score there, so
    the active model always has scores to plan with; then, with ``recommender``, run
    the recommender's tournament (activating if not worse). A recommender that cannot
    be trained (too little history) leaves churn's work standing: its reason is in
    ``recommender_error``."""
    from campaign.churn.training import default_as_of
    from campaign.common.errors import CampaignError

    report = train(engine, config, None, now=now)
    with engine.connect() as connection:
        as_of = default_as_of(connection)
    scores = score(engine, config, as_of)
    trained: RecommenderTrainReport | None = None
    error: str | None = None
    if recommender is not None:
        try:
            trained = train_recommender(engine, recommender, config, None, now=now)
        except CampaignError as exc:
            error = str(exc)
    return Retrained(report, as_of, len(scores), trained, error)


def recommender_training_steps() -> int:
    """How many progress steps :func:`train_recommender` reports (a bar with a total)."""
    from campaign.recommend.training import tournament_steps

    return tournament_steps()


def train_recommender(
    engine: Engine,
    config: RecommenderConfig,
    model_config: ModelConfig,
    as_of: datetime | None = None,
    *,
    now: datetime,
    progress: Progress | None = None,
) -> RecommenderTrainReport:
    """Run the recommender tournament as of ``as_of`` (default: the newest event), store
    the winners as a version signed with the model key, activate it if not worse."""
    from campaign.churn.artifacts import model_key
    from campaign.recommend.training import train_recommender as run

    return run(engine, config, as_of, now=now, key=lambda: model_key(model_config),
               progress=progress)


def fit_recommender(
    connection: Connection,
    config: RecommenderConfig,
    model_config: ModelConfig,
    as_of: datetime,
) -> FittedRecommender:
    """The active recommender version fitted on the events before ``as_of`` (the
    configured hybrid when no version is active)."""
    from campaign.churn.artifacts import model_key
    from campaign.recommend.service import fit_recommender as fit

    return fit(connection, config, as_of, key=lambda: model_key(model_config))


def active_recommender(engine: Engine, model_config: ModelConfig) -> RecommenderModel | None:
    """The active recommender version (its tournament table in ``metrics``), or None."""
    from campaign.churn.artifacts import model_key
    from campaign.recommend.registry import load_recommender

    with engine.connect() as connection:
        return load_recommender(connection, lambda: model_key(model_config))
