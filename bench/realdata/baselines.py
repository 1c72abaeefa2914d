"""The anchors the product is judged against, fitted on exactly what the product sees.

Recommenders (each ``fit(train)`` then ``recommend(users, k, exclude_history)``):

* ``buy_again``: the user's items ranked by the number of distinct orders holding
  them, ties by the latest purchase (then product id); a purchase without an order
  id is its own order. Nothing to offer when history is excluded.
* ``popularity``: items ranked by distinct buyers in the shop's recent window before
  T (``Shop.popularity_window_days``; MovieLens: all history), ties by all-time buyers
  then product id; the same list for everyone.
* ``item_cf_cosine`` / ``item_cf_bm25``: ``implicit``'s ``CosineRecommender`` and
  ``BM25Recommender`` (subclasses of its ``ItemItemRecommender``, K = 50 neighbours) on
  the users x items matrix of distinct-order counts.
* ``lightfm``: LightFM (the ``rectools-lightfm`` build), WARP loss, 64 factors, 20
  epochs, learning rate 0.05, item features = identity + category, brand and tag
  tokens; fixed here, not tuned.

Churn (higher = riskier): ``recency`` (days since the last purchase), ``bg_nbd`` and
``pareto_nbd`` (``lifetimes``, fitted on every purchase history before T, customers
ranked by minus the purchases expected in the horizon).

Libraries that are not installed make their baseline *skipped* with the reason.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Sequence
from datetime import datetime, timedelta

import numpy as np
import pandas as pd
from scipy import sparse

from .datasets import Shop

Lists = dict[str, list[str]]
ITEM_CF_NEIGHBOURS = 50
LIGHTFM = {"no_components": 64, "loss": "warp", "learning_rate": 0.05, "random_state": 0}
LIGHTFM_EPOCHS = 20


class Unavailable(RuntimeError):
    """A baseline cannot run here (its library is missing or its fit failed)."""


def order_keys(events: pd.DataFrame) -> pd.Series:
    """The order of each purchase: its order id, else the event itself."""
    return events["order_id"].where(events["order_id"].notna(), events["event_id"])


def histories(train: pd.DataFrame) -> dict[str, set[str]]:
    """Items each user bought before T."""
    bought = train.dropna(subset=["product_id"])
    return {u: set(items) for u, items in bought.groupby("user_id")["product_id"]}


class BuyAgain:
    """Plain buy-again: distinct orders, ties by the latest purchase."""

    name = "buy_again"

    def fit(self, train: pd.DataFrame) -> BuyAgain:
        bought = train.dropna(subset=["product_id"]).assign(order=order_keys)
        stats = bought.groupby(["user_id", "product_id"]).agg(
            orders=("order", "nunique"), last=("ts", "max")
        ).reset_index()
        stats = stats.sort_values(
            ["user_id", "orders", "last", "product_id"], ascending=[True, False, False, True]
        )
        self.ranked = {u: list(items) for u, items in stats.groupby("user_id")["product_id"]}
        return self

    def recommend(self, users: Sequence[str], k: int, exclude_history: bool) -> Lists:
        if exclude_history:
            return {u: [] for u in users}
        return {u: self.ranked.get(u, [])[:k] for u in users}


class Popularity:
    """Distinct buyers in a recent window, the same list for everyone."""

    name = "popularity"

    def __init__(self, as_of: datetime, window_days: int | None) -> None:
        self.as_of = as_of
        self.window_days = window_days

    def fit(self, train: pd.DataFrame) -> Popularity:
        bought = train.dropna(subset=["product_id"])
        recent = bought
        if self.window_days is not None:
            start = pd.Timestamp(self.as_of - timedelta(days=self.window_days))
            recent = bought.loc[bought["ts"] >= start]
        frame = pd.DataFrame(
            {
                "recent": recent.groupby("product_id")["user_id"].nunique(),
                "all": bought.groupby("product_id")["user_id"].nunique(),
            }
        ).fillna(0)
        frame = frame.reset_index().sort_values(
            ["recent", "all", "product_id"], ascending=[False, False, True]
        )
        self.order = frame["product_id"].tolist()
        self.history = histories(train)
        return self

    def recommend(self, users: Sequence[str], k: int, exclude_history: bool) -> Lists:
        out: Lists = {}
        for user in users:
            seen = self.history.get(user, set()) if exclude_history else set()
            picks: list[str] = []
            for item in self.order:
                if item not in seen:
                    picks.append(item)
                    if len(picks) == k:
                        break
            out[user] = picks
        return out


def _matrix(train: pd.DataFrame) -> tuple[sparse.csr_matrix, pd.Index, pd.Index]:
    """Users x items distinct-order counts, with the user and item indexes."""
    bought = train.dropna(subset=["product_id"]).assign(order=order_keys)
    pairs = bought.groupby(["user_id", "product_id"])["order"].nunique().reset_index()
    users = pd.Index(np.sort(pairs["user_id"].unique()))
    items = pd.Index(np.sort(pairs["product_id"].unique()))
    matrix = sparse.csr_matrix(
        (
            pairs["order"].to_numpy(dtype=np.float32),
            (users.get_indexer(pairs["user_id"]), items.get_indexer(pairs["product_id"])),
        ),
        shape=(len(users), len(items)),
    )
    return matrix, users, items


class ItemCF:
    """implicit's item-item recommenders (cosine or BM25 weighting), K = 50."""

    def __init__(self, variant: str) -> None:
        self.variant = variant
        self.name = f"item_cf_{variant}"

    def fit(self, train: pd.DataFrame) -> ItemCF:
        os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
        warnings.filterwarnings("ignore", message="Method expects CSR input")
        try:
            from implicit.nearest_neighbours import BM25Recommender, CosineRecommender
        except ImportError as exc:
            raise Unavailable(f"implicit is not installed ({exc})") from None
        kind = {"cosine": CosineRecommender, "bm25": BM25Recommender}[self.variant]
        self.matrix, self.users, self.items = _matrix(train)
        self.model = kind(K=ITEM_CF_NEIGHBOURS)
        self.model.fit(self.matrix, show_progress=False)
        return self

    def recommend(self, users: Sequence[str], k: int, exclude_history: bool) -> Lists:
        rows = self.users.get_indexer(list(users))
        known = rows >= 0
        out: Lists = {u: [] for u in users}
        if not known.any():
            return out
        picked = rows[known]
        ids, scores = self.model.recommend(
            picked, self.matrix[picked], N=k, filter_already_liked_items=exclude_history
        )
        names = np.asarray(self.items)
        for user, row_ids, row_scores in zip(
            np.asarray(users)[known], ids, scores, strict=True
        ):
            good = (row_ids >= 0) & np.isfinite(row_scores)
            out[str(user)] = names[row_ids[good]].tolist()
        return out


