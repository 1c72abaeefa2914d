"""Recommender speed on a real catalogue: the product's daily refit beside ``implicit``.

What ``campaign recommend`` and the daemon do every day, through the product's own
functions on a split's SQLite database (imported with ``campaign import`` by
:class:`realdata.product.Product`): read the events and the catalogue, build the
feedback, fit the hybrid and rank top-10 for every active user. Beside it, in the same
run and on the same events, ``implicit``'s item-item ``CosineRecommender`` (K = 50)
fits the users × products purchase matrix and recommends top-10 for every user.

Unlike the rest of ``realdata`` this imports the product's modules: it times their
functions, not a subprocess (whose interpreter start would be counted).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import sparse

from .datasets import load
from .product import Product
from .splits import SPLITS, cut

Emit = Callable[[str], None]


@contextmanager
def _clock(name: str, found: dict[str, float]) -> Iterator[None]:
    started, cpu = time.perf_counter(), time.process_time()
    yield
    found[name] = time.perf_counter() - started
    found[f"{name}_cpu"] = time.process_time() - cpu


def database(dataset: str, split: str, workdir: Path, log: Callable[[str], None]) -> Path:
    """The split's cached product database (built through ``campaign import`` once)."""
    shop = load(dataset)
    chosen = [s for s in SPLITS[(dataset, "recommend")] if s.name == split]
    if not chosen:
        names = ", ".join(s.name for s in SPLITS[(dataset, "recommend")])
        raise SystemExit(f"--split {split!r}: not a {dataset} split (one of {names})")
    cuts = [cut(shop, s) for s in SPLITS[(dataset, "recommend")]]
    return Product(workdir, log=log).databases(shop, "recommend", cuts)[split]


def daily_refit(path: Path, emit: Emit, *, neighbours: int = 50) -> dict[str, float]:
    """Time the product's refit + top-10 for all users on ``path``, then implicit's.

    Prints ``name: value unit`` lines through ``emit`` and returns the figures.
    """
    from campaign.config.sections import RecommenderConfig
    from campaign.db.engine import make_engine
    from campaign.recommend.data import active_user_ids, load_events, newest_event_time
    from campaign.recommend.service import fit_recommender, recommend_with

    config = RecommenderConfig(neighbours=neighbours)
    engine = make_engine(f"sqlite:///{path}", create=False)
    found: dict[str, float] = {}
    with engine.connect() as connection:
        newest = newest_event_time(connection)
        assert newest is not None, f"{path}: no events"
        as_of = (pd.Timestamp(newest) + pd.Timedelta(seconds=1)).to_pydatetime()
        with _clock("product.total", found):
            with _clock("product.active_users", found):
                users = active_user_ids(connection, as_of)
            with _clock("product.fit", found):
                fitted = fit_recommender(connection, config, as_of)
            with _clock("product.top10_all_users", found):
                result = recommend_with(fitted, config, users, 10)
        # The share of reading the events, measured on its own after the run.
        weighted = {t for t, w in config.event_weights.items() if w > 0} | {"purchase"}
        with _clock("product.load_events", found):
            events = load_events(connection, as_of, types=weighted)
    engine.dispose()
    model = fitted.model
    emit(f"data.users: {len(users)} users")
    emit(f"data.products: {model.n_items_} products")
    emit(f"data.events: {len(events)} events")
    emit(f"product.recommendations: {len(result)} rows")
    emit(f"product.content_common_attributes: {model.content_.common_attributes_.size} columns")

    purchases = events.loc[events["type"] == "purchase"]
    rows = pd.Index(np.unique(purchases["user_id"])).get_indexer(purchases["user_id"])
    cols = pd.Index(model.product_ids_).get_indexer(purchases["product_id"])
    matrix = sparse.csr_matrix(
        (np.ones(rows.size, dtype=np.float32), (rows, cols)),
        shape=(int(rows.max()) + 1, model.n_items_),
    )
    matrix.sum_duplicates()
    from implicit.nearest_neighbours import CosineRecommender

    baseline = CosineRecommender(K=neighbours)
    with _clock("implicit_cosine.total", found):
        with _clock("implicit_cosine.fit", found):
            baseline.fit(matrix, show_progress=False)
        with _clock("implicit_cosine.top10_all_users", found):
            baseline.recommend(
                np.arange(matrix.shape[0]), matrix, N=10, filter_already_liked_items=True
            )
    for name in ("product.active_users", "product.fit", "product.top10_all_users",
                 "product.total", "product.load_events", "implicit_cosine.fit",
                 "implicit_cosine.top10_all_users", "implicit_cosine.total"):
        emit(f"{name}: {found[name]:.2f} s")
        emit(f"{name}_cpu: {found[f'{name}_cpu']:.2f} s")
    ratio = found["product.total"] / found["implicit_cosine.total"]
    emit(f"ratio.total_vs_implicit_cosine: {ratio:.2f} x")
    emit(
        "ratio.total_cpu_vs_implicit_cosine: "
        f"{found['product.total_cpu'] / found['implicit_cosine.total_cpu']:.2f} x"
    )
    emit(f"ratio.load_events_share: {found['product.load_events'] / found['product.total']:.2f} x")
    return found
