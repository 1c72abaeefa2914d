"""Churn metrics and the baselines, for `campaign train` and `evaluate churn`.

Pure. Every figure is computed on one forward split: a model trained on data up to
some time is scored on a later snapshot and compared with what really happened after
it. Two baselines are fitted on the same training rows in the same run, so the table
compares like with like:

* recency ("the longer since the last order, the likelier to churn");
* BG/NBD ("buy till you die"): customers ranked by the orders a BG/NBD model expects
  in the horizon, the classic anchor for "will this customer buy again".
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from campaign.churn.btyd import BGNBDParams, expected_orders, fit_bgnbd
from campaign.churn.summary import btyd_history

METRIC_NAMES: tuple[str, ...] = ("roc_auc", "pr_auc", "brier", "lift_top_decile")
METRIC_LABELS: dict[str, str] = {
    "roc_auc": "ROC AUC",
    "pr_auc": "PR AUC",
    "brier": "Brier (lower is better)",
    "lift_top_decile": "lift in top 10%",
    "customers": "customers",
    "churn_rate": "churn rate",
}


def lift_at(y: np.ndarray, score: np.ndarray, share: float = 0.1) -> float:
    """Churn rate among the top ``share`` by score over the overall churn rate.

    Ties at the cut are counted fractionally (the expected value over random tie
    order), so a tree's few distinct scores do not flatter or punish it.
    """
    y = np.asarray(y, dtype=float)
    score = np.asarray(score, dtype=float)
    n = len(y)
    if n == 0 or y.sum() == 0:
        return float("nan")
    k = share * n
    frame = pd.DataFrame({"y": y, "s": score}).groupby("s", sort=True)["y"].agg(["sum", "count"])
    frame = frame.iloc[::-1]
    taken = positives = 0.0
    for total, count in zip(frame["sum"], frame["count"], strict=True):
        if taken + count <= k:
            taken += count
            positives += total
        else:
            part = k - taken
            positives += total * part / count
            taken = k
            break
    return float((positives / k) / y.mean())


def churn_metrics(y: pd.Series | np.ndarray, risk: pd.Series | np.ndarray) -> dict[str, float]:
    """ROC AUC, PR AUC, Brier score, lift in the top decile, customers and churn rate.

    ``y``: 1 = churned. ``risk``: churn probability in [0, 1]. Metrics that need both
    classes are NaN when only one is present.
    """
    y_arr = np.asarray(y, dtype=int)
    r_arr = np.asarray(risk, dtype=float)
    both = len(np.unique(y_arr)) == 2
    return {
        "roc_auc": float(roc_auc_score(y_arr, r_arr)) if both else float("nan"),
        "pr_auc": float(average_precision_score(y_arr, r_arr)) if both else float("nan"),
        "brier": float(brier_score_loss(y_arr, r_arr)) if len(y_arr) else float("nan"),
        "lift_top_decile": lift_at(y_arr, r_arr),
        "customers": float(len(y_arr)),
        "churn_rate": float(y_arr.mean()) if len(y_arr) else float("nan"),
    }


class RecencyBaseline(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """Churn probability from days since the last order alone (logistic on log1p).

    Takes the purchase summary frame; uses only ``days_since_last_purchase``.
    """

    def fit(self, X: pd.DataFrame, y: Any) -> RecencyBaseline:
        """Fit the one-input logistic curve."""
        self.model_ = LogisticRegression().fit(self._design(X), np.asarray(y, dtype=int))
        self.classes_ = self.model_.classes_
        return self

    @staticmethod
    def _design(X: pd.DataFrame) -> np.ndarray:
        return np.log1p(X[["days_since_last_purchase"]].to_numpy(dtype=float))

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Columns: P(stays), P(churns)."""
        return np.asarray(self.model_.predict_proba(self._design(X)))


class BGNBDBaseline(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """Churn probability from BG/NBD expected orders in the horizon alone.

    ``fit`` fits BG/NBD (:func:`campaign.churn.btyd.fit_bgnbd`) on the purchase
    histories of the training rows (no labels needed), then a logistic curve of the
    label on ``log1p(expected orders)`` so the output is a probability (Brier score,
    tiers). The curve is decreasing, so customers are ranked by expected orders, not
    by 1 - P(alive) (which ranks one-time buyers backwards). Takes the purchase
    summary frame.
    """

    def __init__(self, horizon_days: int = 90) -> None:
        self.horizon_days = horizon_days

    def expected(self, X: pd.DataFrame) -> np.ndarray:
        """Orders the fitted BG/NBD model expects per row in the next ``horizon_days``."""
        return expected_orders(self.params_, *btyd_history(X), self.horizon_days)

    def fit(self, X: pd.DataFrame, y: Any) -> BGNBDBaseline:
        """Fit BG/NBD on ``X``'s histories and the calibration curve on ``y``."""
        self.params_: BGNBDParams = fit_bgnbd(*btyd_history(X))
        self.model_ = LogisticRegression().fit(
            np.log1p(self.expected(X))[:, None], np.asarray(y, dtype=int)
        )
        self.classes_ = self.model_.classes_
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Columns: P(stays), P(churns)."""
        return np.asarray(self.model_.predict_proba(np.log1p(self.expected(X))[:, None]))


def comparison_table(results: dict[str, dict[str, float]]) -> pd.DataFrame:
    """Metrics side by side: one row per metric, one column per model (insertion order)."""
    rows = list(METRIC_NAMES) + ["customers", "churn_rate"]
    return pd.DataFrame(
        {name: [metrics.get(r, float("nan")) for r in rows] for name, metrics in results.items()},
        index=rows,
    )