def _features(products: pd.DataFrame, items: pd.Index) -> sparse.csr_matrix:
    """Identity + category/brand/tag tokens, each row scaled to sum 1 (LightFM's way)."""
    table = products.drop_duplicates("product_id").set_index("product_id").reindex(items)
    tokens: list[list[str]] = []
    for row in table.itertuples():
        mine = []
        for prefix, value in (("category", row.category), ("brand", row.brand)):
            if isinstance(value, str) and value:
                mine.append(f"{prefix}:{value}")
        if isinstance(row.tags, str) and row.tags:
            mine.extend(f"tag:{t}" for t in row.tags.split("|") if t)
        tokens.append(mine)
    vocabulary = {t: i for i, t in enumerate(sorted({t for ts in tokens for t in ts}))}
    rows, cols = list(range(len(items))), list(range(len(items)))
    for i, mine in enumerate(tokens):
        for token in mine:
            rows.append(i)
            cols.append(len(items) + vocabulary[token])
    matrix = sparse.csr_matrix(
        (np.ones(len(rows), dtype=np.float32), (rows, cols)),
        shape=(len(items), len(items) + len(vocabulary)),
    )
    sums = np.asarray(matrix.sum(axis=1)).ravel()
    return sparse.csr_matrix(sparse.diags(1.0 / sums) @ matrix, dtype=np.float32)


