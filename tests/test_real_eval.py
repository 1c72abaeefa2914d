"""The real-data evaluation harness (bench/real_eval.py): its figures are right, its
splits never leak, and it drives the real CLI end to end on a generated miniature
shop (no downloads). The real datasets are evaluated by running the harness, never here.
"""

from __future__ import annotations

import math
import re
import shutil
import sqlite3
import sys
from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

# Appended, not put first: bench/ holds scripts named like standard modules
# (profile.py), which must not shadow them for the rest of the test process.
sys.path.append(str(Path(__file__).resolve().parents[1] / "bench"))

from realdata import baselines as bl  # noqa: E402
from realdata.datasets import MINI_START, Shop, miniature  # noqa: E402
from realdata.evaluate import PRODUCT, evaluate_churn, evaluate_recommend  # noqa: E402
from realdata.metrics import (  # noqa: E402
    bootstrap_mean_difference,
    bootstrap_metric_difference,
    ndcg_at_k,
    recall_at_k,
)
from realdata.product import Product, verify, write_contract  # noqa: E402
from realdata.report import lines, markdown  # noqa: E402
from realdata.splits import SPLITS, Split, cut  # noqa: E402


def test_ndcg_of_a_known_ranking() -> None:
    # Hits at ranks 1 and 3 of two targets: (1 + 1/log2 4) / (1 + 1/log2 3).
    assert ndcg_at_k(["a", "b", "c"], {"a", "c"}) == pytest.approx(1.5 / (1 + 1 / math.log2(3)))
    assert ndcg_at_k(["b", "a"], {"a"}) == pytest.approx(1 / math.log2(3))
    assert ndcg_at_k([], {"a"}) == 0.0
    # The ideal DCG is over min(|targets|, k): ten hits of twelve targets is perfect.
    ten = [f"i{n}" for n in range(10)]
    assert ndcg_at_k(ten, set(ten) | {"x", "y"}) == pytest.approx(1.0)
    # Only the top k count.
    assert ndcg_at_k([*ten, "x"], {"x"}) == 0.0
    assert recall_at_k([*ten, "x"], set(ten[:2]) | {"x", "y"}) == pytest.approx(0.5)


