"""Filters, diversity cap and batched top-k over dense score blocks (pure).

Everything here works on a block of users at once (a dense ``users × items`` score
array) with numpy: the evaluation's baselines rank with it, and the tests rank the
hybrid's dense reference scores with it. The hybrid itself ranks with the compiled
loop of :mod:`campaign.recommend.kernels`. Also a few sparse helpers (the
repurchase window's filter cells).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import sparse


@dataclass(frozen=True)
class TopK:
    """The selected cells of a score block, ``rank`` starting at 1 within each row."""

    rows: np.ndarray
    cols: np.ndarray
    scores: np.ndarray
    ranks: np.ndarray


def apply_filters(
    scores: np.ndarray,
    days_since_purchase: sparse.csr_matrix,
    item_allowed: np.ndarray | None,
    *,
    allow_repurchase: bool,
    repurchase_window_days: float,
) -> None:
    """Set filtered cells of ``scores`` to ``-inf`` in place.

    * Items not allowed for anyone (``item_allowed`` false: out of stock, excluded
      category) are removed for every row.
    * Already bought items: without ``allow_repurchase`` every bought item is removed;
      with it, an item is removed only while fewer than ``repurchase_window_days``
      days have passed since the user's last purchase of it.

    ``days_since_purchase`` holds days since the last purchase plus one per cell
    (rows aligned with ``scores``).
    """
    if item_allowed is not None:
        scores[:, ~item_allowed] = -np.inf
    coo = days_since_purchase.tocoo()
    if allow_repurchase:
        recent = (coo.data - 1.0) < repurchase_window_days
        scores[coo.row[recent], coo.col[recent]] = -np.inf
    else:
        scores[coo.row, coo.col] = -np.inf


def _within_category_rank(categories: np.ndarray) -> np.ndarray:
    """For a rows × positions array of category codes, the 0-based count of earlier
    positions in the same row with the same category (-1 codes count as unique)."""
    n_rows, width = categories.shape
    if width == 0:
        return np.zeros_like(categories)
    n_codes = int(categories.max()) + 2
    keys = np.arange(n_rows, dtype=np.int64)[:, None] * n_codes + (categories + 1)
    flat = keys.ravel()
    order = np.argsort(flat, kind="stable")
    sorted_keys = flat[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_keys)) + 1]
    group_start = np.repeat(starts, np.diff(np.r_[starts, flat.size]))
    rank = np.empty(flat.size, dtype=np.int64)
    rank[order] = np.arange(flat.size) - group_start
    rank = rank.reshape(n_rows, width)
    return np.where(categories < 0, 0, rank)


def top_k(
    scores: np.ndarray,
    k: int,
    *,
    categories: np.ndarray | None = None,
    max_per_category: int | None = None,
) -> TopK:
    """The best ``k`` positive, finite cells of each row, highest first.

    Ties are broken by the lower item index, so the result is deterministic. With
    ``max_per_category`` no row gets more than that many items of one category
    (``categories``: code per item, -1 for none, which is never capped); a row may
    then get fewer than ``k`` items when the catalogue cannot fill it.
    """
    n_rows, n_items = scores.shape
    capped = categories is not None and max_per_category is not None
    width = min(n_items, max(5 * k, k + 50) if capped else k)
    if n_rows == 0 or width == 0 or k <= 0:
        empty = np.zeros(0, dtype=np.int64)
        return TopK(empty, empty, np.zeros(0, dtype=np.float32), empty)
    if width < n_items:
        candidates = np.argpartition(-scores, width - 1, axis=1)[:, :width]
    else:
        candidates = np.broadcast_to(np.arange(n_items), (n_rows, n_items)).copy()
    values = np.take_along_axis(scores, candidates, axis=1)
    order = np.lexsort((candidates, -values), axis=-1)
    candidates = np.take_along_axis(candidates, order, axis=1)
    values = np.take_along_axis(values, order, axis=1)
    return _select(candidates, values, k, categories if capped else None, max_per_category)


def _select(
    candidates: np.ndarray,
    values: np.ndarray,
    k: int,
    categories: np.ndarray | None,
    max_per_category: int | None,
) -> TopK:
    """The first ``k`` kept cells of rows already sorted best first (cap applied)."""
    keep = np.isfinite(values) & (values > 0)
    if categories is not None and max_per_category is not None:
        cats = np.where(keep, categories[candidates], -1)
        # Rank only among kept cells: give dropped cells a code of their own.
        rank = _within_category_rank(np.where(keep, cats, -1))
        keep &= rank < max_per_category
    position = np.cumsum(keep, axis=1)
    keep &= position <= k
    rows, slots = np.nonzero(keep)
    return TopK(
        rows=rows.astype(np.int64),
        cols=candidates[rows, slots].astype(np.int64),
        scores=values[rows, slots].astype(np.float32),
        ranks=position[rows, slots].astype(np.int64),
    )


# -- sparse helpers -------------------------------------------------------------------


def csr_row_index(matrix: sparse.csr_matrix) -> np.ndarray:
    """Row number of every stored entry of a CSR matrix (aligned with ``data``)."""
    counts = np.diff(matrix.indptr)
    return np.repeat(np.arange(matrix.shape[0], dtype=np.int64), counts)


def recent_purchases(days: sparse.csr_matrix, window_days: float) -> sparse.csr_matrix:
    """The cells of ``days`` (days since the last purchase + 1) still inside the
    repurchase window: the bought items that stay filtered."""
    rows = csr_row_index(days)
    inside = (days.data - 1.0) < window_days
    return csr_from_sorted(rows[inside], days.indices[inside], days.data[inside], days.shape)


def csr_from_sorted(
    rows: np.ndarray, cols: np.ndarray, values: np.ndarray, shape: tuple[int, int]
) -> sparse.csr_matrix:
    """A CSR matrix from entries already in row order (no COO sort or duplicate sum)."""
    counts = np.bincount(rows, minlength=shape[0]) if rows.size else np.zeros(shape[0], int)
    indptr = np.r_[0, np.cumsum(counts)].astype(np.int64)
    return sparse.csr_matrix((values, cols.astype(np.int64), indptr), shape=shape)
