"""Item-item collaborative filtering: cosine on the sparse user × item matrix (pure).

The similarity of items i and j is the cosine of their columns in the implicit
feedback matrix; only the ``neighbours`` most similar items of each item are kept, so
the model is a sparse items × items matrix and scoring a user is one sparse product
``x_u @ S``.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy import sparse

from campaign.recommend.ranking import csr_row_index, row_top_entries

# Rows per block of the all-pairs product: at most this many cells even when dense.
_BLOCK_CELLS = 8_000_000
# Above this share of stored cells a product block is selected dense (see one_block).
_DENSE_SHARE = 0.25


def top_neighbours(
    left: sparse.csr_matrix,
    right_t: sparse.csr_matrix,
    neighbours: int,
    *,
    exclude_self: bool = True,
    n_jobs: int | None = None,
    dense_extra: np.ndarray | None = None,
) -> sparse.csr_matrix:
    """Keep the ``neighbours`` largest entries of each row of ``left @ right_t.T``.

    ``dense_extra`` (rows × a few columns) adds ``dense_extra[i] · dense_extra[j]`` to
    the pairs the sparse product links, and only to them (square products only).

    Computed in row blocks of sparse products, each cut to its top entries per row
    with :func:`campaign.recommend.ranking.row_top_entries` (linear passes, no dense
    block), so memory stays bounded whatever the catalogue size. Entries that are
    not positive are dropped. The diagonal is dropped when ``exclude_self`` (square
    products only). ``n_jobs`` threads share the blocks (None: 1; -1: one per core).

    Returns:
        CSR float32 of shape ``(left.shape[0], right_t.shape[0])``.
    """
    n_rows, n_cols = left.shape[0], right_t.shape[0]
    keep = int(min(neighbours, max(n_cols - (1 if exclude_self else 0), 0)))
    left = sparse.csr_matrix(left, dtype=np.float32)
    right = sparse.csr_matrix(right_t.T, dtype=np.float32)
    block = max(1, _BLOCK_CELLS // max(n_cols, 1))

    def one_block(start: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        stop = min(start + block, n_rows)
        product = sparse.csr_matrix(left[start:stop] @ right)
        if dense_extra is not None and product.nnz:
            linked_rows = csr_row_index(product) + start
            product.data += np.einsum(
                "ij,ij->i", dense_extra[linked_rows], dense_extra[product.indices]
            ).astype(np.float32)
        if product.nnz > _DENSE_SHARE * (stop - start) * n_cols and keep < n_cols:
            # Nearly dense (attribute vectors sharing common tokens): a partition of the
            # dense block is cheaper than selecting among millions of stored entries.
            dense = product.toarray()
            if exclude_self:
                local = np.arange(stop - start)
                dense[local, local + start] = 0.0
            top = np.argpartition(dense, n_cols - keep, axis=1)[:, n_cols - keep :]
            values = np.take_along_axis(dense, top, axis=1).ravel()
            rows = np.repeat(np.arange(stop - start), keep)
            cols = top.ravel().astype(np.int64)
        else:
            rows = csr_row_index(product)
            cols = product.indices.astype(np.int64)
            values = product.data
            if exclude_self:
                other = cols != rows + start
                rows, cols, values = rows[other], cols[other], values[other]
        rows, cols, values = row_top_entries(rows.astype(np.int64), cols, values, keep)
        return rows + start, cols, values

    starts = range(0, n_rows, block) if keep > 0 else range(0)
    if n_jobs is None or n_jobs == 1:
        parts = [one_block(start) for start in starts]
    else:
        workers = n_jobs if n_jobs > 0 else (os.cpu_count() or 1)
        # numpy and scipy's sparse kernels release the GIL: blocks run in parallel.
        with ThreadPoolExecutor(max_workers=workers) as pool:
            parts = list(pool.map(one_block, starts))
    rows_out = [p[0] for p in parts]
    cols_out = [p[1] for p in parts]
    vals_out = [p[2] for p in parts]
    if rows_out:
        rows, cols, vals = (np.concatenate(x) for x in (rows_out, cols_out, vals_out))
    else:
        rows = cols = np.zeros(0, dtype=np.int64)
        vals = np.zeros(0, dtype=np.float32)
    out = sparse.csr_matrix((vals, (rows, cols)), shape=(n_rows, n_cols), dtype=np.float32)
    out.sort_indices()
    return out


def column_normalised(matrix: sparse.csr_matrix) -> sparse.csr_matrix:
    """``matrix`` with every column scaled to unit L2 norm (empty columns stay empty)."""
    squared = np.asarray(matrix.multiply(matrix).sum(axis=0), dtype=np.float64).ravel()
    norms = np.sqrt(squared)
    inverse = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    return sparse.csr_matrix(matrix @ sparse.diags(inverse.astype(np.float32)))


class ItemCF:
    """Item-item cosine collaborative filtering with the top neighbours per item.

    Parameters:
        neighbours: most similar items kept per item.
        n_jobs: threads for the all-pairs computation (None: 1; -1: one per core).

    Fitted attributes:
        similarity_: CSR items × items; row i holds item i's neighbours and cosines.
        item_support_: number of users with any interaction per item.
        n_items_: catalogue size seen in ``fit``.
    """

    def __init__(self, neighbours: int = 50, n_jobs: int | None = None) -> None:
        self.neighbours = neighbours
        self.n_jobs = n_jobs

    def fit(self, interactions: sparse.csr_matrix, y: object = None) -> ItemCF:
        """Learn item neighbourhoods from a users × items implicit-feedback matrix."""
        matrix = sparse.csr_matrix(interactions, dtype=np.float32)
        normalised = column_normalised(matrix)
        items = normalised.T.tocsr()
        self.similarity_ = top_neighbours(items, items, self.neighbours, n_jobs=self.n_jobs)
        self.item_support_ = np.diff(matrix.tocsc().indptr).astype(np.int64)
        self.n_items_ = matrix.shape[1]
        return self

    def score(self, interactions: sparse.csr_matrix) -> sparse.csr_matrix:
        """Scores ``x_u @ S`` for each row of a users × items matrix (sparse)."""
        return sparse.csr_matrix(interactions @ self.similarity_)
