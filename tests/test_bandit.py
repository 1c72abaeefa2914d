"""Thompson sampling: determinism, disabled arms, convergence, the exploration floor."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from campaign.common.errors import ConfigError
from campaign.config import VariantConfig
from campaign.experiments.bandit import (
    ArmCounts,
    BanditState,
    choice_probabilities,
    thompson_choice,
    update_counts,
)
from campaign.experiments.variants import choose_variant

counts = st.builds(ArmCounts, st.integers(0, 500), st.integers(0, 500))
names = st.lists(st.sampled_from("abcdefgh"), min_size=1, max_size=6, unique=True)


def _variants(enabled: dict[str, bool]) -> list[VariantConfig]:
    return [VariantConfig(name=n, template="t", enabled=e) for n, e in enabled.items()]


@given(names=names, arms=st.dictionaries(st.sampled_from("abcdefgh"), counts),
       floor=st.floats(0, 1), seed=st.integers(0, 2**32))
@settings(max_examples=100, deadline=None)
def test_the_same_seed_makes_the_same_choices(names, arms, floor, seed):
    state = BanditState(arms, floor=floor)
    first = [thompson_choice(names, state, random.Random(seed)) for _ in range(3)]
    rng_a, rng_b = random.Random(seed), random.Random(seed)
    assert [thompson_choice(names, state, rng_a) for _ in range(20)] == [
        thompson_choice(names, state, rng_b) for _ in range(20)
    ]
    assert len(set(first)) == 1


@given(enabled=st.dictionaries(st.sampled_from("abcdefgh"), st.booleans(), min_size=1),
       arms=st.dictionaries(st.sampled_from("abcdefgh"), counts),
       floor=st.floats(0, 1), seed=st.integers(0, 2**32))
@settings(max_examples=150, deadline=None)
def test_a_disabled_variant_is_never_chosen(enabled, arms, floor, seed):
    variants = _variants(enabled)
    rng = random.Random(seed)
    state = BanditState(arms, floor=floor)
    if not any(enabled.values()):
        with pytest.raises(ConfigError):
            choose_variant(variants, rng, state)
        return
    for _ in range(30):
        assert enabled[choose_variant(variants, rng, state).name]


def test_a_disabled_variant_with_the_best_record_is_still_never_chosen():
    variants = [VariantConfig(name="star", template="t", enabled=False),
                VariantConfig(name="a", template="t"), VariantConfig(name="b", template="t")]
    state = BanditState({"star": ArmCounts(900, 100), "a": ArmCounts(1, 99)}, floor=0.0)
    rng = random.Random(1)
    assert {choose_variant(variants, rng, state).name for _ in range(500)} <= {"a", "b"}


@given(seed=st.integers(0, 2**32), better=st.sampled_from(["a", "b", "c"]))
@settings(max_examples=10, deadline=None)
def test_it_converges_to_the_better_arm_on_a_simulated_stream(seed, better):
    rng = random.Random(seed)
    world = random.Random(seed + 1)
    rates = {name: (0.12 if name == better else 0.05) for name in "abc"}
    state = BanditState({}, floor=0.02)
    chosen: list[str] = []
    for _batch in range(40):
        batch = [thompson_choice(list("abc"), state, rng) for _ in range(100)]
        chosen += batch
        outcomes = [(name, world.random() < rates[name]) for name in batch]
        state = BanditState(update_counts(state.arms, outcomes), floor=state.floor)
    last = chosen[-1000:]
    assert last.count(better) / len(last) > 0.7
    means = {n: (state.arms[n].successes + 1) / (state.arms[n].trials + 2) for n in "abc"}
    assert max(means, key=means.get) == better


@given(floor=st.floats(0.05, 0.3), seed=st.integers(0, 2**32), k=st.integers(2, 4))
@settings(max_examples=15, deadline=None)
def test_the_exploration_floor_holds_for_a_hopeless_arm(floor, seed, k):
    arms = {"dud": ArmCounts(0, 5000)}
    arms.update({f"good{i}": ArmCounts(900, 100) for i in range(k - 1)})
    names_ = ["dud"] + [f"good{i}" for i in range(k - 1)]
    shares = choice_probabilities(names_, BanditState(arms, floor=floor), random.Random(seed),
                                  draws=6000)
    target = min(floor, 1 / k)
    # 6000 draws: the Monte Carlo standard error is below 0.0065.
    assert shares["dud"] >= target - 0.025


def test_a_floor_of_one_over_k_or_more_is_a_uniform_choice():
    arms = {"a": ArmCounts(1000, 0), "b": ArmCounts(0, 1000)}
    shares = choice_probabilities(["a", "b"], BanditState(arms, floor=0.5), random.Random(3),
                                  draws=6000)
    assert shares["b"] == pytest.approx(0.5, abs=0.03)


def test_without_outcomes_the_arms_share_the_traffic_evenly():
    shares = choice_probabilities(["a", "b", "c"], BanditState({}, floor=0.0),
                                  random.Random(5), draws=6000)
    for share in shares.values():
        assert share == pytest.approx(1 / 3, abs=0.03)


def test_an_invalid_floor_is_a_config_error():
    with pytest.raises(ConfigError, match="exploration_floor"):
        thompson_choice(["a", "b"], BanditState({}, floor=1.5), random.Random(0))


def test_update_counts_adds_successes_and_failures():
    arms = update_counts({"a": ArmCounts(1, 1)}, [("a", True), ("b", False), ("a", False)])
    assert arms == {"a": ArmCounts(2, 2), "b": ArmCounts(0, 1)}


def test_without_bandit_state_the_choice_stays_uniform_and_seeded():
    variants = _variants({"a": True, "b": True})
    picks = [choose_variant(variants, random.Random(9)).name for _ in range(3)]
    assert len(set(picks)) == 1