def _events(rows: list[tuple[str, str, int, str | None]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["user_id", "product_id", "day", "order_id"])
    frame["ts"] = pd.Timestamp(MINI_START) + pd.to_timedelta(frame.pop("day"), unit="D")
    frame["event_id"] = [f"e{i}" for i in range(len(frame))]
    frame["amount_cents"] = 100
    return frame


def test_buy_again_ranks_by_distinct_orders_then_the_latest_purchase() -> None:
    events = _events(
        [
            ("u", "z", 1, "o1"), ("u", "z", 2, "o2"), ("u", "z", 3, "o3"),
            ("u", "x", 1, "o1"), ("u", "x", 5, "o5"),
            ("u", "y", 2, "o2"), ("u", "y", 9, "o9"),
            ("u", "w", 9, "o9"), ("u", "w", 9, "o9"),  # twice in one order: one order
            ("u", "v", 4, None), ("u", "v", 6, None),  # no order id: each its own order
        ]
    )
    ranked = bl.BuyAgain().fit(events).recommend(["u", "nobody"], 10, False)
    assert ranked["u"] == ["z", "y", "v", "x", "w"]
    assert ranked["nobody"] == []
    assert bl.BuyAgain().fit(events).recommend(["u"], 10, True) == {"u": []}


def test_popularity_counts_buyers_in_the_window_and_skips_what_the_user_bought() -> None:
    events = _events(
        [("a", "old", 1, None), ("b", "old", 2, None), ("c", "old", 3, None),
         ("a", "new", 95, None), ("b", "new", 96, None), ("c", "mid", 97, None)]
    )
    as_of = MINI_START + timedelta(days=100)
    model = bl.Popularity(as_of, 28).fit(events)
    # In the window: new (2 buyers), mid (1); then old (0 in the window, 3 overall).
    assert model.recommend(["a"], 3, False)["a"] == ["new", "mid", "old"]
    assert model.recommend(["a"], 3, True)["a"] == ["mid"]
    assert bl.Popularity(as_of, None).fit(events).recommend(["z"], 1, False)["z"] == ["old"]


def test_bootstrap_intervals_contain_the_point_estimate() -> None:
    rng = np.random.default_rng(1)
    a = rng.random(300)
    b = a - 0.05 + rng.normal(0, 0.1, 300)
    low, high = bootstrap_mean_difference(a, b, resamples=500)
    assert low <= float(np.mean(a - b)) <= high
    assert low > 0  # a real difference of 0.05 on 300 pairs is resolved
    assert bootstrap_mean_difference(a, a, resamples=50) == (0.0, 0.0)
    labels = (rng.random(400) < 0.3).astype(int)
    good = labels + rng.normal(0, 0.8, 400)
    noise = rng.normal(0, 1, 400)
    low, high = bootstrap_metric_difference(labels, good, noise, resamples=100)
    from sklearn.metrics import roc_auc_score

    point = roc_auc_score(labels, good) - roc_auc_score(labels, noise)
    assert low <= point <= high
    # The fast weighted path gives sklearn's figures on the very same resamples.
    plain = bootstrap_metric_difference(
        labels, good, noise, lambda y, s: float(roc_auc_score(y, s)), resamples=100
    )
    assert plain == pytest.approx((low, high), abs=1e-12)


def test_splits_are_fixed_with_tuning_splits_first_and_apart_from_the_reported_targets() -> None:
    real = {("cj", "recommend"), ("instacart", "recommend"), ("movielens", "recommend"),
            ("cdnow", "churn"), ("cj-days", "churn")}
    assert real <= set(SPLITS)
    for key in real:
        splits = SPLITS[key]
        assert len(splits) >= 4, key
        assert [s.role for s in splits[:2]] == ["tuning", "tuning"], key
        assert all(s.role == "report" for s in splits[2:]), key
        assert len({s.name for s in splits}) == len(splits)
        tuning, report = splits[:2], splits[2:]
        if splits[0].as_of is not None:
            assert len({s.as_of for s in splits}) == len(splits)  # different dates
            assert len({s.horizon_days for s in splits}) >= 2  # and horizons
            for t in tuning:
                assert t.end is not None
                assert all(t.end <= r.as_of for r in report if r.as_of), (key, t.name)
        else:
            assert {s.leave_last for s in report} >= {5, 10, 15, 20}
            deepest = max(r.leave_last or 0 for r in report)
            assert all(t.drop_last >= deepest for t in tuning)


def test_a_cut_never_puts_a_target_event_into_what_the_product_sees() -> None:
    shop = miniature()
    for split in SPLITS[("mini", "recommend")]:
        c = cut(shop, split)
        assert (c.train["ts"] < pd.Timestamp(split.as_of)).all()
        assert (c.future["ts"] > pd.Timestamp(split.as_of)).all()
        assert (c.future["ts"] <= pd.Timestamp(split.end)).all()
    ratings = Shop("ratings", "ratings", shop.events, shop.products)
    full = cut(ratings, Split("report", leave_last=3))
    dropped = cut(ratings, Split("tuning", leave_last=3, drop_last=5))
    assert not set(full.train["event_id"]) & set(full.future["event_id"])
    sizes = ratings.events.groupby("user_id").size()
    held = full.future.groupby("user_id").size()
    assert (held == sizes.clip(upper=3).loc[held.index]).all()
    assert set(held.index) == set(sizes.index)
    newest_seen = full.train.groupby("user_id")["ts"].max()
    first_held = full.future.groupby("user_id")["ts"].min()
    assert (newest_seen.reindex(first_held.index).dropna() <= first_held.loc[
        newest_seen.index.intersection(first_held.index)]).all()
    assert full.as_of > full.train["ts"].max()
    # The tuning cut never sees (nor targets) any report target.
    seen = set(dropped.train["event_id"]) | set(dropped.future["event_id"])
    assert not seen & set(full.future["event_id"])


@pytest.mark.slow
def test_the_harness_drives_the_cli_on_a_miniature_shop_without_leaking(tmp_path: Path) -> None:
    shop = miniature()
    split = SPLITS[("mini", "recommend")][1]
    product = Product(tmp_path / "work")
    c = cut(shop, split)
    database = product.databases(shop, "recommend", [c])[split.name]
    leak = verify(database, c)
    assert (leak.events, leak.missing, leak.extra, leak.future) == (len(c.train), 0, 0, 0)
    assert leak.newest is not None and leak.newest < split.as_of

    # A database that holds one event at T is caught (planted with plain SQL).
    leaky = tmp_path / "leaky.db"
    shutil.copyfile(database, leaky)
    with sqlite3.connect(leaky) as connection:
        connection.execute(
            "INSERT INTO events (user_id, product_id, type, ts, order_id, quantity, "
            "amount_cents, source_event_id) SELECT user_id, product_id, type, ?, order_id, "
            "quantity, amount_cents, 'planted' FROM events LIMIT 1",
            (f"{split.as_of:%Y-%m-%d %H:%M:%S}.000000",),
        )
    assert verify(leaky, c).future == 1
    assert verify(leaky, c).extra == 1

    results = evaluate_recommend(shop, c, database, product, resamples=200)
    assert [r.scope for r in results] == ["repeat", "new"]
    for r in results:
        assert r.population > 0
        assert PRODUCT in r.figures and "popularity" in r.figures
        for figures in r.figures.values():
            assert 0.0 <= figures["ndcg@10"] <= 1.0
        assert r.best is not None and r.best != PRODUCT
        assert r.interval[0] <= r.difference <= r.interval[1]
    new = results[1]
    assert "buy_again" not in new.figures  # nothing to offer by construction
    assert "product_returned_past_purchases: 0 items" in new.notes

    # The churn report split has the same T: the same database serves it.
    churn_split = SPLITS[("mini", "churn")][1]
    churn_cut = cut(shop, churn_split)
    assert churn_split.as_of == split.as_of
    churn_db = database
    churn = evaluate_churn(shop, churn_cut, churn_db, product, resamples=200)
    assert 0.5 < churn.figures[PRODUCT]["roc_auc"] <= 1.0
    assert 0.5 < churn.figures["recency"]["roc_auc"] <= 1.0
    assert "product_unscored_customers: 0 users" in churn.notes

    shape = re.compile(
        r"[a-z0-9_.@+-]+: ([-+0-9.e]+|nan) (users|ratio|s|x|diff|items|share)"
        r"|[a-z0-9_.@+-]+\.skipped: .+"
    )
    printed = [line for r in [*results, churn] for line in lines(r)]
    # NaN only for a baseline that could not run (lifetimes is a bench extra), and said so.
    for line in printed:
        if ": nan " in line:
            assert line.split(":")[0].split(".")[-2] in churn.skipped, line
    assert all(shape.fullmatch(line) for line in printed), [
        line for line in printed if not shape.fullmatch(line)]
    table = markdown([*results, churn])
    assert "| split | role | users |" in table and split.name in table


def test_a_later_split_imports_new_users_whose_ids_match_known_products(tmp_path: Path) -> None:
    # Instacart's user and product ids are both small integers: the two id spaces
    # must not be mixed when a chained split writes only the new ones.
    shop = miniature()
    delta = _events([("7", "p1", 200, None), ("u1", "p2", 201, None)])
    files = write_contract(shop, delta, tmp_path, known_users={"u1"}, known_products={"7", "p1"})
    assert pd.read_csv(files["users"], dtype=str)["user_id"].tolist() == ["7"]
    assert pd.read_csv(files["products"], dtype=str)["product_id"].tolist() == ["p2"]
    events = pd.read_csv(files["events"], dtype=str)
    assert events["ts"].tolist() == ["2025-07-20T00:00:00", "2025-07-21T00:00:00"]
    assert events["amount"].tolist() == ["1.00", "1.00"]
