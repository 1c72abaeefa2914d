"""Pure: what targeting by uplift gains over targeting by risk, on rows no model saw.

Computed at training on the held-back rows (the part of the experiment the compared
models were not fitted on; the stored model is refitted on every row, so figures on
its own training rows would flatter it) and stored with the model version, for the
report and the console (docs/uplift.md, "What targeting by uplift gains"):

* the **Qini curve** of the chosen model, of risk targeting and of random, as
  incremental outcomes per 1,000 customers of the base when the first share of them
  is messaged (inverse-probability weights: rows of a 10 % holdout and of a 50/50
  test count alike);
* **uplift by decile** of predicted uplift: treated and held-out customers, their
  rates, the uplift and its 95 % bootstrap interval;
* the **gain**: messaging the top 10/30/50 % by predicted uplift instead of by risk
  (the same number of messages), in conversions and in money per 1,000 messages, with
  95 % bootstrap intervals (the same resamples for both rankings, so the interval is
  that of the difference).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from campaign.uplift.evaluate import TOP_SHARES, qini_curve, resampled_sums
from campaign.uplift.model import balancing_weights

CURVE_POINTS = 21  # 0 %, 5 %, ... 100 % of the customers targeted
DECILES = 10
DRAWS = 200
LEVEL = 0.95


def qini_points(y: np.ndarray, treatment: np.ndarray, p: np.ndarray,
                rankings: dict[str, np.ndarray]) -> pd.DataFrame:
    """Columns ``share`` (0–1 targeted) and one per ranking plus ``random``:
    incremental outcomes per 1,000 customers of the base."""
    shares = np.linspace(0.0, 1.0, CURVE_POINTS)
    n = len(y)
    out: dict[str, np.ndarray] = {"share": shares}
    end = 0.0
    for name, score in rankings.items():
        x, q = qini_curve(y, treatment, score, p)
        out[name] = np.interp(shares * n, x, q) * 1000.0 / n
        end = float(q[-1]) * 1000.0 / n
    out["random"] = shares * end
    return pd.DataFrame(out)


def _interval(draws: np.ndarray) -> tuple[float, float]:
    finite = draws[np.isfinite(draws)]
    if not len(finite):
        return math.nan, math.nan
    tail = (1.0 - LEVEL) / 2.0 * 100.0
    low, high = np.percentile(finite, [tail, 100.0 - tail])
    return float(low), float(high)


class DecileStatistic:
    """Uplift by decile of predicted uplift: the point table and, from the column sums
    of :attr:`matrix` on resamples (campaign.uplift.evaluate.resampled_sums), each
    decile's bootstrap interval."""

    def __init__(self, y: np.ndarray, treatment: np.ndarray, p: np.ndarray,
                 uplift: np.ndarray) -> None:
        self.w = np.asarray(treatment, dtype=bool)
        self.y = np.asarray(y, dtype=float)
        self.uplift = np.asarray(uplift, dtype=float)
        self.weights = balancing_weights(self.w, p)
        n = len(self.y)
        order = np.argsort(-self.uplift, kind="mergesort")
        self.labels = np.empty(n, dtype=int)
        self.labels[order] = np.minimum(np.arange(n) * DECILES // max(1, n), DECILES - 1)
        t_weight = np.where(self.w, self.weights, 0.0)
        c_weight = np.where(self.w, 0.0, self.weights)
        values = np.column_stack([t_weight, c_weight, t_weight * self.y, c_weight * self.y])
        columns = np.arange(4)[None, :] * DECILES + self.labels[:, None]
        self.matrix = sparse.csr_matrix(
            (values.ravel(), (np.repeat(np.arange(n), 4), columns.ravel())),
            shape=(n, 4 * DECILES))

    def table(self, sums: np.ndarray) -> pd.DataFrame:
        """One row per decile (1 = highest): ``decile, customers, treated, held_out,
        predicted, treated_rate, control_rate, uplift, low, high``."""
        t_weight, c_weight, t_sum, c_sum = sums.reshape(len(sums), 4, DECILES).transpose(1, 0, 2)
        with np.errstate(invalid="ignore", divide="ignore"):
            resampled = np.where((t_weight > 0) & (c_weight > 0),
                                 t_sum / t_weight - c_sum / c_weight, np.nan)
        rows = []
        for decile in range(DECILES):
            mask = self.labels == decile
            if not mask.any():
                continue
            wt, ww, yy = self.weights[mask], self.w[mask], self.y[mask]
            low, high = _interval(resampled[:, decile])
            treated_rate = (float((yy[ww] * wt[ww]).sum() / wt[ww].sum())
                            if ww.any() else math.nan)
            control_rate = (float((yy[~ww] * wt[~ww]).sum() / wt[~ww].sum())
                            if (~ww).any() else math.nan)
            rows.append({
                "decile": decile + 1, "customers": int(mask.sum()), "treated": int(ww.sum()),
                "held_out": int((~ww).sum()), "predicted": float(np.mean(self.uplift[mask])),
                "treated_rate": treated_rate, "control_rate": control_rate,
                "uplift": treated_rate - control_rate, "low": low, "high": high,
            })
        return pd.DataFrame(rows)


def decile_table(y: np.ndarray, treatment: np.ndarray, p: np.ndarray, uplift: np.ndarray,
                 rng: np.random.Generator, draws: int = DRAWS) -> pd.DataFrame:
    """:meth:`DecileStatistic.table` on ``draws`` resamples."""
    statistic = DecileStatistic(y, treatment, p, uplift)
    [sums] = resampled_sums([statistic.matrix], len(statistic.y), rng, draws)
    return statistic.table(sums)


class GainStatistic:
    """Per top share and outcome (``converted``: count, ``revenue``: major currency
    units): the uplift among the customers targeted by uplift and by risk, and the
    bootstrap interval of their difference (the same resamples for both rankings),
    each per 1,000 messages. Every weighted sum is one column of :attr:`matrix`."""

    def __init__(self, outcomes: dict[str, np.ndarray], treatment: np.ndarray,
                 p: np.ndarray, uplift: np.ndarray, risk: np.ndarray) -> None:
        w = np.asarray(treatment, dtype=bool)
        n = len(w)
        weights = balancing_weights(w, p)
        self.names = list(outcomes)
        ys = [np.asarray(outcomes[name], dtype=float) for name in self.names]
        # Columns per (share, ranking): treated weight, control weight, then per outcome
        # the treated and the control weighted outcome, of the targeted rows only.
        orders = [np.argsort(-np.asarray(score, dtype=float), kind="mergesort")
                  for score in (uplift, risk)]
        groups = []
        for share in TOP_SHARES:
            for order in orders:
                targeted = np.zeros(n, dtype=bool)
                targeted[order[: math.ceil(share * n)]] = True
                t_weight, c_weight = weights * (w & targeted), weights * (~w & targeted)
                groups.append(np.column_stack(
                    [t_weight, c_weight, *(c for y in ys for c in (t_weight * y, c_weight * y))]))
        # n × (shares · 2 rankings · (2 + 2 · outcomes)), mostly zeros (each row is in
        # one group and targeted at few shares): sparse, which also keeps the product
        # off a dense BLAS call whose threads stall when the machine is busy.
        self.matrix = sparse.csr_matrix(np.hstack(groups))
        self.point = np.asarray(self.matrix.sum(axis=0)).ravel()

    def _uplifts(self, sums: np.ndarray) -> np.ndarray:
        """(… × shares × 2 × outcomes) uplifts from (… × columns) sums."""
        shaped = sums.reshape(*sums.shape[:-1], len(TOP_SHARES), 2, 2 + 2 * len(self.names))
        t_weight, c_weight = shaped[..., :1], shaped[..., 1:2]
        treated, control = shaped[..., 2::2], shaped[..., 3::2]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where((t_weight > 0) & (c_weight > 0),
                            treated / t_weight - control / c_weight, np.nan)

    def table(self, sums: np.ndarray) -> pd.DataFrame:
        """``share, outcome, by_uplift, by_risk, gain, low, high`` (per 1,000 messages)."""
        point = self._uplifts(self.point)
        resampled = self._uplifts(sums)
        differences = resampled[:, :, 0, :] - resampled[:, :, 1, :]  # draws × shares × outcomes
        rows = []
        for k, name in enumerate(self.names):
            for i, share in enumerate(TOP_SHARES):
                u, r = float(point[i, 0, k]), float(point[i, 1, k])
                low, high = _interval(differences[:, i, k])
                rows.append({"share": share, "outcome": name, "by_uplift": 1000 * u,
                             "by_risk": 1000 * r, "gain": 1000 * (u - r),
                             "low": 1000 * low, "high": 1000 * high})
        return pd.DataFrame(rows)


def gain_table(outcomes: dict[str, np.ndarray], treatment: np.ndarray, p: np.ndarray,
               uplift: np.ndarray, risk: np.ndarray, rng: np.random.Generator,
               draws: int = DRAWS) -> pd.DataFrame:
    """:meth:`GainStatistic.table` on ``draws`` resamples."""
    statistic = GainStatistic(outcomes, treatment, p, uplift, risk)
    [sums] = resampled_sums([statistic.matrix], statistic.matrix.shape[0], rng, draws)
    return statistic.table(sums)


class TargetingStatistics:
    """The targeting summary of one ranking against risk: its
    :attr:`matrices` go into one :func:`resampled_sums` call (with any other
    statistic's), :meth:`summary` takes their sums back."""

    def __init__(self, y: np.ndarray, treatment: np.ndarray, p: np.ndarray,
                 uplift: np.ndarray, risk: np.ndarray,
                 outcomes: dict[str, np.ndarray]) -> None:
        self.curve = qini_points(y, treatment, p, {"uplift": uplift, "risk": risk})
        self.deciles = DecileStatistic(y, treatment, p, uplift)
        self.gain = GainStatistic(outcomes, treatment, p, uplift, risk)
        self.rows = len(y)

    @property
    def matrices(self) -> list[np.ndarray | sparse.spmatrix]:
        """The matrices whose resampled column sums :meth:`summary` takes, in order."""
        return [self.deciles.matrix, self.gain.matrix]

    def summary(self, sums: list[np.ndarray]) -> dict[str, Any]:
        """The three tables as JSON-ready records (stored in the model's metrics)."""
        decile_sums, gain_sums = sums

        def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
            return [{k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                     for k, v in row.items()} for row in frame.to_dict("records")]

        return {"rows": self.rows, "curve": records(self.curve),
                "deciles": records(self.deciles.table(decile_sums)),
                "gain": records(self.gain.table(gain_sums))}
