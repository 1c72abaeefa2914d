"""Pure: how well a ranking finds the customers a message changes.

Customers are sorted by a score (predicted uplift, or risk), best first. With each
row's balancing weight (``1/p`` treated, ``1/(1-p)`` held out: rows of a 10 % holdout
and of a 50/50 test count alike), among the first ``k`` rows:

* the **Qini curve** is ``Y_t(k) - Y_c(k) N_t(k) / N_c(k)``: the treated outcome in
  excess of what the same number of treated would have had at the control rate
  (weighted sums; with one probability for all rows this is scikit-uplift's
  ``qini_curve`` times a constant);
* the **Qini coefficient** is the area between that curve and the random line from
  (0, 0) to (n, Qini(n)), divided by the same area of the perfect ranking (treated
  responders first, held-out responders last): scikit-uplift's ``qini_auc_score``
  with ``negative_effect=True``. 0 is random, 1 perfect;
* the **uplift curve** is ``(Y_t/N_t - Y_c/N_c)(k)``·k; **AUUC** is its area divided
  by n²: the average, over cut-offs, of the incremental outcome per customer of the
  whole base (outcome units; random gets half the overall uplift);
* **uplift at k** (``strategy="overall"``) is the weighted treated mean minus the
  weighted control mean among the first ``ceil(k n)`` rows.

Ties in the score are kept together (the curve has a point only where it changes).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd

from campaign.uplift.model import balancing_weights

TOP_SHARES = (0.1, 0.3, 0.5)


class _Ranked:
    """Rows sorted once by a score (best first, ties kept together): the cumulative
    sums of any multiplicity of the rows (a bootstrap resample) without sorting again."""

    def __init__(self, y: np.ndarray, treatment: np.ndarray, score: np.ndarray,
                 weights: np.ndarray) -> None:
        order = np.argsort(-np.asarray(score, dtype=float), kind="mergesort")
        s = np.asarray(score, dtype=float)[order]
        w = np.asarray(treatment)[order].astype(bool)
        wt = np.asarray(weights, dtype=float)[order]
        y_sorted = np.asarray(y, dtype=float)[order]
        self.order = order
        self.ends = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
        self.treated_weight = np.where(w, wt, 0.0)
        self.control_weight = np.where(w, 0.0, wt)
        self.treated_outcome = self.treated_weight * y_sorted
        self.control_outcome = self.control_weight * y_sorted

    def cumulative(self, counts: np.ndarray | None = None) -> tuple[np.ndarray, ...]:
        """(rows, N_t, N_c, Y_t, Y_c) at each tie group's end; ``counts``: how many
        times each row (original order) is drawn, None for once each."""
        ends = self.ends
        if counts is None:
            sums = (self.treated_weight, self.control_weight,
                    self.treated_outcome, self.control_outcome)
            rows = ends + 1.0
        else:
            c = np.asarray(counts, dtype=float)[self.order]
            sums = (self.treated_weight * c, self.control_weight * c,
                    self.treated_outcome * c, self.control_outcome * c)
            rows = np.cumsum(c)[ends]
        n_t, n_c, y_t, y_c = (np.cumsum(a)[ends] for a in sums)
        return rows, n_t, n_c, y_t, y_c


def _cumulative(y: np.ndarray, treatment: np.ndarray, score: np.ndarray,
                weights: np.ndarray) -> tuple[np.ndarray, ...]:
    return _Ranked(y, treatment, score, weights).cumulative()


def _qini_points(cumulative: tuple[np.ndarray, ...]) -> tuple[np.ndarray, np.ndarray]:
    count, n_t, n_c, y_t, y_c = cumulative
    ratio = np.divide(n_t, n_c, out=np.zeros_like(n_t), where=n_c > 0)
    return np.r_[0.0, count], np.r_[0.0, y_t - y_c * ratio]


def qini_curve(y: np.ndarray, treatment: np.ndarray, score: np.ndarray,
               p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows targeted, Qini value) from (0, 0) to all rows (module docstring)."""
    return _qini_points(_cumulative(y, treatment, score, balancing_weights(treatment, p)))


