"""Pure variant choice among the enabled variants of a campaign.

Without bandit state the choice is uniform; with a
:class:`campaign.experiments.bandit.BanditState` (read by
:func:`campaign.experiments.store.load_bandit_state`) it is Thompson sampling with an
exploration floor (:mod:`campaign.experiments.bandit`).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

from campaign.common.errors import ConfigError
from campaign.config import VariantConfig
from campaign.experiments.bandit import BanditState, thompson_choice


def enabled_variants(variants: Sequence[VariantConfig]) -> list[VariantConfig]:
    """The variants a run may choose from, in config order."""
    return [variant for variant in variants if variant.enabled]


def choose_variant(
    variants: Sequence[VariantConfig],
    rng: random.Random,
    arm_state: BanditState | Mapping[str, Any] | None = None,
) -> VariantConfig:
    """One enabled variant: Thompson sampling when ``arm_state`` is a ``BanditState``,
    else uniformly at random from ``rng``.

    Raises:
        ConfigError: no variant is enabled.
    """
    choices = enabled_variants(variants)
    if not choices:
        raise ConfigError("<config>", "campaigns.variants", "no enabled variant to choose from")
    if len(choices) == 1:
        return choices[0]
    if isinstance(arm_state, BanditState):
        name = thompson_choice([v.name for v in choices], arm_state, rng)
        return next(v for v in choices if v.name == name)
    return choices[rng.randrange(len(choices))]
