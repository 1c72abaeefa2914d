"""Leave-future-out evaluation of the recommender beside its baselines (pure).

Fit on events before T, recommend k products per user, and compare with what each
user really bought in (T, T + window]. Two scopes:

* ``all``: every product purchased in the window; repurchases are allowed for every
  model (no repurchase window), so buy-again competes on its home ground.
* ``new``: only products the user had never bought before T; every model excludes
  the user's past purchases, so this measures discovery.

Metrics per model and scope (averaged over users with at least one target product):
``recall@k`` = hits / number of target products; ``ndcg@k`` with binary relevance,
ideal DCG over min(targets, k) hits; ``coverage`` = distinct recommended products /
catalogue size.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
from scipy import sparse

from campaign.common.progress import set_total
from campaign.recommend.buyagain import row_max_normalised
from campaign.recommend.feedback import Feedback, build_feedback
from campaign.recommend.hybrid import FALLBACK_MARGIN, HybridRecommender, row_sum_normalised
from campaign.recommend.kernels import RankedBlock
from campaign.recommend.ranking import TopK, apply_filters, top_k

SCOPES = ("all", "new")
METRIC_COLUMNS = ["scope", "model", "users", "recall", "ndcg", "coverage"]

Scorer = Callable[[Feedback], np.ndarray]


@dataclass(frozen=True)
class Evaluation:
    """The metrics table (columns ``METRIC_COLUMNS``) and the split it was made on."""

    metrics: pd.DataFrame
    as_of: datetime
    window_days: int
    k: int
    train_users: int
    target_users: dict[str, int]


def _scorers(model: HybridRecommender, allow_repurchase: bool) -> dict[str, Scorer]:
    popularity = model.popularity_.popularity_

    def by_popularity(rows: Feedback) -> np.ndarray:
        return np.tile(popularity, (rows.n_users, 1))

    def by_itemcf(rows: Feedback) -> np.ndarray:
        scores = row_sum_normalised(rows.interactions) @ model.itemcf_.similarity_
        return sparse.csr_matrix(scores).toarray().astype(np.float32, copy=False)

    def by_buy_again(rows: Feedback) -> np.ndarray:
        return row_max_normalised(rows.purchases).toarray()

    def by_hybrid(rows: Feedback) -> np.ndarray:
        return model.score_block(rows, allow_repurchase=allow_repurchase)

    return {
        "popularity": by_popularity,
        "item-cf": by_itemcf,
        "buy-again": by_buy_again,
        "hybrid": by_hybrid,
    }


def ranking_metrics(
    recommended: pd.DataFrame, targets: pd.DataFrame, k: int, n_items: int
) -> dict[str, float]:
    """Mean recall@k and NDCG@k over target users, and catalogue coverage.

    Args:
        recommended: columns ``user_id``, ``product_id``, ``rank`` (1-based).
        targets: columns ``user_id``, ``product_id`` (distinct pairs).
        k: the cut-off.
        n_items: catalogue size for coverage.
    """
    users = targets["user_id"].unique()
    if users.size == 0:
        return {"users": 0, "recall": float("nan"), "ndcg": float("nan"), "coverage": 0.0}
    top = recommended.loc[recommended["rank"] <= k, ["user_id", "product_id", "rank"]]
    hits = top.merge(targets, on=["user_id", "product_id"], how="inner")
    hits = hits.assign(gain=1.0 / np.log2(hits["rank"].to_numpy(dtype=np.float64) + 1.0))
    per_user = hits.groupby("user_id").agg(hits=("gain", "size"), dcg=("gain", "sum"))
    truth = targets.groupby("user_id").size().rename("n")
    table = truth.to_frame().join(per_user, how="left").fillna(0.0)
    discounts = np.cumsum(1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64)))
    ideal = discounts[np.minimum(table["n"].to_numpy(dtype=np.int64), k) - 1]
    recall = table["hits"].to_numpy() / table["n"].to_numpy()
    ndcg = table["dcg"].to_numpy() / ideal
    coverage = top["product_id"].nunique() / n_items if n_items else 0.0
    return {
        "users": int(users.size),
        "recall": float(recall.mean()),
        "ndcg": float(ndcg.mean()),
        "coverage": float(coverage),
    }


def evaluate_recommenders(
    events: pd.DataFrame,
    products: pd.DataFrame,
    as_of: datetime,
    model: HybridRecommender,
    *,
    event_weights: Mapping[str, float],
    half_life_days: float,
    k: int = 10,
    window_days: int = 30,
    progress: Callable[[int], None] | None = None,
) -> Evaluation:
    """Fit on events before ``as_of``; score purchases in the next ``window_days``.

    Args:
        events: columns ``user_id``, ``product_id``, ``type``, ``ts``, ``quantity``
            (history and future; the split happens here).
        products: the catalogue (``product_id`` plus attributes); stock is ignored
            because it is only known for today, not for T.
        model: an unfitted :class:`HybridRecommender` with the parameters to test.
        progress: called with the number of users ranked (per model and scope).
    """
    start = pd.Timestamp(as_of)
    end = start + pd.Timedelta(days=window_days)
    catalogue = products["product_id"].to_numpy(dtype=np.int64)
    feedback = build_feedback(events, catalogue, as_of, event_weights, half_life_days)
    fitted = model.fit(feedback, products.assign(in_stock=True))
    ts = pd.to_datetime(events["ts"], utc=True)
    future = events.loc[
        (events["type"] == "purchase") & (ts >= start) & (ts < end) & events["product_id"].notna(),
        ["user_id", "product_id"],
    ].astype("int64")
    future = future.loc[future["product_id"].isin(catalogue)].drop_duplicates()
    past = feedback.purchases.tocoo()
    bought = pd.DataFrame(
        {
            "user_id": feedback.user_ids[past.row],
            "product_id": feedback.product_ids[past.col],
        }
    )
    seen = future.merge(bought.assign(old=True), on=["user_id", "product_id"], how="left")
    targets = {"all": future, "new": seen.loc[seen["old"].isna(), ["user_id", "product_id"]]}

    user_rows = {
        scope: feedback.rows_for(np.sort(targets[scope]["user_id"].unique())) for scope in SCOPES
    }
    set_total(progress, sum(
        user_rows[scope].n_users * len(_scorers(fitted, scope == "all")) for scope in SCOPES
    ))
    rows: list[dict[str, object]] = []
    for scope in SCOPES:
        allow = scope == "all"
        block_rows = user_rows[scope]
        candidates = fitted.popularity_candidates(
            np.ones(len(catalogue), dtype=bool), k + FALLBACK_MARGIN
        )
        for name, scorer in _scorers(fitted, allow).items():
            frames = []
            for lo in range(0, block_rows.n_users, fitted.chunk_size):
                hi = min(lo + fitted.chunk_size, block_rows.n_users)
                block = block_rows.slice(lo, hi)
                chosen: TopK | RankedBlock
                if name == "hybrid":
                    # The production path: candidates, filters, diversity cap.
                    chosen = fitted.rank_block(
                        block,
                        k,
                        allowed=None,
                        allow_repurchase=allow,
                        repurchase_window_days=0.0,
                        candidates=candidates,
                    )
                else:
                    scores = scorer(block)
                    apply_filters(
                        scores,
                        block.days_since_purchase,
                        None,
                        allow_repurchase=allow,
                        repurchase_window_days=0.0,
                    )
                    chosen = top_k(scores, k)
                frames.append(
                    pd.DataFrame(
                        {
                            "user_id": block.user_ids[chosen.rows],
                            "product_id": fitted.product_ids_[chosen.cols],
                            "rank": chosen.ranks,
                        }
                    )
                )
                if progress is not None:
                    progress(hi - lo)
            recommended = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
                {"user_id": [], "product_id": [], "rank": []}
            )
            metrics = ranking_metrics(recommended, targets[scope], k, len(catalogue))
            rows.append({"scope": scope, "model": name, **metrics})
    return Evaluation(
        metrics=pd.DataFrame(rows, columns=METRIC_COLUMNS),
        as_of=as_of,
        window_days=window_days,
        k=k,
        train_users=feedback.n_users,
        target_users={scope: int(targets[scope]["user_id"].nunique()) for scope in SCOPES},
    )
