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
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import sparse

from campaign.uplift.model import balancing_weights

TOP_SHARES = (0.1, 0.3, 0.5)
# Resamples drawn per chunk: (chunk × rows) counts held at once.
RESAMPLE_CHUNK = 25
# Points of a resampled Qini curve at most (QiniPoints).
MAX_POINTS = 1_000


class _Ranked:
    """Rows sorted once by a score (best first, ties kept together)."""

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

    def cumulative(self) -> tuple[np.ndarray, ...]:
        """(rows, N_t, N_c, Y_t, Y_c) at each tie group's end."""
        sums = (self.treated_weight, self.control_weight,
                self.treated_outcome, self.control_outcome)
        n_t, n_c, y_t, y_c = (np.cumsum(a)[self.ends] for a in sums)
        return self.ends + 1.0, n_t, n_c, y_t, y_c


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
    perfect_x, perfect_q = qini_curve(y, treatment, perfect_ranking(y_arr, w), p)
    random = x[-1] * q[-1] / 2.0
    best = _area(perfect_x, perfect_q) - random
    return (_area(x, q) - random) / best if best else math.nan


def bootstrap_counts(rng: np.random.Generator, n: int, draws: int) -> Iterator[np.ndarray]:
    """Bootstrap resamples of ``n`` rows in chunks: an (n × draws in chunk) matrix of how
    often each row was drawn (each draw ``rng.integers(0, n, n)``, one column), memory
    bounded however many rows."""
    done = 0
    while done < draws:
        size = min(RESAMPLE_CHUNK, draws - done)
        counts = np.empty((size, n))
        for i in range(size):
            counts[i] = np.bincount(rng.integers(0, n, n), minlength=n)
        done += size
        yield np.ascontiguousarray(counts.T)


def resampled_sums(matrices: Sequence[np.ndarray | sparse.spmatrix], n: int,
                   rng: np.random.Generator, draws: int) -> list[np.ndarray]:
    """The column sums of every (n × k) matrix on ``draws`` bootstrap resamples of its
    rows, the same resamples for all: one (draws × k) array per matrix.

    Every statistic the training reports with an interval is a function of weighted
    sums over groups of rows; written as columns of a matrix, a chunk of resamples costs
    one matrix product per statistic, and the resamples are drawn once for all of them.
    """
    # The transpose of a row-compressed matrix is column-compressed without a copy, and
    # its product with the (n × draws) counts walks the rows in order, adding into a
    # small (k × draws) result that stays in cache.
    transposed = [sparse.csr_matrix(m).T for m in matrices]
    found: list[list[np.ndarray]] = [[] for _ in matrices]
    for counts in bootstrap_counts(rng, n, draws):
        for out, matrix in zip(found, transposed, strict=True):
            out.append(np.asarray(matrix @ counts).T)
    return [np.vstack(out) for out in found]


class QiniPoints:
    """A ranking's Qini curve on resamples: the weighted sums of the rows between its
    points as the columns of one sparse matrix (five per point).

    The points are the ends of the score's tie groups (as in :func:`qini_curve`); a
    score with more than ``MAX_POINTS`` groups (a boosted model's) keeps the group ends
    nearest ``MAX_POINTS`` evenly spaced ranks, and the curve is straight between them:
    the area then differs from the exact one by the wiggles of the curve within a
    block of rows, the same treatment for every ranking compared.
    """

    def __init__(self, y: np.ndarray, treatment: np.ndarray, score: np.ndarray,
                 weights: np.ndarray) -> None:
        ranked = _Ranked(y, treatment, score, weights)
        n = len(ranked.order)
        ends = ranked.ends
        if len(ends) > MAX_POINTS:
            wanted = np.linspace(0, n - 1, MAX_POINTS)
            nearest = np.minimum(np.searchsorted(ends, wanted), len(ends) - 1)
            ends = np.unique(np.r_[ends[nearest], n - 1])
        self.points = len(ends)
        block = np.searchsorted(ends, np.arange(n), side="left")  # per sorted row
        values = np.column_stack([ranked.treated_weight, ranked.control_weight,
                                  ranked.treated_outcome, ranked.control_outcome,
                                  np.ones(n)])
        columns = np.arange(5)[None, :] * self.points + block[:, None]
        self.matrix = sparse.csr_matrix(
            (values.ravel(), (np.repeat(ranked.order, 5), columns.ravel())),
            shape=(n, 5 * self.points))

    def area(self, sums: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Per resample (rows of ``sums``, from :func:`resampled_sums`): the area under
        the Qini curve, and the curve's end (all rows, their Qini value)."""
        n_t, n_c, y_t, y_c, rows = np.cumsum(
            sums.reshape(len(sums), 5, self.points), axis=2).transpose(1, 0, 2)
        ratio = np.divide(n_t, n_c, out=np.zeros_like(n_t), where=n_c > 0)
        x = np.pad(rows, ((0, 0), (1, 0)))
        q = np.pad(y_t - y_c * ratio, ((0, 0), (1, 0)))
        areas = np.sum((x[:, 1:] - x[:, :-1]) * (q[:, 1:] + q[:, :-1]) / 2.0, axis=1)
        return areas, x[:, -1], q[:, -1]


def qini_on_resamples(perfect: QiniPoints, ranked: Mapping[str, QiniPoints],
                      sums: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
    """Each ranking's Qini coefficient per resample, from the sums of ``perfect``'s
    matrix (``sums[0]``) and then of every ranking's, in order."""
    best_area, x_end, q_end = perfect.area(sums[0])
    random = x_end * q_end / 2.0
    best = best_area - random
    found = {}
    for (name, points), found_sums in zip(ranked.items(), sums[1:], strict=True):
        area = points.area(found_sums)[0]
        with np.errstate(invalid="ignore", divide="ignore"):
            found[name] = np.where(best != 0, (area - random) / best, math.nan)
    return found


def perfect_ranking(y: np.ndarray, treatment: np.ndarray) -> np.ndarray:
    """The score of the perfect ranking: treated responders first, held-out last."""
    y_arr = np.asarray(y, dtype=float)
    return np.where(np.asarray(treatment, dtype=bool), y_arr, -y_arr)


def bootstrap_qini(y: np.ndarray, treatment: np.ndarray, p: np.ndarray,
                   scores: Mapping[str, np.ndarray], rng: np.random.Generator,
                   draws: int) -> dict[str, np.ndarray]:
    """Each ranking's Qini coefficient on ``draws`` resamples of the rows (drawn with
    replacement, the same resamples for every ranking).

    Equal to :func:`qini_coefficient` on each resample's rows (for scores of at most
    ``MAX_POINTS`` distinct values; see :class:`QiniPoints` beyond), but every ranking
    is sorted once: a resample only re-weights the sorted rows by how often each was
    drawn.
    """
    y_arr, w = np.asarray(y, dtype=float), np.asarray(treatment, dtype=bool)
    weights = balancing_weights(w, p)
    perfect = QiniPoints(y_arr, w, perfect_ranking(y_arr, w), weights)
    ranked = {name: QiniPoints(y_arr, w, score, weights) for name, score in scores.items()}
    sums = resampled_sums([perfect.matrix, *(r.matrix for r in ranked.values())],
                          len(y_arr), rng, draws)
    return qini_on_resamples(perfect, ranked, sums)


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
