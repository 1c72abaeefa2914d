"""Holdout assignment and uniform variant choice: stable, close to the share, pure."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from campaign.common.errors import ConfigError
from campaign.config import VariantConfig
from campaign.experiments.holdout import assign_holdout, holdout_position, is_held_out
from campaign.experiments.variants import choose_variant

names = st.from_regex(r"[a-z0-9][a-z0-9_-]{0,20}", fullmatch=True)
keys = st.text(min_size=1, max_size=40)
shares = st.floats(min_value=0.0, max_value=0.5)


@given(campaign=names, key=keys, share=shares)
def test_assignment_is_stable_for_the_same_campaign_and_user(
    campaign: str, key: str, share: float
) -> None:
    assert is_held_out(campaign, key, share) == is_held_out(campaign, key, share)
    assert 0.0 <= holdout_position(campaign, key) < 1.0


@given(campaign=names, key=keys, low=shares, high=shares)
def test_raising_the_share_only_adds_users_to_the_control_group(
    campaign: str, key: str, low: float, high: float
) -> None:
    low, high = min(low, high), max(low, high)
    if is_held_out(campaign, key, low):
        assert is_held_out(campaign, key, high)


@settings(max_examples=25, deadline=None)
@given(campaign=names, share=st.floats(min_value=0.02, max_value=0.5))
def test_held_out_fraction_is_close_to_the_share(campaign: str, share: float) -> None:
    n = 20_000
    held = sum(assign_holdout(campaign, (f"u{i}" for i in range(n)), share))
    # Binomial standard deviation is at most 0.0036 here; 5 sigma never flakes.
    assert abs(held / n - share) < 5 * (share * (1 - share) / n) ** 0.5 + 1e-9


def test_share_zero_holds_out_nobody() -> None:
    assert not any(assign_holdout("winback", (str(i) for i in range(1000)), 0.0))


def test_different_campaigns_draw_independent_control_groups() -> None:
    a = assign_holdout("winback", (str(i) for i in range(5000)), 0.5)
    b = assign_holdout("care", (str(i) for i in range(5000)), 0.5)
    overlap = sum(x and y for x, y in zip(a, b, strict=True))
    assert 1000 < overlap < 1500  # independent halves overlap about a quarter


@given(seed=st.integers(), enabled=st.lists(st.booleans(), min_size=1, max_size=6))
def test_choose_variant_never_picks_a_disabled_variant(seed: int, enabled: list[bool]) -> None:
    variants = [
        VariantConfig(name=f"v{i}", template="winback", enabled=flag)
        for i, flag in enumerate(enabled)
    ]
    if not any(enabled):
        try:
            choose_variant(variants, random.Random(seed))
        except ConfigError:
            return
        raise AssertionError("a disabled variant was chosen")
    assert choose_variant(variants, random.Random(seed)).enabled


def test_choose_variant_is_roughly_uniform() -> None:
    variants = [VariantConfig(name=n, template="winback") for n in ("a", "b", "c")]
    rng = random.Random(1)
    counts = {"a": 0, "b": 0, "c": 0}
    for _ in range(3000):
        counts[choose_variant(variants, rng).name] += 1
    assert all(900 < c < 1100 for c in counts.values())
