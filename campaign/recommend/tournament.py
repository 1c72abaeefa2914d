"""The recommender tournament: which recipe ranks this shop's next purchases best (pure).

Leave-future-out on the shop's own recent history: every candidate is fitted on the
events before the validation cut ``V = T - window_days`` and asked for ``k`` items per
user; the score is NDCG@k (binary gains, ideal DCG over min(|targets|, k)) against the
items each user bought in ``[V, T)``. Two scopes, as the product serves them:

* ``repeat``: repurchases allowed, targets are every item bought in the window;
* ``new``: the user's past purchases are excluded from lists and targets.

Nothing from the window enters a fit: the history is built from events before ``V``
only (a test checks it). Each component is fitted and scored once per scope; the
blends re-rank those cached scores, so a grid of weights costs little more than its
components.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
from scipy import sparse

from campaign.common.progress import set_total
from campaign.recommend.candidates import (
    Candidate,
    History,
    ReplenishCandidate,
    build_history,
)
from campaign.recommend.evaluate import ranking_metrics
from campaign.recommend.recipe import (
    DEPTH_MARGIN,
    FILL,
    Recipe,
    Settings,
    exclusions,
    fit_components,
    rank_recipe,
    recipe_name,
    sequence_available,
)

SCOPES = ("repeat", "new")
TABLE_COLUMNS = ["scope", "recipe", "users", "ndcg", "recall"]


def default_grid(*, with_sequence: bool | None = None) -> dict[str, list[Recipe]]:
    """The recipes each scope's tournament compares: the candidates alone, then blends."""
    sequence = sequence_available() if with_sequence is None else with_sequence
    alone = ["popular", "popular_in", "trending", "item_cf", "content", "hybrid"]
    if sequence:
        alone.append("sequence")
    repeat: list[Recipe] = [{"replenish": 1.0}, {"buy_again": 1.0}]
    repeat += [{name: 1.0} for name in alone]
    for cf in (0.0, 0.1, 0.3):
        for pop in (0.0, 0.1, 0.3):
            if cf or pop:
                blend = {"replenish": 1.0, "item_cf": cf, "popular_in": pop}
                repeat.append({n: w for n, w in blend.items() if w})
    repeat += [{"replenish": 1.0, "hybrid": w} for w in (0.3, 1.0)]
    if sequence:
        repeat += [{"replenish": 1.0, "sequence": w} for w in (0.1, 0.3)]
    new: list[Recipe] = [{name: 1.0} for name in alone]
    for first, second in (("popular", "item_cf"), ("popular", "popular_in"),
                          ("popular_in", "item_cf"), ("item_cf", "content"),
                          ("popular", "trending")):
        new += [{first: 1.0, second: w} for w in (0.25, 0.5, 1.0, 2.0)]
    new.append({"popular": 1.0, "popular_in": 0.5, "item_cf": 0.5})
    if sequence:
        new += [{"sequence": 1.0, "popular": w} for w in (0.25, 1.0)]
    return {"repeat": repeat, "new": new}


@dataclass(frozen=True)
class Tournament:
    """Every recipe's figures on the validation window and each scope's winner."""

    table: pd.DataFrame  # TABLE_COLUMNS, best first within each scope
    winners: dict[str, Recipe]
    as_of: datetime
    validation_at: datetime
    window_days: int
    k: int
    users: dict[str, int]
    components: dict[str, Candidate]
    replenish: dict[str, float] = field(default_factory=dict)  # the chosen variant

    def figure(self, scope: str, recipe: Mapping[str, float]) -> float | None:
        """The NDCG of ``recipe`` in ``scope`` (None when it was not compared)."""
        rows = self.table.loc[
            (self.table["scope"] == scope) & (self.table["recipe"] == recipe_name(recipe))
        ]
        return None if rows.empty else float(rows["ndcg"].iloc[0])


def tournament_steps(grid: Mapping[str, Sequence[Recipe]], variants: int = 0) -> int:
    """Progress steps :func:`run_tournament` reports: one per component fit, one per
    component scored in a scope, one per recipe ranked, one per replenishment variant."""
    names = {FILL} | {name for recipes in grid.values() for recipe in recipes for name in recipe}
    scored = sum(len({FILL} | {n for r in recipes for n in r}) for recipes in grid.values())
    tuned = variants if any("replenish" in r for r in grid.get("repeat", [])) else 0
    return len(names) + scored + sum(len(recipes) for recipes in grid.values()) + tuned


