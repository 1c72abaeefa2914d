"""Sparse building blocks of the candidates: top-per-row, exclusions, popular lists,
item neighbourhoods and their reasons (pure).

Every matrix here is a CSR users × items block; nothing users × items is dense.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy import sparse

from campaign.recommend.content import ContentSimilarity
from campaign.recommend.feedback import Feedback
from campaign.recommend.itemcf import ItemCF

if TYPE_CHECKING:
    from campaign.recommend.candidates import History

# Exponent applied to each interaction before a profile is scaled to sum 1 (as the
# hybrid does: one heavily viewed product must not drown the others).
PROFILE_POWER = 0.25


def row_index(matrix: sparse.csr_matrix) -> np.ndarray:
    """Row number of every stored entry."""
    return np.repeat(np.arange(matrix.shape[0], dtype=np.int64), np.diff(matrix.indptr))


def row_max_one(matrix: sparse.spmatrix) -> sparse.csr_matrix:
    """``matrix`` (float64 CSR) with each row scaled so its largest entry is 1."""
    out = sparse.csr_matrix(matrix, dtype=np.float64, copy=True)
    out.sum_duplicates()
    out.eliminate_zeros()
    out.sort_indices()
    counts = np.diff(out.indptr)
    top = np.zeros(out.shape[0])
    filled = np.flatnonzero(counts > 0)
    if filled.size:
        top[filled] = np.maximum.reduceat(out.data, out.indptr[:-1][filled])
    inverse = np.divide(1.0, top, out=np.zeros_like(top), where=top > 0)
    out.data *= np.repeat(inverse, counts)
    return out


def keep_top(matrix: sparse.csr_matrix, depth: int) -> sparse.csr_matrix:
    """The ``depth`` largest positive entries of each row (ties to the lower column)."""
    matrix = sparse.csr_matrix(matrix, dtype=np.float64)
    matrix.eliminate_zeros()
    rows = row_index(matrix)
    order = np.lexsort((matrix.indices, -matrix.data, rows))
    counts = np.diff(matrix.indptr)
    rank = np.arange(order.size) - np.repeat(matrix.indptr[:-1], counts)
    keep = order[(rank < depth) & (matrix.data[order] > 0)]
    keep.sort()
    return sparse.csr_matrix(
        (matrix.data[keep], (rows[keep], matrix.indices[keep])), shape=matrix.shape
    )


def remove_cells(
    matrix: sparse.csr_matrix, exclude: sparse.csr_matrix | None
) -> sparse.csr_matrix:
    """``matrix`` without the cells stored in ``exclude`` (same shape)."""
    if exclude is None or exclude.nnz == 0:
        return matrix
    mask = sparse.csr_matrix(exclude, dtype=bool).astype(np.float64)
    out = sparse.csr_matrix(matrix - matrix.multiply(mask))
    out.eliminate_zeros()
    return out


def same_list(
    n_users: int, popularity: np.ndarray, depth: int, exclude: sparse.csr_matrix | None
) -> sparse.csr_matrix:
    """Every user's best ``depth`` items by ``popularity``, their excluded cells skipped."""
    ranked = np.lexsort((np.arange(popularity.size), -popularity))
    ranked = ranked[popularity[ranked] > 0]
    extra = 0 if exclude is None else int(np.diff(exclude.indptr).max(initial=0))
    width = min(ranked.size, depth + extra)
    top = ranked[:width]
    data = np.tile(popularity[top], n_users)
    matrix = sparse.csr_matrix(
        (data, np.tile(top, n_users), np.arange(n_users + 1, dtype=np.int64) * width),
        shape=(n_users, popularity.size),
    )
    return keep_top(remove_cells(matrix, exclude), depth)


def popular_in_categories(
    affinity: sparse.csr_matrix,
    category_codes: np.ndarray,
    popularity: np.ndarray,
    depth: int,
    exclude: sparse.csr_matrix | None,
    *,
    categories_per_user: int = 5,
) -> sparse.csr_matrix:
    """affinity(u, category of j) × popularity(j) over the popular items of each
    user's favourite categories, best ``depth`` kept."""
    n_items = popularity.size
    n_categories = affinity.shape[1]
    has = (category_codes >= 0) & (popularity > 0)
    items = np.flatnonzero(has)
    codes = category_codes[items]
    order = np.lexsort((items, -popularity[items], codes))
    items, codes = items[order], codes[order]
    start = np.searchsorted(codes, codes)
    extra = 0 if exclude is None else int(np.diff(exclude.indptr).max(initial=0))
    inside = (np.arange(items.size) - start) < depth + min(extra, 200)
    catalogue = sparse.csr_matrix(
        (popularity[items[inside]], (codes[inside], items[inside])),
        shape=(n_categories, n_items),
    )
    favourite = keep_top(affinity, categories_per_user)
    matrix = sparse.csr_matrix(favourite @ catalogue)
    return keep_top(remove_cells(matrix, exclude), depth)


