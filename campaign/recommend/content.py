"""Content similarity from product attributes (pure).

Each product becomes a sparse vector made of weighted blocks: category and brand
(one-hot), tags and name tokens (TF-IDF), and a price band (one-hot over log-price
quantiles, with the neighbouring bands at half weight so "a bit dearer" is still
similar). Blocks are L2-normalised, scaled by the square root of their weight and
stacked; the cosine of two products is then the weighted average of the per-block
cosines. Only the top ``neighbours`` per product are kept.

The neighbour search visits, for each product, the products sharing each of its
attributes. An attribute that a large part of the catalogue shares (a brand
"National" on 58,000 of 68,000 products, a department of 30,000) would make that
visit grow with the square of the catalogue. Such *common* attributes therefore link a
product only to the ``max_postings`` most popular products that carry them, while
their share of the cosine is still counted exactly, for every linked pair (see
:func:`bounded_links`): the search costs at most ``max_postings`` visits per common
attribute and product, so it grows linearly with the catalogue.
"""

from __future__ import annotations

import contextlib
import itertools
import re
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.preprocessing import normalize

from campaign.recommend.itemcf import top_neighbours

DEFAULT_FIELD_WEIGHTS: Mapping[str, float] = {
    "category": 0.35,
    "brand": 0.2,
    "tags": 0.2,
    "name": 0.15,
    "price": 0.1,
}
_TOKEN = re.compile(r"\w\w+", re.UNICODE)


def _one_hot(values: pd.Series) -> sparse.csr_matrix:
    codes, _uniques = pd.factorize(values.fillna("").astype(str).str.strip().str.lower())
    codes = np.where(values.isna().to_numpy() | (values.fillna("").astype(str) == ""), -1, codes)
    present = codes >= 0
    n_levels = int(codes.max()) + 1 if present.any() else 0
    return sparse.csr_matrix(
        (np.ones(int(present.sum()), dtype=np.float32), (np.flatnonzero(present), codes[present])),
        shape=(len(values), n_levels),
    )


def _expand(codes: np.ndarray, per_value: list[list[str]]) -> pd.Series:
    """Every product's tokens, one row each (index: the product's position), from the
    tokens of each distinct value (``codes``: the product's value, -1 for none)."""
    if not per_value:
        return pd.Series([], dtype=object)
    lengths = np.fromiter((len(t) for t in per_value), dtype=np.int64, count=len(per_value))
    flat = np.asarray(list(itertools.chain.from_iterable(per_value)) or [""], dtype=object)
    starts = np.cumsum(lengths) - lengths
    products = np.flatnonzero(codes >= 0)
    counts = lengths[codes[products]]
    rows = np.repeat(products, counts)
    # Position of each product's first token in ``flat``, minus where its run starts.
    offset = np.repeat(starts[codes[products]] - (np.cumsum(counts) - counts), counts)
    return pd.Series(flat[offset + np.arange(rows.size)], index=rows, dtype=object)


def _tag_lists(values: pd.Series) -> pd.Series:
    """Each value's tags (a list or a ``|``-string; anything else: none), stripped and
    lower-cased, one row per tag (index: the product's position). Each distinct value
    is split once (a real catalogue repeats "department|product type")."""
    codes = np.full(len(values), -1, dtype=np.int64)
    known: dict[str | tuple[object, ...], int] = {}
    per_value: list[list[str]] = []
    for position, value in enumerate(values.tolist()):
        key: str | tuple[object, ...]
        if isinstance(value, str):
            key = value
        elif isinstance(value, Iterable):
            key = tuple(value)
        else:
            continue
        try:
            code = known.get(key)
        except TypeError:  # an unhashable tag: split without remembering
            code = None
        if code is None:
            items = key.split("|") if isinstance(key, str) else key
            code = len(per_value)
            per_value.append([t for t in (str(i).strip().lower() for i in items) if t])
            with contextlib.suppress(TypeError):
                known[key] = code
        codes[position] = code
    return _expand(codes, per_value)


def _name_tokens(values: pd.Series) -> pd.Series:
    """Each name's word tokens (two or more word characters, lower-cased), one row per
    token (index: the product's position). Each distinct name is split once: real
    catalogues repeat a product type as the name of thousands of items."""
    values = values.reset_index(drop=True)
    codes, names = pd.factorize(values.where(values.map(bool, na_action="ignore")))
    per_name = [_TOKEN.findall(str(name).lower()) for name in names.tolist()]
    return _expand(np.asarray(codes, dtype=np.int64), per_name)


