"""Buy again: the user's own most-bought products, recency-weighted (pure).

On real basket data re-buying is by far the most predictable purchase; the hybrid
uses this scorer where a campaign allows repurchases.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse


def row_max_normalised(matrix: sparse.csr_matrix) -> sparse.csr_matrix:
    """``matrix`` with each row scaled so its largest entry is 1 (empty rows stay empty)."""
    matrix = sparse.csr_matrix(matrix, dtype=np.float32)
    if matrix.shape[1] == 0:
        return matrix
    top = np.asarray(matrix.max(axis=1).todense(), dtype=np.float64).ravel()
    inverse = np.divide(1.0, top, out=np.zeros_like(top), where=top > 0)
    return sparse.csr_matrix(sparse.diags(inverse.astype(np.float32)) @ matrix)


def repeat_rates(purchase_counts: sparse.csr_matrix, prior_strength: float) -> np.ndarray:
    """Per item, the smoothed share of its buyers who bought it more than once.

    ``(repeaters + prior_strength * global_rate) / (buyers + prior_strength)``: items
    with few buyers shrink toward the shop-wide rate.
    """
    counts = sparse.csc_matrix(purchase_counts)
    buyers = np.diff(counts.indptr).astype(np.float64)
    repeated = sparse.csc_matrix(counts > 1.5, dtype=np.float64)
    repeaters = np.diff(repeated.indptr).astype(np.float64)
    total = buyers.sum()
    prior = repeaters.sum() / total if total else 0.0
    return ((repeaters + prior_strength * prior) / (buyers + prior_strength)).astype(np.float32)


class BuyAgain:
    """Scores each product a user bought by their decayed purchase quantity.

    The input is :attr:`campaign.recommend.feedback.Feedback.purchases` (quantities
    decayed with the feedback half-life), so frequent and recent purchases rank first.
    With ``repeat_share`` > 0 the score is also weighted by how often the item's
    buyers buy it again (staples before one-off purchases).

    Parameters:
        repeat_share: weight of the item's repeat rate (0: the plain user history).
        prior_strength: buyers' worth of shrinkage toward the shop-wide repeat rate.
        frequency_share: weight of undecayed purchase counts beside decayed ones.

    Fitted attributes:
        repeat_rate_: smoothed repeat-purchase rate per item.
        n_items_: catalogue size seen in ``fit``.
    """

    def __init__(
        self, repeat_share: float = 0.0, prior_strength: float = 5.0, frequency_share: float = 0.0
    ) -> None:
        self.repeat_share = repeat_share
        self.prior_strength = prior_strength
        self.frequency_share = frequency_share

    def fit(self, purchase_counts: sparse.csr_matrix, y: object = None) -> BuyAgain:
        """Learn each item's repeat rate from users × items purchase counts."""
        self.repeat_rate_ = repeat_rates(purchase_counts, self.prior_strength)
        self.n_items_ = purchase_counts.shape[1]
        return self

    def score(
        self, purchases: sparse.csr_matrix, counts: sparse.csr_matrix | None = None
    ) -> sparse.csr_matrix:
        """Sparse users × items scores in [0, 1] (1 = the user's strongest repurchase).

        ``counts`` (undecayed purchase counts) mixes in plain frequency with weight
        ``frequency_share``.
        """
        if self.frequency_share and counts is not None:
            purchases = (1.0 - self.frequency_share) * row_max_normalised(
                purchases
            ) + self.frequency_share * row_max_normalised(counts)
        if self.repeat_share:
            factor = (1.0 - self.repeat_share) + self.repeat_share * self.repeat_rate_
            purchases = sparse.csr_matrix(purchases @ sparse.diags(factor.astype(np.float32)))
        return row_max_normalised(purchases)
