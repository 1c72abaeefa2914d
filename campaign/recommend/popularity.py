"""Popularity: globally and within each user's favourite categories (pure).

The fallback of the recommender: a user with little history gets what is popular in
the categories they touched, then what is popular everywhere.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse


def category_matrix(category_codes: np.ndarray) -> sparse.csr_matrix:
    """Items × categories one-hot matrix; a code of -1 (no category) maps to nothing."""
    codes = np.asarray(category_codes, dtype=np.int64)
    present = codes >= 0
    n_categories = int(codes.max()) + 1 if present.any() else 0
    return sparse.csr_matrix(
        (np.ones(int(present.sum()), dtype=np.float32), (np.flatnonzero(present), codes[present])),
        shape=(codes.shape[0], n_categories),
    )


class Popularity:
    """Decayed popularity of each item, optionally boosted by category affinity.

    Parameters:
        category_share: share of the score that comes from the user's affinity with the
            item's category (0 = global popularity only; above 2/3 the favourite
            category always comes first).

    Fitted attributes:
        popularity_: float32 per item in [0, 1] (the most popular item is 1).
        category_codes_: category code per item (-1 for none).
    """

    def __init__(self, category_share: float = 0.7) -> None:
        self.category_share = category_share

    def fit(
        self,
        interactions: sparse.csr_matrix,
        y: object = None,
        *,
        category_codes: np.ndarray | None = None,
    ) -> Popularity:
        """Learn item popularity from a users × items matrix (column sums)."""
        totals = np.asarray(interactions.sum(axis=0), dtype=np.float64).ravel()
        top = totals.max() if totals.size else 0.0
        self.popularity_ = (totals / top if top > 0 else totals).astype(np.float32)
        codes = (
            np.full(interactions.shape[1], -1, dtype=np.int64)
            if category_codes is None
            else np.asarray(category_codes, dtype=np.int64)
        )
        self.category_codes_ = codes
        self._categories = category_matrix(codes)
        return self

    def affinity(self, interactions: sparse.csr_matrix) -> sparse.csr_matrix:
        """Users × categories affinity in [0, 1] (each user's top category is 1)."""
        per_category = sparse.csr_matrix(interactions @ self._categories)
        if per_category.shape[1] == 0:
            return per_category
        top = np.asarray(per_category.max(axis=1).todense(), dtype=np.float64).ravel()
        inverse = np.divide(1.0, top, out=np.zeros_like(top), where=top > 0)
        return sparse.csr_matrix(sparse.diags(inverse.astype(np.float32)) @ per_category)

    def score(self, interactions: sparse.csr_matrix) -> np.ndarray:
        """Dense users × items scores in [0, 1].

        ``(1 - s) * pop_j + s * affinity[u, cat_j] * (1 + pop_j) / 2`` with
        ``s = category_share``: when ``s / 2 > 1 - s`` (s > 2/3), every item of the
        user's favourite category ranks above every item elsewhere: popular in the
        category first, then popular everywhere.
        """
        if self._categories.shape[1] == 0:
            base = (1.0 - self.category_share) * self.popularity_
            return np.tile(base, (interactions.shape[0], 1))
        boost = sparse.csr_matrix(self.affinity(interactions) @ self._categories.T)
        factor = (self.category_share * 0.5 * (1.0 + self.popularity_)).astype(np.float32)
        out = sparse.csr_matrix(boost @ sparse.diags(factor)).toarray().astype(np.float32)
        out += ((1.0 - self.category_share) * self.popularity_)[None, :]
        return out

    def score_pairs(self, affinity: np.ndarray, items: np.ndarray) -> np.ndarray:
        """The same score for chosen (user, item) pairs given the user's affinity to
        each item's category."""
        pop = self.popularity_[items].astype(np.float64)
        return (1.0 - self.category_share) * pop + self.category_share * affinity * 0.5 * (
            1.0 + pop
        )
