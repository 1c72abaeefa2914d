"""The hybrid recommender: blend, filters, diversity and reasons (pure).

For user u and item j (``p_u`` is the user's feedback row with every entry raised to
``profile_power`` and scaled to sum 1, so both similarity scores are weighted
averages of cosines in [0, 1]):

    cf      = p_u @ S_cf[:, j]                 item-item collaborative filtering
    content = p_u @ S_content[:, j]            attribute similarity
    w       = (1 - content_weight) * a_u * c_j  a_u = n_u / (n_u + user_history_half)
                                                c_j = m_j / (m_j + item_history_half)
    blend   = (w * cf + (1 - w) * content) / max_j(...)    per user, so the best is 1
    score   = blend + popularity_weight * pop(u, j) + buy_again_weight * buy_again(u, j)

``n_u`` is the number of distinct products the user touched and ``m_j`` the number of
users who touched item j, so the blend leans on content for users and items with
little history. ``pop(u, j)`` is the item's popularity boosted inside the user's
favourite categories: the cold-start fallback (popular in the user's categories, then
popular everywhere). ``buy_again`` is only added where repurchases are allowed.

Every component lives in [0, 1] per user before the weights apply. Raw cosine levels
shrink as the catalogue grows while popularity does not, so without the per-user
scaling the prior's weight would silently change with the shop's size.

Scoring a block of users is sparse all the way: two sparse products (CF, content),
the union with the popularity candidates (top items of the user's categories and of
the shop), filters that drop entries, and a top-k by linear passes
(:func:`campaign.recommend.ranking.top_k_sparse`). Nothing users × items is dense.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
from scipy import sparse

from campaign.recommend.buyagain import BuyAgain
from campaign.recommend.content import ContentSimilarity
from campaign.recommend.feedback import Feedback
from campaign.recommend.itemcf import ItemCF
from campaign.recommend.popularity import Popularity
from campaign.recommend.ranking import (
    TopK,
    csr_row_index,
    recent_purchases,
    top_k_sparse,
)
from campaign.recommend.reasons import affixes, phrase

RESULT_COLUMNS = ["user_id", "rank", "product_id", "score", "reason"]
# Popularity fallback candidates per category beyond k (room for filtered items).
FALLBACK_MARGIN = 20
# Stored stand-in for "candidate, no blend score": far below any float32 score step.
_STRUCTURAL = np.float32(1e-30)


def row_sum_normalised(matrix: sparse.csr_matrix) -> sparse.csr_matrix:
    """``matrix`` with each row scaled to sum 1 (empty rows stay empty)."""
    totals = np.asarray(matrix.sum(axis=1), dtype=np.float64).ravel()
    inverse = np.divide(1.0, totals, out=np.zeros_like(totals), where=totals > 0)
    return sparse.csr_matrix(sparse.diags(inverse.astype(np.float32)) @ matrix)


def row_max(matrix: sparse.csr_matrix) -> np.ndarray:
    """Largest stored entry of each row as float64 (0 for empty rows), vectorised."""
    counts = np.diff(matrix.indptr)
    out = np.zeros(matrix.shape[0], dtype=np.float64)
    filled = np.flatnonzero(counts > 0)
    if filled.size:
        out[filled] = np.maximum.reduceat(matrix.data, matrix.indptr[:-1][filled])
    return out


def _aligned_products(products: pd.DataFrame, product_ids: np.ndarray) -> pd.DataFrame:
    frame = products.set_index("product_id") if "product_id" in products else products
    return frame.reindex(pd.Index(product_ids, name="product_id")).reset_index()


class HybridRecommender:
    """Item-CF + content + popularity (+ buy again), with filters, diversity and reasons.

    Parameters:
        neighbours: item-CF neighbours kept per item.
        content_neighbours: content neighbours kept per item.
        content_weight: content share of the blend for warm users and items.
        user_history_half: distinct products at which a user's CF confidence is 1/2.
        item_history_half: users at which an item's CF confidence is 1/2.
        popularity_weight: weight of the popularity prior (the cold-start fallback),
            against a per-user blend whose best item scores 1.
        category_share: share of the popularity prior that comes from the user's
            category affinity.
        buy_again_weight: weight of the user's own purchases when repurchase is allowed
            (the default 100 puts bought items first, ordered by buy-again strength
            with the blend breaking ties: what wins on real basket data).
        repeat_share: how much the buy-again part favours items people re-buy.
        frequency_share: weight of lifetime purchase counts beside recency-decayed ones.
        max_per_category: diversity cap per category in one top-k (None: no cap).
        chunk_size: users scored per dense block.
        field_weights: content attribute weights (see :mod:`campaign.recommend.content`).
        n_jobs: threads ranking user blocks (None: 1; -1: one per core).
        profile_power: exponent applied to each feedback entry before a user's history
            is scaled to sum 1 (1: as decayed and weighted; 0: every touched product
            counts the same). 0.25 keeps the order of event weights and recency
            while stopping one heavily viewed product from drowning the others.

    Fitted attributes:
        itemcf_, content_, popularity_, buy_again_: the component models.
        product_ids_: internal product ids in column order.
        category_codes_, category_names_: category code per item (-1: none), code → name.
        in_stock_: bool per item.
        item_confidence_: ``c_j`` per item.
    """

    def __init__(
        self,
        neighbours: int = 50,
        content_neighbours: int = 50,
        content_weight: float = 0.1,
        user_history_half: float = 0.5,
        item_history_half: float = 1.0,
        popularity_weight: float = 0.3,
        category_share: float = 0.7,
        buy_again_weight: float = 100.0,
        repeat_share: float = 0.5,
        frequency_share: float = 0.0,
        max_per_category: int | None = 3,
        chunk_size: int = 1000,
        field_weights: dict[str, float] | None = None,
        n_jobs: int | None = None,
        profile_power: float = 0.25,
    ) -> None:
        self.profile_power = profile_power
        self.neighbours = neighbours
        self.content_neighbours = content_neighbours
        self.content_weight = content_weight
        self.user_history_half = user_history_half
        self.item_history_half = item_history_half
        self.popularity_weight = popularity_weight
        self.category_share = category_share
        self.buy_again_weight = buy_again_weight
        self.repeat_share = repeat_share
        self.frequency_share = frequency_share
        self.max_per_category = max_per_category
        self.chunk_size = chunk_size
        self.field_weights = field_weights
        self.n_jobs = n_jobs

    def fit(self, feedback: Feedback, products: pd.DataFrame) -> HybridRecommender:
        """Fit every component on ``feedback`` and the catalogue.

        Args:
            feedback: decayed interactions (columns = ``feedback.product_ids``).
            products: columns ``product_id`` (internal), ``name``, ``category``,
                ``brand``, ``tags``, ``price_cents``, ``in_stock``; products missing
                from the frame count as unnamed, uncategorised and in stock.
        """
        catalogue = _aligned_products(products, feedback.product_ids)
        self.product_ids_ = feedback.product_ids
        self.n_items_ = int(feedback.product_ids.shape[0])
        categories = catalogue.get("category", pd.Series([None] * len(catalogue)))
        codes, names = pd.factorize(categories.astype("object").where(categories.notna(), None))
        self.category_codes_ = np.asarray(codes, dtype=np.int64)
        self.category_names_ = np.asarray(names, dtype=object)
        in_stock = catalogue.get("in_stock", pd.Series([True] * len(catalogue)))
        self.in_stock_ = in_stock.astype("object").fillna(True).astype(bool).to_numpy()
        self.names_ = np.asarray(
            [
                str(name) if isinstance(name, str) and name else f"product {pid}"
                for name, pid in zip(
                    catalogue.get("name", pd.Series([None] * len(catalogue))),
                    catalogue.get("external_id", catalogue["product_id"]),
                    strict=True,
                )
            ],
            dtype=object,
        )

        interactions = feedback.interactions
        self.itemcf_ = ItemCF(self.neighbours, n_jobs=self.n_jobs).fit(interactions)
        self.content_ = ContentSimilarity(
            self.content_neighbours, field_weights=self.field_weights, n_jobs=self.n_jobs
        ).fit(catalogue)
        self.popularity_ = Popularity(self.category_share).fit(
            interactions, category_codes=self.category_codes_
        )
        self.buy_again_ = BuyAgain(
            self.repeat_share, frequency_share=self.frequency_share
        ).fit(feedback.purchase_counts)
        support = self.itemcf_.item_support_.astype(np.float64)
        self.item_confidence_ = (support / (support + self.item_history_half)).astype(np.float32)
        confidence = sparse.diags(self.item_confidence_)
        # c_j is folded into the CF matrix once; the content side needs it per entry.
        self._cf_confident = sparse.csr_matrix(
            self.itemcf_.similarity_ @ confidence, dtype=np.float32
        )
        return self

    # -- scoring ----------------------------------------------------------------------

    def _profile(self, interactions: sparse.csr_matrix) -> sparse.csr_matrix:
        """Each user's history as weights summing to 1, dampened by ``profile_power``."""
        if self.profile_power == 1.0:
            return row_sum_normalised(interactions)
        dampened = sparse.csr_matrix(interactions, dtype=np.float32, copy=True)
        dampened.data = np.power(dampened.data, np.float32(self.profile_power))
        return row_sum_normalised(dampened)

    def _user_confidence(self, interactions: sparse.csr_matrix) -> np.ndarray:
        touched = np.diff(interactions.indptr).astype(np.float64)
        return (touched / (touched + self.user_history_half)).astype(np.float32)

    def blend(self, rows: Feedback) -> tuple[sparse.csr_matrix, np.ndarray]:
        """The CF/content blend of ``rows``, scaled so each user's best item is 1.

        Raw blend levels are averages of cosines and shrink as the catalogue grows
        (about 0.01 at 10,000 items), while popularity and buy-again live in [0, 1];
        scaling each user's blend by its own maximum puts the three on one scale, so
        the blend weights mean the same in a 100-item and a 100,000-item shop.

        Returns:
            ``(blend, top)``: CSR users × items in [0, 1] and each user's raw maximum
            (0 for users without history; their rows are empty).
        """
        normalised = self._profile(rows.interactions)
        weight = (1.0 - self.content_weight) * self._user_confidence(rows.interactions)
        cf = sparse.csr_matrix(normalised @ self._cf_confident)
        cf.data *= weight[csr_row_index(cf)]
        content = sparse.csr_matrix(normalised @ self.content_.similarity_)
        share = weight[csr_row_index(content)] * self.item_confidence_[content.indices]
        content.data *= 1.0 - share
        blended = sparse.csr_matrix(cf + content, dtype=np.float32)
        top = row_max(blended)
        inverse = np.divide(1.0, top, out=np.zeros_like(top), where=top > 0)
        blended.data *= inverse[csr_row_index(blended)]
        return blended, top

    def _popular_pairs(
        self, affinity: np.ndarray, rows: np.ndarray, cols: np.ndarray
    ) -> np.ndarray:
        """Popularity score of (row, item) pairs given the block's dense category affinity
        (float32; one gather per pair, no masks: code -1 reads a column of zeros)."""
        share = np.float32(self.popularity_.category_share)
        pop = self.popularity_.popularity_[cols]
        out = (np.float32(1.0) - share) * pop
        if affinity.shape[1]:
            padded = np.zeros((affinity.shape[0], affinity.shape[1] + 1), dtype=np.float32)
            padded[:, :-1] = affinity
            user_affinity = padded[rows, self.category_codes_[cols]]
            out += share * np.float32(0.5) * user_affinity * (np.float32(1.0) + pop)
        return out

    def score_block(self, rows: Feedback, *, allow_repurchase: bool) -> np.ndarray:
        """Dense users × items hybrid scores for ``rows`` (before filters), every item.

        ``blend + popularity_weight * pop(u, j) [+ buy_again_weight * buy_again(u, j)]``
        with the blend scaled per user (see :meth:`blend`). The exact reference of
        :meth:`score_candidates`, which :meth:`recommend` uses.
        """
        blended, _top = self.blend(rows)
        scores = blended.toarray()
        if self.popularity_weight:
            scores += self.popularity_weight * self.popularity_.score(rows.interactions)
        if allow_repurchase and self.buy_again_weight:
            again = sparse.csr_matrix(
                self.buy_again_.score(rows.purchases, rows.purchase_counts)
            ).tocoo()
            scores[again.row, again.col] += self.buy_again_weight * again.data
        return scores

    def popularity_candidates(self, allowed: np.ndarray, depth: int) -> sparse.csr_matrix:
        """(categories + 1) × items: the ``depth`` most popular allowed items of each
        category, and in the last row of the whole catalogue (there only items somebody
        touched: the others score 0). A user's popularity fallback comes from these."""
        popularity = self.popularity_.popularity_
        eligible = np.flatnonzero(allowed)
        order = eligible[np.lexsort((eligible, -popularity[eligible]))]
        codes = self.category_codes_[order]
        n_categories = self.category_names_.shape[0]
        group = np.where(codes >= 0, codes, n_categories)
        # Rank within category (stable: the popularity order is kept inside a group).
        by_group = np.argsort(group, kind="stable")
        sorted_group = group[by_group]
        first = np.searchsorted(sorted_group, sorted_group)
        rank = np.empty(order.size, dtype=np.int64)
        rank[by_group] = np.arange(order.size) - first
        in_category = (rank < depth) & (codes >= 0)
        global_top = order[popularity[order] > 0][:depth]
        rows = np.r_[codes[in_category], np.full(global_top.size, n_categories)]
        cols = np.r_[order[in_category], global_top]
        return sparse.csr_matrix(
            (np.ones(rows.size, dtype=np.float32), (rows, cols)),
            shape=(n_categories + 1, self.n_items_),
        )

    def score_candidates(
        self,
        rows: Feedback,
        *,
        allow_repurchase: bool,
        candidates: sparse.csr_matrix,
        blocked: sparse.csr_matrix | None = None,
    ) -> tuple[sparse.csr_matrix, np.ndarray, np.ndarray]:
        """Sparse hybrid scores: :meth:`score_block` on the cells that can win.

        Cells stored in ``blocked`` (the already-bought filter) come out as ``-inf``,
        folded into the same sparse sum rather than searched for afterwards.

        The cells are the blend's (items near the user's history), the user's bought
        items (with ``allow_repurchase``) and the popularity fallback from
        :meth:`popularity_candidates`: the top items of each category the user
        touched, and of the shop. Any other item scores only its popularity, which is
        lower than those candidates'; so the top-k equals the dense one unless filters
        remove more than ``depth - k`` candidates of a category.

        Returns:
            ``(scores, blend_top, affinity)``: CSR scores, each user's raw blend
            maximum (for reasons) and the dense users × categories affinity.
        """
        blended, top = self.blend(rows)
        affinity = self.popularity_.affinity(rows.interactions).toarray()
        n_categories = affinity.shape[1]
        reach = sparse.csr_matrix(
            sparse.hstack(
                [
                    sparse.csr_matrix(affinity > 0, dtype=np.float32),
                    np.ones((rows.n_users, 1), dtype=np.float32),
                ],
                format="csr",
            )
            @ candidates[: n_categories + 1]
        )
        # A negligible positive value keeps fallback cells stored through the sum.
        reach.data[:] = _STRUCTURAL
        if blocked is not None and blocked.nnz:
            barrier = sparse.csr_matrix(blocked, dtype=np.float32, copy=True)
            barrier.data[:] = -np.inf
            reach = sparse.csr_matrix(reach + barrier)
        scores = blended + reach
        if allow_repurchase and self.buy_again_weight:
            again = self.buy_again_.score(rows.purchases, rows.purchase_counts)
            scores = scores + self.buy_again_weight * again
        scores = sparse.csr_matrix(scores, dtype=np.float32)
        if self.popularity_weight:
            row_index = csr_row_index(scores)
            scores.data += np.float32(self.popularity_weight) * self._popular_pairs(
                affinity, row_index, scores.indices
            )
        return scores, top, affinity

    def item_allowed(self, excluded_categories: Collection[str] = ()) -> np.ndarray:
        """Items that may be recommended to anyone: in stock, category not excluded."""
        allowed = self.in_stock_.copy()
        excluded = {c.lower() for c in excluded_categories}
        if excluded:
            names = np.asarray([str(n).lower() for n in self.category_names_], dtype=object)
            bad = np.flatnonzero(np.isin(names, list(excluded)))
            allowed &= ~np.isin(self.category_codes_, bad)
        return allowed

    def rank_block(
        self,
        block: Feedback,
        k: int,
        *,
        allowed: np.ndarray | None,
        allow_repurchase: bool,
        repurchase_window_days: float,
        candidates: sparse.csr_matrix,
    ) -> tuple[TopK, np.ndarray, np.ndarray]:
        """Filtered, diversified top-k of one block of users (sparse all the way).

        Returns:
            ``(chosen, blend_top, affinity)`` (see :meth:`score_candidates`).
        """
        days = block.days_since_purchase
        if allow_repurchase:
            days = recent_purchases(days, repurchase_window_days)
        scores, top, affinity = self.score_candidates(
            block, allow_repurchase=allow_repurchase, candidates=candidates, blocked=days
        )
        if allowed is not None:
            # Out of stock or excluded: zero scores are never ranked.
            scores.data[~allowed[scores.indices]] = 0.0
        chosen = top_k_sparse(
            scores, k, categories=self.category_codes_, max_per_category=self.max_per_category
        )
        return chosen, top, affinity

    def recommend(
        self,
        feedback: Feedback,
        k: int,
        *,
        allow_repurchase: bool = False,
        repurchase_window_days: float = 0.0,
        excluded_categories: Collection[str] = (),
        explain: bool = True,
        progress: Callable[[int], None] | None = None,
    ) -> pd.DataFrame:
        """Top-k recommendations for every row of ``feedback`` (see ``Feedback.rows_for``).

        Filters: out of stock, excluded categories, already bought (with
        ``allow_repurchase``: bought items come back once ``repurchase_window_days``
        have passed since the user's last purchase of them). Diversity: at most
        ``max_per_category`` items of one category per user.

        Returns:
            Columns ``user_id``, ``rank`` (1-based), ``product_id`` (internal),
            ``score`` (float) and ``reason`` (empty when ``explain`` is false), sorted
            by user row then rank. A user may get fewer than ``k`` rows when filters
            leave too little.
        """
        allowed = self.item_allowed(excluded_categories)
        candidates = self.popularity_candidates(allowed, k + FALLBACK_MARGIN)

        def rank_block(start: int) -> pd.DataFrame:
            stop = min(start + self.chunk_size, feedback.n_users)
            block = feedback.slice(start, stop)
            chosen, top, affinity = self.rank_block(
                block,
                k,
                allowed=allowed,
                allow_repurchase=allow_repurchase,
                repurchase_window_days=repurchase_window_days,
                candidates=candidates,
            )
            reasons = (
                self.explain(
                    block,
                    chosen.rows,
                    chosen.cols,
                    allow_repurchase=allow_repurchase,
                    blend_top=top,
                    affinity=affinity,
                )
                if explain
                else np.full(chosen.rows.shape[0], "", dtype=object)
            )
            if progress is not None:
                progress(stop - start)
            return pd.DataFrame(
                {
                    "user_id": block.user_ids[chosen.rows],
                    "rank": chosen.ranks,
                    "product_id": self.product_ids_[chosen.cols],
                    "score": chosen.scores.astype(np.float64),
                    "reason": reasons,
                }
            )

        starts = range(0, feedback.n_users, self.chunk_size)
        workers = self.n_jobs if self.n_jobs and self.n_jobs > 0 else (os.cpu_count() or 1)
        if self.n_jobs is None or workers == 1:
            frames = [rank_block(start) for start in starts]
        else:
            # numpy and scipy's sparse kernels release the GIL: blocks run in parallel.
            with ThreadPoolExecutor(max_workers=workers) as pool:
                frames = list(pool.map(rank_block, starts))
        if not frames:
            return pd.DataFrame({c: pd.Series(dtype=object) for c in RESULT_COLUMNS})
        return pd.concat(frames, ignore_index=True)

    # -- reasons ----------------------------------------------------------------------

    def explain(
        self,
        rows: Feedback,
        row_index: np.ndarray,
        col_index: np.ndarray,
        *,
        allow_repurchase: bool,
        blend_top: np.ndarray | None = None,
        affinity: np.ndarray | None = None,
    ) -> np.ndarray:
        """One short reason per chosen (row, item) pair: the largest score component.

        ``"buy again"``; ``"because you bought X"`` / ``"because you viewed X"`` (item-CF,
        X = the user's product contributing most); ``"similar to X you bought"`` /
        ``"similar to X you viewed"`` (content); ``"popular in Y"`` (the user's category
        Y) or ``"popular now"``. ``blend_top`` and ``affinity`` (from
        :meth:`score_candidates`) save recomputing them. Only the chosen pairs are
        explained, never the whole block.
        """
        n = row_index.shape[0]
        if n == 0:
            return np.zeros(0, dtype=object)
        if blend_top is None:
            blend_top = self.blend(rows)[1]
        if affinity is None:
            affinity = self.popularity_.affinity(rows.interactions).toarray()
        profile = self._profile(rows.interactions)
        weight = (1.0 - self.content_weight) * self._user_confidence(rows.interactions)
        weight = weight[row_index] * self.item_confidence_[col_index]
        top = blend_top[row_index].astype(np.float64)
        scale = np.divide(1.0, top, out=np.zeros_like(top), where=top > 0)
        # Every (pair, history item) once: p_u[i] * S[i, j], read from the sparse S.
        starts = profile.indptr[row_index]
        lengths = profile.indptr[row_index + 1] - starts
        pair = np.repeat(np.arange(n), lengths)
        offset = np.arange(pair.size) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        position = np.repeat(starts, lengths) + offset
        items = profile.indices[position].astype(np.int64)
        shares = profile.data[position].astype(np.float64)

        def contributions(similarity: sparse.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
            values = shares * np.asarray(similarity[items, col_index[pair]]).ravel()
            total = np.bincount(pair, weights=values, minlength=n)
            best = np.zeros(n, dtype=np.float64)
            np.maximum.at(best, pair, values)
            # The first history item (lowest id) reaching the pair's maximum.
            first = np.full(n, pair.size, dtype=np.int64)
            hit = (values == best[pair]) & (values > 0)
            np.minimum.at(first, pair[hit], np.flatnonzero(hit))
            anchor = np.zeros(n, dtype=np.int64)
            found = first < pair.size
            anchor[found] = items[first[found]]
            return total, anchor

        cf, cf_anchor = contributions(self.itemcf_.similarity_)
        content, content_anchor = contributions(self.content_.similarity_)
        parts = np.zeros((n, 4), dtype=np.float64)
        parts[:, 0] = weight * cf * scale
        parts[:, 1] = (1.0 - weight) * content * scale
        codes = self.category_codes_[col_index]
        has_code = codes >= 0
        user_affinity = np.zeros(n, dtype=np.float64)
        if affinity.shape[1]:
            user_affinity[has_code] = affinity[row_index[has_code], codes[has_code]]
        if self.popularity_weight:
            parts[:, 2] = self.popularity_weight * self.popularity_.score_pairs(
                user_affinity, col_index
            )
        if allow_repurchase and self.buy_again_weight:
            again = self.buy_again_.score(rows.purchases, rows.purchase_counts)
            parts[:, 3] = self.buy_again_weight * np.asarray(again[row_index, col_index]).ravel()
        winner = np.argmax(parts, axis=1)
        bought_cf = np.asarray(rows.purchases[row_index, cf_anchor]).ravel() > 0
        bought_content = np.asarray(rows.purchases[row_index, content_anchor]).ravel() > 0
        # Object arrays concatenate element-wise: the text is built without a loop.
        names = self.names_
        # The wording lives in recommend.reasons, which also translates it for messages.
        by_cf = _affixed(bought_cf, "bought", "viewed", names[cf_anchor])
        by_content = _affixed(
            bought_content, "similar_bought", "similar_viewed", names[content_anchor]
        )
        if self.category_names_.size:
            category = self.category_names_[np.maximum(self.category_codes_[col_index], 0)]
            prefix, suffix = affixes("popular_in")
            popular = np.where(
                user_affinity > 0, prefix + category.astype(str).astype(object) + suffix,
                phrase("popular"),
            ).astype(object)
        else:
            popular = np.full(n, phrase("popular"), dtype=object)
        reasons = np.select(
            [winner == 0, winner == 1, winner == 3],
            [by_cf, by_content, np.full(n, phrase("buy_again"), dtype=object)],
            default=popular,
        )
        return reasons


def _affixed(
    when: np.ndarray, kind_true: str, kind_false: str, items: np.ndarray
) -> np.ndarray:
    """Per row, ``kind_true``'s English phrase where ``when`` else ``kind_false``'s,
    around ``items`` (product names), built by array concatenation."""
    before_true, after_true = affixes(kind_true)
    before_false, after_false = affixes(kind_false)
    before = np.where(when, before_true, before_false).astype(object)
    after = np.where(when, after_true, after_false).astype(object)
    return before + items.astype(object) + after
