"""The churn model: inputs derived from the purchase summary, a decision tree, reasons.

Pure: no database, no clock. The fitted model is a scikit-learn :class:`Pipeline`

* ``inputs`` – :class:`ChurnInputs`, turns the purchase summary (see
  :mod:`campaign.churn.summary`, plus any optional profile columns) into the tree's
  inputs. The inputs matter more than the depth: recency relative to the customer's own
  rhythm, the recent share of last year's orders (trend) and a BG/NBD expected-orders
  figure (fitted on each snapshot's own buyers, see :mod:`campaign.churn.summary`)
  carry most of the signal on real data.
* ``tree`` – :class:`ChurnTree`, a ``DecisionTreeClassifier`` grown with balanced
  class weights (so the minority class shapes the splits) whose probabilities are
  mapped back to the real churn rate of each leaf (so ``risk`` is an honest
  probability and the Brier score means something). Ties within a leaf are ordered by
  a logistic regression on the same inputs (at most 0.01 off the leaf's rate, never
  across leaves), which is what lets a few-leaf tree rank as well as the BTYD models.

Reasons are the user's decision path in plain words, one clause per input on the path
with the tightest bound the path implies: ``no purchase for 74 days (over 60); 1 order
in the last 90 days (at most 1)``, in English or Chinese (zh-CN).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier

from campaign.churn.btyd import BGNBDParams, expected_orders, fit_bgnbd
from campaign.churn.summary import BTYD_COLUMN, MAX_EXPECTED, SUMMARY_COLUMNS, btyd_history
from campaign.common.errors import ModelError

Locale = Literal["en", "zh-CN"]
Kind = Literal["count", "days", "money", "ratio", "share", "amount"]


@dataclass(frozen=True)
class InputSpec:
    """One tree input: meaning, unit, and how a reason phrases it (``{v}`` = value)."""

    name: str
    meaning: str
    unit: str
    kind: Kind
    en: str
    zh: str
    en_one: str | None = None  # singular English form, for counts equal to 1


INPUTS: dict[str, InputSpec] = {
    spec.name: spec
    for spec in (
        InputSpec(
            "days_since_last_purchase", "days since the latest order", "days", "days",
            "no purchase for {v} days", "{v} 天未购买", "no purchase for 1 day",
        ),
        InputSpec(
            "days_since_first_purchase", "days since the first order", "days", "days",
            "first order {v} days ago", "首次下单在 {v} 天前", "first order 1 day ago",
        ),
        InputSpec(
            "orders_total", "orders ever placed", "orders", "count",
            "{v} orders in total", "累计 {v} 笔订单", "1 order in total",
        ),
        InputSpec(
            "orders_30d", "orders in the last 30 days", "orders", "count",
            "{v} orders in the last 30 days", "近 30 天 {v} 笔订单",
            "1 order in the last 30 days",
        ),
        InputSpec(
            "orders_90d", "orders in the last 90 days", "orders", "count",
            "{v} orders in the last 90 days", "近 90 天 {v} 笔订单",
            "1 order in the last 90 days",
        ),
        InputSpec(
            "orders_365d", "orders in the last 365 days", "orders", "count",
            "{v} orders in the last 365 days", "近 365 天 {v} 笔订单",
            "1 order in the last 365 days",
        ),
        InputSpec(
            "spend_365d", "money spent in the last 365 days", "currency units", "money",
            "spent {v} in the last 365 days", "近 365 天消费 {v}",
        ),
        InputSpec(
            "usual_gap_days",
            "typical days between the customer's orders (one-time buyers: the shop's)",
            "days", "days", "usually orders every {v} days", "通常每 {v} 天下单一次",
        ),
        InputSpec(
            "recency_vs_rhythm",
            "days since the latest order divided by the usual gap between orders",
            "ratio", "ratio", "last order {v}x their usual gap ago",
            "距上次购买已达平时间隔的 {v} 倍",
        ),
        InputSpec(
            "recent_share",
            "share of the last 365 days' orders placed in the last 90 days (trend)",
            "percent", "share", "{v} of last year's orders in the last 90 days",
            "近 90 天订单占近一年的 {v}",
        ),
        InputSpec(
            "expected_orders",
            "orders a BG/NBD model expects in the next horizon (buy-till-you-die)",
            "orders", "amount", "expected {v} orders in the next {h} days",
            "预计未来 {h} 天下单 {v} 笔",
        ),
        # Optional behaviour columns: used when the summary frame carries them.
        InputSpec(
            "days_since_last_event", "days since the latest visit, view or other event",
            "days", "days", "last seen {v} days ago", "{v} 天未访问", "last seen 1 day ago",
        ),
        InputSpec(
            "views_30d", "product views in the last 30 days", "views", "count",
            "{v} product views in the last 30 days", "近 30 天浏览 {v} 次商品",
            "1 product view in the last 30 days",
        ),
        InputSpec(
            "carts_30d", "add-to-cart events in the last 30 days", "events", "count",
            "{v} add-to-carts in the last 30 days", "近 30 天加购 {v} 次",
            "1 add-to-cart in the last 30 days",
        ),
        InputSpec(
            "abandoned_carts_30d", "products left in the cart in the last 30 days",
            "products", "count", "{v} products left in the cart in the last 30 days",
            "近 30 天有 {v} 件商品加购未买", "1 product left in the cart in the last 30 days",
        ),
    )
}

CORE_INPUTS: tuple[str, ...] = (
    "days_since_last_purchase",
    "days_since_first_purchase",
    "orders_total",
    "orders_90d",
    "orders_365d",
    "spend_365d",
    "usual_gap_days",
    "recency_vs_rhythm",
    "recent_share",
    "expected_orders",
)
OPTIONAL_INPUTS: tuple[str, ...] = (
    "orders_30d",
    "days_since_last_event",
    "views_30d",
    "carts_30d",
    "abandoned_carts_30d",
)

class ChurnInputs(TransformerMixin, BaseEstimator):  # type: ignore[misc]
    """Purchase summary → tree inputs (floats, no missing values).

    ``fit`` learns the shop's typical gap between orders (the prior for one-time
    buyers' rhythm) and a BG/NBD model for ``expected_orders``; ``transform`` returns a
    DataFrame with ``columns_`` in a fixed order. Day counts are floored to whole days
    so every threshold reads as a whole number.

    Raises:
        ModelError: the frame lacks one of :data:`campaign.churn.summary.SUMMARY_COLUMNS`
            (``orders_30d`` is optional).
    """

    def __init__(self, horizon_days: int = 90, use_optional: bool = True) -> None:
        self.horizon_days = horizon_days
        self.use_optional = use_optional

    @staticmethod
    def _check(frame: pd.DataFrame) -> None:
        missing = [c for c in SUMMARY_COLUMNS if c not in frame and c != "orders_30d"]
        if missing:
            raise ModelError(f"churn inputs: summary frame lacks column(s) {', '.join(missing)}")

    @staticmethod
    def _btyd_summary(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return btyd_history(frame)

    def fit(self, X: pd.DataFrame, y: Any = None) -> ChurnInputs:
        """Learn the gap prior and the BG/NBD parameters from ``X``."""
        self._check(X)
        x, t_x, t = self._btyd_summary(X)
        repeaters = x > 0
        gaps = t_x[repeaters] / x[repeaters]
        self.gap_prior_ = float(np.median(gaps)) if gaps.size else float(self.horizon_days)
        self.gap_prior_ = max(self.gap_prior_, 1.0)
        self.bgnbd_: BGNBDParams = fit_bgnbd(x, t_x, t)
        # Rows built with a horizon carry their own snapshot's BG/NBD expectation; the
        # parameters fitted here on the stacked rows are the fallback for frames without.
        self.snapshot_btyd_ = BTYD_COLUMN in X
        optional = [c for c in OPTIONAL_INPUTS if c in X] if self.use_optional else []
        self.columns_ = list(CORE_INPUTS) + optional
        return self

    def _expected(
        self, X: pd.DataFrame, x: np.ndarray, t_x: np.ndarray, t: np.ndarray
    ) -> np.ndarray:
        """Expected orders in the horizon: the snapshot's own fit when ``X`` has it."""
        if getattr(self, "snapshot_btyd_", False) and BTYD_COLUMN in X:
            values = np.nan_to_num(X[BTYD_COLUMN].to_numpy(dtype=float), posinf=MAX_EXPECTED)
            return np.clip(values, 0.0, MAX_EXPECTED)
        return expected_orders(self.bgnbd_, x, t_x, t, self.horizon_days)

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """The inputs of each row of ``X``, same index; columns ``columns_``."""
        self._check(X)
        x, t_x, t = self._btyd_summary(X)
        recency = np.floor(X["days_since_last_purchase"].to_numpy(dtype=float))
        # Rhythm shrunk toward the shop's typical gap: one order says little.
        gap = (t_x + self.gap_prior_) / (x + 1)
        orders_90 = X["orders_90d"].to_numpy(dtype=float)
        orders_365 = X["orders_365d"].to_numpy(dtype=float)
        out = pd.DataFrame(
            {
                "days_since_last_purchase": recency,
                "days_since_first_purchase": np.floor(t),
                "orders_total": X["orders_total"].to_numpy(dtype=float),
                "orders_90d": orders_90,
                "orders_365d": orders_365,
                "spend_365d": X["spend_365d_cents"].to_numpy(dtype=float) / 100.0,
                "usual_gap_days": np.floor(gap),
                "recency_vs_rhythm": np.round(recency / np.maximum(gap, 1.0), 2),
                "recent_share": np.round(
                    np.divide(orders_90, orders_365, out=np.zeros_like(orders_90),
                              where=orders_365 > 0), 3
                ),
                "expected_orders": np.round(self._expected(X, x, t_x, t), 3),
            },
            index=X.index,
        )
        for column in self.columns_[len(CORE_INPUTS):]:
            values = X[column].to_numpy(dtype=float) if column in X else np.full(len(X), np.nan)
            if INPUTS[column].kind == "days":
                # Never visited: as if the last visit was long ago.
                values = np.floor(np.nan_to_num(values, nan=9999.0))
            out[column] = np.nan_to_num(values, nan=0.0)
        return out[self.columns_]


