"""Filters, diversity cap and batched top-k over dense score blocks (pure).

Everything here works on a block of users at once (a dense ``users × items`` score
array) with numpy, so ranking 100,000 users is a few array passes per block, never a
Python loop per user.
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


# -- sparse selection ---------------------------------------------------------------

_BINS = 256
# Per-(row, category) selection: histogram bins per group, and the largest dense
# (row, category) table it may use before falling back to sorting.
_GROUP_BINS = 16
_GROUP_TABLE_CELLS = 16_000_000


def best_first(major: np.ndarray, values: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Order sorting by ``major`` ascending, then ``values`` descending, then ``cols``.

    ``values`` must be positive and finite, ``major`` below 2**32. Two integer sorts
    (the bit pattern of a positive float32 orders like its value) instead of a
    three-key ``lexsort``, which is several times slower.
    """
    by_col = np.argsort(cols)
    bits = values.astype(np.float32)[by_col].view(np.int32).astype(np.int64)
    key = (major[by_col].astype(np.int64) << 31) | (np.int64(0x7FFFFFFF) - bits)
    return by_col[np.argsort(key, kind="stable")]


def csr_row_index(matrix: sparse.csr_matrix) -> np.ndarray:
    """Row number of every stored entry of a CSR matrix (aligned with ``data``)."""
    counts = np.diff(matrix.indptr)
    return np.repeat(np.arange(matrix.shape[0], dtype=np.int64), counts)


