"""Training a recommender: the tournament on the shop's own history, stored as a model
version, champion/challenger (orchestration).

``train_recommender`` reads the events before T, runs
:func:`campaign.recommend.tournament.run_tournament` on the last
``[recommender] validation_days`` before T, stores each scope's winner as a new
``recommender`` model version and activates it only when it is not worse than the
active version's recipes on the same window (both are judged in the same tournament).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine

from campaign.common.errors import ModelError
from campaign.config import RecommenderConfig
from campaign.recommend.data import load_events, load_products, newest_event_time
from campaign.recommend.recipe import Settings, recipe_name
from campaign.recommend.registry import (
    activate_recommender,
    load_recommender,
    save_recommender,
)
from campaign.recommend.service import make_recommender
from campaign.recommend.tournament import SCOPES, Tournament, default_grid, run_tournament

# How much worse (NDCG) a challenger may be and still count as "not worse": float noise.
TOLERANCE = 1e-9


@dataclass(frozen=True)
class RecommenderTrainReport:
    """What ``campaign train recommend`` did and why."""

    version_id: int
    activated: bool
    decision: str
    tournament: Tournament
    champion_id: int | None = None
    champion: dict[str, float | None] = field(default_factory=dict)


def settings_of(config: RecommenderConfig) -> dict[str, Any]:
    """The stored settings of the components (JSON), from ``[recommender]``."""
    return {
        "neighbours": config.neighbours,
        "popular_window_days": float(config.validation_days),
        "trending_window_days": 7.0,
        "replenish": {"horizon_days": float(config.validation_days)},
    }


# The replenishment variants the tournament tries (chosen on the real-data tuning
# splits: baskets a week apart prefer the first, monthly grocery runs the second).
REPLENISH_VARIANTS: tuple[dict[str, float], ...] = (
    {"half_life_days": 60.0, "lapse_cycles": 2.0},
    {"half_life_days": 120.0, "lapse_cycles": 3.0},
)


def build_settings(
    stored: dict[str, Any], config: RecommenderConfig, *, tune: bool = False
) -> Settings:
    """The components' :class:`Settings` from stored settings (the hybrid from config)."""
    return Settings(
        neighbours=int(stored.get("neighbours", config.neighbours)),
        popular_window_days=float(stored.get("popular_window_days", 28.0)),
        trending_window_days=float(stored.get("trending_window_days", 7.0)),
        replenish={str(k): float(v) for k, v in dict(stored.get("replenish", {})).items()},
        hybrid=lambda: make_recommender(config),
        replenish_variants=REPLENISH_VARIANTS if tune else (),
    )


def tournament_steps(with_extra: int = 2) -> int:
    """Progress steps of :func:`train_recommender` (the tournament's, plus the active
    model's recipes when there is one)."""
    from campaign.recommend.tournament import tournament_steps as steps

    return steps(default_grid(), len(REPLENISH_VARIANTS)) + with_extra


def train_as_of(engine: Engine, as_of: datetime | None) -> datetime:
    """T for the tournament: ``as_of``, but never later than just after the newest
    event (so the validation window holds the newest days of data, also when the
    database is stale); no ``as_of``: just after the newest event.

    Raises:
        ModelError: there are no events.
    """
    with engine.connect() as connection:
        newest = newest_event_time(connection)
    if newest is None:
        raise ModelError("no events in the database: import events first")
    latest = newest + timedelta(seconds=1)
    return latest if as_of is None else min(as_of, latest)


def train_recommender(
    engine: Engine,
    config: RecommenderConfig,
    as_of: datetime | None,
    *,
    now: datetime,
    key: Callable[[], bytes],
    progress: Callable[[int], None] | None = None,
) -> RecommenderTrainReport:
    """Run the tournament as of ``as_of`` (see :func:`train_as_of`), store the winners,
    activate them if not worse than the active recommender.

    Raises:
        ModelError: no events, or nobody bought anything in the validation window.
    """
    when = train_as_of(engine, as_of)
    window = config.validation_days
    with engine.connect() as connection:
        weighted = {t for t, w in config.event_weights.items() if w > 0} | {"purchase"}
        events = load_events(connection, when, types=weighted)
        products = load_products(connection)
        champion = load_recommender(connection, key)
    if events.empty:
        raise ModelError(f"no events before {when:%Y-%m-%d %H:%M}: import events first")
    stored = settings_of(config)
    extra = {} if champion is None else {
        scope: [recipe] for scope, recipe in champion.recipes.items() if scope in SCOPES
    }
    result = run_tournament(
        events,
        products,
        when,
        window_days=window,
        event_weights=config.event_weights,
        half_life_days=config.half_life_days,
        settings=build_settings(stored, config, tune=True),
        k=config.k,
        max_users=config.tournament_users,
        max_per_category=config.max_per_category,
        extra=extra,
        progress=progress,
    )
    if set(result.winners) != set(SCOPES):
        raise ModelError(
            f"no user both bought before {result.validation_at:%Y-%m-%d} and bought "
            f"something in the {window} days after: too little history for a tournament "
            "(lower [recommender] validation_days, or import more events)"
        )
    stored["replenish"] = dict(result.replenish)
    figures = {scope: result.figure(scope, result.winners[scope]) for scope in SCOPES}
    metrics = {
        "validation_at": result.validation_at.isoformat(),
        "window_days": window,
        "k": result.k,
        "users": result.users,
        "ndcg": figures,
        "winners": {scope: recipe_name(result.winners[scope]) for scope in SCOPES},
        "table": [
            {key_: (None if isinstance(v, float) and math.isnan(v) else v)
             for key_, v in row.items()}
            for row in result.table.to_dict("records")
        ],
    }
    champion_figures: dict[str, float | None] = {}
    if champion is not None:
        champion_figures = {
            scope: result.figure(scope, recipe) for scope, recipe in champion.recipes.items()
        }
    activated, decision = _compare(figures, champion, champion_figures)
    with engine.begin() as connection:
        version = save_recommender(
            connection,
            recipes=result.winners,
            settings=stored,
            trained_at=now,
            as_of=when,
            window_days=window,
            metrics=metrics,
            key=key(),
        )
        if activated:
            activate_recommender(connection, version)
    return RecommenderTrainReport(
        version_id=version,
        activated=activated,
        decision=decision.format(version=version),
        tournament=result,
        champion_id=None if champion is None else champion.id,
        champion=champion_figures,
    )


def _compare(
    figures: dict[str, float | None],
    champion: object | None,
    champion_figures: dict[str, float | None],
) -> tuple[bool, str]:
    if champion is None:
        return True, "activated recommender version {version} (no active recommender before)"
    worse = [
        f"{scope} {figures[scope]:.4f} < {theirs:.4f}"
        for scope, theirs in champion_figures.items()
        if theirs is not None and figures.get(scope) is not None
        and float(figures[scope] or 0.0) < theirs - TOLERANCE
    ]
    champion_id = getattr(champion, "id", None)
    if worse:
        return False, (
            "kept recommender version " + str(champion_id) + ": version {version} is worse "
            "on the same window (NDCG@k " + ", ".join(worse) + ")"
        )
    return True, (
        "activated recommender version {version}: not worse than version "
        + str(champion_id) + " on the same window"
    )
