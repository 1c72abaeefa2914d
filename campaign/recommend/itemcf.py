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

from campaign.recommend.kernels import csr_arrays, top_neighbour_rows

# Row blocks per worker thread (load balance: popular items have longer rows).
_BLOCKS_PER_WORKER = 8


def top_neighbours(
    left: sparse.csr_matrix,
    right_t: sparse.csr_matrix,
    neighbours: int,
    *,
    exclude_self: bool = True,
    n_jobs: int | None = None,
    dense_extra: np.ndarray | None = None,
    sparse_extra: sparse.csr_matrix | None = None,
) -> sparse.csr_matrix:
    """Keep the ``neighbours`` largest entries of each row of ``left @ right_t.T``.

    ``dense_extra`` (rows × a few columns) adds ``dense_extra[i] · dense_extra[j]`` to
    the pairs the sparse product links, and only to them (square products only);
    ``sparse_extra`` (rows × features, sparse) adds ``sparse_extra[i] · sparse_extra[j]``
    to those pairs the same way.

    Each row is computed on its own by the compiled loop
    :func:`campaign.recommend.kernels.top_neighbour_rows` (a scratch row and a
    bounded heap), so memory stays bounded whatever the catalogue size. Entries
    that are not positive are dropped; ties go to the lower column. The diagonal is
    dropped when ``exclude_self`` (square products only). ``n_jobs`` threads share
    the rows (None: 1; -1: one per core).

    Returns:
        CSR float32 of shape ``(left.shape[0], right_t.shape[0])``.
    """
    n_rows, n_cols = left.shape[0], right_t.shape[0]
    keep = int(min(neighbours, max(n_cols - (1 if exclude_self else 0), 0)))
    left_arrays = csr_arrays(sparse.csr_matrix(left, dtype=np.float32))
    right_arrays = csr_arrays(sparse.csr_matrix(right_t.T, dtype=np.float32))
    extra = (
        np.zeros((n_rows, 0), dtype=np.float32)
        if dense_extra is None
        else np.ascontiguousarray(dense_extra, dtype=np.float32)
    )
    side = sparse.csr_matrix(
        (n_rows, 0) if sparse_extra is None else sparse_extra, dtype=np.float32
    )
    side.sort_indices()
    side_arrays = csr_arrays(side)
    workers = 1 if n_jobs is None or n_jobs == 1 else (
        n_jobs if n_jobs > 0 else (os.cpu_count() or 1)
    )
    step = max(1, -(-n_rows // (workers * _BLOCKS_PER_WORKER)))

    def rows(start: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return top_neighbour_rows(
            start, min(start + step, n_rows), *left_arrays, *right_arrays, extra,
            *side_arrays, n_cols, keep, exclude_self,
        )

    starts = range(0, n_rows, step) if keep > 0 else range(0)
    if workers == 1:
        parts = [rows(start) for start in starts]
    else:
        # The compiled loop runs without the GIL: row blocks run in parallel.
        with ThreadPoolExecutor(max_workers=workers) as pool:
            parts = list(pool.map(rows, starts))
    if not parts:
        return sparse.csr_matrix((n_rows, n_cols), dtype=np.float32)
    counts = np.concatenate([p[0] for p in parts])
    taken = np.arange(keep)[None, :] < counts[:, None]
    cols = np.concatenate([p[1] for p in parts])[taken]
    values = np.concatenate([p[2] for p in parts])[taken]
    indptr = np.r_[0, np.cumsum(counts)].astype(np.int64)
    out = sparse.csr_matrix((values, cols, indptr), shape=(n_rows, n_cols), dtype=np.float32)
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