def _tfidf(tokens: pd.Series, n_documents: int) -> sparse.csr_matrix:
    """TF-IDF rows (L2-normalised) of the documents whose tokens ``tokens`` lists (index:
    the document's position), as scikit-learn's ``TfidfVectorizer`` computes them:
    raw counts times ``ln((1 + n) / (1 + df)) + 1``. A token more than half the
    catalogue shares ("item", the shop's name) says nothing about two products and
    would link every pair: with 20+ documents it is dropped."""
    if tokens.empty:
        return sparse.csr_matrix((n_documents, 0), dtype=np.float32)
    columns, _vocabulary = pd.factorize(tokens.to_numpy())
    rows = tokens.index.to_numpy(dtype=np.int64)
    counts = sparse.csr_matrix(
        (np.ones(rows.size, dtype=np.float64), (rows, columns)),
        shape=(n_documents, int(columns.max()) + 1),
    )
    counts.sum_duplicates()
    df = np.bincount(counts.indices, minlength=counts.shape[1])
    max_df = 0.5 * n_documents if n_documents >= 20 else float(n_documents)
    kept = np.flatnonzero(df <= max_df)
    if kept.size == 0:
        return sparse.csr_matrix((n_documents, 0), dtype=np.float32)
    idf = np.log((1.0 + n_documents) / (1.0 + df[kept])) + 1.0
    weighted = sparse.csr_matrix(counts[:, kept] @ sparse.diags(idf))
    return sparse.csr_matrix(normalize(weighted, norm="l2", axis=1), dtype=np.float32)


