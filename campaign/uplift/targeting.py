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
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd

from campaign.uplift.evaluate import TOP_SHARES, qini_curve
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


def _top_rows(score: np.ndarray, share: float) -> np.ndarray:
    order = np.argsort(-np.asarray(score, dtype=float), kind="mergesort")
    return order[: math.ceil(share * len(order))]


def _interval(draws: np.ndarray) -> tuple[float, float]:
    finite = draws[np.isfinite(draws)]
    if not len(finite):
        return math.nan, math.nan
    tail = (1.0 - LEVEL) / 2.0 * 100.0
    low, high = np.percentile(finite, [tail, 100.0 - tail])
    return float(low), float(high)


def decile_table(y: np.ndarray, treatment: np.ndarray, p: np.ndarray, uplift: np.ndarray,
                 rng: np.random.Generator, draws: int = DRAWS) -> pd.DataFrame:
    """One row per decile of predicted uplift (1 = highest): ``decile, customers,
    treated, held_out, predicted, treated_rate, control_rate, uplift, low, high``."""
    w = np.asarray(treatment, dtype=bool)
    y = np.asarray(y, dtype=float)
    weights = balancing_weights(w, p)
    order = np.argsort(-np.asarray(uplift, dtype=float), kind="mergesort")
    labels = np.empty(len(y), dtype=int)
    labels[order] = np.minimum(np.arange(len(y)) * DECILES // max(1, len(y)), DECILES - 1)
    resampled = np.empty((draws, DECILES))
    for draw in range(draws):
        counts = np.bincount(rng.integers(0, len(y), len(y)), minlength=len(y))
        resampled[draw] = _decile_uplifts(y, w, weights * counts, labels)
    rows = []
    for decile in range(DECILES):
        mask = labels == decile
        if not mask.any():
            continue
        wt, ww, yy = weights[mask], w[mask], y[mask]
        low, high = _interval(resampled[:, decile])
        treated_rate = float((yy[ww] * wt[ww]).sum() / wt[ww].sum()) if ww.any() else math.nan
        control_rate = (float((yy[~ww] * wt[~ww]).sum() / wt[~ww].sum())
                        if (~ww).any() else math.nan)
        rows.append({
            "decile": decile + 1, "customers": int(mask.sum()), "treated": int(ww.sum()),
            "held_out": int((~ww).sum()), "predicted": float(np.mean(uplift[mask])),
            "treated_rate": treated_rate, "control_rate": control_rate,
            "uplift": treated_rate - control_rate, "low": low, "high": high,
        })
    return pd.DataFrame(rows)


def _decile_uplifts(y: np.ndarray, w: np.ndarray, weights: np.ndarray,
                    labels: np.ndarray) -> np.ndarray:
    t_weight = np.bincount(labels, weights * w, DECILES)
    c_weight = np.bincount(labels, weights * ~w, DECILES)
    t_sum = np.bincount(labels, weights * w * y, DECILES)
    c_sum = np.bincount(labels, weights * ~w * y, DECILES)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((t_weight > 0) & (c_weight > 0),
                        t_sum / t_weight - c_sum / c_weight, np.nan)


def _resample_counts(rng: np.random.Generator, n: int, draws: int) -> Iterator[np.ndarray]:
    """Chunks of bootstrap resamples as a (draws in chunk × n) matrix of how often each
    row was drawn: bounded memory however many rows."""
    chunk = max(1, min(draws, 25))
    done = 0
    while done < draws:
        size = min(chunk, draws - done)
        counts = np.zeros((size, n))
        for i in range(size):
            counts[i] = np.bincount(rng.integers(0, n, n), minlength=n)
        done += size
        yield counts


def gain_table(outcomes: dict[str, np.ndarray], treatment: np.ndarray, p: np.ndarray,
               uplift: np.ndarray, risk: np.ndarray, rng: np.random.Generator,
               draws: int = DRAWS) -> pd.DataFrame:
    """Per top share and outcome (``converted``: count, ``revenue``: major currency
    units): ``share, outcome, by_uplift, by_risk, gain, low, high``, each per 1,000
    messages (the uplift among the targeted × 1,000).

    Every weighted sum a resample needs is one column of a matrix, so the resamples
    of a chunk cost one matrix product (instead of a Python loop over draws, shares,
    rankings and outcomes).
    """
    w = np.asarray(treatment, dtype=bool)
    n = len(w)
    weights = balancing_weights(w, p)
    names = list(outcomes)
    ys = [np.asarray(outcomes[name], dtype=float) for name in names]
    # Columns per (share, ranking): treated weight, control weight, then per outcome
    # the treated and the control weighted outcome, of the targeted rows only.
    groups = []
    for share in TOP_SHARES:
        for score in (uplift, risk):
            targeted = np.zeros(n, dtype=bool)
            targeted[_top_rows(score, share)] = True
            t_weight, c_weight = weights * (w & targeted), weights * (~w & targeted)
            groups.append(np.column_stack(
                [t_weight, c_weight, *(c for y in ys for c in (t_weight * y, c_weight * y))]))
    matrix = np.hstack(groups)  # n × (shares · 2 rankings · (2 + 2 · outcomes))

    def uplifts(sums: np.ndarray) -> np.ndarray:
        """(… × shares × 2 × outcomes) uplifts from (… × columns) sums."""
        shaped = sums.reshape(*sums.shape[:-1], len(TOP_SHARES), 2, 2 + 2 * len(ys))
        t_weight, c_weight = shaped[..., :1], shaped[..., 1:2]
        treated, control = shaped[..., 2::2], shaped[..., 3::2]
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where((t_weight > 0) & (c_weight > 0),
                            treated / t_weight - control / c_weight, np.nan)

    point = uplifts(matrix.sum(axis=0))
    resampled = np.concatenate(
        [uplifts(counts @ matrix) for counts in _resample_counts(rng, n, draws)])
    differences = resampled[:, :, 0, :] - resampled[:, :, 1, :]  # draws × shares × outcomes
    rows = []
    for k, name in enumerate(names):
        for i, share in enumerate(TOP_SHARES):
            u, r = float(point[i, 0, k]), float(point[i, 1, k])
            low, high = _interval(differences[:, i, k])
            rows.append({"share": share, "outcome": name, "by_uplift": 1000 * u,
                         "by_risk": 1000 * r, "gain": 1000 * (u - r),
                         "low": 1000 * low, "high": 1000 * high})
    return pd.DataFrame(rows)


def targeting_summary(y: np.ndarray, treatment: np.ndarray, p: np.ndarray,
                      uplift: np.ndarray, risk: np.ndarray,
                      outcomes: dict[str, np.ndarray], seed: int) -> dict[str, Any]:
    """The three tables above as JSON-ready records (stored in the model's metrics)."""
    rng = np.random.default_rng(seed)
    curve = qini_points(y, treatment, p, {"uplift": uplift, "risk": risk})
    deciles = decile_table(y, treatment, p, uplift, rng)
    gain = gain_table(outcomes, treatment, p, uplift, risk, rng)

    def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
        return [{k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                 for k, v in row.items()} for row in frame.to_dict("records")]

    return {"rows": len(y), "curve": records(curve), "deciles": records(deciles),
            "gain": records(gain)}