# Ties within a leaf are ordered by a logistic regression on the tree's own inputs;
# a column name instead orders them by that input (fewer, riskier: expected orders).
LOGISTIC_TIE_BREAK = "logistic"
TIE_BREAK_INPUT = "expected_orders"
# Inverse L2 strength of that regression (chosen on the tuning splits, bench/real_eval.py).
TIE_MODEL_C = 0.1
# Largest change the within-leaf refinement makes to a leaf's churn rate.
MAX_TIE_OFFSET = 0.01
# Share of the gap to a neighbouring leaf's rate the refinement may use (below one
# half, so two leaves' customers never meet).
TIE_GAP_SHARE = 0.49
# Leaf rates closer than this are the same risk (float noise of equal ratios).
SAME_RATE = 1e-9


def _signed_log(X: pd.DataFrame) -> np.ndarray:
    """sign(v) * log(1 + |v|) of every input: counts, days and money on one scale."""
    values = X.to_numpy(dtype=float)
    return np.sign(values) * np.log1p(np.abs(values))


class ChurnTree(ClassifierMixin, BaseEstimator):  # type: ignore[misc]
    """A decision tree grown with balanced class weights, reporting real leaf rates.

    Balanced weights make the split search care about the minority class; the
    probabilities are then mapped back (prior-odds correction) so each leaf reports
    the churn rate actually seen in its training rows.

    A tree of a few dozen leaves gives only that many distinct risks: every customer of
    a leaf ties with every other, and a smooth ranking such as BG/NBD's beats it on
    ROC AUC. So ties within a leaf are ordered by a tie score ``s`` (higher, riskier):
    with ``tie_break="logistic"`` the log-odds of a logistic regression on the same
    inputs (log-scaled, standardised, fitted on the same rows); with a column name,
    minus ``log1p`` of that input (``"expected_orders"``: fewer expected orders,
    riskier). The offset is centred on the leaf's training median ``m`` of ``s``:
    ``risk = rate + w * tanh(s - m)``, where ``w`` is the smallest of
    :data:`MAX_TIE_OFFSET`, :data:`TIE_GAP_SHARE` x the gap to the next distinct leaf
    rate on that side (above for customers riskier than the median, below for safer
    ones), the rate itself and 1 - rate. So:

    * the order of the leaves is unchanged (a riskier leaf's customers all rank above
      a safer leaf's; rates within :data:`SAME_RATE` are one risk), and the reason,
      the leaf's path, stays the explanation;
    * ``risk`` stays a probability in [0, 1], within 0.01 of the leaf's churn rate,
      and half of a leaf's training rows lie on each side of its rate; the spread is
      wide enough to survive rounding to 4 decimals (the scores CSV).

    ``tie_break=None`` (or an input frame without that column) gives the plain leaf
    rates. Trees pickled with the former fixed width (``tie_width_``) keep it.
    """

    def __init__(
        self,
        max_depth: int = 4,
        min_samples_leaf: int = 50,
        random_state: int = 0,
        tie_break: str | None = LOGISTIC_TIE_BREAK,
    ) -> None:
        self.max_depth = max_depth
        self.min_samples_leaf = min_samples_leaf
        self.random_state = random_state
        self.tie_break = tie_break

    def fit(self, X: pd.DataFrame, y: Any) -> ChurnTree:
        """Grow the tree on inputs ``X`` and labels ``y`` (1 = churned)."""
        y = np.asarray(y, dtype=int)
        positives = int(y.sum())
        if positives == 0 or positives == len(y):
            raise ModelError("cannot train: every customer has the same churn label")
        self.tree_ = DecisionTreeClassifier(
            max_depth=self.max_depth,
            min_samples_leaf=self.min_samples_leaf,
            class_weight="balanced",
            random_state=self.random_state,
        ).fit(X, y)
        self.classes_ = self.tree_.classes_
        self.positives_ = positives
        self.negatives_ = len(y) - positives
        # Distinct leaf rates, ascending; rates within float noise (3/10 vs 6/20) are one.
        rates = np.sort(self.leaf_rates())
        keep = np.concatenate([[True], np.diff(rates) > SAME_RATE]) if rates.size else rates
        self.rate_levels_ = rates[keep.astype(bool)]
        self.tie_model_: Pipeline | None = None
        if self.tie_break == LOGISTIC_TIE_BREAK:
            self.tie_model_ = make_pipeline(
                StandardScaler(), LogisticRegression(C=TIE_MODEL_C, max_iter=1000)
            ).fit(_signed_log(X), y)
        self.tie_centre_ = np.zeros(self.tree_.tree_.node_count)
        score = self.tie_score(X)
        if score is not None:
            medians = pd.Series(score).groupby(self.tree_.apply(X)).median()
            self.tie_centre_[medians.index.to_numpy()] = medians.to_numpy()
        return self

    def tie_score(self, X: pd.DataFrame) -> np.ndarray | None:
        """The score that orders customers within a leaf (higher, riskier); None: none."""
        column = getattr(self, "tie_break", None)
        model = getattr(self, "tie_model_", None)
        if column == LOGISTIC_TIE_BREAK and model is not None:
            return np.asarray(model.decision_function(_signed_log(X)), dtype=float)
        if column and column != LOGISTIC_TIE_BREAK and isinstance(X, pd.DataFrame) and column in X:
            return -np.log1p(np.maximum(X[column].to_numpy(dtype=float), 0.0))
        return None

    def _rate(self, p: np.ndarray) -> np.ndarray:
        """Balanced-weight leaf probability → the leaf's real training churn rate."""
        return np.asarray(
            p * self.positives_ / (p * self.positives_ + (1 - p) * self.negatives_)
        )

    def leaf_rates(self) -> np.ndarray:
        """The training churn rate of every leaf (in the order of the leaf node ids)."""
        structure = self.tree_.tree_
        values = structure.value[structure.children_left < 0][:, 0, :]
        p = values[:, 1] / values.sum(axis=1)
        return self._rate(p)

    def leaf_risk(self, X: pd.DataFrame) -> np.ndarray:
        """Each row's leaf churn rate, without the within-leaf refinement."""
        return self._rate(self.tree_.predict_proba(X)[:, 1])

    def _room(self, raw: np.ndarray, riskier: np.ndarray) -> np.ndarray:
        """How far each row's risk may move from its leaf's rate, up or down."""
        levels = self.rate_levels_
        at = np.clip(np.searchsorted(levels, raw - SAME_RATE), 0, len(levels) - 1)
        above = np.where(at + 1 < len(levels), levels[np.minimum(at + 1, len(levels) - 1)] - raw,
                         1.0 - raw)
        below = np.where(at > 0, raw - levels[np.maximum(at - 1, 0)], raw)
        gap = np.where(riskier, above, below)
        room = np.minimum(TIE_GAP_SHARE * gap, MAX_TIE_OFFSET)
        return np.maximum(np.minimum(room, np.minimum(raw, 1.0 - raw)), 0.0)

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Columns: P(stays), P(churns): the leaf's churn rate, ties broken within it."""
        raw = self.leaf_risk(X)
        if hasattr(self, "rate_levels_"):
            score = self.tie_score(X)
            if score is not None:
                order = np.tanh(score - self.tie_centre_[self.tree_.apply(X)])
                raw = raw + self._room(raw, order > 0) * order
        elif float(getattr(self, "tie_width_", 0.0)) > 0:  # pickled before the bands
            column = getattr(self, "tie_break", None)
            if column and isinstance(X, pd.DataFrame) and column in X:
                width = float(self.tie_width_)
                expected = np.maximum(X[column].to_numpy(dtype=float), 0.0)
                order = (1.0 - expected) / (1.0 + expected)
                raw = raw + np.minimum(width, np.minimum(raw, 1.0 - raw)) * order
        return np.column_stack([1 - raw, raw])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """1 where the churn probability is at least one half."""
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)


