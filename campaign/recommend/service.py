"""Recommendations for users as of a time: read SQL, fit the model, rank (orchestration).

This is the entry other parts call (the planner, the CLI). It reads events strictly
before ``as_of`` so a recommendation never uses the future. The model is the active
recommender version (the winners of ``campaign train recommend``) when the caller
passes the model key and one is active, else the configured hybrid.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from campaign.config import RecommenderConfig
from campaign.db.models import Event, Product
from campaign.recommend.data import load_events, load_products
from campaign.recommend.feedback import Feedback, build_feedback
from campaign.recommend.hybrid import HybridRecommender

if TYPE_CHECKING:
    from campaign.recommend.recipe import RecipeRecommender
    from campaign.recommend.registry import RecommenderModel


def make_recommender(config: RecommenderConfig) -> HybridRecommender:
    """The hybrid with the parameters of ``[recommender]``."""
    return HybridRecommender(
        neighbours=config.neighbours,
        content_weight=config.content_weight,
        popularity_weight=config.popularity_weight,
        buy_again_weight=config.buy_again_weight,
        profile_power=config.profile_power,
        max_per_category=config.max_per_category,
        # The compiled loops release the GIL: fitting and ranking use every core.
        n_jobs=-1,
    )


@dataclass(frozen=True)
class FittedRecommender:
    """A recommender fitted as of a time, with the data it was fitted on.

    ``version`` is the recommender model version it follows (None: the configured
    hybrid, no version trained or activated).
    """

    model: HybridRecommender | RecipeRecommender
    feedback: Feedback
    products: pd.DataFrame
    as_of: datetime
    version: int | None = None


# The last fit of this process, by what it was fitted on: a long-lived process (the
# console's audience pages, the daemon planning several campaigns at one time) asks for
# the same fit again and again, and reading the events is most of its cost.
_LAST_FIT: dict[tuple[object, ...], FittedRecommender] = {}
_LAST_FIT_LOCK = threading.Lock()


def _data_fingerprint(connection: Connection) -> tuple[object, ...]:
    """What changes whenever the events or the catalogue do (events are only ever
    inserted or deleted; products are upserted with ``updated_at``)."""
    events = connection.execute(select(func.count(), func.max(Event.id))).one()
    products = connection.execute(
        select(func.count(), func.max(Product.id), func.max(Product.updated_at))).one()
    return (*events, *products)


def _database_identity(connection: Connection) -> str | None:
    """Which database this is: SQLite's file (a read-only engine's URL does not say; None
    in memory), else the URL."""
    if connection.dialect.name == "sqlite":
        files = {row[1]: row[2] for row in connection.exec_driver_sql("PRAGMA database_list")}
        return files.get("main") or None
    return connection.engine.url.render_as_string(hide_password=False)


def fit_recommender(
    connection: Connection,
    config: RecommenderConfig,
    as_of: datetime,
    *,
    key: Callable[[], bytes] | None = None,
) -> FittedRecommender:
    """Read events before ``as_of`` and the catalogue, and fit the model. Read-only.

    With ``key`` (the model signing key, asked for only when a version is active) the
    active recommender version is fitted; without one, or with none active, the
    configured hybrid. A fit on the same database, data, settings, version and
    ``as_of`` as this process's last one is that one again (fits are read-only).

    Raises:
        ModelError: the active version's signature does not verify.
    """
    active: RecommenderModel | None = None
    if key is not None:
        from campaign.recommend.registry import load_recommender

        active = load_recommender(connection, key)
    database = _database_identity(connection)
    if database is None:
        return _fit(connection, config, as_of, active)  # in memory: one per engine, no key
    cache_key = (
        database, as_of,
        config.model_dump_json(), None if active is None else active.id,
        _data_fingerprint(connection),
    )
    with _LAST_FIT_LOCK:
        cached = _LAST_FIT.get(cache_key)
    if cached is not None:
        return cached
    fitted = _fit(connection, config, as_of, active)
    with _LAST_FIT_LOCK:
        _LAST_FIT.clear()
        _LAST_FIT[cache_key] = fitted
    return fitted


def _fit(connection: Connection, config: RecommenderConfig, as_of: datetime,
         active: RecommenderModel | None) -> FittedRecommender:
    weighted = [t for t, w in config.event_weights.items() if w > 0]
    events = load_events(connection, as_of, types=set(weighted) | {"purchase"})
    products = load_products(connection)
    if active is not None:
        return fit_version(events, products, config, as_of, active)
    feedback = build_feedback(
        events,
        products["product_id"].to_numpy(),
        as_of,
        config.event_weights,
        config.half_life_days,
    )
    model = make_recommender(config).fit(feedback, products)
    return FittedRecommender(model=model, feedback=feedback, products=products, as_of=as_of)


def fit_version(
    events: pd.DataFrame,
    products: pd.DataFrame,
    config: RecommenderConfig,
    as_of: datetime,
    version: RecommenderModel,
) -> FittedRecommender:
    """Fit a stored recommender version's recipes on ``events`` before ``as_of``."""
    from campaign.recommend.candidates import build_history
    from campaign.recommend.recipe import RecipeRecommender
    from campaign.recommend.training import build_settings

    history = build_history(events, products, as_of, config.event_weights,
                            config.half_life_days)
    model = RecipeRecommender(
        version.recipes,
        build_settings(version.settings, config),
        max_per_category=config.max_per_category,
    ).fit(history)
    return FittedRecommender(
        model=model, feedback=history.feedback, products=history.products, as_of=as_of,
        version=version.id,
    )


