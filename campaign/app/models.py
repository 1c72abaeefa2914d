"""The churn model: train, score, and the schedule's "retrain, then score"."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine

from campaign.config import ModelConfig

if TYPE_CHECKING:
    import pandas as pd

    from campaign.churn.training import Evaluation, TrainReport

Progress = Callable[[int], None]


@dataclass(frozen=True)
class Retrained:
    """A retraining and the scores stored after it."""

    report: TrainReport
    as_of: datetime
    scored: int


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
    engine: Engine, config: ModelConfig, as_of: datetime, *, progress: Progress | None = None
) -> pd.DataFrame:
    """Score every customer with the active model at ``as_of`` and store the scores."""
    from campaign.churn.scoring import score_and_store

    return score_and_store(engine, config, as_of, progress=progress)


def retrain_and_score(engine: Engine, config: ModelConfig, *, now: datetime) -> Retrained:
    """Train at the newest event (activating if not worse), then score there, so the
    active model always has scores to plan with."""
    from campaign.churn.training import default_as_of

    report = train(engine, config, None, now=now)
    with engine.connect() as connection:
        as_of = default_as_of(connection)
    scores = score(engine, config, as_of)
    return Retrained(report, as_of, len(scores))
