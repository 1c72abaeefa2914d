"""Generated shops with a planted best recommender, as event and product frames."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

END = datetime(2026, 6, 1, tzinfo=UTC)


def _frames(rows: list[tuple[int, int, datetime, str]], n_items: int, *,
            categories: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    events = pd.DataFrame(rows, columns=["user_id", "product_id", "ts", "order_id"])
    events["type"] = "purchase"
    events["quantity"] = 1
    events["ts"] = pd.to_datetime(events["ts"], utc=True)
    products = pd.DataFrame({
        "product_id": np.arange(1, n_items + 1, dtype=np.int64),
        "external_id": [f"p{i}" for i in range(1, n_items + 1)],
        "name": [f"item {i}" for i in range(1, n_items + 1)],
        "category": [f"c{i % 4}" if categories else None for i in range(1, n_items + 1)],
        "brand": None,
        "price_cents": pd.array([None] * n_items, dtype="Int64"),
        "tags": [[] for _ in range(n_items)],
        "in_stock": True,
        "url": None,
    })
    return events, products


def replenishing_shop(seed: int = 0, users: int = 80, items: int = 40, days: int = 240,
                      churners: float = 0.0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every user re-buys 12 staples, each strictly on its own cycle (20-60 days) and
    phase; nothing else. What they buy in any week is what is due that week. A share
    ``churners`` of the users stop for good somewhere in the second half."""
    rng = np.random.default_rng(seed)
    start = END - timedelta(days=days)
    rows = []
    for user in range(1, users + 1):
        staples = rng.choice(np.arange(1, items + 1), size=12, replace=False)
        stop = float(rng.uniform(days / 2, days - 40)) if rng.random() < churners else days
        for item in staples:
            cycle = int(rng.integers(20, 61))
            day = float(rng.integers(0, cycle))
            while day < stop:
                ts = start + timedelta(days=day, hours=10)
                rows.append((user, int(item), ts, f"{user}-{int(day)}"))
                day += cycle
    return _frames(rows, items, categories=False)


def copurchase_shop(seed: int = 0, users: int = 150, pairs: int = 30, days: int = 200
                    ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Items come in pairs (2i-1, 2i): whoever buys one buys its partner a few days
    later, never again, and never anything else; pairs are about equally popular."""
    rng = np.random.default_rng(seed)
    start = END - timedelta(days=days)
    rows = []
    for user in range(1, users + 1):
        for first in rng.choice(np.arange(pairs), size=4, replace=False):
            pair = (2 * int(first) + 1, 2 * int(first) + 2)
            a, b = pair if rng.random() < 0.5 else pair[::-1]
            day = float(rng.uniform(0, days - 3))
            gap = float(rng.uniform(1, 6))
            rows.append((user, a, start + timedelta(days=day), f"{user}-{a}"))
            rows.append((user, b, start + timedelta(days=day + gap), f"{user}-{b}"))
    events, products = _frames(rows, 2 * pairs, categories=False)
    return events.loc[events["ts"] < pd.Timestamp(END)].reset_index(drop=True), products
