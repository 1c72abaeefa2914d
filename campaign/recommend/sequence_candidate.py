"""The next-item sequence model as a tournament candidate (pure; needs torch).

Only imported where :func:`campaign.recommend.recipe.sequence_available` is true. The
model (:mod:`campaign.recommend.sequence`) learns from each user's orders in time
order and ranks the items that come next; this adapter feeds it the history's
distinct orders and turns its top-k into a candidate's scaled scores. A pick's reason
names the user's latest purchase ("because you bought X").
"""

from __future__ import annotations

import numpy as np
from scipy import sparse

from campaign.recommend.candidates import History
from campaign.recommend.feedback import SECONDS_PER_DAY
from campaign.recommend.scoring import keep_top, product_name, remove_cells, row_max_one


class SequenceCandidate:
    """:class:`campaign.recommend.sequence.SequenceRecommender` behind the candidate
    interface (:class:`campaign.recommend.candidates.Candidate`)."""

    name = "sequence"
    repeat_only = False

    def __init__(self, **params: object) -> None:
        self.params = params

    def fit(self, history: History) -> SequenceCandidate:
        """Train on every user's orders, oldest first."""
        from campaign.recommend.sequence import SequenceRecommender

        orders = history.orders
        stamps = history.as_of.timestamp() - orders.days * SECONDS_PER_DAY
        self.history_ = history
        self.model_ = SequenceRecommender(**self.params).fit(
            orders.rows, orders.cols, stamps, orders.shape[0], orders.shape[1]
        )
        latest = np.full(orders.shape[0], -1, dtype=np.int64)
        order = np.argsort(-orders.days, kind="stable")  # oldest first: the newest wins
        latest[orders.rows[order]] = orders.cols[order]
        self.latest_ = latest
        return self

    def scores(
        self,
        user_rows: np.ndarray,
        depth: int,
        exclude: sparse.csr_matrix | None,
        *,
        repeat: bool = True,
    ) -> sparse.csr_matrix:
        """The model's top ``depth`` per known user, by rank (row max 1)."""
        n_items = self.history_.n_items
        known = np.flatnonzero(user_rows >= 0)
        out = sparse.csr_matrix((len(user_rows), n_items), dtype=np.float64)
        if known.size == 0:
            return out
        skip = None if exclude is None else sparse.csr_matrix(exclude)[known]
        items, _scores = self.model_.top_k(user_rows[known], depth, exclude=skip)
        items = np.asarray(items, dtype=np.int64)
        ranks = np.broadcast_to(np.arange(1, items.shape[1] + 1), items.shape)
        valid = (items >= 0) & (items < n_items)
        matrix = sparse.csr_matrix(
            (1.0 / ranks[valid], (np.repeat(known, items.shape[1])[valid.ravel()],
                                  items[valid])),
            shape=(len(user_rows), n_items),
        )
        return keep_top(remove_cells(row_max_one(matrix), exclude), depth)

    def reasons(self, user_rows: np.ndarray, cols: np.ndarray) -> list[tuple[str, dict[str, str]]]:
        """"because you bought X", X the user's latest purchase."""
        names = self.history_.products.get("name")
        out: list[tuple[str, dict[str, str]]] = []
        for row in user_rows.tolist():
            anchor = int(self.latest_[row]) if row >= 0 else -1
            if anchor < 0:
                out.append(("popular", {}))
            else:
                out.append(("bought", {"item": product_name(self.history_, names, anchor)}))
        return out
