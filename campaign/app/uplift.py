"""The uplift model's use cases: train (per campaign), score, evaluate."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy.engine import Connection, Engine

from campaign.common.errors import ConfigError
from campaign.config import CampaignConfig, Config

if TYPE_CHECKING:
    import pandas as pd

    from campaign.planner.targeting import Targeting, TargetingSource
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
    model = fit_uplift(frame, campaign, outcome, config.uplift, currency, comparison.chosen,
                       comparison.min_responders)
    metrics = {
        "validation": {name: {metric: float(value) for metric, value in column.items()}
                       for name, column in comparison.table.items()},
        "train_rows": comparison.train_rows, "validation_rows": comparison.validation_rows,
        "chosen": comparison.chosen, "challenger_wins": comparison.challenger_wins,
        "targeting": comparison.targeting,
    }
    params = {"max_depth": config.uplift.max_depth,
              "min_samples_leaf": config.uplift.min_samples_leaf,
              "min_responders_per_leaf": comparison.min_responders,
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


def uplift_targeting(config: Config) -> TargetingSource:
    """What a run of a campaign ranks by (:class:`campaign.planner.targeting.Targeting`):
    its customers scored by the campaign's active uplift model as of the run's as-of
    time, exactly as :func:`score_uplift` scores them, on the run's own connection.

    A campaign without an uplift model yet is ranked by risk, and the targeting says
    why. A ``value`` audience needs a model of revenue and, when the campaign's variants
    carry an offer, a measured P(redeem | treated).

    Raises (from the returned function):
        ConfigError: ``rank_by = "value"`` and the model is not of revenue, or no
            treated user of the campaign has a closed attribution window yet.
        ModelError: the stored model does not verify or load.
    """

    def targeting(connection: Connection, campaign: CampaignConfig, as_of: datetime
                  ) -> Targeting:
        from campaign.churn.artifacts import model_key
        from campaign.common.money import minor_digits
        from campaign.planner.targeting import RISK, VALUE, Targeting, risk_targeting
        from campaign.uplift.registry import active_uplift_campaigns, load_uplift
        from campaign.uplift.scoring import score_users

        name = campaign.name
        if name not in active_uplift_campaigns(connection):
            return risk_targeting(campaign, (
                f"campaign {name!r} has no uplift model yet (`campaign train uplift "
                f"--campaign {name}` trains one once {config.uplift.min_treated} treated "
                f"and {config.uplift.min_control} held-out users' windows have closed)"))
        model, loaded = load_uplift(connection, name, key=model_key(config.model))
        rank_by = campaign.audience.rank_by
        key = f"campaigns[{_index(config, name)}].audience.rank_by"
        if rank_by == VALUE and model.outcome != "revenue":
            raise ConfigError(config.source, key, (
                f"'value' ranks by expected profit and needs an uplift model of revenue; "
                f"campaign {name!r}'s active model (version {loaded.id}) predicts "
                f"{model.outcome}: run `campaign train uplift --campaign {name} --outcome "
                "revenue`, or rank by 'uplift'"))
        scores, _ = score_users(connection, model, config.uplift, as_of)
        scores = scores.rename(columns={"segment": "uplift_segment"})
        redeem = _redeem_rate(connection, config, campaign, as_of, key) if (
            rank_by == VALUE) else 0.0
        return Targeting(
            ranked_by=rank_by if rank_by != RISK else RISK, scores=scores,
            outcome=model.outcome, model_version=loaded.id, redeem_rate=redeem,
            minor_digits=minor_digits(config.shop.currency),
        )

    return targeting


def _index(config: Config, name: str) -> int:
    return next(i for i, c in enumerate(config.campaigns) if c.name == name)


def _redeem_rate(connection: Connection, config: Config, campaign: CampaignConfig,
                 as_of: datetime, key: str) -> float:
    """P(redeem | treated): the share of the campaign's treated users (its audience's,
    intent-to-treat) whose coupon was redeemed, over the windows closed by ``as_of``; 0
    for a campaign whose enabled variants carry no offer."""
    import pandas as pd

    from campaign.measurement.attribution import TREATMENT, load_outcomes

    if not any(v.offer for v in campaign.variants if v.enabled):
        return 0.0
    outcomes = load_outcomes(connection, config.attribution,
                             horizon_days=config.model.horizon_days, now=as_of,
                             campaign=campaign.name)
    treated = outcomes[(outcomes["group"] == TREATMENT) & outcomes["window_closed"]
                       & (pd.to_datetime(outcomes["created_at"], utc=True) <= as_of)]
    if treated.empty:
        raise ConfigError(config.source, key, (
            f"'value' subtracts the expected coupon cost, and no treated user of campaign "
            f"{campaign.name!r} has a closed attribution window before "
            f"{as_of:%Y-%m-%d}, so P(redeem | treated) is unknown: rank by 'uplift' "
            "until one has"))
    return float(treated["redeemed"].mean())
