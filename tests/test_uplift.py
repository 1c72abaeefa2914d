"""Uplift statistics, checked against statsmodels and scipy."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from scipy import stats
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    proportions_ztest,
)
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from campaign.experiments.uplift import (
    bootstrap_difference,
    proportion_uplift,
    welch_difference,
)

groups = st.tuples(st.integers(1, 5000), st.floats(0, 1))


def _counts(group: tuple[int, float]) -> tuple[int, int]:
    n, rate = group
    return round(n * rate), n


@given(treatment=groups, control=groups)
@settings(max_examples=200, deadline=None)
def test_the_p_value_matches_statsmodels_two_proportion_z_test(treatment, control):
    st_, nt = _counts(treatment)
    sc, nc = _counts(control)
    pooled = (st_ + sc) / (nt + nc)
    assume(0 < pooled < 1)
    result = proportion_uplift(st_, nt, sc, nc)
    z, p = proportions_ztest([st_, sc], [nt, nc])
    assert result.z == pytest.approx(z, rel=1e-9, abs=1e-9)
    assert result.p_value == pytest.approx(p, rel=1e-7, abs=1e-12)


@given(treatment=groups, control=groups)
@settings(max_examples=200, deadline=None)
def test_the_interval_matches_statsmodels_wald_interval(treatment, control):
    st_, nt = _counts(treatment)
    sc, nc = _counts(control)
    result = proportion_uplift(st_, nt, sc, nc)
    low, high = confint_proportions_2indep(st_, nt, sc, nc, method="wald", compare="diff")
    assert result.low == pytest.approx(low, abs=1e-9)
    assert result.high == pytest.approx(high, abs=1e-9)
    assert result.low <= result.diff <= result.high


def test_relative_uplift_is_the_difference_over_the_control_rate():
    result = proportion_uplift(150, 1000, 100, 1000)
    assert result.diff == pytest.approx(0.05)
    assert result.relative == pytest.approx(0.5)
    assert result.relative_low == pytest.approx(result.low / 0.10)
    assert result.significant


def test_an_empty_control_group_gives_nan_not_an_error():
    result = proportion_uplift(10, 100, 0, 0)
    assert math.isnan(result.diff) and math.isnan(result.p_value)
    assert not result.significant


def test_invalid_counts_are_refused():
    with pytest.raises(ValueError, match="successes"):
        proportion_uplift(11, 10, 0, 10)


@given(seed=st.integers(0, 10_000), nt=st.integers(2, 300), nc=st.integers(2, 300))
@settings(max_examples=60, deadline=None)
def test_welch_matches_statsmodels_and_scipy(seed, nt, nc):
    rng = np.random.default_rng(seed)
    t = rng.exponential(5000, nt) * (rng.random(nt) < 0.3)
    c = rng.exponential(4000, nc) * (rng.random(nc) < 0.3)
    assume(t.std() > 0 and c.std() > 0)
    result = welch_difference(t, c)
    compare = CompareMeans(DescrStatsW(t), DescrStatsW(c))
    low, high = compare.tconfint_diff(usevar="unequal")
    assert result.low == pytest.approx(low, rel=1e-7, abs=1e-6)
    assert result.high == pytest.approx(high, rel=1e-7, abs=1e-6)
    p = stats.ttest_ind(t, c, equal_var=False).pvalue
    assert result.p_value == pytest.approx(p, rel=1e-6, abs=1e-12)


def test_the_bootstrap_is_deterministic_and_close_to_welch():
    data = np.random.default_rng(1)
    t = data.exponential(100, 800) * (data.random(800) < 0.2)
    c = data.exponential(100, 800) * (data.random(800) < 0.1)
    first = bootstrap_difference(t, c, np.random.default_rng(7))
    again = bootstrap_difference(t, c, np.random.default_rng(7))
    welch = welch_difference(t, c)
    assert (first.low, first.high) == (again.low, again.high)
    width = welch.high - welch.low
    assert first.low == pytest.approx(welch.low, abs=0.1 * width)
    assert first.high == pytest.approx(welch.high, abs=0.1 * width)


def test_the_interval_covers_the_true_difference_about_95_percent_of_the_time():
    rng = np.random.default_rng(11)
    covered = 0
    trials = 400
    for _ in range(trials):
        st_ = int(rng.binomial(2000, 0.12))
        sc = int(rng.binomial(2000, 0.08))
        result = proportion_uplift(st_, 2000, sc, 2000)
        covered += result.low <= 0.04 <= result.high
    assert 0.92 <= covered / trials <= 0.98
