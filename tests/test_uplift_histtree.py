"""The histogram tree splits like the exact tree where binning loses nothing, keeps
its leaves at least ``min_samples_leaf`` rows, and sends raw values where it sent the
binned training rows."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.tree import DecisionTreeRegressor

from campaign.uplift.histtree import LEAF, HistogramTree, bin_edges


def _partition(leaves: np.ndarray) -> set[frozenset[int]]:
    return {frozenset(np.flatnonzero(leaves == leaf).tolist()) for leaf in np.unique(leaves)}


def test_on_features_with_few_values_it_finds_the_exact_trees_partition() -> None:
    rng = np.random.default_rng(3)
    n = 20_000
    X = np.column_stack([rng.integers(0, 40, n), rng.integers(0, 200, n),
                         rng.integers(0, 3, n)]).astype(float)
    y = 2.0 * (X[:, 0] > 25) + 1.5 * (X[:, 1] <= 60) * (X[:, 2] == 1) + rng.normal(0, 1, n)
    exact = DecisionTreeRegressor(max_depth=3, min_samples_leaf=300, random_state=0).fit(X, y)
    binned = HistogramTree(max_depth=3, min_samples_leaf=300).fit(X, y)
    assert _partition(binned.apply(X)) == _partition(exact.apply(X))


def test_continuous_features_are_cut_at_observed_values_and_raw_rows_follow_them() -> None:
    rng = np.random.default_rng(5)
    n = 50_000
    X = np.column_stack([rng.gamma(2.0, 100.0, n), rng.normal(0, 1, n)])
    y = (X[:, 0] > 180).astype(float) + rng.normal(0, 0.5, n)
    tree = HistogramTree(max_depth=2, min_samples_leaf=100, max_bins=64).fit(X, y)
    nodes = tree.tree_
    inner = np.flatnonzero(nodes.children_left != LEAF)
    assert len(inner) >= 1
    for node in inner:
        assert nodes.threshold[node] in set(X[:, nodes.feature[node]])
    # The root splits the planted step within one bin's width of it.
    root_feature, root_threshold = nodes.feature[0], nodes.threshold[0]
    assert root_feature == 0
    assert abs(np.mean(X[:, 0] <= root_threshold) - np.mean(X[:, 0] <= 180)) < 1 / 64 + 0.01
    leaves = tree.apply(X)
    assert (nodes.children_left[leaves] == LEAF).all()
    assert sum(nodes.n_node_samples[leaf] for leaf in np.unique(leaves)) == n
    for leaf in np.unique(leaves):
        assert nodes.n_node_samples[leaf] == np.sum(leaves == leaf)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(2, 400), depth=st.integers(1, 4), min_leaf=st.integers(1, 60),
    distinct=st.integers(1, 500), seed=st.integers(0, 10_000),
)
def test_every_leaf_holds_min_samples_leaf_rows_and_means_its_rows(
        n: int, depth: int, min_leaf: int, distinct: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    X = rng.integers(0, distinct, (n, 3)).astype(float)
    y = rng.normal(0, 1, n) + X[:, 0] / distinct
    tree = HistogramTree(max_depth=depth, min_samples_leaf=min_leaf, max_bins=32).fit(X, y)
    leaves = tree.apply(X)
    nodes = tree.tree_
    for leaf in np.unique(leaves):
        rows = leaves == leaf
        if nodes.node_count > 1:
            assert rows.sum() >= min_leaf
        assert nodes.value[leaf] == pytest.approx(y[rows].mean())
    depth_of = np.zeros(nodes.node_count, dtype=int)
    for node in range(nodes.node_count):
        for child in (nodes.children_left[node], nodes.children_right[node]):
            if child != LEAF:
                depth_of[child] = depth_of[node] + 1
    assert depth_of.max() <= depth


def test_bin_edges_are_few_observed_increasing_values() -> None:
    rng = np.random.default_rng(0)
    column = rng.exponential(10.0, 300_000)
    edges = bin_edges(column, 255, rng)
    assert 1 < len(edges) <= 254
    assert (np.diff(edges) > 0).all()
    assert np.isin(edges, column).all()
    assert list(bin_edges(np.array([3.0, 1.0, 2.0, 3.0]), 255, rng)) == [1.0, 2.0]


def test_missing_values_are_refused() -> None:
    with pytest.raises(ValueError, match="missing"):
        HistogramTree().fit(np.array([[1.0], [np.nan]]), np.array([0.0, 1.0]))