class LightFMBaseline:
    """LightFM (WARP) with item features: the extra anchor."""

    name = "lightfm"

    def __init__(self, products: pd.DataFrame, threads: int = 2) -> None:
        self.products = products
        self.threads = threads

    def fit(self, train: pd.DataFrame) -> LightFMBaseline:
        try:
            from lightfm import LightFM
        except ImportError as exc:
            raise Unavailable(
                f"lightfm is not importable ({exc}); pip install rectools-lightfm"
            ) from None
        matrix, self.users, self.items = _matrix(train)
        self.seen = matrix
        features = _features(self.products, self.items)
        interactions = sparse.coo_matrix(
            (np.ones(matrix.nnz, dtype=np.float32), matrix.nonzero()), shape=matrix.shape
        )
        model = LightFM(**LIGHTFM)
        model.fit(interactions, item_features=features, epochs=LIGHTFM_EPOCHS,
                  num_threads=self.threads)
        self.item_bias, self.item_vectors = model.get_item_representations(features)
        _, self.user_vectors = model.get_user_representations()
        return self

    def recommend(self, users: Sequence[str], k: int, exclude_history: bool) -> Lists:
        rows = self.users.get_indexer(list(users))
        out: Lists = {u: [] for u in users}
        names = np.asarray(self.items)
        block = 256
        for start in range(0, len(rows), block):
            chunk = rows[start : start + block]
            chunk_users = list(users)[start : start + block]
            mask = chunk >= 0
            if not mask.any():
                continue
            scores = self.user_vectors[chunk[mask]] @ self.item_vectors.T + self.item_bias
            if exclude_history:
                seen = self.seen[chunk[mask]].tocoo()
                scores[seen.row, seen.col] = -np.inf
            top = np.argpartition(-scores, min(k, scores.shape[1] - 1), axis=1)[:, :k]
            for i, user in enumerate(np.asarray(chunk_users)[mask]):
                best = top[i][np.argsort(-scores[i, top[i]], kind="stable")]
                best = best[np.isfinite(scores[i, best])]
                out[str(user)] = names[best].tolist()
        return out


def recommenders(shop: Shop, as_of: datetime) -> list[object]:
    """Every recommender baseline, in report order."""
    return [
        BuyAgain(),
        Popularity(as_of, shop.popularity_window_days),
        ItemCF("cosine"),
        ItemCF("bm25"),
        LightFMBaseline(shop.products),
    ]


# -- churn -------------------------------------------------------------------------------


def rfm(purchases: pd.DataFrame, at: datetime) -> pd.DataFrame:
    """lifetimes' summary in days: frequency (repeat purchase days), recency, T."""
    before = purchases.loc[purchases["ts"] < pd.Timestamp(at)]
    days = before.assign(day=before["ts"].dt.floor("D")).drop_duplicates(["user_id", "day"])
    grouped = days.groupby("user_id")["day"]
    first, last = grouped.min(), grouped.max()
    cut = pd.Timestamp(at).floor("D")
    return pd.DataFrame(
        {
            "frequency": grouped.size() - 1,
            "recency": (last - first).dt.days,
            "T": (cut - first).dt.days,
        }
    )


def recency_risk(train: pd.DataFrame, at: datetime, customers: pd.Index) -> pd.Series:
    """Days since the last purchase before T."""
    last = train.groupby("user_id")["ts"].max().reindex(customers)
    return (pd.Timestamp(at) - last).dt.total_seconds() / 86400.0


def btyd_risks(train: pd.DataFrame, at: datetime, customers: pd.Index, horizon: int
               ) -> tuple[dict[str, pd.Series], dict[str, str]]:
    """Minus the purchases BG/NBD and Pareto/NBD expect in the horizon; failures by name."""
    try:
        from lifetimes import BetaGeoFitter, ParetoNBDFitter
    except ImportError as exc:
        reason = f"lifetimes is not installed ({exc})"
        return {}, {"bg_nbd": reason, "pareto_nbd": reason}
    summary = rfm(train, at)
    out: dict[str, pd.Series] = {}
    failed: dict[str, str] = {}
    for name, fitter in (("bg_nbd", BetaGeoFitter()), ("pareto_nbd", ParetoNBDFitter())):
        try:
            fitter.fit(summary["frequency"], summary["recency"], summary["T"])
            rows = summary.loc[customers]
            expected = np.asarray(
                fitter.conditional_expected_number_of_purchases_up_to_time(
                    horizon, rows["frequency"], rows["recency"], rows["T"]
                ),
                dtype=float,
            )
        except Exception as exc:  # noqa: BLE001 - any fitting failure is reported, not raised
            message = " ".join(str(exc).split())[:120]
            failed[name] = f"fit failed: {type(exc).__name__}: {message}"
            continue
        if not np.isfinite(expected).all():
            failed[name] = "fit gave non-finite expectations (NaN)"
            continue
        out[name] = pd.Series(-expected, index=customers)
    return out, failed


def timed(call: object, *args: object) -> tuple[object, float]:
    """``call(*args)`` and its wall seconds."""
    started = time.perf_counter()
    value = call(*args)  # type: ignore[operator]
    return value, time.perf_counter() - started
