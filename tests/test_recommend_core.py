"""The pure recommender: feedback, filters, cold start, diversity, reasons, blend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import sparse

from campaign.recommend import kernels
from campaign.recommend.evaluate import evaluate_recommenders, ranking_metrics
from campaign.recommend.feedback import Feedback, build_feedback
from campaign.recommend.hybrid import HybridRecommender
from campaign.recommend.itemcf import top_neighbours
from campaign.recommend.ranking import apply_filters, top_k

AS_OF = datetime(2026, 6, 1, tzinfo=UTC)
WEIGHTS = {"view": 1.0, "cart": 3.0, "purchase": 5.0}
NO_CONTENT: dict[str, float] = {}

# id → (name, category, brand, tags, price_cents, in_stock)
CATALOGUE = {
    1: ("Trail Runner", "shoes", "Acme", ["running"], 8000, True),
    2: ("Road Runner", "shoes", "Acme", ["running"], 9000, True),
    3: ("Court Sneaker", "shoes", "Bolt", ["tennis"], 7000, True),
    4: ("Wool Beanie", "hats", "Knit", ["winter"], 2000, True),
    5: ("Sun Hat", "hats", "Knit", ["summer"], 2500, True),
    6: ("Canvas Tote", "bags", "Carry", ["summer"], 3000, True),
    7: ("Leather Bag", "bags", "Carry", ["office"], 12000, True),
    8: ("Trail Runner Pro", "shoes", "Acme", ["running"], 8500, True),
    9: ("Sold Out Cap", "hats", "Knit", ["summer"], 1500, False),
    10: ("Toy Robot", "toys", "Play", ["kids"], 4000, True),
}


def products() -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "product_id": pid,
                "external_id": f"p{pid}",
                "name": name,
                "category": category,
                "brand": brand,
                "tags": tags,
                "price_cents": price,
                "in_stock": stock,
            }
            for pid, (name, category, brand, tags, price, stock) in CATALOGUE.items()
        ]
    )


def events(*rows: tuple[int, int, str, float]) -> pd.DataFrame:
    """(user, product, type, days before AS_OF) rows."""
    return pd.DataFrame(
        [
            {
                "user_id": u,
                "product_id": p,
                "type": t,
                "ts": AS_OF - timedelta(days=d),
                "quantity": 1,
            }
            for u, p, t, d in rows
        ]
    )


def crowd() -> list[tuple[int, int, str, float]]:
    """Many shoppers buy 1 with 2; hats 4 and 5 are popular; 10 is the global hit."""
    rows: list[tuple[int, int, str, float]] = []
    for u in range(100, 130):
        rows += [(u, 1, "purchase", 20), (u, 2, "purchase", 10)]
    for u in range(130, 150):
        rows += [(u, 4, "purchase", 15), (u, 3, "view", 5)]
    for u in range(150, 160):
        rows += [(u, 5, "purchase", 15)]
    for u in range(100, 200):
        rows += [(u, 10, "view", 3)]
    return rows


def fit(
    rows: list[tuple[int, int, str, float]], **params: object
) -> tuple[HybridRecommender, object]:
    feedback = build_feedback(events(*rows), list(CATALOGUE), AS_OF, WEIGHTS, 60.0)
    model = HybridRecommender(**params).fit(feedback, products())  # type: ignore[arg-type]
    return model, feedback


def recommend(model: HybridRecommender, feedback: object, users: list[int], k: int = 5,
              **options: object) -> pd.DataFrame:
    return model.recommend(feedback.rows_for(users), k, **options)  # type: ignore[attr-defined]


def test_feedback_ignores_events_at_or_after_as_of_and_decays_with_half_life() -> None:
    rows = events(
        (1, 1, "view", 60), (1, 2, "cart", 1e-9), (1, 3, "view", 0), (1, 4, "purchase", -1)
    )
    feedback = build_feedback(rows, list(CATALOGUE), AS_OF, WEIGHTS, 60.0)
    dense = feedback.interactions.toarray()
    assert dense[0, 0] == pytest.approx(0.5)
    assert dense[0, 1] == pytest.approx(3.0)
    assert dense[0, 2] == 0.0
    assert dense[0, 3] == 0.0
    assert feedback.purchases.nnz == 0


def test_already_bought_products_are_never_recommended_without_repurchase() -> None:
    model, feedback = fit(crowd() + [(1, 1, "purchase", 5)])
    result = recommend(model, feedback, [1], k=9)
    assert 1 not in set(result["product_id"])
    assert 2 in set(result["product_id"])


def test_repurchase_is_allowed_only_after_the_window_has_passed() -> None:
    model, feedback = fit(crowd() + [(1, 4, "purchase", 10)])
    inside = recommend(model, feedback, [1], k=9, allow_repurchase=True,
                       repurchase_window_days=30)
    assert 4 not in set(inside["product_id"])
    after = recommend(model, feedback, [1], k=9, allow_repurchase=True,
                      repurchase_window_days=5)
    row = after.loc[after["product_id"] == 4].iloc[0]
    assert row["rank"] == 1
    assert row["reason"] == "buy again"


def test_out_of_stock_products_are_never_recommended() -> None:
    model, feedback = fit(crowd() + [(1, 5, "view", 1), (2, 9, "purchase", 3)])
    for user in (1, 2, 999):
        assert 9 not in set(recommend(model, feedback, [user], k=9)["product_id"])


def test_excluded_categories_are_never_recommended() -> None:
    model, feedback = fit(crowd() + [(1, 4, "view", 1)])
    result = recommend(model, feedback, [1, 999], k=9, excluded_categories=["Hats"])
    assert not set(result["product_id"]) & {4, 5, 9}
    assert len(result) > 0


def test_cold_start_user_gets_popular_in_category_then_global() -> None:
    # User 1 only bought product 7 (bags), which nobody else touched: no CF signal.
    model, feedback = fit(crowd() + [(1, 7, "purchase", 1)], field_weights=NO_CONTENT)
    result = recommend(model, feedback, [1], k=5)
    first = result.iloc[0]
    assert first["product_id"] == 6
    assert first["reason"] == "popular in bags"
    rest = result.iloc[1:]
    assert (rest["reason"] == "popular now").all()
    by_popularity = [
        int(model.product_ids_[i])
        for i in np.argsort(-model.popularity_.popularity_, kind="stable")
        if model.product_ids_[i] not in (6, 7, 9)
    ]
    assert rest["product_id"].tolist() == by_popularity[: len(rest)]


def test_user_with_no_history_gets_global_popularity() -> None:
    model, feedback = fit(crowd())
    result = recommend(model, feedback, [999], k=3)
    assert result["product_id"].iloc[0] == model.product_ids_[
        np.argmax(model.popularity_.popularity_)
    ]
    assert set(result["reason"]) == {"popular now"}


def test_reasons_name_the_product_behind_each_recommendation() -> None:
    model, feedback = fit(
        crowd() + [(1, 1, "purchase", 5), (2, 4, "view", 1)],
        content_weight=0.0,
        user_history_half=0.01,
    )
    bought = recommend(model, feedback, [1], k=9).set_index("product_id")["reason"]
    assert bought[2] == "because you bought Trail Runner"
    # 8 has no history at all: only its attributes link it to what user 1 bought.
    assert bought[8] == "similar to Trail Runner you bought"
    viewed = recommend(model, feedback, [2], k=9).set_index("product_id")["reason"]
    assert viewed[3] == "because you viewed Wool Beanie"


def test_blend_shifts_fully_to_content_for_items_without_history() -> None:
    model, feedback = fit(crowd() + [(1, 1, "purchase", 5)])
    assert model.item_confidence_[7] == 0.0  # product 8 (column 7) has no history
    assert model.item_confidence_[0] > model.item_confidence_[4] > 0.0
    rows = feedback.rows_for([1])
    scores = model.score_block(rows, allow_repurchase=False)
    _blend, top = model.blend(rows)
    content = (model._profile(rows.interactions) @ model.content_.similarity_).toarray()
    popular = model.popularity_weight * model.popularity_.score(rows.interactions)
    assert scores[0, 7] == pytest.approx(content[0, 7] / top[0] + popular[0, 7])


def test_cold_users_lean_on_content_more_than_warm_users() -> None:
    model, feedback = fit(crowd())
    light = feedback.rows_for([150])  # one product
    heavy = feedback.rows_for([100])  # three products
    assert model._user_confidence(light.interactions)[0] < model._user_confidence(
        heavy.interactions
    )[0]


def test_diversity_cap_limits_products_per_category() -> None:
    model, feedback = fit(crowd() + [(1, 1, "view", 1)], max_per_category=1)
    result = recommend(model, feedback, [1, 100, 999], k=5)
    per_category = result.assign(
        category=result["product_id"].map({p: v[1] for p, v in CATALOGUE.items()})
    ).groupby(["user_id", "category"]).size()
    assert per_category.max() == 1


def test_same_data_gives_the_same_recommendations() -> None:
    first = recommend(*fit(crowd() + [(1, 1, "view", 1)]), [1, 2, 100, 999], k=5)
    second = recommend(*fit(crowd() + [(1, 1, "view", 1)]), [1, 2, 100, 999], k=5)
    pd.testing.assert_frame_equal(first, second)


@settings(max_examples=60, deadline=None)
@given(
    data=st.data(),
    n_rows=st.integers(1, 6),
    n_items=st.integers(1, 40),
    k=st.integers(1, 12),
    cap=st.integers(1, 4),
)
def test_top_k_is_sorted_capped_and_never_picks_filtered_cells(
    data: st.DataObject, n_rows: int, n_items: int, k: int, cap: int
) -> None:
    scores = np.array(
        data.draw(
            st.lists(
                st.lists(st.sampled_from([0.0, 0.1, 0.5, 0.9, 1.0, 2.0, -np.inf]),
                         min_size=n_items, max_size=n_items),
                min_size=n_rows, max_size=n_rows,
            )
        ),
        dtype=np.float32,
    )
    categories = np.array(
        data.draw(st.lists(st.integers(-1, 3), min_size=n_items, max_size=n_items))
    )
    chosen = top_k(scores, k, categories=categories, max_per_category=cap)
    frame = pd.DataFrame(
        {"row": chosen.rows, "col": chosen.cols, "score": chosen.scores, "rank": chosen.ranks}
    )
    assert (frame["score"] > 0).all() and np.isfinite(frame["score"]).all()
    for row, group in frame.groupby("row"):
        assert group["rank"].tolist() == list(range(1, len(group) + 1))
        assert group["score"].is_monotonic_decreasing
        cats = categories[group["col"].to_numpy()]
        counts = pd.Series(cats[cats >= 0]).value_counts()
        assert counts.empty or counts.max() <= cap
        assert len(group) <= k
        assert group["col"].is_unique
        # Nothing better was skipped except for the cap.
        eligible = int(((scores[row] > 0) & np.isfinite(scores[row])).sum())
        assert len(group) == k or len(group) <= eligible


def test_ranking_metrics_match_hand_computed_values() -> None:
    recommended = pd.DataFrame(
        {"user_id": [1, 1, 1, 2], "product_id": [10, 11, 12, 20], "rank": [1, 2, 3, 1]}
    )
    targets = pd.DataFrame({"user_id": [1, 1, 2], "product_id": [11, 13, 21]})
    metrics = ranking_metrics(recommended, targets, k=3, n_items=10)
    assert metrics["recall"] == pytest.approx((1 / 2 + 0) / 2)
    ideal = 1 + 1 / np.log2(3)
    assert metrics["ndcg"] == pytest.approx(((1 / np.log2(3)) / ideal + 0) / 2)
    assert metrics["coverage"] == pytest.approx(4 / 10)


def test_evaluation_reports_every_model_on_both_scopes_without_peeking() -> None:
    history = crowd() + [(1, 1, "purchase", 5), (1, 4, "purchase", 40)]
    future = events((1, 2, "purchase", -3), (1, 4, "purchase", -4), (100, 10, "purchase", -2))
    result = evaluate_recommenders(
        pd.concat([events(*history), future], ignore_index=True),
        products(),
        AS_OF,
        HybridRecommender(),
        event_weights=WEIGHTS,
        half_life_days=60.0,
        k=3,
    )
    table = result.metrics.set_index(["scope", "model"])
    assert set(table.index) == {
        (s, m) for s in ("all", "new") for m in ("popularity", "item-cf", "buy-again", "hybrid")
    }
    assert result.target_users == {"all": 2, "new": 2}
    assert table.loc[("new", "buy-again"), "recall"] == 0.0
    # User 1 bought 2 (co-bought with 1) and 4 again: buy-again alone misses 2.
    assert table.loc[("all", "hybrid"), "recall"] > table.loc[("all", "buy-again"), "recall"]
    assert sparse.issparse(build_feedback(future, list(CATALOGUE), AS_OF, WEIGHTS, 60).purchases)


def random_shop(seed: int, n_users: int = 60) -> tuple[HybridRecommender, object]:
    """Random views and purchases over the test catalogue (a few cold users too)."""
    rng = np.random.default_rng(seed)
    rows = [
        (int(u), int(p), str(t), float(d))
        for u, p, t, d in zip(
            rng.integers(1, n_users, 400),
            rng.choice(list(CATALOGUE), 400, p=np.linspace(2, 1, len(CATALOGUE)) / 15),
            rng.choice(["view", "cart", "purchase"], 400),
            rng.uniform(0, 200, 400),
            strict=True,
        )
    ]
    return fit(rows)


def test_each_users_blend_is_scaled_to_a_best_item_of_one() -> None:
    model, feedback = random_shop(3)
    rows = feedback.rows_for(list(range(1, 70)))
    blend, top = model.blend(rows)
    dense = blend.toarray()
    has_history = np.diff(rows.interactions.indptr) > 0
    assert dense.min() >= 0.0
    assert np.allclose(dense.max(axis=1)[has_history], 1.0)
    assert (dense[~has_history] == 0).all() and (top[~has_history] == 0).all()


def test_scaling_a_users_history_changes_none_of_their_scores() -> None:
    # Only the shape of a history matters, not its size: a heavy and a light user
    # with the same mix get the same blend.
    model, feedback = random_shop(4)
    rows = feedback.rows_for([5, 6])
    louder = type(rows)(**{**rows.__dict__, "interactions": rows.interactions * 7.0})
    np.testing.assert_allclose(
        model.score_block(louder, allow_repurchase=False),
        model.score_block(rows, allow_repurchase=False),
        rtol=1e-5,
    )


def assert_ranking_matches_the_dense_reference(
    model: HybridRecommender, rows: Feedback, k: int, *, repurchase: bool,
    excluded: tuple[str, ...] = (),
) -> None:
    """The compiled ranking (candidates only) equals filtering and ranking the dense
    score of every item (:meth:`HybridRecommender.score_block`)."""
    allowed = model.item_allowed(excluded)
    candidates = model.popularity_candidates(allowed, k + 20)
    ours = model.rank_block(
        rows, k, allowed=allowed, allow_repurchase=repurchase, repurchase_window_days=30,
        candidates=candidates,
    )
    dense = model.score_block(rows, allow_repurchase=repurchase)
    apply_filters(dense, rows.days_since_purchase, allowed, allow_repurchase=repurchase,
                  repurchase_window_days=30)
    reference = top_k(
        dense, k, categories=model.category_codes_, max_per_category=model.max_per_category
    )
    np.testing.assert_array_equal(ours.rows, reference.rows)
    np.testing.assert_array_equal(ours.cols, reference.cols)
    np.testing.assert_array_equal(ours.ranks, reference.ranks)
    np.testing.assert_allclose(ours.scores, reference.scores, rtol=1e-6)


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("repurchase", [False, True])
@pytest.mark.parametrize("cap", [None, 2])
def test_compiled_ranking_matches_the_dense_reference(
    seed: int, repurchase: bool, cap: int | None
) -> None:
    model, feedback = random_shop(seed)
    model.max_per_category = cap
    assert_ranking_matches_the_dense_reference(
        model, feedback.rows_for(list(range(1, 70))), 3, repurchase=repurchase
    )


def large_shop(
    seed: int, n_items: int = 600, n_categories: int = 25, **params: object
) -> tuple[HybridRecommender, Feedback]:
    """600 products in 25 categories (some out of stock, some uncategorised) and 400
    users with Zipf-like tastes: most items are reached only by the fallback."""
    rng = np.random.default_rng(seed)
    category = rng.integers(-1, n_categories, n_items)
    catalogue = pd.DataFrame(
        {
            "product_id": np.arange(1, n_items + 1),
            "name": [f"item {i}" for i in range(n_items)],
            "category": [f"c{c}" if c >= 0 else None for c in category],
            "brand": [f"b{b}" for b in rng.integers(0, 40, n_items)],
            "tags": [[f"t{t}"] for t in rng.integers(0, 60, n_items)],
            "price_cents": rng.integers(100, 20_000, n_items),
            "in_stock": rng.random(n_items) > 0.1,
        }
    )
    weights = 1.0 / np.arange(1, n_items + 1) ** 0.8
    n_events = 6_000
    history = pd.DataFrame(
        {
            "user_id": rng.integers(1, 401, n_events),
            "product_id": rng.choice(n_items, n_events, p=weights / weights.sum()) + 1,
            "type": rng.choice(["view", "cart", "purchase"], n_events, p=[0.6, 0.2, 0.2]),
            "ts": [AS_OF - timedelta(days=float(d)) for d in rng.uniform(0, 300, n_events)],
            "quantity": 1,
        }
    )
    feedback = build_feedback(history, catalogue["product_id"].to_numpy(), AS_OF, WEIGHTS, 60.0)
    model = HybridRecommender(**{"max_per_category": 2, **params})  # type: ignore[arg-type]
    return model.fit(feedback, catalogue), feedback


@pytest.mark.parametrize("seed", [1, 2])
@pytest.mark.parametrize("repurchase", [False, True])
def test_compiled_ranking_matches_the_dense_reference_on_a_large_catalogue(
    seed: int, repurchase: bool
) -> None:
    model, feedback = large_shop(seed)
    # Users 401-420 have no history: global popularity only.
    rows = feedback.rows_for(np.arange(1, 421))
    assert_ranking_matches_the_dense_reference(model, rows, 10, repurchase=repurchase)
    assert_ranking_matches_the_dense_reference(
        model, rows, 4, repurchase=repurchase, excluded=("c3", "c7")
    )


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n_items=st.integers(5, 120),
    n_categories=st.integers(1, 8),
    k=st.integers(1, 12),
    cap=st.one_of(st.none(), st.integers(1, 3)),
    repurchase=st.booleans(),
    window=st.sampled_from([0.0, 30.0, 1000.0]),
    content_weight=st.sampled_from([0.0, 0.1, 0.7]),
    popularity_weight=st.sampled_from([0.0, 0.3, 5.0]),
    profile_power=st.sampled_from([0.0, 0.25, 1.0]),
)
def test_compiled_ranking_is_the_greedy_ranking_of_the_dense_scores(
    seed: int, n_items: int, n_categories: int, k: int, cap: int | None, repurchase: bool,
    window: float, content_weight: float, popularity_weight: float, profile_power: float,
) -> None:
    # Every setting at once, on shops small enough that the fallback reaches every
    # item: the compiled ranking must be the greedy capped walk over the dense
    # reference scores of the whole catalogue, after the filters.
    model, feedback = large_shop(
        seed, n_items, n_categories, max_per_category=cap, content_weight=content_weight,
        popularity_weight=popularity_weight, profile_power=profile_power,
    )
    rows = feedback.rows_for(np.arange(1, 61))
    allowed = model.item_allowed()
    ours = model.rank_block(
        rows, k, allowed=allowed, allow_repurchase=repurchase,
        repurchase_window_days=window, candidates=model.popularity_candidates(allowed, n_items),
    )
    dense = model.score_block(rows, allow_repurchase=repurchase)
    apply_filters(dense, rows.days_since_purchase, allowed, allow_repurchase=repurchase,
                  repurchase_window_days=window)
    limit = n_items if cap is None else cap
    for row in range(rows.n_users):
        picked = ours.cols[ours.rows == row]
        expected = greedy_capped(np.nan_to_num(dense[row], neginf=0.0), model.category_codes_,
                                 k, limit)
        # Equal up to float rounding: the same items, or, where two are swapped, ties.
        assert len(picked) == len(expected), f"row {row}: {picked} != {expected}"
        np.testing.assert_allclose(dense[row][picked], dense[row][expected], rtol=1e-5)
        assert ours.ranks[ours.rows == row].tolist() == list(range(1, len(picked) + 1))


def test_each_pick_is_explained_by_its_largest_score_component() -> None:
    model, feedback = large_shop(3)
    rows = feedback.rows_for(np.arange(1, 401))
    chosen = model.rank_block(
        rows, 10, allowed=model.item_allowed(), allow_repurchase=True,
        repurchase_window_days=0.0,
        candidates=model.popularity_candidates(model.item_allowed(), 30),
    )
    blend, _top = model.blend(rows)
    blended = np.asarray(blend[chosen.rows, chosen.cols]).ravel()
    again = np.asarray(
        model.buy_again_.score(rows.purchases, rows.purchase_counts)[chosen.rows, chosen.cols]
    ).ravel() * model.buy_again_weight
    kinds = chosen.kinds
    assert set(np.unique(kinds)) >= {kernels.KIND_BUY_AGAIN, kernels.KIND_POPULAR_IN}
    assert (again[kinds == kernels.KIND_BUY_AGAIN] > 0).all()
    item_kinds = np.isin(kinds, list(range(4)))
    # An item reason needs a blend score; its anchor is a product the user touched.
    assert (blended[item_kinds] > 0).all()
    touched = np.asarray(rows.interactions[chosen.rows, chosen.anchors]).ravel()
    assert (touched[item_kinds] > 0).all()
    bought = np.asarray(rows.purchases[chosen.rows, chosen.anchors]).ravel() > 0
    said_bought = np.isin(kinds, [kernels.KIND_BOUGHT, kernels.KIND_SIMILAR_BOUGHT])
    assert (bought[item_kinds] == said_bought[item_kinds]).all()
    # "Popular in Y" names the pick's own category.
    popular_in = kinds == kernels.KIND_POPULAR_IN
    assert (
        model.category_codes_[chosen.cols[popular_in]] == chosen.anchors[popular_in]
    ).all()
    texts = model.reason_texts(kinds, chosen.anchors)
    assert texts[kinds == kernels.KIND_BUY_AGAIN].tolist() == ["buy again"] * int(
        (kinds == kernels.KIND_BUY_AGAIN).sum()
    )


@settings(max_examples=60, deadline=None)
@given(
    data=st.data(), n_rows=st.integers(1, 5), n_cols=st.integers(1, 30), k=st.integers(1, 8)
)
def test_top_neighbours_keeps_the_k_best_positive_entries_of_each_row(
    data: st.DataObject, n_rows: int, n_cols: int, k: int
) -> None:
    values = np.array(
        data.draw(
            st.lists(
                st.lists(st.sampled_from([0.0, 0.001, 0.1, 0.5, 0.5, 0.9, 3.0, -1.0]),
                         min_size=n_cols, max_size=n_cols),
                min_size=n_rows, max_size=n_rows,
            )
        ),
        dtype=np.float32,
    )
    # Times the identity: the product is the matrix itself, so only the selection acts.
    identity = sparse.identity(n_cols, dtype=np.float32, format="csr")
    kept = top_neighbours(sparse.csr_matrix(values), identity, k, exclude_self=False).toarray()
    for row, out in zip(values, kept, strict=True):
        positive = np.sort(row[row > 0])[::-1][:k]
        assert np.array_equal(np.sort(out[out > 0])[::-1], positive)
        # Ties at the cut go to the lower column.
        chosen = np.flatnonzero(out > 0)
        if positive.size:
            edge = positive[-1]
            assert np.array_equal(
                chosen[np.isclose(row[chosen], edge)],
                np.flatnonzero(np.isclose(row, edge))[: int((positive == edge).sum())],
            )


@pytest.mark.parametrize("density", [0.05, 0.9])
def test_top_neighbours_matches_a_brute_force_cosine(density: float) -> None:
    # A sparse product and a nearly dense one take different selection paths.
    rng = np.random.default_rng(11)
    items = sparse.random(40, 25, density=density, random_state=12, dtype=np.float32).tocsr()
    items.data = rng.integers(1, 5, items.nnz).astype(np.float32)
    kept = top_neighbours(items, items, 4).toarray()
    full = (items @ items.T).toarray()
    np.fill_diagonal(full, 0.0)
    for row, out in zip(full, kept, strict=True):
        assert np.allclose(np.sort(out[out > 0])[::-1], np.sort(row[row > 0])[::-1][:4])


def test_a_capped_top_k_still_fills_k_from_other_categories() -> None:
    # The 80 best entries are all category 0; a cap of 2 leaves room for others.
    categories = np.r_[np.zeros(80, dtype=np.int64), np.arange(40, dtype=np.int64) + 1]
    values = np.r_[np.linspace(1.0, 0.5, 80), np.linspace(0.4, 0.1, 40)].astype(np.float32)
    cols, _scores = kernels.select_capped(values, np.arange(120), 10, 2, categories)
    assert cols.tolist() == [0, 1, *range(80, 88)]


def greedy_capped(values: np.ndarray, categories: np.ndarray, k: int, cap: int) -> list[int]:
    """Reference: walk one row best first (ties: lower column), skip full categories."""
    order = np.lexsort((np.arange(values.size), -values))
    chosen: list[int] = []
    used: dict[int, int] = {}
    for item in order:
        if values[item] <= 0 or len(chosen) == k:
            continue
        code = int(categories[item])
        if code >= 0 and used.get(code, 0) >= cap:
            continue
        used[code] = used.get(code, 0) + 1
        chosen.append(int(item))
    return chosen


@settings(max_examples=80, deadline=None)
@given(seed=st.integers(0, 10_000), k=st.integers(1, 12), cap=st.integers(-1, 3))
def test_capped_selection_is_the_greedy_capped_ranking_of_the_whole_row(
    seed: int, k: int, cap: int
) -> None:
    # Rows longer than the first sorted window, crowded into few categories, with
    # many ties (values rounded to 2 places).
    rng = np.random.default_rng(seed)
    n_items = 200
    categories = rng.choice([-1, 0, 1, 2, 3, 4], n_items, p=[0.05, 0.6, 0.2, 0.1, 0.03, 0.02])
    values = np.round(rng.random(n_items), 2).astype(np.float32)
    present = np.flatnonzero(values > 0)
    rng.shuffle(present)  # the kernel sees candidates in no particular order
    cols, scores = kernels.select_capped(values[present], present, k, cap, categories)
    expected = greedy_capped(values, categories, k, cap if cap >= 0 else n_items)
    assert cols.tolist() == expected
    assert scores.tolist() == values[expected].tolist()


def test_content_neighbours_share_an_attribute_besides_price_and_keep_its_share() -> None:
    from campaign.recommend.content import ContentSimilarity, product_features

    catalogue = products()
    similarity = ContentSimilarity(neighbours=9).fit(catalogue).similarity_.toarray()
    # The toy robot (column 9) shares only a price band with anything.
    assert similarity[9].max() == 0.0 and similarity[:, 9].max() == 0.0
    # Linked pairs get the full cosine, price included.
    features = product_features(catalogue)
    full = (features @ features.T).toarray()
    linked = similarity > 0
    np.testing.assert_allclose(similarity[linked], full[linked], rtol=1e-5)
    assert similarity[0, 7] > 0  # Trail Runner ~ Trail Runner Pro


def test_compiled_code_goes_to_the_temp_folder_when_numba_finds_no_writable_cache(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # A read-only install run by a user without a home: numba would refuse to load the
    # module. (Simulated: the tests run as a user who may write anywhere.)
    from numba import config as numba_config
    from numba.core import caching

    for locator in (caching.InTreeCacheLocator, caching.UserWideCacheLocator):
        monkeypatch.setattr(locator, "from_function", classmethod(lambda cls, f, s: None))
    monkeypatch.setattr(numba_config, "CACHE_DIR", "")
    monkeypatch.setattr(kernels, "FALLBACK_CACHE_DIR", tmp_path / "cache")

    def add(a: int, b: int) -> int:
        return a + b

    fast = kernels.compiled()(add)
    assert fast(2, 3) == 5
    assert numba_config.CACHE_DIR == str(tmp_path / "cache")
    assert any((tmp_path / "cache").rglob("*.nbi"))


def test_a_sparse_extra_adds_its_dot_product_to_linked_pairs_only() -> None:
    rng = np.random.default_rng(5)
    items = sparse.random(30, 12, density=0.15, random_state=6, dtype=np.float32).tocsr()
    side = sparse.random(30, 7, density=0.3, random_state=7, dtype=np.float32).tocsr()
    side.data = rng.random(side.nnz).astype(np.float32)
    kept = top_neighbours(items, items, 30, sparse_extra=side).toarray()
    linked = (items @ items.T).toarray() > 0
    expected = np.where(linked, (items @ items.T).toarray() + (side @ side.T).toarray(), 0.0)
    np.fill_diagonal(expected, 0.0)
    assert np.allclose(kept, expected, atol=1e-6)


def _clique_catalogue(n: int = 400) -> pd.DataFrame:
    # One brand on every product and one department on most: the cliques of a real
    # grocery catalogue. Names carry the rarer tokens.
    rng = np.random.default_rng(3)
    return pd.DataFrame({
        "product_id": np.arange(n),
        "brand": "National",
        "category": np.where(np.arange(n) < 300, "grocery", "drug"),
        "name": [f"item{i % 40} kind{i % 7}" for i in range(n)],
        "tags": [None] * n,
        "price_cents": rng.integers(100, 2000, n),
    })


def test_common_attributes_link_to_their_most_popular_carriers_with_exact_cosines() -> None:
    from campaign.recommend.content import ContentSimilarity, feature_blocks

    products = _clique_catalogue()
    weight = np.arange(len(products))[::-1].astype(float)  # product 0 is the most popular
    bounded = ContentSimilarity(neighbours=20, max_postings=25).fit(products, item_weight=weight)
    assert bounded.common_attributes_.size >= 2  # the brand and the big department
    features, width = feature_blocks(products)
    exact = (features @ features.T).toarray()
    got = bounded.similarity_.tocoo()
    # Every kept pair carries its exact cosine, the common attributes' share included.
    assert np.allclose(got.data, exact[got.row, got.col], atol=1e-4)
    # A product linked only through common attributes (the brand; its department of
    # 100) finds their most popular carriers, the ones sharing both first.
    products.loc[399, "name"] = "unique"
    alone = ContentSimilarity(neighbours=20, max_postings=25).fit(products, item_weight=weight)
    neighbours = alone.similarity_[399].indices
    assert len(neighbours) == 20 and set(neighbours) <= set(range(300, 325))
    # With a threshold above the catalogue nothing is common: the exact search.
    unbounded = ContentSimilarity(neighbours=20, max_postings=10_000).fit(products)
    assert unbounded.common_attributes_.size == 0
    exact_top = ContentSimilarity(neighbours=20, max_postings=10_000).fit(
        products, item_weight=weight
    )
    assert (unbounded.similarity_ != exact_top.similarity_).nnz == 0


def test_tokens_and_tfidf_match_scikit_learn_on_names_and_tags() -> None:
    import re

    from sklearn.feature_extraction.text import TfidfVectorizer

    from campaign.recommend.content import _name_tokens, _tag_lists, _tfidf

    names = pd.Series(
        ["Red apple red", None, "", "Green apple", "x", "Apple pie  café", "red"] * 4
    )
    tags = pd.Series([["A", " b "], "a|c", None, [], "||", ("d",), ["A", "A"]] * 4)
    token = re.compile(r"\w\w+")
    documents = {
        "names": [token.findall(v.lower()) if isinstance(v, str) else [] for v in names],
        "tags": [
            [t.strip().lower() for t in (v.split("|") if isinstance(v, str) else v or [])
             if t.strip()]
            for v in tags
        ],
    }
    got = {
        "names": _tfidf(_name_tokens(names), len(names)),
        "tags": _tfidf(_tag_lists(tags), len(tags)),
    }
    for field, docs in documents.items():
        vectorizer = TfidfVectorizer(analyzer=lambda doc: doc, dtype=np.float32, max_df=0.5)
        expected = sparse.csr_matrix(vectorizer.fit_transform(docs))
        assert got[field].shape == expected.shape, field
        # Column order may differ; the cosines between products may not.
        assert np.allclose(
            (got[field] @ got[field].T).toarray(), (expected @ expected.T).toarray(), atol=1e-6
        ), field