def validation_targets(
    events: pd.DataFrame, start: datetime, end: datetime
) -> pd.DataFrame:
    """Distinct (``user_id``, ``product_id``) purchases in ``[start, end)``."""
    ts = pd.to_datetime(events["ts"], utc=True)
    window = events.loc[
        (events["type"] == "purchase") & events["product_id"].notna()
        & (ts >= pd.Timestamp(start)) & (ts < pd.Timestamp(end)),
        ["user_id", "product_id"],
    ]
    return window.astype("int64").drop_duplicates()


def run_tournament(
    events: pd.DataFrame,
    products: pd.DataFrame,
    as_of: datetime,
    *,
    window_days: int,
    event_weights: Mapping[str, float],
    half_life_days: float,
    settings: Settings,
    k: int = 10,
    max_users: int | None = 5000,
    max_per_category: int | None = 3,
    grid: Mapping[str, Sequence[Recipe]] | None = None,
    extra: Mapping[str, Sequence[Recipe]] | None = None,
    progress: Callable[[int], None] | None = None,
) -> Tournament:
    """Fit before ``as_of - window_days``, judge every recipe on the window.

    Args:
        events: the shop's events before ``as_of`` (later ones are ignored).
        products: the catalogue (stock is ignored: it is only known for today).
        max_users: judge at most this many users (a fixed random sample) per scope.
        grid: recipes per scope (default :func:`default_grid`).
        extra: more recipes to judge but never to pick (the active model's).
        progress: called with steps done (total: :func:`tournament_steps`).
    """
    grid = {scope: list(recipes) for scope, recipes in (grid or default_grid()).items()}
    extra = {scope: list(recipes) for scope, recipes in (extra or {}).items()}
    judged = {scope: [*grid.get(scope, []), *extra.get(scope, [])] for scope in SCOPES}
    set_total(progress, tournament_steps(judged, len(settings.replenish_variants)))
    cut = as_of - timedelta(days=window_days)
    history = build_history(events, products.assign(in_stock=True), cut, event_weights,
                            half_life_days)
    truth = validation_targets(events, cut, as_of)
    truth = truth.loc[truth["product_id"].isin(history.feedback.product_ids)]
    components: dict[str, Candidate] = {}
    for name in sorted({FILL} | {n for recipes in judged.values() for r in recipes for n in r},
                       key=lambda n: (n == "hybrid", n)):
        components.update(fit_components([name], settings, history, components))
        _step(progress)
    rows: list[dict[str, object]] = []
    winners: dict[str, Recipe] = {}
    users: dict[str, int] = {}
    replenish = dict(settings.replenish)
    for scope in SCOPES:
        if not judged[scope]:
            continue
        targets, user_ids = _scope_targets(history, truth, scope, max_users)
        users[scope] = len(user_ids)
        user_rows = history.rows_of(user_ids)
        exclude = exclusions(history, user_rows, repeat=scope == "repeat", window_days=0.0)
        cache: dict[str, sparse.csr_matrix] = {}

        def scores_of(name: str, rows: np.ndarray = user_rows,
                      exclude: sparse.csr_matrix | None = exclude, scope: str = scope,
                      cache: dict[str, sparse.csr_matrix] = cache) -> sparse.csr_matrix:
            if name not in cache:
                cache[name] = components[name].scores(
                    rows, k + DEPTH_MARGIN, exclude, repeat=scope == "repeat"
                )
            return cache[name]

        def judge(recipe: Recipe, targets: pd.DataFrame = targets,
                  user_ids: np.ndarray = user_ids, scope: str = scope,
                  scores_of: Callable[[str], sparse.csr_matrix] = scores_of
                  ) -> dict[str, float]:
            picks, _parts, _filled = rank_recipe(
                recipe, scores_of, components, (len(user_ids), history.n_items), k,
                repeat=scope == "repeat", categories=history.category_codes,
                max_per_category=max_per_category,
            )
            recommended = pd.DataFrame({
                "user_id": user_ids[picks.rows],
                "product_id": history.feedback.product_ids[picks.cols],
                "rank": picks.ranks,
            })
            return ranking_metrics(recommended, targets, k, history.n_items)

        if scope == "repeat" and "replenish" in components and settings.replenish_variants:
            chosen, variant_rows = _tune_replenishment(
                history, settings, judge, components, cache, progress
            )
            replenish = chosen
            rows.extend({"scope": scope, **row, "_order": -1} for row in variant_rows)
        for name in sorted({FILL} | {n for r in judged[scope] for n in r}):
            scores_of(name)
            _step(progress)
        scored = []
        for position, recipe in enumerate(judged[scope]):
            scored.append((position, recipe, judge(recipe)))
            _step(progress)
        for position, recipe, metrics in scored:
            rows.append({"scope": scope, "recipe": recipe_name(recipe),
                         "users": metrics["users"], "ndcg": metrics["ndcg"],
                         "recall": metrics["recall"], "_order": position})
        pickable = [(m["ndcg"], -p, r) for p, r, m in scored if p < len(grid.get(scope, []))]
        if pickable:
            best = max(pickable, key=lambda item: (np.nan_to_num(item[0], nan=-1.0), item[1]))
            winners[scope] = dict(best[2])
    table = pd.DataFrame(rows, columns=[*TABLE_COLUMNS, "_order"])
    table = table.sort_values(["scope", "ndcg", "_order"], ascending=[False, False, True],
                              kind="stable").drop(columns="_order").reset_index(drop=True)
    return Tournament(table, winners, as_of, cut, window_days, k, users, components, replenish)