def row_top_entries(
    rows: np.ndarray, cols: np.ndarray, values: np.ndarray, k: int, *, presorted: bool = True
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``k`` largest positive, finite entries of each row, without densifying.

    ``rows`` must be sorted (CSR order) unless ``presorted`` is false (then the
    entries are sorted first: meant for small inputs). Rows with more than ``k`` entries are first
    cut with a per-row histogram of their values (up to 256 bins between the row's minimum
    and maximum; everything below the bin holding the k-th largest value goes), so
    the exact sort only sees about ``k`` entries per row: two linear passes and a
    small sort instead of a partition of every cell.

    Returns:
        ``(rows, cols, values)`` sorted by row, then value descending, then column
        ascending (ties go to the lower column, so results are deterministic).
    """
    keep = values > 0
    if not keep.all():
        keep &= np.isfinite(values)
        rows, cols, values = rows[keep], cols[keep], values[keep]
    if k <= 0 or rows.size == 0:
        return rows[:0], cols[:0], values[:0]
    if not presorted:
        order = np.argsort(rows, kind="stable")
        rows, cols, values = rows[order], cols[order], values[order]
    starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
    sizes = np.diff(np.r_[starts, rows.size])
    if sizes.max() > k:
        # Many small rows (per-category passes) get fewer bins: the histogram stays
        # about as large as the data.
        n_bins = int(np.clip(rows.size // starts.size, 8, _BINS))
        group = np.repeat(np.arange(starts.size, dtype=np.int32), sizes)
        low = np.minimum.reduceat(values, starts).astype(np.float32)
        high = np.maximum.reduceat(values, starts).astype(np.float32)
        scale = np.float32(n_bins - 1) / np.where(high > low, high - low, 1.0).astype(np.float32)
        scaled = (values.astype(np.float32, copy=False) - low[group]) * scale[group]
        bins = np.minimum(scaled.astype(np.int32), n_bins - 1)
        histogram = np.bincount(group * n_bins + bins, minlength=starts.size * n_bins)
        from_top = np.cumsum(histogram.reshape(starts.size, n_bins)[:, ::-1], axis=1)
        # The highest bin whose cumulative count (from the top) reaches k.
        threshold = (n_bins - 1 - np.argmax(from_top >= k, axis=1)).astype(np.int32)
        threshold[sizes <= k] = 0
        survive = bins >= threshold[group]
        rows, cols, values = rows[survive], cols[survive], values[survive]
    order = best_first(rows, values, cols)
    rows, cols, values = rows[order], cols[order], values[order]
    starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
    position = np.arange(rows.size) - np.repeat(starts, np.diff(np.r_[starts, rows.size]))
    first = position < k
    return rows[first], cols[first], values[first]


def row_top_k(matrix: sparse.csr_matrix, k: int) -> sparse.csr_matrix:
    """``matrix`` with only the ``k`` largest positive entries of each row kept (CSR)."""
    matrix = sparse.csr_matrix(matrix)
    rows, cols, values = row_top_entries(
        csr_row_index(matrix), matrix.indices.astype(np.int64), matrix.data, k
    )
    out = sparse.csr_matrix((values, (rows, cols)), shape=matrix.shape, dtype=matrix.dtype)
    out.sort_indices()
    return out


def top_k_sparse(
    scores: sparse.csr_matrix,
    k: int,
    *,
    categories: np.ndarray | None = None,
    max_per_category: int | None = None,
) -> TopK:
    """:func:`top_k` over the stored entries of a sparse score block.

    Cells that are not stored count as not recommendable (score 0). The category cap
    is applied over the whole row, not just its best few cells: the result is the
    greedy capped ranking (best first, skipping items of full categories; items
    without a category, -1, are never capped): the best ``max_per_category`` entries
    of every (row, category), then the best ``k`` of those per row, in linear passes.
    """
    scores = sparse.csr_matrix(scores)
    n_rows = scores.shape[0]
    if n_rows == 0 or k <= 0 or scores.nnz == 0:
        empty = np.zeros(0, dtype=np.int64)
        return TopK(empty, empty, np.zeros(0, dtype=np.float32), empty)
    rows = csr_row_index(scores)
    cols = scores.indices.astype(np.int64)
    capped = categories is not None and max_per_category is not None
    if not capped or bool((np.asarray(categories) < 0).all()):
        return _ranked(*row_top_entries(rows, cols, scores.data, k))
    assert categories is not None and max_per_category is not None
    codes_all = np.asarray(categories, dtype=np.int64)
    n_codes = int(codes_all.max()) + 1
    if n_rows * n_codes * _GROUP_BINS > _GROUP_TABLE_CELLS:
        # Too many categories for a dense (row, category) table: sort-based path.
        return _ranked(*_capped_rows(scores, k, codes_all, max_per_category))
    values = scores.data
    positive = values > 0
    if not positive.all():
        rows, cols, values = rows[positive], cols[positive], values[positive]
    codes = codes_all[cols]
    empty = np.zeros(0, dtype=np.int64)
    loose_rows, loose_cols, loose_values = empty, empty, np.zeros(0, dtype=values.dtype)
    if (codes_all < 0).any():
        loose = codes < 0
        # Uncategorised items are never capped: their best k per row go straight on.
        loose_rows, loose_cols, loose_values = row_top_entries(
            rows[loose], cols[loose], values[loose], k
        )
        rows, cols, values, codes = rows[~loose], cols[~loose], values[~loose], codes[~loose]
    # Best max_per_category of every (row, category), without sorting the block: a
    # dense table of group maxima, a 16-bin histogram per group relative to its
    # maximum, and an exact sort of the few entries at or above each group's cut.
    group = rows * n_codes + codes
    top = np.zeros(n_rows * n_codes, dtype=np.float32)
    np.maximum.at(top, group, values)
    if n_codes >= k:
        # The k best category maxima of a row are k eligible picks, so the row's k-th
        # pick is at least the k-th largest maximum: anything lower cannot be picked.
        floor = np.partition(top.reshape(n_rows, n_codes), n_codes - k, axis=1)[:, n_codes - k]
        reach = values >= floor[rows]
        group, cols, values = group[reach], cols[reach], values[reach]
    # 16 bins: more leave fewer entries to sort but cost more in the histogram.
    n_bins = _GROUP_BINS
    bins = np.minimum((values / top[group] * n_bins).astype(np.int32), n_bins - 1)
    histogram = np.bincount(group * n_bins + bins, minlength=top.size * n_bins)
    from_top = np.cumsum(histogram.reshape(top.size, n_bins)[:, ::-1], axis=1)
    threshold = n_bins - 1 - np.argmax(from_top >= max_per_category, axis=1)
    threshold[from_top[:, -1] <= max_per_category] = 0
    survive = bins >= threshold[group]
    group, cols, values = group[survive], cols[survive], values[survive]
    order = best_first(group, values, cols)
    group, cols, values = group[order], cols[order], values[order]
    starts = np.searchsorted(group, group, side="left")
    within = np.arange(group.size) - starts < max_per_category
    rows = np.r_[group[within] // n_codes, loose_rows]
    cols = np.r_[cols[within], loose_cols]
    values = np.r_[values[within], loose_values]
    return _ranked(*row_top_entries(rows, cols, values, k, presorted=False))


def _ranked(rows: np.ndarray, cols: np.ndarray, values: np.ndarray) -> TopK:
    """Entries sorted by row then rank as a :class:`TopK` (ranks from 1)."""
    starts = np.searchsorted(rows, rows, side="left")
    return TopK(
        rows=rows.astype(np.int64),
        cols=cols.astype(np.int64),
        scores=values.astype(np.float32),
        ranks=(np.arange(rows.size) - starts + 1).astype(np.int64),
    )


def _capped_rows(
    scores: sparse.csr_matrix, k: int, categories: np.ndarray, max_per_category: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Greedy capped top-k of every row over all its entries, in two linear passes:
    the best ``max_per_category`` of every (row, category), then the best ``k``."""
    codes = np.asarray(categories, dtype=np.int64)
    # Every uncategorised item is a group of its own, so it is never capped.
    loose = codes < 0
    group = codes.copy()
    group[loose] = int(codes.max(initial=-1)) + 1 + np.arange(int(loose.sum()))
    n_groups = int(group.max(initial=-1)) + 1
    # Renumber columns in group order so that sorting a row's indices groups its
    # entries by category, which the per-group selection needs.
    order = np.argsort(group, kind="stable")
    position = np.empty_like(order)
    position[order] = np.arange(order.size)
    grouped = sparse.csr_matrix(
        (scores.data, position[scores.indices], scores.indptr.copy()), shape=scores.shape
    )
    grouped.has_sorted_indices = False
    grouped.sort_indices()
    cols = order[grouped.indices]
    keys = csr_row_index(grouped) * n_groups + group[cols]
    keys, cols, values = row_top_entries(keys, cols, grouped.data, max_per_category)
    return row_top_entries(keys // n_groups, cols, values, k)


def drop_filtered(
    scores: sparse.csr_matrix,
    days_since_purchase: sparse.csr_matrix,
    item_allowed: np.ndarray | None,
    *,
    allow_repurchase: bool,
    repurchase_window_days: float,
) -> sparse.csr_matrix:
    """:func:`apply_filters` for a sparse score block: filtered entries are removed.

    Returns a new CSR matrix; ``scores`` is left untouched.
    """
    scores = sparse.csr_matrix(scores)
    rows = csr_row_index(scores)
    cols = scores.indices.astype(np.int64)
    keep = np.ones(cols.shape[0], dtype=bool)
    if item_allowed is not None:
        keep &= item_allowed[cols]
    days = sparse.csr_matrix(days_since_purchase)
    if days.nnz:
        if allow_repurchase:
            days = recent_purchases(days, repurchase_window_days)
        days.sort_indices()
        n_items = scores.shape[1]
        blocked = csr_row_index(days) * n_items + days.indices.astype(np.int64)
        if blocked.size:
            key = rows * n_items + cols
            at = np.minimum(np.searchsorted(blocked, key), blocked.size - 1)
            keep &= blocked[at] != key
    return csr_from_sorted(rows[keep], cols[keep], scores.data[keep], scores.shape)


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