@dataclass(frozen=True)
class Neighbourhood:
    """Item neighbours (``similarity``: items × items, top neighbours per row) and how
    a pick is explained: the user's product contributing most to it is named with
    ``bought_kind`` when the user bought it, else ``viewed_kind``."""

    similarity: sparse.csr_matrix
    bought_kind: str
    viewed_kind: str
    model: ItemCF | ContentSimilarity | None = None

    def profile(self, feedback: Feedback, user_rows: np.ndarray) -> sparse.csr_matrix:
        """The users' interactions, dampened and scaled to sum 1 (-1 rows: empty)."""
        dampened = taken(feedback.interactions, user_rows)
        dampened.data = np.power(dampened.data, PROFILE_POWER)
        totals = np.asarray(dampened.sum(axis=1), dtype=np.float64).ravel()
        inverse = np.divide(1.0, totals, out=np.zeros_like(totals), where=totals > 0)
        dampened.data *= np.repeat(inverse, np.diff(dampened.indptr))
        return dampened

    def reasons(
        self, history: History, user_rows: np.ndarray, cols: np.ndarray
    ) -> list[tuple[str, dict[str, str]]]:
        """The anchor of each (user row, item) pick: argmax_i profile[u, i] S[i, j]."""
        if len(cols) == 0:
            return []
        profile = self.profile(history.feedback, user_rows)
        into = sparse.csr_matrix(self.similarity.T, dtype=np.float64)[cols]
        contribution = sparse.csr_matrix(profile.multiply(into))
        contribution.eliminate_zeros()
        counts = np.diff(contribution.indptr)
        anchors = np.full(len(cols), -1, dtype=np.int64)
        for pick in np.flatnonzero(counts > 0).tolist():
            lo, hi = contribution.indptr[pick], contribution.indptr[pick + 1]
            best = lo + int(np.argmax(contribution.data[lo:hi]))
            anchors[pick] = contribution.indices[best]
        bought = taken(history.feedback.purchase_counts, user_rows)
        names = history.products["name"] if "name" in history.products else None
        out: list[tuple[str, dict[str, str]]] = []
        for pick, anchor in enumerate(anchors.tolist()):
            if anchor < 0:
                out.append(("popular", {}))
                continue
            kind = self.bought_kind if bought[pick, anchor] > 0 else self.viewed_kind
            out.append((kind, {"item": product_name(history, names, anchor)}))
        return out


def product_name(history: History, names: object, col: int) -> str:
    """A product's name for a reason, else ``product <id>``."""
    value = None if names is None else history.products["name"].iat[col]
    if isinstance(value, str) and value:
        return value
    external = history.products.get("external_id", history.products["product_id"])
    return f"product {external.iat[col]}"


def taken(matrix: sparse.csr_matrix, user_rows: np.ndarray) -> sparse.csr_matrix:
    """Rows ``user_rows`` of ``matrix`` as float64 CSR (-1: an empty row)."""
    user_rows = np.asarray(user_rows, dtype=np.int64)
    known = user_rows >= 0
    selector = sparse.csr_matrix(
        (np.ones(int(known.sum())), (np.flatnonzero(known), user_rows[known])),
        shape=(user_rows.size, matrix.shape[0]),
    )
    out = sparse.csr_matrix(selector @ sparse.csr_matrix(matrix, dtype=np.float64))
    out.sort_indices()
    return out


def itemcf_neighbourhood(history: History, neighbours: int = 50) -> Neighbourhood:
    """Cosine of the items' columns of the feedback matrix (:class:`ItemCF`)."""
    fitted = ItemCF(neighbours, n_jobs=-1).fit(history.feedback.interactions)
    return Neighbourhood(fitted.similarity_, "bought", "viewed", fitted)


def content_neighbourhood(history: History, neighbours: int = 50) -> Neighbourhood:
    """Attribute cosine (:class:`ContentSimilarity`), carriers of common attributes
    linked by their number of buyers."""
    support = np.diff(history.feedback.interactions.tocsc().indptr).astype(np.float64)
    fitted = ContentSimilarity(neighbours, n_jobs=-1).fit(
        history.products, item_weight=support
    )
    return Neighbourhood(fitted.similarity_, "similar_bought", "similar_viewed", fitted)
