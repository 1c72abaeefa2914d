"""Pure Thompson sampling over a campaign's variants, with Beta posteriors on conversion.

Each variant (arm) keeps ``successes`` and ``failures``: attributed outcomes of its
messages, counted once each message's attribution window has closed
(:mod:`campaign.experiments.store`). Its posterior conversion rate is
``Beta(prior_a + successes, prior_b + failures)``. For every treated user the planner
draws one sample per enabled arm and sends the arm with the highest draw, so an arm
is chosen as often as it is probably the best one.

An exploration floor keeps learning alive: with probability ``floor * k`` (``k``
enabled arms) the choice is uniform, so every enabled arm keeps at least ``floor`` of
the traffic however bad it looks (``floor * k`` is capped at 1, i.e. uniform choice).
Disabled variants are never drawn. The control group (holdout) is decided before the
bandit and never reaches it.

Pure: the random generator is an argument; no clock, no database.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from campaign.common.errors import ConfigError


@dataclass(frozen=True)
class ArmCounts:
    """Observed outcomes of one arm: conversions and non-conversions (both >= 0)."""

    successes: int = 0
    failures: int = 0

    @property
    def trials(self) -> int:
        """Outcomes counted so far."""
        return self.successes + self.failures


@dataclass(frozen=True)
class BanditState:
    """What Thompson sampling needs for one campaign.

    ``arms`` maps variant name → counts (a variant without a row has none yet);
    ``floor`` is the minimum choice probability of every enabled arm (0..1);
    ``prior_a``/``prior_b`` are the Beta prior's pseudo-counts (1, 1 = uniform).
    """

    arms: Mapping[str, ArmCounts] = field(default_factory=dict)
    floor: float = 0.05
    prior_a: float = 1.0
    prior_b: float = 1.0

    def posterior(self, name: str) -> tuple[float, float]:
        """The Beta posterior (a, b) of arm ``name``."""
        counts = self.arms.get(name, ArmCounts())
        return self.prior_a + counts.successes, self.prior_b + counts.failures


def _check_floor(floor: float) -> None:
    if not 0.0 <= floor <= 1.0:
        raise ConfigError("<config>", "experiments.exploration_floor", "must be between 0 and 1")


def thompson_choice(names: Sequence[str], state: BanditState, rng: random.Random) -> str:
    """One of ``names`` (the enabled arms) by Thompson sampling with an exploration floor.

    Deterministic for a given ``rng`` state. Every name has a choice probability of at
    least ``min(state.floor, 1 / len(names))``.

    Raises:
        ConfigError: ``names`` is empty or the floor is outside 0..1.
    """
    if not names:
        raise ConfigError("<config>", "campaigns.variants", "no enabled variant to choose from")
    _check_floor(state.floor)
    if len(names) == 1:
        return names[0]
    # Always draw the same number of random numbers, so one more arm or a changed
    # floor never shifts the stream of later users in a surprising way.
    explore = rng.random() < min(1.0, state.floor * len(names))
    uniform = names[rng.randrange(len(names))]
    draws = [rng.betavariate(*state.posterior(name)) for name in names]
    if explore:
        return uniform
    best = max(range(len(names)), key=draws.__getitem__)
    return names[best]


def choice_probabilities(
    names: Sequence[str], state: BanditState, rng: random.Random, *, draws: int = 4000
) -> dict[str, float]:
    """Monte Carlo estimate of how often :func:`thompson_choice` picks each name.

    For reports ("the share of the next run each variant would get").
    """
    if not names:
        return {}
    counts = dict.fromkeys(names, 0)
    for _ in range(draws):
        counts[thompson_choice(names, state, rng)] += 1
    return {name: count / draws for name, count in counts.items()}


def posterior_mean(a: float, b: float) -> float:
    """Mean of Beta(a, b)."""
    return a / (a + b)


def update_counts(
    arms: Mapping[str, ArmCounts], outcomes: Sequence[tuple[str, bool]]
) -> dict[str, ArmCounts]:
    """``arms`` plus the (variant, converted) outcomes; arms without outcomes are kept."""
    out = dict(arms)
    for name, converted in outcomes:
        counts = out.get(name, ArmCounts())
        out[name] = ArmCounts(
            counts.successes + int(converted), counts.failures + int(not converted)
        )
    return out
