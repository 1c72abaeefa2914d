"""The replenishment ranker, the candidates' recipes and the tournament (pure)."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from campaign.recommend.candidates import build_history
from campaign.recommend.recipe import RecipeRecommender, Settings, capped_top_k, recipe_name
from campaign.recommend.replenish import Orders, Replenishment, buy_again_scores
from campaign.recommend.tournament import default_grid, run_tournament, tournament_steps
from tests.recommend_shops import END, copurchase_shop, replenishing_shop

WEIGHTS = {"purchase": 5.0}


def _orders(lines: list[tuple[int, int, float]], shape: tuple[int, int]) -> Orders:
    rows, cols, days = zip(*lines, strict=True)
    return Orders(np.asarray(rows), np.asarray(cols), np.asarray(days, dtype=float), shape)


def _ranked(matrix: object, row: int = 0) -> list[int]:
    dense = np.asarray(matrix.toarray())[row]  # type: ignore[attr-defined]
    order = np.lexsort((np.arange(dense.size), -dense))
    return [int(c) for c in order if dense[c] > 0]


def test_an_item_due_now_outranks_a_more_frequent_item_bought_yesterday() -> None:
    # Item 0: every 14 days, last bought 13 days ago (due). Item 1: every 10 days,
    # more orders, but bought yesterday: its next purchase is 9 days away.
    lines = [(0, 0, 13.0 + 14 * i) for i in range(5)] + [(0, 1, 1.0 + 10 * i) for i in range(8)]
    orders = _orders(lines, (1, 2))
    model = Replenishment(horizon_days=3.0).fit(orders)
    assert _ranked(model.score(orders)) == [0, 1]
    # Plain buy-again ranks by orders: the frequent item first.
    assert _ranked(buy_again_scores(orders)) == [1, 0]


def test_a_dropped_staple_fades_below_a_current_one() -> None:
    # Item 0: 10 orders a week apart, the last 120 days ago (dropped). Item 1: 4
    # orders a week apart, the last 6 days ago (current).
    lines = [(0, 0, 120.0 + 7 * i) for i in range(10)] + [(0, 1, 6.0 + 7 * i) for i in range(4)]
    orders = _orders(lines, (1, 2))
    model = Replenishment(horizon_days=7.0).fit(orders)
    assert _ranked(model.score(orders)) == [1, 0]


def test_a_single_purchase_uses_the_items_population_cycle() -> None:
    # Users 1-3 buy item 0 every 30 days; user 0 bought it once, 29 days ago (due by
    # the population's cycle) and item 1 once, 2 days ago (the shop cycle is 30 too).
    lines = [(u, 0, 5.0 * u + 30 * i) for u in (1, 2, 3) for i in range(4)]
    lines += [(0, 0, 29.0), (0, 1, 2.0)]
    orders = _orders(lines, (4, 2))
    model = Replenishment(horizon_days=3.0).fit(orders)
    assert model.item_cycle_[0] == pytest.approx(30.0)
    assert _ranked(model.score(orders)) == [0, 1]


def test_without_timing_replenishment_is_plain_buy_again() -> None:
    lines = [(0, 0, 3.0), (0, 0, 40.0), (0, 1, 1.0), (0, 2, 9.0), (0, 2, 19.0), (0, 2, 29.0)]
    orders = _orders(lines, (1, 3))
    model = Replenishment(floor=1.0, half_life_days=None, repeat_share=0.0).fit(orders)
    assert _ranked(model.score(orders)) == _ranked(buy_again_scores(orders)) == [2, 0, 1]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 5), st.floats(0, 300)),
                min_size=1, max_size=40))
def test_replenishment_scores_only_bought_items_with_each_users_best_at_one(
    lines: list[tuple[int, int, float]],
) -> None:
    orders = _orders(lines, (4, 6))
    scores = Replenishment().fit(orders).score(orders).toarray()
    bought = np.zeros((4, 6), dtype=bool)
    for row, col, _day in lines:
        bought[row, col] = True
    assert np.all((scores > 0) == bought)
    assert np.all(scores <= 1.0)
    for row in np.flatnonzero(bought.any(axis=1)):
        assert scores[row].max() == pytest.approx(1.0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0.01, 5.0), min_size=1, max_size=30), st.integers(1, 6),
       st.integers(1, 3), st.lists(st.integers(0, 3), min_size=30, max_size=30))
def test_the_capped_top_k_is_the_greedy_walk_best_first(
    values: list[float], k: int, cap: int, codes: list[int]
) -> None:
    from scipy import sparse

    n = len(values)
    categories = np.asarray(codes[:n], dtype=np.int64)
    picks = capped_top_k(sparse.csr_matrix(np.asarray([values])), k, categories=categories,
                         max_per_category=cap)
    expected, used = [], {}
    for col in np.lexsort((np.arange(n), -np.asarray(values))):
        if len(expected) == k:
            break
        if used.get(int(categories[col]), 0) < cap:
            expected.append(int(col))
            used[int(categories[col])] = used.get(int(categories[col]), 0) + 1
    assert picks.cols.tolist() == expected
    assert picks.ranks.tolist() == list(range(1, len(expected) + 1))


def _tournament(events: pd.DataFrame, products: pd.DataFrame, **kwargs: object) -> object:
    return run_tournament(
        events, products, END, window_days=7, event_weights=WEIGHTS, half_life_days=60.0,
        settings=Settings(replenish={"horizon_days": 7.0}), **kwargs,  # type: ignore[arg-type]
    )


# The planted-winner shops compare the candidates every installation has: where torch is
# installed the sequence model may learn a co-purchase shop too (and win it fairly), and
# its own entry is tested below.
CLASSIC = default_grid(with_sequence=False)


def test_a_shop_that_replenishes_on_cycles_elects_replenishment() -> None:
    events, products = replenishing_shop()
    result = _tournament(events, products, grid=CLASSIC)
    winner = result.winners["repeat"]  # type: ignore[attr-defined]
    assert next(iter(winner)) == "replenish"
    assert result.figure("repeat", winner) > 1.2 * result.figure(  # type: ignore[attr-defined]
        "repeat", {"buy_again": 1.0}
    )


def test_a_shop_driven_by_copurchases_elects_item_cf() -> None:
    events, products = copurchase_shop()
    result = _tournament(events, products, grid=CLASSIC)
    for scope in ("repeat", "new"):
        winner = result.winners[scope]  # type: ignore[attr-defined]
        assert "item_cf" in winner or winner == {"hybrid": 1.0}, (scope, winner)
        cf = result.figure(scope, {"item_cf": 1.0})  # type: ignore[attr-defined]
        assert cf > 2 * result.figure(scope, {"popular": 1.0})  # type: ignore[attr-defined]


def test_nothing_from_the_validation_window_enters_a_fit() -> None:
    events, products = copurchase_shop()
    cut = pd.Timestamp(END - timedelta(days=7))
    # A product sold only inside the window, to everybody.
    late = pd.DataFrame({
        "user_id": np.arange(1, 151), "product_id": 1000, "type": "purchase",
        "ts": cut + pd.Timedelta(days=2), "quantity": 1, "order_id": "late",
    })
    with_late = pd.concat([events, late], ignore_index=True)
    catalogue = pd.concat([products, pd.DataFrame({"product_id": [1000], "name": ["late"]})],
                          ignore_index=True)
    result = _tournament(with_late, catalogue, grid={"repeat": [{"popular": 1.0}],
                                                    "new": [{"item_cf": 1.0}]})
    history = result.components["popular"].history_  # type: ignore[attr-defined]
    assert history.as_of == cut.to_pydatetime()
    assert pd.Timestamp(history.feedback.as_of) == cut
    column = int(np.flatnonzero(history.feedback.product_ids == 1000)[0])
    assert result.components["popular"].popularity_[column] == 0  # type: ignore[attr-defined]
    assert history.feedback.interactions[:, column].nnz == 0
    # Without the window's events the fitted state is the same.
    alone = _tournament(events.loc[events["ts"] < cut], catalogue,
                        grid={"repeat": [{"popular": 1.0}], "new": [{"item_cf": 1.0}]})
    same = alone.components["item_cf"].neighbourhood_.similarity  # type: ignore[attr-defined]
    fitted = result.components["item_cf"].neighbourhood_.similarity  # type: ignore[attr-defined]
    assert (same != fitted).nnz == 0


def test_the_tournament_reports_progress_with_its_total() -> None:
    events, products = copurchase_shop(users=40)
    grid = {"repeat": [{"replenish": 1.0}, {"replenish": 1.0, "item_cf": 0.3}],
            "new": [{"popular": 1.0}]}
    seen: list[int] = []

    class Bar:
        total = 0

        def set_total(self, total: int) -> None:
            Bar.total = total

        def __call__(self, n: int) -> None:
            seen.append(n)

    _tournament(events, products, grid=grid, progress=Bar())
    assert Bar.total == tournament_steps(grid) == sum(seen)


def test_the_default_grid_names_every_recipe_once() -> None:
    grid = default_grid(with_sequence=False)
    for recipes in grid.values():
        names = [recipe_name(r) for r in recipes]
        assert len(names) == len(set(names))
    assert {"replenish": 1.0} in grid["repeat"] and {"item_cf": 1.0} in grid["new"]


def test_a_fitted_recipe_fills_short_lists_and_gives_every_pick_a_reason() -> None:
    events, products = copurchase_shop(users=60)
    history = build_history(events, products, END, WEIGHTS, 60.0)
    model = RecipeRecommender(
        {"repeat": {"replenish": 1.0, "item_cf": 0.3}, "new": {"item_cf": 1.0}},
        max_per_category=None,
    ).fit(history)
    users = np.r_[history.feedback.user_ids[:5], 99999]  # the last one has no history
    repeat = model.recommend(users, 10, allow_repurchase=True)
    new = model.recommend(users, 10, allow_repurchase=False)
    for frame in (repeat, new):
        assert frame.groupby("user_id").size().eq(10).all()
        assert frame["reason"].str.len().gt(0).all()
    assert set(new.loc[new["user_id"] == 99999, "reason"]) == {"popular now"}
    assert "buy again" in set(repeat["reason"])
    assert any(r.startswith("because you bought item ") for r in new["reason"])
    bought = events.groupby("user_id")["product_id"].apply(set)
    for row in new.itertuples():
        assert row.product_id not in bought.get(row.user_id, set())


def test_the_hybrid_candidate_reuses_the_neighbours_fitted_before_it() -> None:
    from campaign.recommend.recipe import build_component, fit_components

    events, products = copurchase_shop(users=60)
    history = build_history(events, products, END, WEIGHTS, 60.0)
    shared = fit_components(["item_cf", "content", "hybrid"], Settings(), history)
    alone = build_component("hybrid", Settings()).fit(history)
    hybrid = shared["hybrid"].model_  # type: ignore[attr-defined]
    assert hybrid.itemcf_ is shared["item_cf"].neighbourhood_.model  # type: ignore[attr-defined]
    assert hybrid.content_ is shared["content"].neighbourhood_.model  # type: ignore[attr-defined]
    rows = np.arange(history.feedback.n_users)
    for repeat in (True, False):
        ours = shared["hybrid"].scores(rows, 10, None, repeat=repeat)
        theirs = alone.scores(rows, 10, None, repeat=repeat)
        assert (ours != theirs).nnz == 0


def test_the_sequence_model_enters_the_tournament_where_it_imports() -> None:
    pytest.importorskip("torch", reason="the sequence model needs the [deep] extra (torch)")
    pytest.importorskip("campaign.recommend.sequence", reason="no sequence model module")
    events, products = copurchase_shop(users=60)
    grid = {"repeat": [{"replenish": 1.0}, {"replenish": 1.0, "sequence": 0.3}],
            "new": [{"popular": 1.0}, {"sequence": 1.0}]}
    result = _tournament(events, products, grid=grid)
    assert result.figure("new", {"sequence": 1.0}) is not None  # type: ignore[attr-defined]
    history = build_history(events, products, END, WEIGHTS, 60.0)
    model = RecipeRecommender({"repeat": {"sequence": 1.0}, "new": {"sequence": 1.0}},
                              max_per_category=None).fit(history)
    picks = model.recommend(history.feedback.user_ids[:5], 5, allow_repurchase=False)
    assert picks["reason"].str.len().gt(0).all()
    assert "sequence" in default_grid(with_sequence=True)["new"][-1]
