"""Recipes: a candidate or a weighted blend of candidates, fitted and ranked with filters,
the diversity cap and a reason per pick (pure).

A recipe is ``{component name: weight}`` (one component with weight 1 is that
candidate alone); its JSON form is what a recommender model version stores. The blend
of a user is ``Σ weight · scores_component`` where each component's scores are scaled
so the user's best item is 1 (:mod:`campaign.recommend.candidates`); a pick's reason
is the reason of the component that contributed most to it.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import sparse

from campaign.recommend.candidates import (
    BuyAgainCandidate,
    Candidate,
    History,
    NeighbourCandidate,
    PopularCandidate,
    ReplenishCandidate,
)
from campaign.recommend.hybrid import HybridRecommender
from campaign.recommend.hybrid_candidate import HybridCandidate
from campaign.recommend.reasons import phrase
from campaign.recommend.scoring import (
    content_neighbourhood,
    itemcf_neighbourhood,
    remove_cells,
    row_index,
    taken,
)

Recipe = dict[str, float]
RESULT_COLUMNS = ["user_id", "rank", "product_id", "score", "reason"]
# Items each component offers per user beyond k (room for the category cap).
DEPTH_MARGIN = 40
# What fills a list the recipe leaves short (and a user without history), after
# every item the recipe scored.
FILL = "popular"


def recipe_name(recipe: Mapping[str, float]) -> str:
    """``replenish`` or ``replenish+0.3 item_cf`` (weights after the first, in order)."""
    parts = []
    for position, (name, weight) in enumerate(recipe.items()):
        parts.append(name if position == 0 and weight == 1.0 else f"{weight:g} {name}")
    return "+".join(parts)


@dataclass(frozen=True)
class Settings:
    """What the components are built with (from ``[recommender]``)."""

    neighbours: int = 50
    popular_window_days: float = 28.0
    trending_window_days: float = 7.0
    replenish: Mapping[str, float] = field(default_factory=dict)
    # The tournament tries each (over ``replenish``) and keeps the best for the shop.
    replenish_variants: tuple[Mapping[str, float], ...] = ()
    hybrid: Callable[[], HybridRecommender] = HybridRecommender


def sequence_available() -> bool:
    """Whether the sequence model and torch can be imported (the optional extra)."""
    return (
        importlib.util.find_spec("torch") is not None
        and importlib.util.find_spec("campaign.recommend.sequence") is not None
    )


def build_component(name: str, settings: Settings) -> Candidate:
    """A fresh, unfitted component by name.

    Raises:
        KeyError: an unknown component name.
    """
    if name == "replenish":
        return ReplenishCandidate(settings.replenish)
    if name == "buy_again":
        return BuyAgainCandidate()
    if name == "popular":
        return PopularCandidate("popular", settings.popular_window_days)
    if name == "popular_in":
        return PopularCandidate("popular_in", settings.popular_window_days, by_category=True)
    if name == "trending":
        return PopularCandidate("trending", settings.trending_window_days)
    if name == "item_cf":
        return NeighbourCandidate(
            "item_cf", lambda history: itemcf_neighbourhood(history, settings.neighbours)
        )
    if name == "content":
        return NeighbourCandidate(
            "content", lambda history: content_neighbourhood(history, settings.neighbours)
        )
    if name == "hybrid":
        return HybridCandidate(settings.hybrid)
    if name == "sequence" and sequence_available():
        from campaign.recommend.sequence_candidate import SequenceCandidate

        return SequenceCandidate()
    raise KeyError(name)


def fit_components(
    names: Collection[str], settings: Settings, history: History,
    given: Mapping[str, Candidate] | None = None,
) -> dict[str, Candidate]:
    """Every named component fitted on ``history`` (``given``: already fitted ones); the
    hybrid last, so it reuses the item-CF and content neighbours fitted before it."""
    fitted = dict(given or {})
    for name in sorted(names, key=lambda n: (n == "hybrid", n)):
        if name in fitted:
            continue
        component = build_component(name, settings)
        if isinstance(component, HybridCandidate):
            fitted[name] = component.fit(history, fitted)
        else:
            fitted[name] = component.fit(history)
    return fitted


def exclusions(
    history: History, user_rows: np.ndarray, *, repeat: bool, window_days: float
) -> sparse.csr_matrix | None:
    """The cells a list must skip: every past purchase for new items; with repeats,
    the purchases fewer than ``window_days`` ago (None: nothing)."""
    days = taken(history.feedback.days_since_purchase, user_rows)
    if repeat:
        if window_days <= 0:
            return None
        days.data = np.where(days.data - 1.0 < window_days, 1.0, 0.0)
        days.eliminate_zeros()
    else:
        days.data = np.ones_like(days.data)
    return days


@dataclass(frozen=True)
class Picks:
    """The chosen cells of a block: block row, item column, rank (1-based), score."""

    rows: np.ndarray
    cols: np.ndarray
    ranks: np.ndarray
    scores: np.ndarray


def capped_top_k(
    scores: sparse.csr_matrix,
    k: int,
    *,
    allowed: np.ndarray | None = None,
    categories: np.ndarray | None = None,
    max_per_category: int | None = None,
) -> Picks:
    """Each row's best ``k`` allowed items, at most ``max_per_category`` of a category
    (items without one, code -1, are never capped); ties to the lower column."""
    matrix = sparse.csr_matrix(scores, dtype=np.float64)
    matrix.eliminate_zeros()
    rows, cols, values = row_index(matrix), matrix.indices.astype(np.int64), matrix.data
    keep = values > 0
    if allowed is not None:
        keep &= allowed[cols]
    rows, cols, values = rows[keep], cols[keep], values[keep]
    order = np.lexsort((cols, -values, rows))
    rows, cols, values = rows[order], cols[order], values[order]
    if categories is not None and max_per_category is not None and rows.size:
        codes = categories[cols]
        key = rows * (int(categories.max(initial=0)) + 2) + codes + 1
        by_key = np.argsort(key, kind="stable")
        sorted_key = key[by_key]
        first = np.searchsorted(sorted_key, sorted_key)
        within = np.empty(rows.size, dtype=np.int64)
        within[by_key] = np.arange(rows.size) - first
        ok = (codes < 0) | (within < max_per_category)
        rows, cols, values = rows[ok], cols[ok], values[ok]
    start = np.searchsorted(rows, rows)
    rank = np.arange(rows.size) - start + 1
    ok = rank <= k
    return Picks(rows[ok], cols[ok], rank[ok], values[ok])


class RecipeRecommender:
    """A recipe per scope, fitted on one :class:`History`; ranks like the hybrid does.

    Parameters:
        recipes: ``{"repeat": recipe, "new": recipe}``: the lists when repurchases are
            allowed, and when they are not.
        settings: how the components are built.
        max_per_category: diversity cap per category in one top-k (None: no cap).
        chunk_size: users per block.
    """

    def __init__(
        self,
        recipes: Mapping[str, Mapping[str, float]],
        settings: Settings | None = None,
        *,
        max_per_category: int | None = 3,
        chunk_size: int = 1000,
    ) -> None:
        self.recipes = {scope: dict(recipe) for scope, recipe in recipes.items()}
        self.settings = settings or Settings()
        self.max_per_category = max_per_category
        self.chunk_size = chunk_size

    def fit(self, history: History, components: Mapping[str, Candidate] | None = None
            ) -> RecipeRecommender:
        """Fit every component the recipes use (``components``: already fitted ones)."""
        self.history_ = history
        needed = {name for recipe in self.recipes.values() for name in recipe} | {FILL}
        fitted = fit_components(needed, self.settings, history, components)
        self.components_ = {name: fitted[name] for name in needed}
        return self

    def recommend(
        self,
        user_ids: np.ndarray,
        k: int,
        *,
        allow_repurchase: bool,
        repurchase_window_days: float = 0.0,
        excluded_categories: Collection[str] = (),
        allowed: np.ndarray | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> pd.DataFrame:
        """Top-``k`` per user with filters (stock, excluded categories, bought / inside
        the repurchase window), the category cap and reasons.

        Returns:
            Columns ``user_id``, ``rank``, ``product_id`` (internal), ``score``, ``reason``.
        """
        history = self.history_
        scope = "repeat" if allow_repurchase else "new"
        recipe = self.recipes[scope]
        mask = self.item_allowed(excluded_categories) if allowed is None else allowed
        user_ids = np.asarray(user_ids, dtype=np.int64)
        frames = []
        components = self.components_
        for lo in range(0, len(user_ids), self.chunk_size):
            block = user_ids[lo : lo + self.chunk_size]
            rows = history.rows_of(block)
            exclude = exclusions(
                history, rows, repeat=allow_repurchase, window_days=repurchase_window_days
            )
            depth = k + DEPTH_MARGIN

            def scores_of(name: str, rows: np.ndarray = rows,
                          exclude: sparse.csr_matrix | None = exclude, depth: int = depth
                          ) -> sparse.csr_matrix:
                return components[name].scores(rows, depth, exclude, repeat=allow_repurchase)

            picks, parts, filled = rank_recipe(
                recipe,
                scores_of,
                components,
                (len(block), history.n_items),
                k,
                repeat=allow_repurchase,
                allowed=mask,
                categories=history.category_codes,
                max_per_category=self.max_per_category,
            )
            frames.append(pd.DataFrame({
                "user_id": block[picks.rows],
                "rank": picks.ranks,
                "product_id": history.feedback.product_ids[picks.cols],
                "score": picks.scores,
                "reason": pick_reasons(components, parts, rows, picks, filled),
            }))
            if progress is not None:
                progress(len(block))
        if not frames:
            return pd.DataFrame({c: pd.Series(dtype=object) for c in RESULT_COLUMNS})
        return pd.concat(frames, ignore_index=True)

    def item_allowed(self, excluded_categories: Collection[str] = ()) -> np.ndarray:
        """Items that may be recommended to anyone: in stock, category not excluded."""
        products = self.history_.products
        in_stock = products.get("in_stock", pd.Series([True] * len(products)))
        allowed = in_stock.astype("object").fillna(True).astype(bool).to_numpy()
        excluded = {c.lower() for c in excluded_categories}
        if excluded:
            names = np.asarray([str(n).lower() for n in self.history_.category_names])
            codes = self.history_.category_codes
            hit = np.isin(names, list(excluded))
            allowed &= ~((codes >= 0) & hit[np.maximum(codes, 0)])
        return allowed


def rank_recipe(
    recipe: Mapping[str, float],
    scores_of: Callable[[str], sparse.csr_matrix],
    components: Mapping[str, Candidate],
    shape: tuple[int, int],
    k: int,
    *,
    repeat: bool,
    allowed: np.ndarray | None = None,
    categories: np.ndarray | None = None,
    max_per_category: int | None = None,
) -> tuple[Picks, dict[str, sparse.csr_matrix], np.ndarray]:
    """A block's top-``k`` under ``recipe``: the weighted parts' sum, then the
    :data:`FILL` list after every item the recipe scored.

    ``scores_of(name)`` gives a component's scores for the block (a cache in the
    tournament). Returns the picks, the weighted parts (for reasons) and which picks
    came from the fill.
    """
    parts = {
        name: weight * scores_of(name)
        for name, weight in recipe.items()
        if weight > 0 and not (components[name].repeat_only and not repeat)
    }
    total = sparse.csr_matrix(shape, dtype=np.float64)
    for part in parts.values():
        total = sparse.csr_matrix(total + part)
    total.eliminate_zeros()
    # Recipe items rank above every fill item: shifted by 2 (fill scores are <= 1).
    main = total.copy()
    main.data += 2.0
    fill = remove_cells(scores_of(FILL), total)
    picks = capped_top_k(
        sparse.csr_matrix(main + fill), k, allowed=allowed, categories=categories,
        max_per_category=max_per_category,
    )
    filled = picks.scores < 2.0
    scores = np.where(filled, picks.scores, picks.scores - 2.0)
    return Picks(picks.rows, picks.cols, picks.ranks, scores), parts, filled


def pick_reasons(
    components: Mapping[str, Candidate],
    parts: Mapping[str, sparse.csr_matrix],
    rows: np.ndarray,
    picks: Picks,
    filled: np.ndarray,
) -> np.ndarray:
    """The English reason of each pick: that of the part contributing most to it (the
    fill's for a fill pick)."""
    out = np.empty(picks.rows.size, dtype=object)
    names = list(parts)
    best = np.full(picks.rows.size, -1, dtype=np.int64)
    if names and picks.rows.size:
        values = np.vstack([
            np.asarray(parts[name][picks.rows, picks.cols]).ravel() for name in names
        ])
        best = np.argmax(values, axis=0)
    best[filled] = -1
    groups = [(FILL, np.flatnonzero(best == -1))] + [
        (name, np.flatnonzero(best == index)) for index, name in enumerate(names)
    ]
    for name, chosen in groups:
        if chosen.size == 0:
            continue
        explained = components[name].reasons(rows[picks.rows[chosen]], picks.cols[chosen])
        out[chosen] = [
            values_["text"] if kind == "text" else phrase(kind, **values_)
            for kind, values_ in explained
        ]
    return out
