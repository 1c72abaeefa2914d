"""Pure: the uplift estimators, their segments and the reasons a marketer reads.

**The transformed outcome.** With treatment ``W`` (1 treated, 0 held out), outcome
``Y`` and each row's own probability of treatment ``p``,

    Z = Y (W - p) / (p (1 - p))

has ``E[Z | x] = E[Y | x, W=1] - E[Y | x, W=0]``: the uplift (Athey and Imbens 2015).
A regression tree fitted on ``Z`` therefore splits where the *effect* differs.
:class:`UpliftTree` grows its splits that way (a least-squares tree on binned features,
campaign.uplift.histtree: the exact tree's sorts took most of a million-row training),
then estimates each leaf's uplift with the inverse-probability weighted difference of
its treated and control means (weights ``1/p`` and ``1/(1-p)``, normalised per group:
less noisy than the leaf's mean ``Z``, and equal to the plain difference of means when
``p`` is constant).

**The challenger** (:class:`TwoModelBoosting`) fits one gradient-boosted regressor per
group on the same weights and predicts the difference. It is stronger where the
effect is smooth, and cannot be read; training keeps whichever has the higher Qini
on rows neither saw.

Both predict ``uplift`` and ``control`` (the outcome without the message) in
outcome units, for :func:`segments`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.ensemble import HistGradientBoostingRegressor

from campaign.uplift.attributes import AttributeEncoder
from campaign.uplift.histtree import HistogramTree

PERSUADABLE, SLEEPING_DOG, SURE_THING, LOST_CAUSE = (
    "persuadable", "sleeping dog", "sure thing", "lost cause")
SEGMENTS = (PERSUADABLE, SURE_THING, LOST_CAUSE, SLEEPING_DOG)


def transformed_outcome(y: np.ndarray, treatment: np.ndarray, p: np.ndarray) -> np.ndarray:
    """``Z = Y (W - p) / (p (1 - p))`` per row: an unbiased draw of the row's uplift."""
    y, w, p = (np.asarray(a, dtype=float) for a in (y, treatment, p))
    if np.any((p <= 0) | (p >= 1)):
        raise ValueError("every probability of treatment must be strictly between 0 and 1")
    return y * (w - p) / (p * (1.0 - p))