def variant_name(params: Mapping[str, float]) -> str:
    """``replenish(half_life_days=60, lapse_cycles=2)``: a replenishment variant's row."""
    inside = ", ".join(f"{key}={value:g}" for key, value in sorted(params.items()))
    return f"replenish({inside})"


def _tune_replenishment(
    history: History,
    settings: Settings,
    judge: Callable[[Recipe], dict[str, float]],
    components: dict[str, Candidate],
    cache: dict[str, sparse.csr_matrix],
    progress: Callable[[int], None] | None,
) -> tuple[dict[str, float], list[dict[str, object]]]:
    """Each replenishment variant alone on the repeat scope; the best becomes the
    ``replenish`` component of every recipe (ties: the first variant)."""
    rows = []
    best: tuple[float, dict[str, float], Candidate] | None = None
    for variant in settings.replenish_variants:
        params = {**dict(settings.replenish), **dict(variant)}
        candidate = ReplenishCandidate(params).fit(history)
        components["replenish"] = candidate
        cache.pop("replenish", None)
        metrics = judge({"replenish": 1.0})
        rows.append({"recipe": variant_name(variant), "users": metrics["users"],
                     "ndcg": metrics["ndcg"], "recall": metrics["recall"]})
        figure = float(np.nan_to_num(metrics["ndcg"], nan=-1.0))
        if best is None or figure > best[0]:
            best = (figure, params, candidate)
        _step(progress)
    assert best is not None
    components["replenish"] = best[2]
    cache.pop("replenish", None)
    return best[1], rows


def _scope_targets(
    history: History, truth: pd.DataFrame, scope: str, max_users: int | None
) -> tuple[pd.DataFrame, np.ndarray]:
    """The scope's targets and its judged users (with history and a target), sampled."""
    known = truth.loc[truth["user_id"].isin(history.feedback.user_ids)]
    if scope == "new":
        bought = history.orders
        pairs = pd.DataFrame({
            "user_id": history.feedback.user_ids[bought.rows],
            "product_id": history.feedback.product_ids[bought.cols],
        }).drop_duplicates()
        seen = known.merge(pairs.assign(old=True), on=["user_id", "product_id"], how="left")
        known = seen.loc[seen["old"].isna(), ["user_id", "product_id"]]
    user_ids = np.sort(known["user_id"].unique())
    if max_users is not None and user_ids.size > max_users:
        rng = np.random.default_rng(0)
        user_ids = np.sort(rng.choice(user_ids, size=max_users, replace=False))
        known = known.loc[known["user_id"].isin(user_ids)]
    return known, user_ids.astype(np.int64)


def _step(progress: Callable[[int], None] | None) -> None:
    if progress is not None:
        progress(1)