def build_pipeline(
    horizon_days: int, max_depth: int, min_samples_leaf: int, random_state: int
) -> Pipeline:
    """An unfitted churn pipeline (``inputs`` → ``tree``)."""
    return Pipeline(
        [
            ("inputs", ChurnInputs(horizon_days=horizon_days)),
            ("tree", ChurnTree(max_depth, min_samples_leaf, random_state)),
        ]
    )


@dataclass
class FitResult:
    """A fitted pipeline, the chosen parameters and the validation table.

    ``validation`` has one row per candidate: ``max_depth``, ``min_samples_leaf``,
    ``roc_auc`` (on the newest snapshot, trained on the older ones; empty when only
    one snapshot was given).
    """

    pipeline: Pipeline
    params: dict[str, Any]
    validation: pd.DataFrame = field(default_factory=pd.DataFrame)


def auc_standard_error(auc: float, labels: pd.Series) -> float:
    """Hanley and McNeil's (1982) standard error of a ROC AUC on ``labels`` (0/1)."""
    positives = int(labels.sum())
    negatives = len(labels) - positives
    if positives == 0 or negatives == 0:
        return 0.0
    q1 = auc / (2 - auc)
    q2 = 2 * auc * auc / (1 + auc)
    variance = (
        auc * (1 - auc)
        + (positives - 1) * (q1 - auc * auc)
        + (negatives - 1) * (q2 - auc * auc)
    ) / (positives * negatives)
    return float(max(variance, 0.0) ** 0.5)


