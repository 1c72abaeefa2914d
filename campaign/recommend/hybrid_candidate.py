"""The configured hybrid (:mod:`campaign.recommend.hybrid`) as a tournament candidate
(pure): its capped lists by rank, and its own reasons kept for every pick."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from campaign.recommend.candidates import Candidate, History
from campaign.recommend.hybrid import HybridRecommender
from campaign.recommend.reasons import phrase
from campaign.recommend.scoring import keep_top, remove_cells, row_max_one


class HybridCandidate:
    """The configured hybrid (:class:`HybridRecommender`) as a candidate; its picks keep
    the hybrid's own reasons."""

    name = "hybrid"
    repeat_only = False

    def __init__(self, factory: Callable[[], HybridRecommender]) -> None:
        self.factory = factory

    def fit(self, history: History, shared: Mapping[str, Candidate] | None = None
            ) -> HybridCandidate:
        """Fit the hybrid on the history's feedback and catalogue, reusing the item-CF
        and content neighbours of ``shared`` candidates fitted on the same history
        when they were built with the hybrid's parameters."""
        self.history_ = history
        model = self.factory()
        reuse: dict[str, Any] = {}
        for name, argument, neighbours in (("item_cf", "itemcf", model.neighbours),
                                           ("content", "content", model.content_neighbours)):
            other = (shared or {}).get(name)
            fitted = getattr(getattr(other, "neighbourhood_", None), "model", None)
            if fitted is not None and getattr(fitted, "neighbours", None) == neighbours and (
                name == "item_cf" or model.field_weights is None
            ):
                reuse[argument] = fitted
        self.model_ = model.fit(history.feedback, history.products, **reuse)
        self.texts_: dict[tuple[int, int], str] = {}
        return self

    def scores(
        self,
        user_rows: np.ndarray,
        depth: int,
        exclude: sparse.csr_matrix | None,
        *,
        repeat: bool = True,
    ) -> sparse.csr_matrix:
        """The hybrid's capped top ``depth`` (repurchase allowed when ``repeat``)."""
        feedback = self.history_.feedback
        ids = (
            np.where(user_rows >= 0, feedback.user_ids[np.maximum(user_rows, 0)], -1)
            if feedback.n_users
            else np.full(len(user_rows), -1, dtype=np.int64)
        )
        frame = self.model_.recommend(
            feedback.rows_for(ids), depth, allow_repurchase=repeat, repurchase_window_days=0.0
        )
        position = pd.Index(feedback.product_ids).get_indexer(frame["product_id"])
        # rows_for keeps the order of ``ids``; cold users (-1) share no internal id.
        row_of_user = {u: i for i, u in enumerate(ids.tolist()) if u >= 0}
        block_row = np.asarray(
            [row_of_user.get(int(u), -1) for u in frame["user_id"]], dtype=np.int64
        )
        known = block_row >= 0
        block_row, position = block_row[known], position[known]
        frame = frame.loc[known]
        for r, c, text in zip(block_row.tolist(), position.tolist(), frame["reason"], strict=True):
            self.texts_[(int(user_rows[r]), c)] = text
        # Rank order, not raw magnitude: the hybrid's scores put bought items at ~100.
        value = 1.0 / frame["rank"].to_numpy(np.float64) if len(frame) else np.zeros(0)
        matrix = sparse.csr_matrix(
            (value, (block_row, position)), shape=(len(user_rows), self.history_.n_items)
        )
        return keep_top(remove_cells(row_max_one(matrix), exclude), depth)

    def reasons(self, user_rows: np.ndarray, cols: np.ndarray) -> list[tuple[str, dict[str, str]]]:
        """The hybrid's reason text of each pick."""
        return [
            ("text", {"text": self.texts_.get((int(r), int(c)), phrase("popular"))})
            for r, c in zip(user_rows.tolist(), cols.tolist(), strict=True)
        ]
