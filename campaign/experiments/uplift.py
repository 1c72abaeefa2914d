"""Pure uplift statistics: treatment vs holdout, with 95% intervals and p-values.

Conversion is a proportion per group; the uplift is the difference
``p_treatment - p_control`` with a Wald (unpooled) 95% interval, its relative form
``(p_t - p_c) / p_c``, and a two-sided two-proportion z-test whose standard error
uses the pooled proportion (the classic test; statsmodels' ``proportions_ztest``).
Revenue per user is a mean per group (zeros included); its difference gets a Welch
interval (t distribution with Welch–Satterthwaite degrees of freedom) or, with an
``rng``, a percentile bootstrap.

Everything is measured intent-to-treat by the caller: every user assigned to the
treatment group counts, whether or not the message was sent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class ProportionUplift:
    """Two-proportion comparison.

    ``diff`` (absolute uplift, fraction points), ``low``/``high`` its 95% CI,
    ``relative`` = diff / p_control (NaN when p_control is 0), ``relative_low``/
    ``relative_high`` the CI bounds divided by p_control, ``p_value`` two-sided
    (NaN when undefined: an empty group or both rates 0 or 1).
    """

    n_treatment: int
    successes_treatment: int
    n_control: int
    successes_control: int
    p_treatment: float
    p_control: float
    diff: float
    low: float
    high: float
    relative: float
    relative_low: float
    relative_high: float
    z: float
    p_value: float

    @property
    def significant(self) -> bool:
        """True when the 95% interval excludes zero."""
        return bool(self.low > 0 or self.high < 0)


def _rate(successes: int, n: int) -> float:
    return successes / n if n else math.nan


def proportion_uplift(
    successes_treatment: int, n_treatment: int, successes_control: int, n_control: int,
    *, confidence: float = 0.95,
) -> ProportionUplift:
    """Absolute and relative uplift of a conversion rate with CI and z-test p-value.

    Raises:
        ValueError: a count is negative or successes exceed the group size.
    """
    for s, n in ((successes_treatment, n_treatment), (successes_control, n_control)):
        if n < 0 or s < 0 or s > n:
            raise ValueError(f"invalid counts: {s} successes of {n}")
    z_crit = float(stats.norm.ppf(0.5 + confidence / 2))
    pt, pc = _rate(successes_treatment, n_treatment), _rate(successes_control, n_control)
    diff = pt - pc
    if n_treatment and n_control:
        se = math.sqrt(pt * (1 - pt) / n_treatment + pc * (1 - pc) / n_control)
        pooled = (successes_treatment + successes_control) / (n_treatment + n_control)
        se_pooled = math.sqrt(pooled * (1 - pooled) * (1 / n_treatment + 1 / n_control))
    else:
        se = se_pooled = math.nan
    low, high = diff - z_crit * se, diff + z_crit * se
    if se_pooled and not math.isnan(se_pooled):
        z = diff / se_pooled
        p_value = float(2 * stats.norm.sf(abs(z)))
    else:
        z = p_value = math.nan
    if pc and not math.isnan(pc):
        relative, rel_low, rel_high = diff / pc, low / pc, high / pc
    else:
        relative = rel_low = rel_high = math.nan
    return ProportionUplift(
        n_treatment, successes_treatment, n_control, successes_control, pt, pc,
        diff, low, high, relative, rel_low, rel_high, z, p_value,
    )


@dataclass(frozen=True)
class MeanDifference:
    """Difference of means (treatment - control) with a 95% CI and two-sided p-value.

    Units are the caller's (e.g. cents of revenue per user). ``method`` is ``welch``
    or ``bootstrap``; the bootstrap has no p-value (NaN).
    """

    mean_treatment: float
    mean_control: float
    diff: float
    low: float
    high: float
    p_value: float
    method: str


def welch_difference(
    treatment: np.ndarray, control: np.ndarray, *, confidence: float = 0.95
) -> MeanDifference:
    """Welch's unequal-variance t interval and test for ``mean(treatment) - mean(control)``.

    NaN bounds when a group has fewer than two values.
    """
    t = np.asarray(treatment, dtype=float)
    c = np.asarray(control, dtype=float)
    mt = float(t.mean()) if t.size else math.nan
    mc = float(c.mean()) if c.size else math.nan
    diff = mt - mc
    if t.size < 2 or c.size < 2:
        return MeanDifference(mt, mc, diff, math.nan, math.nan, math.nan, "welch")
    vt, vc = float(t.var(ddof=1)) / t.size, float(c.var(ddof=1)) / c.size
    se = math.sqrt(vt + vc)
    if se == 0:
        return MeanDifference(mt, mc, diff, diff, diff, math.nan if diff == 0 else 0.0, "welch")
    dof = (vt + vc) ** 2 / (vt**2 / (t.size - 1) + vc**2 / (c.size - 1))
    t_crit = float(stats.t.ppf(0.5 + confidence / 2, dof))
    p_value = float(2 * stats.t.sf(abs(diff / se), dof))
    return MeanDifference(mt, mc, diff, diff - t_crit * se, diff + t_crit * se, p_value, "welch")


def bootstrap_difference(
    treatment: np.ndarray,
    control: np.ndarray,
    rng: np.random.Generator,
    *,
    resamples: int = 2000,
    confidence: float = 0.95,
) -> MeanDifference:
    """Percentile bootstrap interval for ``mean(treatment) - mean(control)``.

    Each group is resampled with replacement on its own. Deterministic for a seeded
    ``rng``. Empty groups give NaN.
    """
    t = np.asarray(treatment, dtype=float)
    c = np.asarray(control, dtype=float)
    if not t.size or not c.size:
        nan = math.nan
        return MeanDifference(nan, nan, nan, nan, nan, nan, "bootstrap")
    mt, mc = float(t.mean()), float(c.mean())
    bt = t[rng.integers(0, t.size, size=(resamples, t.size))].mean(axis=1)
    bc = c[rng.integers(0, c.size, size=(resamples, c.size))].mean(axis=1)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(bt - bc, [alpha, 1 - alpha])
    return MeanDifference(mt, mc, mt - mc, float(low), float(high), math.nan, "bootstrap")