def balancing_weights(treatment: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Inverse-probability weights: ``1/p`` for treated rows, ``1/(1-p)`` for controls."""
    w, p = np.asarray(treatment, dtype=bool), np.asarray(p, dtype=float)
    return np.where(w, 1.0 / p, 1.0 / (1.0 - p))


def weighted_difference(
    y: np.ndarray, treatment: np.ndarray, weights: np.ndarray
) -> tuple[float, float]:
    """(uplift, control mean): weighted treated mean minus weighted control mean, and
    the weighted control mean. NaN where a group is empty."""
    w = np.asarray(treatment, dtype=bool)
    y = np.asarray(y, dtype=float)
    t_weight, c_weight = weights[w].sum(), weights[~w].sum()
    treated = float((y[w] * weights[w]).sum() / t_weight) if t_weight > 0 else np.nan
    control = float((y[~w] * weights[~w]).sum() / c_weight) if c_weight > 0 else np.nan
    return treated - control, control


class UpliftTree(BaseEstimator):  # type: ignore[misc]
    """A readable uplift tree: splits on the transformed outcome, IPW leaf estimates.

    Fitted state: ``tree_`` (the regression tree on ``Z``: its ``tree_`` holds the
    nodes and ``apply`` the leaf of each row), ``leaf_uplift_``,
    ``leaf_control_``, ``leaf_treated_`` and ``leaf_held_out_`` (row counts), keyed by
    the tree's node id; ``features_`` (column order).
    """

    def __init__(self, max_depth: int = 3, min_samples_leaf: int = 100,
                 random_state: int = 0, min_responders: int = 0) -> None:
        self.max_depth = max_depth
        self.min_samples_leaf = min_samples_leaf
        self.random_state = random_state
        self.min_responders = min_responders

    def leaf_size(self, y: np.ndarray, treatment: np.ndarray) -> int:
        """The fewest rows per leaf: ``min_samples_leaf``, raised so that a leaf of the
        smaller group's share expects ``min_responders`` rows with an outcome in it.

        A rare outcome (1 % conversion) in leaves of 100 rows leaves about one
        held-out buyer per leaf: the split on the transformed outcome then follows
        single customers, not a difference in effect.
        """
        w = np.asarray(treatment, dtype=bool)
        responding = float(np.mean(np.asarray(y, dtype=float) > 0)) if len(w) else 0.0
        smaller = min(float(w.mean()), 1.0 - float(w.mean())) if len(w) else 0.0
        if self.min_responders <= 0 or responding <= 0 or smaller <= 0:
            return self.min_samples_leaf
        needed = math.ceil(self.min_responders / (responding * smaller))
        return max(self.min_samples_leaf, min(needed, max(1, len(w) // 2)))

    def fit(self, X: pd.DataFrame, y: np.ndarray, treatment: np.ndarray,
            p: np.ndarray) -> UpliftTree:
        """Grow the tree on ``Z`` and estimate every leaf; returns self."""
        self.features_ = list(X.columns)
        z = transformed_outcome(y, treatment, p)
        self.tree_ = HistogramTree(
            max_depth=self.max_depth, min_samples_leaf=self.leaf_size(y, treatment),
            random_state=self.random_state,
        ).fit(X.to_numpy(dtype=float), z)
        leaves = self.tree_.apply(X.to_numpy(dtype=float))
        weights = balancing_weights(treatment, p)
        w = np.asarray(treatment, dtype=bool)
        y = np.asarray(y, dtype=float)
        overall = weighted_difference(y, w, weights)
        self.leaf_uplift_: dict[int, float] = {}
        self.leaf_control_: dict[int, float] = {}
        self.leaf_treated_: dict[int, int] = {}
        self.leaf_held_out_: dict[int, int] = {}
        for leaf in np.unique(leaves):
            mask = leaves == leaf
            uplift, control = weighted_difference(y[mask], w[mask], weights[mask])
            # A leaf without one of the groups falls back to the whole population's.
            self.leaf_uplift_[int(leaf)] = uplift if np.isfinite(uplift) else overall[0]
            self.leaf_control_[int(leaf)] = control if np.isfinite(control) else overall[1]
            self.leaf_treated_[int(leaf)] = int(w[mask].sum())
            self.leaf_held_out_[int(leaf)] = int((~w[mask]).sum())
        return self

    def leaves(self, X: pd.DataFrame) -> np.ndarray:
        """The leaf (node id) of every row."""
        return np.asarray(self.tree_.apply(X[self.features_].to_numpy(dtype=float)))

    def predict_uplift(self, X: pd.DataFrame) -> np.ndarray:
        """Predicted uplift per row (outcome units)."""
        return np.array([self.leaf_uplift_[int(n)] for n in self.leaves(X)])

    def predict_control(self, X: pd.DataFrame) -> np.ndarray:
        """Predicted outcome without the message per row."""
        return np.array([self.leaf_control_[int(n)] for n in self.leaves(X)])


class TwoModelBoosting(BaseEstimator):  # type: ignore[misc]
    """Two gradient-boosted regressors, one per group, weighted like the tree; predicts
    their difference. Fitted state: ``treated_``, ``control_``, ``features_``."""

    def __init__(self, max_iter: int = 100, learning_rate: float = 0.1,
                 max_leaf_nodes: int = 15, min_samples_leaf: int = 50,
                 random_state: int = 0) -> None:
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.random_state = random_state

    def _regressor(self) -> HistGradientBoostingRegressor:
        return HistGradientBoostingRegressor(
            max_iter=self.max_iter, learning_rate=self.learning_rate,
            max_leaf_nodes=self.max_leaf_nodes, min_samples_leaf=self.min_samples_leaf,
            early_stopping="auto", random_state=self.random_state,
        )

    def fit(self, X: pd.DataFrame, y: np.ndarray, treatment: np.ndarray,
            p: np.ndarray) -> TwoModelBoosting:
        """Fit the treated and the control model; returns self."""
        self.features_ = list(X.columns)
        w = np.asarray(treatment, dtype=bool)
        values, y = X.to_numpy(dtype=float), np.asarray(y, dtype=float)
        weights = balancing_weights(w, p)
        self.treated_ = self._regressor().fit(values[w], y[w], sample_weight=weights[w])
        self.control_ = self._regressor().fit(values[~w], y[~w], sample_weight=weights[~w])
        return self

    def predict_control(self, X: pd.DataFrame) -> np.ndarray:
        """Predicted outcome without the message per row."""
        return np.asarray(self.control_.predict(X[self.features_].to_numpy(dtype=float)))

    def predict_uplift(self, X: pd.DataFrame) -> np.ndarray:
        """Predicted uplift per row (outcome units)."""
        values = X[self.features_].to_numpy(dtype=float)
        return np.asarray(self.treated_.predict(values)) - self.predict_control(X)


@dataclass
class UpliftModel:
    """What a stored uplift version holds: the chosen estimator, the readable tree
    (the reasons come from its path), and what they predict."""

    campaign: str
    outcome: str
    chosen: str  # "tree" or "boosting"
    estimator: UpliftTree | TwoModelBoosting
    tree: UpliftTree
    currency: str
    # The user attributes among the inputs (None: the profile features only).
    encoder: AttributeEncoder | None = None

    def fit(self, *args: object, **kwargs: object) -> UpliftModel:
        """Already fitted (a pipeline step must have ``fit``)."""
        return self

    def predict(self, X: pd.DataFrame) -> pd.DataFrame:
        """Per row: ``uplift``, ``control`` (outcome units) and ``leaf`` (the tree's)."""
        return pd.DataFrame({
            "uplift": self.estimator.predict_uplift(X),
            "control": self.estimator.predict_control(X),
            "leaf": self.tree.leaves(X),
        }, index=X.index)


def segments(uplift: np.ndarray, control: np.ndarray, *, delta: float,
             base_rate: float) -> np.ndarray:
    """The four classic segments: sleeping dog below ``-delta``, persuadable above
    ``+delta``, else sure thing when ``control >= base_rate``, else lost cause."""
    uplift, control = np.asarray(uplift, dtype=float), np.asarray(control, dtype=float)
    return np.where(
        uplift > delta, PERSUADABLE,
        np.where(uplift < -delta, SLEEPING_DOG,
                 np.where(control >= base_rate, SURE_THING, LOST_CAUSE)),
    ).astype(object)
