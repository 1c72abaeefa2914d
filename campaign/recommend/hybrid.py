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

:meth:`HybridRecommender.score_block` computes these scores densely and is the
reference; :meth:`HybridRecommender.recommend` ranks with the compiled per-user loop
of :mod:`campaign.recommend.kernels` over the few hundred candidate items each user
can win with: the blend's, the user's bought items, and the popularity fallback (top
items of the user's categories and of the shop). Nothing users × items is dense.
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
from campaign.recommend.kernels import (
    KIND_BOUGHT,
    KIND_BUY_AGAIN,
    KIND_POPULAR_IN,
    KIND_SIMILAR_BOUGHT,
    KIND_SIMILAR_VIEWED,
    KIND_VIEWED,
    RankedBlock,
    csr_arrays,
    rank_users,
)
from campaign.recommend.popularity import Popularity
from campaign.recommend.ranking import csr_row_index, recent_purchases
from campaign.recommend.reasons import phrase

RESULT_COLUMNS = ["user_id", "rank", "product_id", "score", "reason"]
# Popularity fallback candidates per category beyond k (room for filtered items).
FALLBACK_MARGIN = 20


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
        chunk_size: users per ranking block (the unit of progress and of threading).
        field_weights: content attribute weights (see :mod:`campaign.recommend.content`).
        n_jobs: threads for the neighbour search and the ranking blocks (None: 1; -1:
            one per core).
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

    def fit(
        self,
        feedback: Feedback,
        products: pd.DataFrame,
        *,
        itemcf: ItemCF | None = None,
        content: ContentSimilarity | None = None,
    ) -> HybridRecommender:
        """Fit every component on ``feedback`` and the catalogue.

        ``itemcf`` and ``content`` are components already fitted on the same feedback
        and catalogue with this model's parameters (the recommender tournament fits
        them once for every candidate); without them they are fitted here.

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
        self.itemcf_ = itemcf or ItemCF(self.neighbours, n_jobs=self.n_jobs).fit(interactions)
        self.content_ = content or ContentSimilarity(
            self.content_neighbours, field_weights=self.field_weights, n_jobs=self.n_jobs
        ).fit(catalogue, item_weight=self.itemcf_.item_support_)
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
        self._cf_confident.sort_indices()
        self._cf_arrays = csr_arrays(self._cf_confident)
        self._content_arrays = csr_arrays(self.content_.similarity_)
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

    def score_block(self, rows: Feedback, *, allow_repurchase: bool) -> np.ndarray:
        """Dense users × items hybrid scores for ``rows`` (before filters), every item.

        ``blend + popularity_weight * pop(u, j) [+ buy_again_weight * buy_again(u, j)]``
        with the blend scaled per user (see :meth:`blend`). The exact reference of
        :meth:`rank_block`, which :meth:`recommend` uses.
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
    ) -> RankedBlock:
        """Filtered, diversified top-k of one block of users, with reason codes.

        The score is :meth:`score_block`'s, computed per user by the compiled loop of
        :mod:`campaign.recommend.kernels` over the cells that can win: the blend's
        (items near the user's history), the user's bought items (with
        ``allow_repurchase``) and the popularity fallback from
        :meth:`popularity_candidates` (the top items of each category the user
        touched, and of the shop). Any other item scores only its popularity, lower
        than those candidates', so the result equals the dense ranking unless filters
        remove more than ``depth - k`` candidates of a category.
        """
        interactions = block.interactions
        profile = self._profile(interactions)
        profile.sort_indices()
        weight = (1.0 - self.content_weight) * self._user_confidence(interactions)
        affinity = sparse.csr_matrix(self.popularity_.affinity(interactions), dtype=np.float32)
        days = block.days_since_purchase
        blocked = recent_purchases(days, repurchase_window_days) if allow_repurchase else days
        if allow_repurchase and self.buy_again_weight:
            again = sparse.csr_matrix(
                self.buy_again_.score(block.purchases, block.purchase_counts), dtype=np.float32
            )
        else:
            again = sparse.csr_matrix(interactions.shape, dtype=np.float32)
        if allowed is None:
            allowed = np.ones(self.n_items_, dtype=bool)
        counts, cols, scores, kinds, anchors = rank_users(
            *csr_arrays(profile),
            weight.astype(np.float32),
            *csr_arrays(affinity),
            *csr_arrays(again),
            *csr_arrays(blocked)[:2],
            *csr_arrays(block.purchases)[:2],
            *self._cf_arrays,
            *self._content_arrays,
            self.item_confidence_,
            self.popularity_.popularity_,
            self.category_codes_,
            np.ascontiguousarray(allowed, dtype=np.bool_),
            *csr_arrays(candidates)[:2],
            float(self.popularity_weight),
            float(self.popularity_.category_share),
            float(self.buy_again_weight) if allow_repurchase else 0.0,
            int(k),
            -1 if self.max_per_category is None else int(self.max_per_category),
        )
        width = np.arange(k)
        taken = width[None, :] < counts[:, None]
        rows = np.nonzero(taken)[0]
        return RankedBlock(
            rows=rows.astype(np.int64),
            cols=cols[taken],
            scores=scores[taken],
            ranks=np.broadcast_to(width + 1, taken.shape)[taken].astype(np.int64),
            kinds=kinds[taken],
            anchors=anchors[taken],
        )

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

        def rank_block(start: int) -> tuple[np.ndarray, RankedBlock]:
            stop = min(start + self.chunk_size, feedback.n_users)
            block = feedback.slice(start, stop)
            chosen = self.rank_block(
                block,
                k,
                allowed=allowed,
                allow_repurchase=allow_repurchase,
                repurchase_window_days=repurchase_window_days,
                candidates=candidates,
            )
            if progress is not None:
                progress(stop - start)
            return block.user_ids[chosen.rows], chosen

        starts = range(0, feedback.n_users, self.chunk_size)
        workers = self.n_jobs if self.n_jobs and self.n_jobs > 0 else (os.cpu_count() or 1)
        if self.n_jobs is None or workers == 1:
            blocks = [rank_block(start) for start in starts]
        else:
            # The compiled ranking loop runs without the GIL: blocks run in parallel.
            with ThreadPoolExecutor(max_workers=workers) as pool:
                blocks = list(pool.map(rank_block, starts))
        if not blocks:
            return pd.DataFrame({c: pd.Series(dtype=object) for c in RESULT_COLUMNS})

        def joined(field: str) -> np.ndarray:
            return np.concatenate([getattr(chosen, field) for _users, chosen in blocks])

        kinds, anchors = joined("kinds"), joined("anchors")
        return pd.DataFrame(
            {
                "user_id": np.concatenate([users for users, _chosen in blocks]),
                "rank": joined("ranks"),
                "product_id": self.product_ids_[joined("cols")],
                "score": joined("scores").astype(np.float64),
                # Texts are built once per call: each distinct reason is one string.
                "reason": (
                    self.reason_texts(kinds, anchors)
                    if explain
                    else np.full(kinds.shape[0], "", dtype=object)
                ),
            }
        )

    # -- reasons ----------------------------------------------------------------------

    def reason_texts(self, kinds: np.ndarray, anchors: np.ndarray) -> np.ndarray:
        """The English reason of each pick from its kind and anchor (see
        :class:`campaign.recommend.kernels.RankedBlock`).

        ``"because you bought X"`` / ``"because you viewed X"`` (item-CF, X = the
        user's product contributing most); ``"similar to X you bought"`` /
        ``"similar to X you viewed"`` (content); ``"popular in Y"`` (a category the
        user touched) or ``"popular now"``; ``"buy again"``. Each distinct text is
        built once, however many picks share it.
        """
        if kinds.shape[0] == 0:
            return np.zeros(0, dtype=object)
        stride = max(self.n_items_, self.category_names_.shape[0]) + 1
        keys = kinds.astype(np.int64) * stride + anchors.astype(np.int64)
        codes, distinct = pd.factorize(keys)
        texts = np.empty(distinct.shape[0], dtype=object)
        for position, key in enumerate(distinct.tolist()):
            kind, anchor = divmod(int(key), stride)
            texts[position] = self._reason(kind, anchor)
        return texts[codes]

    def _reason(self, kind: int, anchor: int) -> str:
        if kind in _ITEM_REASONS:
            return phrase(_ITEM_REASONS[kind], item=str(self.names_[anchor]))
        if kind == KIND_POPULAR_IN:
            return phrase("popular_in", category=str(self.category_names_[anchor]))
        if kind == KIND_BUY_AGAIN:
            return phrase("buy_again")
        return phrase("popular")


# Reason kinds naming a product, and their phrase in campaign.recommend.reasons.
_ITEM_REASONS = {
    KIND_BOUGHT: "bought",
    KIND_VIEWED: "viewed",
    KIND_SIMILAR_BOUGHT: "similar_bought",
    KIND_SIMILAR_VIEWED: "similar_viewed",
}
