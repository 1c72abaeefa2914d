"""The uplift model's use cases: train (per campaign), score, evaluate."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.engine import Connection, Engine

from campaign.config import Config

if TYPE_CHECKING:
    import pandas as pd

    from campaign.uplift.training import Comparison

Progress = Callable[[int], None]


@dataclass(frozen=True)
class UpliftTrained:
    """One campaign's training: the comparison, and the stored version (None: refused)."""

    campaign: str
    outcome: str
    rows: int
    treated: int
    comparison: Comparison | None
    version_id: int | None
    refused: str | None = None


def uplift_campaigns(engine: Engine, config: Config, campaign: str | None) -> list[str]:
    """``[campaign]`` or, without one, every configured campaign and every campaign with
    imported experiments."""
    from campaign.uplift.data import campaigns_with_data

    if campaign is not None:
        return [campaign]
    with engine.connect() as connection:
        return campaigns_with_data(connection, _shares(config))


def _shares(config: Config) -> dict[str, float]:
    return {c.name: c.holdout_share for c in config.campaigns}


def planning_times(engine: Engine, campaigns: list[str]) -> int:
    """How many profiles :func:`train_uplift` computes (a progress bar's total)."""
    from campaign.uplift.data import as_of_count

    with engine.connect() as connection:
        return sum(as_of_count(connection, name) for name in campaigns)


def _frame(connection: Connection, config: Config, campaign: str, now: datetime,
           progress: Progress | None) -> pd.DataFrame:
    from campaign.uplift.data import training_frame

    return training_frame(
        connection, config.attribution, campaign, horizon_days=config.model.horizon_days,
        now=now, configured_share=_shares(config).get(campaign), progress=progress,
    )


def train_uplift(
    engine: Engine, config: Config, campaign: str, outcome: str, *, now: datetime,
    progress: Progress | None = None,
) -> UpliftTrained:
    """Compare the tree and the challenger on the campaign's experiment data, refit the
    winner on all of it and store it as the campaign's active, signed uplift version.
    A campaign below the configured minimum is refused (``refused`` says why)."""
    from campaign.churn.artifacts import model_key
    from campaign.common.errors import ModelError
    from campaign.uplift.registry import save_uplift
    from campaign.uplift.training import check_enough, compare, fit_uplift, outcome_values

    currency = config.shop.currency
    with engine.connect() as connection:
        frame = _frame(connection, config, campaign, now, progress)
    treated = int(frame["treatment"].sum()) if len(frame) else 0
    try:
        check_enough(frame, campaign, config.uplift)
    except ModelError as exc:
        return UpliftTrained(campaign, outcome, len(frame), treated, None, None, str(exc))
    outcome_values(frame, outcome, currency)
    comparison = compare(frame, outcome, config.uplift, currency)
    model = fit_uplift(frame, campaign, outcome, config.uplift, currency, comparison.chosen)
    metrics = {
        "validation": {name: {metric: float(value) for metric, value in column.items()}
                       for name, column in comparison.table.items()},
        "train_rows": comparison.train_rows, "validation_rows": comparison.validation_rows,
        "chosen": comparison.chosen, "challenger_wins": comparison.challenger_wins,
        "targeting": comparison.targeting,
    }
    params = {"max_depth": config.uplift.max_depth,
              "min_samples_leaf": config.uplift.min_samples_leaf,
              "rows": len(frame), "treated": treated}
    as_of = frame["as_of"].max().to_pydatetime()
    with engine.begin() as connection:
        version = save_uplift(
            connection, model, trained_at=now, as_of=as_of,
            window_days=config.attribution.window_days, params=params, metrics=metrics,
            key=model_key(config.model),
        )
    return UpliftTrained(campaign, outcome, len(frame), treated, comparison, version)


def evaluate_uplift(
    engine: Engine, config: Config, campaign: str, outcome: str, *, now: datetime,
    progress: Progress | None = None,
) -> UpliftTrained:
    """The same comparison as :func:`train_uplift`; stores nothing.

    Raises:
        ModelError: the campaign is below the configured minimum.
    """
    from campaign.uplift.training import check_enough, compare

    with engine.connect() as connection:
        frame = _frame(connection, config, campaign, now, progress)
    check_enough(frame, campaign, config.uplift)
    comparison = compare(frame, outcome, config.uplift, config.shop.currency)
    treated = int(frame["treatment"].sum())
    return UpliftTrained(campaign, outcome, len(frame), treated, comparison, None)


def score_uplift(
    engine: Engine, config: Config, campaign: str | None, as_of: datetime
) -> tuple[str, str, pd.DataFrame]:
    """(campaign, outcome, scores) of every customer as of ``as_of`` with the active
    uplift model of ``campaign`` (None: the only one). Scores: ``user_id, uplift,
    control, segment, reason``, highest uplift first."""
    from campaign.churn.artifacts import model_key
    from campaign.uplift.registry import load_uplift
    from campaign.uplift.scoring import score_customers

    with engine.connect() as connection:
        model, _ = load_uplift(connection, campaign, key=model_key(config.model))
        scores = score_customers(connection, model, config.uplift, as_of)
    return model.campaign, model.outcome, scores
