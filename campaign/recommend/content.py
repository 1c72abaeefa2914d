"""Content similarity from product attributes (pure).

Each product becomes a sparse vector made of weighted blocks: category and brand
(one-hot), tags and name tokens (TF-IDF), and a price band (one-hot over log-price
quantiles, with the neighbouring bands at half weight so "a bit dearer" is still
similar). Blocks are L2-normalised, scaled by the square root of their weight and
stacked; the cosine of two products is then the weighted average of the per-block
cosines. Only the top ``neighbours`` per product are kept.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
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


def _tags(value: object) -> list[str]:
    if isinstance(value, str):
        items: Iterable[object] = value.split("|")
    elif isinstance(value, Iterable):
        items = value
    else:
        return []
    return [str(t).strip().lower() for t in items if str(t).strip()]


def _tfidf(documents: list[list[str]]) -> sparse.csr_matrix:
    if not any(documents):
        return sparse.csr_matrix((len(documents), 0), dtype=np.float32)
    # A token more than half the catalogue shares ("item", the shop's name) says
    # nothing about two products and would link every pair.
    max_df = 0.5 if len(documents) >= 20 else 1.0
    vectorizer = TfidfVectorizer(analyzer=lambda doc: doc, dtype=np.float32, max_df=max_df)
    try:
        return sparse.csr_matrix(vectorizer.fit_transform(documents))
    except ValueError:  # every token was too common
        return sparse.csr_matrix((len(documents), 0), dtype=np.float32)


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
        # .tolist() first: iterating a pandas string column item by item is slow.
        "tags": _tfidf([_tags(v) for v in column("tags").tolist()]),
        "name": _tfidf(
            [_TOKEN.findall(str(v).lower()) if v else [] for v in column("name").tolist()]
        ),
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


class ContentSimilarity:
    """Item-item cosine on product attributes, top ``neighbours`` per item kept.

    Only products sharing a category, brand, tag or name token are neighbours; their
    cosine includes the price bands.

    Parameters:
        neighbours: most similar items kept per item.
        field_weights: share of category, brand, tags, name and price in the cosine.
        price_bands: number of log-price quantile bands.
        n_jobs: threads for the all-pairs computation (None: 1; -1: one per core).

    Fitted attributes:
        features_: CSR products × attribute features (L2 rows).
        similarity_: CSR items × items; row i holds item i's most similar products.
    """

    def __init__(
        self,
        neighbours: int = 50,
        field_weights: Mapping[str, float] | None = None,
        price_bands: int = 5,
        n_jobs: int | None = None,
    ) -> None:
        self.neighbours = neighbours
        self.n_jobs = n_jobs
        self.field_weights = field_weights
        self.price_bands = price_bands

    def fit(self, products: pd.DataFrame, y: object = None) -> ContentSimilarity:
        """Build attribute vectors and their top-neighbour cosine matrix."""
        weights = DEFAULT_FIELD_WEIGHTS if self.field_weights is None else self.field_weights
        features, width = feature_blocks(products, weights, self.price_bands)
        self.features_ = features
        # Neighbours must share an attribute besides price: a price band alone links
        # most of the catalogue (ranking those ties would be arbitrary) and made the
        # all-pairs product dense. Price still adds its share to linked pairs.
        linked = features[:, : features.shape[1] - width].tocsr()
        price = features[:, features.shape[1] - width :].toarray() if width else None
        self.similarity_ = top_neighbours(
            linked, linked, self.neighbours, n_jobs=self.n_jobs, dense_extra=price
        )
        return self

    def score(self, interactions: sparse.csr_matrix) -> sparse.csr_matrix:
        """Scores ``x_u @ S`` for each row of a users × items matrix (sparse)."""
        return sparse.csr_matrix(interactions @ self.similarity_)
