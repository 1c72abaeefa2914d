"""The figures, defined once: NDCG@k, recall@k, ROC/PR AUC and the paired bootstrap.

* NDCG@k: binary gains, DCG = sum over the top k of 1/log2(rank + 1) for each hit,
  divided by the ideal DCG over min(|targets|, k) hits; a user with no list scores 0.
* recall@k: hits in the top k / |targets|.
* Paired bootstrap: resample the evaluated users (or customers) with replacement,
  recompute both models' figure on the same resample, and take the 2.5 and 97.5
  percentiles of the difference.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

DISCOUNT = 1.0 / np.log2(np.arange(2, 102))


def ndcg_at_k(ranked: Sequence[object], targets: set[object], k: int = 10) -> float:
    """NDCG@k of one ranked list against a target set (binary gains)."""
    if not targets:
        raise ValueError("NDCG needs at least one target")
    dcg = sum(DISCOUNT[i] for i, item in enumerate(list(ranked)[:k]) if item in targets)
    ideal = DISCOUNT[: min(len(targets), k)].sum()
    return float(dcg / ideal)


def recall_at_k(ranked: Sequence[object], targets: set[object], k: int = 10) -> float:
    """Share of the targets found in the top k."""
    if not targets:
        raise ValueError("recall needs at least one target")
    return len(set(list(ranked)[:k]) & targets) / len(targets)


def per_user(
    lists: Mapping[str, Sequence[object]],
    targets: Mapping[str, set[object]],
    users: Sequence[str],
    k: int = 10,
) -> dict[str, np.ndarray]:
    """NDCG@k and recall@k per user, in ``users`` order (a missing list scores 0)."""
    ndcg = np.empty(len(users))
    recall = np.empty(len(users))
    for i, user in enumerate(users):
        ranked = lists.get(user, ())
        ndcg[i] = ndcg_at_k(ranked, targets[user], k)
        recall[i] = recall_at_k(ranked, targets[user], k)
    return {"ndcg": ndcg, "recall": recall}


def bootstrap_mean_difference(
    a: np.ndarray, b: np.ndarray, *, resamples: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """95% interval of mean(a) - mean(b) over users resampled in pairs."""
    if len(a) != len(b) or not len(a):
        raise ValueError("paired samples of the same, non-zero length are needed")
    rng = np.random.default_rng(seed)
    diff = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    draws = np.empty(resamples)
    for r in range(resamples):
        draws[r] = diff[rng.integers(0, len(diff), len(diff))].mean()
    low, high = np.percentile(draws, [2.5, 97.5])
    return float(low), float(high)


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """ROC AUC (NaN when a score is missing or only one class is present)."""
    scores = np.asarray(scores, dtype=float)
    if np.isnan(scores).any() or len(np.unique(labels)) < 2:
        return float("nan")
    return float(roc_auc_score(labels, scores))


def pr_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Average precision with churn as the positive class (NaN as for ROC AUC)."""
    scores = np.asarray(scores, dtype=float)
    if np.isnan(scores).any() or len(np.unique(labels)) < 2:
        return float("nan")
    return float(average_precision_score(labels, scores))


class _WeightedAUC:
    """ROC AUC of one score vector under bootstrap weights, in O(n) per resample.

    The scores' distinct values are ranked once; a resample only counts, per distinct
    value, its positives and negatives (ties count half, as in the rank-sum formula).
    """

    def __init__(self, labels: np.ndarray, scores: np.ndarray) -> None:
        _, self.group = np.unique(np.asarray(scores, dtype=float), return_inverse=True)
        self.groups = int(self.group.max()) + 1
        self.positive = np.asarray(labels) == 1

    def __call__(self, weights: np.ndarray) -> float:
        pos = np.bincount(self.group, weights * self.positive, self.groups)
        neg = np.bincount(self.group, weights * ~self.positive, self.groups)
        below = np.cumsum(neg) - neg
        return float((pos * (below + 0.5 * neg)).sum() / (pos.sum() * neg.sum()))


def bootstrap_metric_difference(
    labels: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    metric: Callable[[np.ndarray, np.ndarray], float] = roc_auc,
    *,
    resamples: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """95% interval of metric(a) - metric(b), customers resampled in pairs."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    draws = []
    if metric is roc_auc and not (np.isnan(a).any() or np.isnan(b).any()):
        # The same figure as roc_auc_score, without re-sorting every resample.
        auc_a, auc_b = _WeightedAUC(labels, a), _WeightedAUC(labels, b)
        for _ in range(resamples):
            weights = np.bincount(rng.integers(0, len(labels), len(labels)),
                                  minlength=len(labels)).astype(float)
            if not (weights * (labels == 1)).any() or not (weights * (labels != 1)).any():
                continue
            draws.append(auc_a(weights) - auc_b(weights))
        low, high = np.percentile(draws, [2.5, 97.5])
        return float(low), float(high)
    for _ in range(resamples):
        pick = rng.integers(0, len(labels), len(labels))
        if len(np.unique(labels[pick])) < 2:
            continue
        draws.append(metric(labels[pick], a[pick]) - metric(labels[pick], b[pick]))
    low, high = np.percentile(draws, [2.5, 97.5])
    return float(low), float(high)
