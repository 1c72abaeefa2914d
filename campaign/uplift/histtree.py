"""Pure: a depth-limited least-squares regression tree grown on binned features.

The readable uplift tree splits the transformed outcome (campaign.uplift.model). An
exact tree (scikit-learn's ``DecisionTreeRegressor``) sorts every feature at every
node: on a million experiment rows that took seconds per fit, most of ``campaign train
uplift``. Here each feature is cut once into at most ``max_bins`` bins (edges from the
quantiles of a sample, every edge an observed value), and a level of the tree costs
two ``bincount`` passes per feature over the rows, as in histogram gradient boosting.

The split criterion is the exact tree's (the decrease of the squared error), over the
bin edges instead of every midpoint; where a feature has at most ``max_bins`` distinct
values the candidate thresholds are the same. ``x <= threshold`` goes left, and every
threshold is an edge (a value seen in the data), so the raw values of new rows fall on
the same side as the binned training rows did.

:class:`NodeArrays` holds the fitted tree in the shape of scikit-learn's ``tree_``
(``children_left``, ``children_right``, ``feature``, ``threshold``, ``n_node_samples``,
``value``), so the code that reads a leaf's path reads either tree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LEAF = -1  # children_left/right and feature of a leaf, as in scikit-learn
BINNING_SAMPLE = 200_000  # rows whose quantiles choose the edges (HGB uses as many)


@dataclass
class NodeArrays:
    """A fitted tree, node by node (node 0 is the root)."""

    children_left: np.ndarray
    children_right: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    n_node_samples: np.ndarray
    value: np.ndarray  # mean target of the node's training rows

    @property
    def node_count(self) -> int:
        """How many nodes the tree has."""
        return len(self.children_left)

    def apply(self, X: np.ndarray) -> np.ndarray:
        """The leaf (node id) of every row of ``X``."""
        values = np.asarray(X, dtype=float)
        node = np.zeros(len(values), dtype=np.intp)
        while True:
            inner = np.flatnonzero(self.children_left[node] != LEAF)
            if not len(inner):
                return node
            at = node[inner]
            left = values[inner, self.feature[at]] <= self.threshold[at]
            node[inner] = np.where(left, self.children_left[at], self.children_right[at])


def bin_edges(column: np.ndarray, max_bins: int, rng: np.random.Generator) -> np.ndarray:
    """At most ``max_bins - 1`` increasing edges, each a value of ``column``: the
    distinct values (but the largest) when there are few, else quantiles of a sample."""
    sample = column if len(column) <= BINNING_SAMPLE else rng.choice(
        column, BINNING_SAMPLE, replace=False)
    distinct = np.unique(sample)
    if len(distinct) <= max_bins:
        return distinct[:-1]
    quantiles = np.linspace(0.0, 1.0, max_bins + 1)[1:-1]
    return np.unique(np.quantile(sample, quantiles, method="inverted_cdf"))


class HistogramTree:
    """A regression tree on ``max_bins`` bins per feature; fitted state ``tree_``."""

    def __init__(self, max_depth: int = 3, min_samples_leaf: int = 1,
                 max_bins: int = 255, random_state: int = 0) -> None:
        if not 2 <= max_bins <= 256:
            raise ValueError("max_bins must be between 2 and 256")
        self.max_depth = max_depth
        self.min_samples_leaf = max(1, min_samples_leaf)
        self.max_bins = max_bins
        self.random_state = random_state

    def fit(self, X: np.ndarray, y: np.ndarray) -> HistogramTree:
        """Grow the tree level by level on ``y``; returns self."""
        values, target = np.asarray(X, dtype=float), np.asarray(y, dtype=float)
        if np.isnan(values).any():
            raise ValueError("the histogram tree takes no missing values: fill them first")
        rng = np.random.default_rng(self.random_state)
        edges = [bin_edges(values[:, j], self.max_bins, rng) for j in range(values.shape[1])]
        binned = np.column_stack([
            np.searchsorted(e, values[:, j], side="left").astype(np.uint8)
            for j, e in enumerate(edges)
        ]) if values.shape[1] else np.zeros((len(values), 0), dtype=np.uint8)
        nodes = _Nodes()
        nodes.add(len(target), float(target.mean()) if len(target) else 0.0)
        row_node = np.zeros(len(target), dtype=np.intp)
        frontier = [0]
        for _ in range(self.max_depth):
            splits = self._best_splits(binned, target, row_node, frontier)
            frontier = []
            for node, (feature, cut) in splits.items():
                rows = np.flatnonzero(row_node == node)
                goes_left = binned[rows, feature] <= cut
                left_rows, right_rows = rows[goes_left], rows[~goes_left]
                left = nodes.add(len(left_rows), float(target[left_rows].mean()))
                right = nodes.add(len(right_rows), float(target[right_rows].mean()))
                nodes.split(node, feature, float(edges[feature][cut]), left, right)
                row_node[right_rows] = right
                row_node[left_rows] = left
                frontier += [left, right]
            if not frontier:
                break
        self.tree_ = nodes.arrays()
        return self

    def _best_splits(self, binned: np.ndarray, target: np.ndarray, row_node: np.ndarray,
                     frontier: list[int]) -> dict[int, tuple[int, int]]:
        """node → (feature, last bin on the left) of its best split, for the frontier's
        nodes that have one (both sides at least ``min_samples_leaf`` rows)."""
        local = np.full(int(row_node.max()) + 1 if len(row_node) else 1, -1, dtype=np.intp)
        local[frontier] = np.arange(len(frontier))
        slot = local[row_node]
        active = slot >= 0
        slot, y = slot[active], target[active]
        width = 256
        best_gain = np.zeros(len(frontier))
        best: dict[int, tuple[int, int]] = {}
        total_n = np.bincount(slot, minlength=len(frontier)).astype(float)
        total_s = np.bincount(slot, weights=y, minlength=len(frontier))
        for feature in range(binned.shape[1]):
            key = slot * width + binned[active, feature]
            size = len(frontier) * width
            count = np.bincount(key, minlength=size).reshape(len(frontier), width)
            total = np.bincount(key, weights=y, minlength=size).reshape(len(frontier), width)
            left_n = np.cumsum(count, axis=1)[:, :-1].astype(float)
            left_s = np.cumsum(total, axis=1)[:, :-1]
            right_n = total_n[:, None] - left_n
            right_s = total_s[:, None] - left_s
            valid = (left_n >= self.min_samples_leaf) & (right_n >= self.min_samples_leaf)
            with np.errstate(invalid="ignore", divide="ignore"):
                # The decrease of the squared error, up to the node's own constant.
                gain = np.where(valid, left_s ** 2 / left_n + right_s ** 2 / right_n, -np.inf)
            gain -= (total_s ** 2 / np.maximum(total_n, 1.0))[:, None]
            cut = np.argmax(gain, axis=1)
            found = gain[np.arange(len(frontier)), cut]
            for i in np.flatnonzero(found > best_gain + 1e-12 * np.abs(best_gain)):
                best_gain[i] = found[i]
                best[frontier[i]] = (feature, int(cut[i]))
        return best

    def apply(self, X: np.ndarray) -> np.ndarray:
        """The leaf (node id) of every row."""
        return self.tree_.apply(X)


class _Nodes:
    """The growing tree's node lists."""

    def __init__(self) -> None:
        self.left: list[int] = []
        self.right: list[int] = []
        self.feature: list[int] = []
        self.threshold: list[float] = []
        self.samples: list[int] = []
        self.value: list[float] = []

    def add(self, samples: int, value: float) -> int:
        self.left.append(LEAF)
        self.right.append(LEAF)
        self.feature.append(LEAF)
        self.threshold.append(np.nan)
        self.samples.append(samples)
        self.value.append(value)
        return len(self.left) - 1

    def split(self, node: int, feature: int, threshold: float, left: int, right: int) -> None:
        self.left[node], self.right[node] = left, right
        self.feature[node], self.threshold[node] = feature, threshold

    def arrays(self) -> NodeArrays:
        return NodeArrays(
            np.array(self.left, dtype=np.intp), np.array(self.right, dtype=np.intp),
            np.array(self.feature, dtype=np.intp), np.array(self.threshold, dtype=float),
            np.array(self.samples, dtype=np.intp), np.array(self.value, dtype=float),
        )
