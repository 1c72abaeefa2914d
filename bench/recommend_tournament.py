"""The recommender tournament on the real datasets' splits, in process (quick to rerun).

For each split (T, h) of ``bench/realdata/splits.py`` the tournament of
``campaign.recommend.tournament`` runs as of T + h with a window of h days: every
recipe is fitted on the events before T and judged on the purchases in [T, T + h),
which is the split the real-data harness judges (its window is (T, T + h]). Use it to
choose settings on the tuning splits; the harness (``bench/real_eval.py``) reports.

Prints ``name: value unit`` lines: each recipe's NDCG@10 per split and scope, its
ratio to plain buy-again (repeat) or to the best of popularity and item-CF (new), the
winner's, and the seconds of the tournament beside one refit + top-10 of the winner.

Usage: ``nice .venv/bin/python bench/recommend_tournament.py [--dataset cj|instacart]
[--role tuning|report] [--split NAME] [--cap N|0]``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

from realdata.datasets import load  # noqa: E402
from realdata.splits import SPLITS  # noqa: E402

from campaign.recommend.candidates import build_history  # noqa: E402
from campaign.recommend.recipe import RecipeRecommender, Settings  # noqa: E402
from campaign.recommend.tournament import run_tournament  # noqa: E402
from campaign.recommend.training import REPLENISH_VARIANTS  # noqa: E402

WEIGHTS = {"purchase": 5.0}


class Steps:
    """Progress on stderr: each step with the seconds since the start."""

    def __init__(self, where: str) -> None:
        self.where, self.done, self.total = where, 0, 0
        self.started = time.perf_counter()

    def set_total(self, total: int) -> None:
        self.total = total

    def __call__(self, n: int) -> None:
        self.done += n
        print(f"[{time.perf_counter() - self.started:6.0f} s] {self.where} "
              f"{self.done}/{self.total}", file=sys.stderr, flush=True)


def internal(shop_events: pd.DataFrame, shop_products: pd.DataFrame
             ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The shop's events and products with integer ids, as the product's frames."""
    users = pd.Index(pd.unique(shop_events["user_id"]))
    items = pd.Index(pd.unique(pd.concat([shop_products["product_id"],
                                          shop_events["product_id"].dropna()])))
    events = pd.DataFrame({
        "user_id": users.get_indexer(shop_events["user_id"]).astype(np.int64),
        "product_id": items.get_indexer(shop_events["product_id"]).astype(np.int64),
        "type": "purchase",
        "ts": shop_events["ts"],
        "quantity": 1,
        "order_id": shop_events["order_id"],
    })
    products = shop_products.assign(
        product_id=items.get_indexer(shop_products["product_id"]).astype(np.int64),
        external_id=shop_products["product_id"],
    )
    missing = np.setdiff1d(np.arange(len(items)), products["product_id"])
    products = pd.concat([products, pd.DataFrame({"product_id": missing,
                                                  "external_id": items[missing]})])
    return events, products.reset_index(drop=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", action="append", choices=["cj", "instacart"])
    parser.add_argument("--role", choices=["tuning", "report"], default="tuning")
    parser.add_argument("--split", action="append")
    parser.add_argument("--cap", type=int, default=3, help="max per category (0: none)")
    parser.add_argument("--show", type=int, default=12, help="recipes shown per scope")
    args = parser.parse_args()
    cap = args.cap or None
    for dataset in args.dataset or ["cj", "instacart"]:
        started = time.perf_counter()
        shop = load(dataset)
        events, products = internal(shop.events, shop.products)
        print(f"{dataset}: loaded in {time.perf_counter() - started:.0f} s", file=sys.stderr)
        for split in SPLITS[(dataset, "recommend")]:
            if split.role != args.role or (args.split and split.name not in args.split):
                continue
            assert split.as_of is not None and split.horizon_days is not None
            end = split.end
            assert end is not None
            seen = events.loc[events["ts"] < pd.Timestamp(end)]
            started = time.perf_counter()
            result = run_tournament(
                seen, products, end, window_days=split.horizon_days,
                event_weights=WEIGHTS, half_life_days=60.0,
                settings=Settings(replenish={"horizon_days": float(split.horizon_days)},
                                  replenish_variants=REPLENISH_VARIANTS),
                max_users=None, max_per_category=cap, progress=Steps(f"{dataset} {split.name}"),
            )
            took = time.perf_counter() - started
            prefix = f"{dataset}.{split.name}"
            for scope in ("repeat", "new"):
                table = result.table.loc[result.table["scope"] == scope]
                figures = dict(zip(table["recipe"], table["ndcg"], strict=True))
                anchor = (figures["buy_again"] if scope == "repeat"
                          else max(figures["popular"], figures["item_cf"]))
                for row in table.head(args.show).itertuples():
                    print(f"{prefix}.{scope}.{row.recipe}: {row.ndcg:.4f} ndcg@10 "
                          f"({row.ndcg / anchor:.3f}x, {row.users} users)")
                for name in [*figures]:
                    if not name.startswith("replenish("):
                        continue
                    print(f"{prefix}.{scope}.{name}: {figures[name]:.4f} ndcg@10 "
                          f"({figures[name] / anchor:.3f}x)")
                for name in ("buy_again", "replenish", "popular", "item_cf", "hybrid"):
                    if name in figures:
                        print(f"{prefix}.{scope}.{name}: {figures[name]:.4f} ndcg@10 "
                              f"({figures[name] / anchor:.3f}x)")
            # One refit + top-10 of the winners at T + h (what recommend does daily).
            started = time.perf_counter()
            history = build_history(seen, products, end, WEIGHTS, 60.0)
            chosen = Settings(replenish=result.replenish)
            model = RecipeRecommender(result.winners, chosen, max_per_category=cap).fit(history)
            model.recommend(history.feedback.user_ids, 10, allow_repurchase=True)
            refit = time.perf_counter() - started
            print(f"{prefix}.winners: {result.winners}")
            print(f"{prefix}.tournament.seconds: {took:.1f} s")
            print(f"{prefix}.refit_recommend.seconds: {refit:.1f} s "
                  f"(tournament {took / refit:.1f}x)", flush=True)


if __name__ == "__main__":
    main()
