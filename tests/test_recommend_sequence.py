"""The deep sequence model (SASRec) on a tiny shop whose next item is planted.

Every item of the generated shop has one successor: a customer who bought item i buys
succ(i) next. Popularity cannot know that (its hit rate is about k / catalogue); a
next-item model must learn it. Skipped with the reason when PyTorch (the ``[deep]``
extra) is not installed.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from scipy import sparse

torch = pytest.importorskip(
    "torch", reason="the sequence model needs the deep extra: pip install torch==2.13.0 "
    "and pip install -e '.[deep]'"
)

from campaign.common.errors import ModelError  # noqa: E402
from campaign.recommend.sequence import SequenceRecommender  # noqa: E402

ITEMS = 40
USERS = 300
SMALL = {"dim": 32, "layers": 1, "heads": 1, "max_len": 16, "dropout": 0.0,
         "learning_rate": 0.01, "batch_size": 32, "max_epochs": 12, "max_seconds": 60.0,
         "threads": 1}


def chain_shop(seed: int = 0) -> tuple[np.ndarray, ...]:
    """Events of users walking the successor cycle, and each user's held-out last item."""
    rng = np.random.default_rng(seed)
    cycle = rng.permutation(ITEMS)
    succ = np.empty(ITEMS, dtype=np.int64)
    succ[cycle] = np.roll(cycle, -1)
    users, items, times, held = [], [], [], []
    for u in range(USERS):
        item = int(rng.integers(ITEMS))
        length = int(rng.integers(4, 12))
        for t in range(length):
            users.append(u)
            items.append(item)
            times.append(1_000.0 * u + t)
            item = int(succ[item])
        held.append(item)  # what the user buys next
    return (np.array(users), np.array(items), np.array(times), np.array(held), succ)


@pytest.fixture(scope="module")
def shop() -> tuple[np.ndarray, ...]:
    return chain_shop()


@pytest.fixture(scope="module")
def model(shop: tuple[np.ndarray, ...]) -> SequenceRecommender:
    users, items, times, _, _ = shop
    return SequenceRecommender(**SMALL).fit(users, items, times, USERS, ITEMS)


def test_it_learns_the_planted_next_item_far_above_popularity(
    shop: tuple[np.ndarray, ...], model: SequenceRecommender
) -> None:
    users, items, _, held, _ = shop
    rows = np.arange(USERS)
    picks, scores = model.top_k(rows, 5)
    assert picks.shape == scores.shape == (USERS, 5)
    assert (np.diff(scores, axis=1) <= 0).all()
    hit = (picks == held[:, None]).any(axis=1).mean()
    popular = np.argsort(-np.bincount(items, minlength=ITEMS), kind="stable")[:5]
    popularity_hit = np.isin(held, popular).mean()
    assert popularity_hit < 0.25
    assert hit > 0.9, f"hit rate@5 {hit:.2f} (popularity {popularity_hit:.2f})"
    top1 = (picks[:, 0] == held).mean()
    assert top1 > 0.8


def test_the_reason_is_the_event_the_pick_follows(
    shop: tuple[np.ndarray, ...], model: SequenceRecommender
) -> None:
    users, items, _, held, succ = shop
    rows = np.arange(USERS)
    picks, _ = model.top_k(rows, 3)
    anchors = model.anchors(rows, picks)
    last = items[np.r_[np.flatnonzero(np.diff(users)), len(users) - 1]]
    right = picks[:, 0] == held
    # The planted pick follows the user's newest purchase, whose successor it is.
    assert (anchors[right, 0] == last[right]).mean() > 0.9
    assert (succ[last[right]] == picks[right, 0]).all()
    history = [set(items[users == u]) for u in rows]
    assert all(a in history[u] for u in rows for a in anchors[u])


def test_excluded_items_never_come_back_and_short_rows_are_padded(
    shop: tuple[np.ndarray, ...], model: SequenceRecommender
) -> None:
    rows = np.arange(USERS)
    picks, _ = model.top_k(rows, 5)
    # Exclude every user's top pick: it must vanish, the rest move up.
    first = sparse.csr_matrix(
        (np.ones(USERS), (rows, picks[:, 0])), shape=(USERS, ITEMS)
    )
    again, _ = model.top_k(rows, 5, exclude=first)
    assert not (again == picks[:, :1]).any()
    assert (again[:, :4] == picks[:, 1:]).all()
    # Leave two items eligible for user 0: two picks, then padding.
    allowed = {3, 7}
    mask = np.ones((1, ITEMS))
    mask[0, sorted(allowed)] = 0
    short, values = model.top_k(np.array([0]), 5, exclude=sparse.csr_matrix(mask))
    assert set(short[0, :2]) == allowed
    assert (short[0, 2:] == -1).all() and np.isneginf(values[0, 2:]).all()
    assert (model.anchors(np.array([0]), short)[0, 2:] == -1).all()


