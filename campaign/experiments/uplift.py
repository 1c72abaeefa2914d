"""Pure uplift statistics: treatment vs holdout, with 95% intervals and p-values.

Conversion is a proportion per group; the uplift is the difference
``p_treatment - p_control`` with Newcombe's hybrid score interval (his method 10:
Wilson intervals of each rate, combined), its relative form ``(p_t - p_c) / p_c``,
and a two-sided two-proportion z-test whose standard error uses the pooled
proportion (the classic test; statsmodels' ``proportions_ztest``). The Wald interval
it replaces under-covers at the sizes shops have (a 10 % holdout of a few thousand
users, 1-3 % conversion: a handful of held-out conversions). Revenue per user is a
mean per group (zeros included); its difference gets a Welch interval (t distribution
with Welch–Satterthwaite degrees of freedom) or, with an ``rng``, a percentile
bootstrap.

**Always-valid intervals.** Marketers read the report every day, and a fixed-horizon
95 % interval read daily excludes zero far more than 5 % of the time when there is no
effect (each look is another chance). Beside each fixed-horizon interval there is an
always-valid one: the normal-mixture confidence sequence of the mixture sequential
probability ratio test (Robbins; Johari, Pekelis and Walsh, "Always valid inference",
2017, the basis of Optimizely's stats engine). For an estimate ``d`` with variance
``V`` and a N(0, tau²) mixture over the effect, the set

    |d - theta| <= sqrt(V (V + tau²) / tau² * (2 log(1/alpha) + log((V + tau²) / V)))

holds the true effect at *every* look at once with probability >= 1 - alpha, however
often and whenever one looks. ``tau`` sets where it is tightest; it is taken as
:data:`MIXTURE_SD` per-user standard deviations of the outcome, so it needs no unit.
Any "winner" or "it works" statement (:attr:`ProportionUplift.significant`) uses it.

Everything is measured intent-to-treat by the caller: every user assigned to the
treatment group counts, whether or not the message was sent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

# The mixture's spread, in per-user standard deviations of the outcome: the always-valid
# interval is tightest for effects of about this size (a point or two of a few percent
# conversion), and valid whatever the effect.
MIXTURE_SD = 0.1


def wilson_interval(successes: int, n: int, z: float) -> tuple[float, float]:
    """Wilson's score interval of a proportion (NaN for an empty group)."""
    if n == 0:
        return math.nan, math.nan
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z / denominator * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe_interval(
    successes_treatment: int, n_treatment: int, successes_control: int, n_control: int,
    z: float,
) -> tuple[float, float]:
    """Newcombe's hybrid score interval of ``p_treatment - p_control`` (method 10)."""
    if not n_treatment or not n_control:
        return math.nan, math.nan
    pt, pc = successes_treatment / n_treatment, successes_control / n_control
    lt, ut = wilson_interval(successes_treatment, n_treatment, z)
    lc, uc = wilson_interval(successes_control, n_control, z)
    diff = pt - pc
    low = diff - math.sqrt((pt - lt) ** 2 + (uc - pc) ** 2)
    high = diff + math.sqrt((ut - pt) ** 2 + (pc - lc) ** 2)
    return low, high


def always_valid_interval(
    diff: float, variance: float, tau: float, *, confidence: float = 0.95
) -> tuple[float, float]:
    """The normal-mixture confidence sequence around ``diff`` (module docstring).

    ``variance`` is the estimate's; ``tau`` the mixture's spread, in the estimate's
    units. NaN when either is not positive or not finite.
    """
    if not (variance > 0 and tau > 0) or math.isnan(diff):
        return math.nan, math.nan
    alpha = 1 - confidence
    tau2 = tau * tau
    half = math.sqrt(
        variance * (variance + tau2) / tau2
        * (2 * math.log(1 / alpha) + math.log((variance + tau2) / variance))
    )
    return diff - half, diff + half


@dataclass(frozen=True)
class ProportionUplift:
    """Two-proportion comparison.

    ``diff`` (absolute uplift, fraction points), ``low``/``high`` its 95% CI
    (Newcombe), ``always_low``/``always_high`` the always-valid 95% interval,
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
    always_low: float = math.nan
    always_high: float = math.nan

    @property
    def significant(self) -> bool:
        """True when the always-valid 95% interval excludes zero: safe to say after
        any number of looks (the fixed-horizon one is not)."""
        return bool(self.always_low > 0 or self.always_high < 0)


def _rate(successes: int, n: int) -> float:
    return successes / n if n else math.nan


def proportion_uplift(
    successes_treatment: int, n_treatment: int, successes_control: int, n_control: int,
    *, confidence: float = 0.95,
) -> ProportionUplift:
    """Absolute and relative uplift of a conversion rate with its Newcombe interval,
    its always-valid interval and the z-test p-value.

    Raises:
        ValueError: a count is negative or successes exceed the group size.
    """
    for s, n in ((successes_treatment, n_treatment), (successes_control, n_control)):
        if n < 0 or s < 0 or s > n:
            raise ValueError(f"invalid counts: {s} successes of {n}")
    z_crit = float(stats.norm.ppf(0.5 + confidence / 2))
    pt, pc = _rate(successes_treatment, n_treatment), _rate(successes_control, n_control)
    diff = pt - pc
    low, high = newcombe_interval(
        successes_treatment, n_treatment, successes_control, n_control, z_crit
    )
    always_low = always_high = math.nan
    if n_treatment and n_control:
        pooled = (successes_treatment + successes_control) / (n_treatment + n_control)
        se_pooled = math.sqrt(pooled * (1 - pooled) * (1 / n_treatment + 1 / n_control))
        # Rates shrunk by one success and one failure for the variance only: a group
        # with no conversion yet must not claim zero variance.
        vt = _shrunk_variance(successes_treatment, n_treatment)
        vc = _shrunk_variance(successes_control, n_control)
        sd = math.sqrt(_shrunk_variance(
            successes_treatment + successes_control, n_treatment + n_control))
        always_low, always_high = always_valid_interval(
            diff, vt / n_treatment + vc / n_control, MIXTURE_SD * sd, confidence=confidence
        )
    else:
        se_pooled = math.nan
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
        diff, low, high, relative, rel_low, rel_high, z, p_value, always_low, always_high,
    )


def _shrunk_variance(successes: int, n: int) -> float:
    rate = (successes + 1) / (n + 2)
    return rate * (1 - rate)


@dataclass(frozen=True)
class MeanDifference:
    """Difference of means (treatment - control) with a 95% CI and two-sided p-value.

    Units are the caller's (e.g. cents of revenue per user). ``method`` is ``welch``
    or ``bootstrap``; the bootstrap has no p-value (NaN). ``always_low``/``always_high``
    is the always-valid 95% interval (Welch only; NaN otherwise).
    """

    mean_treatment: float
    mean_control: float
    diff: float
    low: float
    high: float
    p_value: float
    method: str
    always_low: float = math.nan
    always_high: float = math.nan


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
    sd = float(np.concatenate([t, c]).std(ddof=1))
    always_low, always_high = always_valid_interval(
        diff, vt + vc, MIXTURE_SD * sd, confidence=confidence
    )
    return MeanDifference(
        mt, mc, diff, diff - t_crit * se, diff + t_crit * se, p_value, "welch",
        always_low, always_high,
    )


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