def recommend_with(
    fitted: FittedRecommender,
    config: RecommenderConfig,
    user_ids: Sequence[int] | np.ndarray,
    k: int,
    *,
    allow_repurchase: bool | None = None,
    progress: Callable[[int], None] | None = None,
) -> pd.DataFrame:
    """Rank products for ``user_ids`` with an already fitted recommender.

    Returns:
        Columns ``user_id``, ``rank``, ``product_id`` (internal ids), ``score``,
        ``reason``, plus ``product_external_id``, ``name``, ``category``,
        ``price_cents``, ``url`` for templates. Users without any history get the
        popular fallback.
    """
    repurchase = config.allow_repurchase if allow_repurchase is None else allow_repurchase
    if isinstance(fitted.model, HybridRecommender):
        result = fitted.model.recommend(
            fitted.feedback.rows_for(user_ids),
            k,
            allow_repurchase=repurchase,
            repurchase_window_days=config.repurchase_window_days,
            excluded_categories=config.excluded_categories,
            progress=progress,
        )
    else:
        result = fitted.model.recommend(
            np.asarray(user_ids, dtype=np.int64),
            k,
            allow_repurchase=repurchase,
            repurchase_window_days=config.repurchase_window_days,
            excluded_categories=config.excluded_categories,
            progress=progress,
        )
    details = fitted.products.set_index("product_id")[
        ["external_id", "name", "category", "price_cents", "url"]
    ].rename(columns={"external_id": "product_external_id"})
    return result.join(details, on="product_id")


def recommend_for_users(
    connection: Connection,
    recommender_config: RecommenderConfig,
    user_ids: Sequence[int],
    as_of: datetime,
    k: int,
    *,
    allow_repurchase: bool | None = None,
    key: Callable[[], bytes] | None = None,
) -> pd.DataFrame:
    """Top-``k`` products for each user as of ``as_of`` (see :func:`recommend_with`).

    ``allow_repurchase`` overrides ``recommender_config.allow_repurchase`` (a campaign
    that sells consumables turns it on); ``key`` as in :func:`fit_recommender`.
    Read-only.
    """
    fitted = fit_recommender(connection, recommender_config, as_of, key=key)
    return recommend_with(
        fitted, recommender_config, user_ids, k, allow_repurchase=allow_repurchase
    )