def uplift_curve(y: np.ndarray, treatment: np.ndarray, score: np.ndarray,
                 p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows targeted, uplift among them × rows) from (0, 0) to all rows."""
    count, n_t, n_c, y_t, y_c = _cumulative(y, treatment, score, balancing_weights(treatment, p))
    rate_t = np.divide(y_t, n_t, out=np.zeros_like(y_t), where=n_t > 0)
    rate_c = np.divide(y_c, n_c, out=np.zeros_like(y_c), where=n_c > 0)
    return np.r_[0.0, count], np.r_[0.0, (rate_t - rate_c) * count]


def _area(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.sum((x[1:] - x[:-1]) * (y[1:] + y[:-1]) / 2.0))


def qini_coefficient(y: np.ndarray, treatment: np.ndarray, score: np.ndarray,
                     p: np.ndarray) -> float:
    """The normalised area between the Qini curve and random (module docstring)."""
    x, q = qini_curve(y, treatment, score, p)
    y_arr, w = np.asarray(y, dtype=float), np.asarray(treatment, dtype=bool)
    perfect_x, perfect_q = qini_curve(y, treatment, np.where(w, y_arr, -y_arr), p)
    random = x[-1] * q[-1] / 2.0
    best = _area(perfect_x, perfect_q) - random
    return (_area(x, q) - random) / best if best else math.nan


def bootstrap_qini(y: np.ndarray, treatment: np.ndarray, p: np.ndarray,
                   scores: Mapping[str, np.ndarray], rng: np.random.Generator,
                   draws: int) -> dict[str, np.ndarray]:
    """Each ranking's Qini coefficient on ``draws`` resamples of the rows (drawn with
    replacement, the same resamples for every ranking).

    Equal to :func:`qini_coefficient` on each resample's rows, but every ranking (and
    the perfect one) is sorted once: a resample only re-weights the sorted rows by how
    often each was drawn, so a draw costs a few cumulative sums instead of two sorts.
    """
    y_arr, w = np.asarray(y, dtype=float), np.asarray(treatment, dtype=bool)
    weights = balancing_weights(w, p)
    perfect = _Ranked(y_arr, w, np.where(w, y_arr, -y_arr), weights)
    ranked = {name: _Ranked(y_arr, w, score, weights) for name, score in scores.items()}
    found = {name: np.empty(draws) for name in scores}
    for draw in range(draws):
        counts = np.bincount(rng.integers(0, len(y_arr), len(y_arr)), minlength=len(y_arr))
        best_x, best_q = _qini_points(perfect.cumulative(counts))
        random = best_x[-1] * best_q[-1] / 2.0
        best = _area(best_x, best_q) - random
        for name, rows in ranked.items():
            x, q = _qini_points(rows.cumulative(counts))
            found[name][draw] = (_area(x, q) - random) / best if best else math.nan
    return found


def auuc(y: np.ndarray, treatment: np.ndarray, score: np.ndarray, p: np.ndarray) -> float:
    """Area under the uplift curve divided by n² (outcome units)."""
    x, u = uplift_curve(y, treatment, score, p)
    return _area(x, u) / (x[-1] ** 2) if x[-1] else math.nan


def uplift_at(y: np.ndarray, treatment: np.ndarray, score: np.ndarray, p: np.ndarray,
              share: float) -> float:
    """Weighted uplift among the first ``ceil(share n)`` rows by ``score``."""
    order = np.argsort(-np.asarray(score, dtype=float), kind="mergesort")
    top = order[: math.ceil(share * len(order))]
    y_arr, w, p_arr = (np.asarray(a) for a in (y, treatment, p))
    weights = balancing_weights(w[top], p_arr[top])
    w_top = w[top].astype(bool)
    if not w_top.any() or w_top.all():
        return math.nan
    y_top = y_arr[top].astype(float)
    treated = (y_top[w_top] * weights[w_top]).sum() / weights[w_top].sum()
    control = (y_top[~w_top] * weights[~w_top]).sum() / weights[~w_top].sum()
    return float(treated - control)


def ranking_table(
    y: np.ndarray, treatment: np.ndarray, p: np.ndarray, scores: Mapping[str, np.ndarray]
) -> pd.DataFrame:
    """Rows: ``qini``, ``auuc``, ``uplift_at_10`` … ``uplift_at_50``, ``customers``;
    one column per ranking in ``scores``, then ``random`` (its expected values: Qini 0,
    AUUC half the overall uplift, uplift at k the overall uplift)."""
    overall = uplift_at(y, treatment, np.zeros(len(y)), p, 1.0)
    columns: dict[str, dict[str, float]] = {}
    for name, score in scores.items():
        columns[name] = {
            "qini": qini_coefficient(y, treatment, score, p),
            "auuc": auuc(y, treatment, score, p),
            **{f"uplift_at_{round(s * 100)}": uplift_at(y, treatment, score, p, s)
               for s in TOP_SHARES},
            "customers": float(len(y)),
        }
    columns["random"] = {
        "qini": 0.0, "auuc": overall / 2.0,
        **{f"uplift_at_{round(s * 100)}": overall for s in TOP_SHARES},
        "customers": float(len(y)),
    }
    return pd.DataFrame(columns)