def fit_churn_model(
    snapshots: Sequence[tuple[pd.DataFrame, pd.Series]],
    *,
    horizon_days: int,
    depth_candidates: Sequence[int],
    leaf_candidates: Sequence[int],
    random_state: int = 0,
) -> FitResult:
    """Choose depth and leaf size by time-aware validation, then fit on every snapshot.

    Args:
        snapshots: ``(summary, labels)`` pairs, **newest first**; labels are aligned
            to the summary's index. With two or more, every candidate is trained on the
            older snapshots and scored (ROC AUC of the final risk, within-leaf
            refinement included) on the newest, never by random CV; the simplest
            candidate within one standard error of the best AUC is kept (Breiman's
            rule). With one, the middle candidates are used.

    Raises:
        ModelError: no snapshots, or one label class only.
    """
    if not snapshots:
        raise ModelError("cannot train: no labelled snapshot")
    rows: list[dict[str, Any]] = []
    depth, leaf = sorted(depth_candidates)[len(depth_candidates) // 2], sorted(
        leaf_candidates
    )[len(leaf_candidates) // 2]
    if len(snapshots) >= 2:
        older_x = pd.concat([s for s, _ in snapshots[1:]], ignore_index=True)
        older_y = pd.concat([y for _, y in snapshots[1:]], ignore_index=True)
        newest_x, newest_y = snapshots[0]
        if older_y.nunique() == 2 and newest_y.nunique() == 2:
            inputs = ChurnInputs(horizon_days=horizon_days).fit(older_x)
            train_inputs, valid_inputs = inputs.transform(older_x), inputs.transform(newest_x)
            for d in sorted(depth_candidates):
                for m in sorted(leaf_candidates, reverse=True):
                    tree = ChurnTree(d, m, random_state).fit(train_inputs, older_y)
                    auc = roc_auc_score(newest_y, tree.predict_proba(valid_inputs)[:, 1])
                    rows.append({"max_depth": d, "min_samples_leaf": m, "roc_auc": auc})
            # Breiman's one-standard-error rule: the simplest tree (rows run from the
            # simplest) whose validation AUC is within one standard error of the
            # best. One newest snapshot is a noisy judge, most of all where churners
            # are few; a deeper tree that wins by less than its noise overfits it.
            best_auc = max(r["roc_auc"] for r in rows)
            margin = auc_standard_error(best_auc, newest_y)
            chosen = next(r for r in rows if r["roc_auc"] >= best_auc - margin)
            depth, leaf = int(chosen["max_depth"]), int(chosen["min_samples_leaf"])
    all_x = pd.concat([s for s, _ in snapshots], ignore_index=True)
    all_y = pd.concat([y for _, y in snapshots], ignore_index=True)
    pipeline = build_pipeline(horizon_days, depth, leaf, random_state).fit(all_x, all_y)
    params = {
        "max_depth": depth,
        "min_samples_leaf": leaf,
        "horizon_days": horizon_days,
        "random_state": random_state,
        "inputs": list(pipeline.named_steps["inputs"].columns_),
        "training_rows": len(all_x),
        "snapshots": len(snapshots),
    }
    return FitResult(pipeline=pipeline, params=params, validation=pd.DataFrame(rows))


def snapshot_horizon(pipeline: object) -> int | None:
    """The horizon whose snapshot expectation a frame scored by ``pipeline`` needs.

    None for models that do not read it (trained before it existed): their frames
    need no BG/NBD fit.
    """
    steps = getattr(pipeline, "named_steps", {})
    inputs = steps.get("inputs") if isinstance(steps, dict) else None
    if inputs is None or not getattr(inputs, "snapshot_btyd_", False):
        return None
    return int(inputs.horizon_days)


def predict_risk(pipeline: Pipeline, summary: pd.DataFrame) -> pd.Series:
    """Churn probability (0..1) per row of ``summary``; Series ``risk``, same index."""
    if summary.empty:
        return pd.Series([], dtype=float, name="risk", index=summary.index)
    risk = pipeline.predict_proba(summary)[:, 1]
    return pd.Series(np.clip(risk, 0.0, 1.0), index=summary.index, name="risk")


def assign_tiers(risk: pd.Series, thresholds: dict[str, float]) -> pd.Series:
    """The highest tier whose threshold ``risk`` reaches (``""`` when none does)."""
    tiers = pd.Series("", index=risk.index, name="tier", dtype=object)
    for name, threshold in sorted(thresholds.items(), key=lambda kv: kv[1]):
        tiers[risk >= threshold] = name
    return tiers