def _price_bands(prices: pd.Series, n_bands: int) -> sparse.csr_matrix:
    price = pd.to_numeric(prices, errors="coerce").to_numpy(dtype=np.float64)
    known = np.isfinite(price) & (price > 0)
    if known.sum() < 2:
        return sparse.csr_matrix((len(prices), 0), dtype=np.float32)
    logs = np.log(price[known])
    edges = np.unique(np.quantile(logs, np.linspace(0, 1, n_bands + 1)[1:-1]))
    band = np.searchsorted(edges, logs, side="right")
    n_levels = edges.shape[0] + 1
    rows, cols, vals = [], [], []
    for offset, weight in ((0, 1.0), (-1, 0.5), (1, 0.5)):
        target = band + offset
        ok = (target >= 0) & (target < n_levels)
        rows.append(np.flatnonzero(known)[ok])
        cols.append(target[ok])
        vals.append(np.full(int(ok.sum()), weight, dtype=np.float32))
    return sparse.csr_matrix(
        (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
        shape=(len(prices), n_levels),
    )


def product_features(
    products: pd.DataFrame,
    field_weights: Mapping[str, float] = DEFAULT_FIELD_WEIGHTS,
    price_bands: int = 5,
) -> sparse.csr_matrix:
    """Sparse attribute vectors, one L2-normalised row per product (see
    :func:`feature_blocks`, without the price width)."""
    return feature_blocks(products, field_weights, price_bands)[0]


def feature_blocks(
    products: pd.DataFrame,
    field_weights: Mapping[str, float] = DEFAULT_FIELD_WEIGHTS,
    price_bands: int = 5,
) -> tuple[sparse.csr_matrix, int]:
    """Sparse attribute vectors, one L2-normalised row per product, and the number of
    price-band columns, which come last (0 when price is not used).

    Args:
        products: columns ``category``, ``brand``, ``tags`` (list or ``|``-string),
            ``name``, ``price_cents``; any may be missing or null.
        field_weights: share of each block in the cosine.
        price_bands: number of log-price quantile bands.
    """
    n = len(products)

    def column(name: str) -> pd.Series:
        if name in products:
            return products[name].reset_index(drop=True)
        return pd.Series([None] * n, dtype=object)

    blocks = {
        "category": _one_hot(column("category")),
        "brand": _one_hot(column("brand")),
        "tags": _tfidf(_tag_lists(column("tags")), n),
        "name": _tfidf(_name_tokens(column("name")), n),
        "price": _price_bands(column("price_cents"), price_bands),
    }
    used = [
        (name, block)
        for name, block in blocks.items()
        if block.shape[1] and field_weights.get(name, 0.0) > 0
    ]
    if not used:
        return sparse.csr_matrix((n, 0), dtype=np.float32), 0
    parts = [
        normalize(block, norm="l2", axis=1) * np.float32(np.sqrt(field_weights[name]))
        for name, block in used
    ]
    stacked = sparse.csr_matrix(sparse.hstack(parts, format="csr"), dtype=np.float32)
    out = sparse.csr_matrix(normalize(stacked, norm="l2", axis=1), dtype=np.float32)
    # The price block is last (dict order).
    return out, (parts[-1].shape[1] if used[-1][0] == "price" else 0)


# The weight of a common attribute in the linking product: it only has to link (its
# real share is added separately); its own product adds at most
# (number of shared common attributes) × 2**-20 to a cosine.
_LINK_MARK = np.float32(2.0**-10)


def common_attributes(features: sparse.csr_matrix, max_postings: int) -> np.ndarray:
    """Columns of ``features`` carried by more than ``max_postings`` products, sorted."""
    postings = np.diff(sparse.csc_matrix(features).indptr)
    return np.flatnonzero(postings > max_postings)


def bounded_links(
    features: sparse.csr_matrix, common: np.ndarray, max_postings: int,
    item_weight: np.ndarray | None,
) -> tuple[sparse.csr_matrix, sparse.csr_matrix, np.ndarray]:
    """The operands of a neighbour search whose visits per product stay bounded.

    Returns ``(left, right, shares)``: ``left`` is ``features`` with each common column
    reduced to a small mark; ``right`` the same, with each common column kept only for
    its ``max_postings`` heaviest products by ``item_weight`` (ties: the lower index;
    None: the catalogue's order); ``shares`` the common columns' real values (sparse
    products × common). ``left @ right.T`` then links every pair that shares a rare
    attribute, and each product to the most popular products of its common ones, and
    ``shares[i] · shares[j]`` adds the common attributes' exact share to those pairs.
    """
    n = features.shape[0]
    weight = np.zeros(n) if item_weight is None else np.asarray(item_weight, dtype=np.float64)
    is_common = np.zeros(features.shape[1], dtype=bool)
    is_common[common] = True
    coo = sparse.coo_matrix(features)
    on_common = is_common[coo.col]
    marked = coo.data.copy()
    marked[on_common] = _LINK_MARK
    left = sparse.csr_matrix((marked, (coo.row, coo.col)), shape=features.shape)
    # Keep, in each common column, the max_postings heaviest rows.
    order = np.lexsort((coo.row, -weight[coo.row], coo.col))
    col_sorted = coo.col[order]
    starts = np.searchsorted(col_sorted, col_sorted, side="left")
    rank = np.arange(order.size) - starts
    keep = np.ones(coo.nnz, dtype=bool)
    keep[order] = ~is_common[col_sorted] | (rank < max_postings)
    right = sparse.csr_matrix(
        (marked[keep], (coo.row[keep], coo.col[keep])), shape=features.shape
    )
    shares = sparse.csr_matrix(features[:, common], dtype=np.float32)
    return left, right, shares


class ContentSimilarity:
    """Item-item cosine on product attributes, top ``neighbours`` per item kept.

    Only products sharing a category, brand, tag or name token are neighbours; their
    cosine includes the price bands.

    Parameters:
        neighbours: most similar items kept per item.
        field_weights: share of category, brand, tags, name and price in the cosine.
        price_bands: number of log-price quantile bands.
        n_jobs: threads for the all-pairs computation (None: 1; -1: one per core).
        max_postings: products an attribute may carry before it counts as common and
            links each product only to its most popular carriers (see the module
            docstring).

    Fitted attributes:
        features_: CSR products × attribute features (L2 rows).
        similarity_: CSR items × items; row i holds item i's most similar products.
        common_attributes_: the feature columns that counted as common.
    """

    def __init__(
        self,
        neighbours: int = 50,
        field_weights: Mapping[str, float] | None = None,
        price_bands: int = 5,
        n_jobs: int | None = None,
        max_postings: int = 50,
    ) -> None:
        self.neighbours = neighbours
        self.max_postings = max_postings
        self.n_jobs = n_jobs
        self.field_weights = field_weights
        self.price_bands = price_bands

    def fit(
        self, products: pd.DataFrame, y: object = None, item_weight: np.ndarray | None = None
    ) -> ContentSimilarity:
        """Build attribute vectors and their top-neighbour cosine matrix.

        ``item_weight`` (one per product, e.g. its number of buyers) picks which
        carriers of a common attribute a product is linked to: the heaviest.
        """
        weights = DEFAULT_FIELD_WEIGHTS if self.field_weights is None else self.field_weights
        features, width = feature_blocks(products, weights, self.price_bands)
        self.features_ = features
        # Neighbours must share an attribute besides price: a price band alone links
        # most of the catalogue (ranking those ties would be arbitrary) and made the
        # all-pairs product dense. Price still adds its share to linked pairs.
        linked = features[:, : features.shape[1] - width].tocsr()
        price = features[:, features.shape[1] - width :].toarray() if width else None
        common = common_attributes(linked, self.max_postings)
        self.common_attributes_ = common
        if common.size == 0:
            self.similarity_ = top_neighbours(
                linked, linked, self.neighbours, n_jobs=self.n_jobs, dense_extra=price
            )
            return self
        left, right, shares = bounded_links(linked, common, self.max_postings, item_weight)
        self.similarity_ = top_neighbours(
            left, right, self.neighbours, n_jobs=self.n_jobs, dense_extra=price,
            sparse_extra=shares,
        )
        return self

    def score(self, interactions: sparse.csr_matrix) -> sparse.csr_matrix:
        """Scores ``x_u @ S`` for each row of a users × items matrix (sparse)."""
        return sparse.csr_matrix(interactions @ self.similarity_)