def test_the_same_seed_gives_the_same_model_and_another_seed_another(
    shop: tuple[np.ndarray, ...]
) -> None:
    users, items, times, _, _ = shop
    quick = {**SMALL, "max_epochs": 2}
    rows = np.arange(20)
    first = SequenceRecommender(**quick, seed=3).fit(users, items, times, USERS, ITEMS)
    second = SequenceRecommender(**quick, seed=3).fit(users, items, times, USERS, ITEMS)
    other = SequenceRecommender(**quick, seed=4).fit(users, items, times, USERS, ITEMS)
    assert np.array_equal(first.scores(rows), second.scores(rows))
    assert first.losses_ == second.losses_
    assert not np.array_equal(first.scores(rows), other.scores(rows))


def test_progress_counts_steps_to_a_known_total_and_the_clock_bounds_training(
    shop: tuple[np.ndarray, ...]
) -> None:
    users, items, times, _, _ = shop
    seen: list[tuple[int, int]] = []
    model = SequenceRecommender(**{**SMALL, "max_epochs": 3}).fit(
        users, items, times, USERS, ITEMS, progress=lambda done, total: seen.append((done, total))
    )
    per_epoch = -(-USERS // SMALL["batch_size"])  # one window per user here
    assert seen == [(n, 3 * per_epoch) for n in range(1, 3 * per_epoch + 1)]
    assert model.stopped_by_ == "epochs" and model.epochs_ == 3 and len(model.losses_) == 3

    seen.clear()
    bounded = SequenceRecommender(**{**SMALL, "max_epochs": 10_000, "max_seconds": 0.2}).fit(
        users, items, times, USERS, ITEMS, progress=lambda done, total: seen.append((done, total))
    )
    assert bounded.stopped_by_ == "time" and bounded.seconds_ < 5
    assert seen[-1] == (10_000 * per_epoch, 10_000 * per_epoch)  # the bar is closed


def test_a_large_catalogue_trains_with_sampled_negatives(shop: tuple[np.ndarray, ...]) -> None:
    users, items, times, held, _ = shop
    model = SequenceRecommender(**{**SMALL, "full_softmax_items": 10, "negatives": 16}).fit(
        users, items, times, USERS, ITEMS
    )
    picks, _ = model.top_k(np.arange(USERS), 5)
    assert (picks == held[:, None]).any(axis=1).mean() > 0.8


def test_users_without_events_get_popular_items_and_unseen_items_never_show(
    shop: tuple[np.ndarray, ...]
) -> None:
    users, items, times, _, _ = shop
    # Two extra users without events and two extra items nobody bought.
    model = SequenceRecommender(**{**SMALL, "max_epochs": 2}).fit(
        users, items, times, USERS + 2, ITEMS + 2
    )
    picks, _ = model.top_k(np.arange(USERS + 2), ITEMS + 2)
    assert not np.isin(picks[:, :ITEMS], [ITEMS, ITEMS + 1]).any()
    assert (picks[:, ITEMS:] == -1).all()
    counts = np.bincount(items, minlength=ITEMS)
    assert list(picks[USERS, :3]) == list(np.argsort(-counts, kind="stable")[:3])


def test_bad_input_says_what_is_wrong(shop: tuple[np.ndarray, ...]) -> None:
    users, items, times, _, _ = shop
    with pytest.raises(ValueError, match=r"item_index has values outside \[0, 10\)"):
        SequenceRecommender(**SMALL).fit(users, items, times, USERS, 10)
    with pytest.raises(ValueError, match="same length"):
        SequenceRecommender(**SMALL).fit(users, items, times[:-1], USERS, ITEMS)
    with pytest.raises(ValueError, match="dim must be a multiple of heads"):
        SequenceRecommender(dim=30, heads=4).fit(users, items, times, USERS, ITEMS)
    with pytest.raises(ModelError, match="at least two events"):
        SequenceRecommender(**SMALL).fit(np.arange(3), np.arange(3), np.zeros(3), 3, 3)


def test_the_package_loads_torch_only_with_the_model() -> None:
    script = (
        "import json, sys\n"
        "import campaign.recommend, campaign.recommend.sequence\n"
        "loaded = 'torch' in sys.modules\n"
        "sys.modules['torch'] = None  # as if the extra were not installed\n"
        "from campaign.recommend.sequence import SequenceRecommender\n"
        "try:\n"
        "    SequenceRecommender().fit([0, 0], [0, 1], [0, 1], 1, 2)\n"
        "except Exception as exc:\n"
        "    print(json.dumps([loaded, type(exc).__name__, str(exc)]))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True).stdout
    loaded, kind, message = json.loads(out)
    assert loaded is False
    assert kind == "ModelError" and "pip install torch==2.13.0" in message


def test_windows_cover_every_next_event_once_and_can_keep_only_the_newest() -> None:
    from campaign.recommend.sequence import _windows

    indptr = np.array([0, 5, 6, 8])  # users of 5, 1 and 2 events
    tokens = np.array([1, 2, 3, 4, 5, 9, 7, 8])
    assert _windows(indptr, tokens, 3).tolist() == [[3, 4, 5], [1, 2, 3], [0, 7, 8]]
    assert _windows(indptr, tokens, 3, per_user=1).tolist() == [[3, 4, 5], [0, 7, 8]]
