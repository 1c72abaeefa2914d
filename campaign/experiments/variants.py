"""Pure variant choice: uniform among the enabled variants of a campaign.

The Thompson-sampling bandit of the feedback loop replaces the body of
:func:`choose_variant` later, behind the same signature; ``arm_state`` is its input
(successes and failures per variant name) and is ignored by the uniform choice.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from typing import Any

from campaign.config import VariantConfig
from campaign.errors import ConfigError


def enabled_variants(variants: Sequence[VariantConfig]) -> list[VariantConfig]:
    """The variants a run may choose from, in config order."""
    return [variant for variant in variants if variant.enabled]


def choose_variant(
    variants: Sequence[VariantConfig],
    rng: random.Random,
    arm_state: Mapping[str, Any] | None = None,
) -> VariantConfig:
    """One enabled variant, uniformly at random from ``rng``.

    Raises:
        ConfigError: no variant is enabled.
    """
    choices = enabled_variants(variants)
    if not choices:
        raise ConfigError("<config>", "campaigns.variants", "no enabled variant to choose from")
    if len(choices) == 1:
        return choices[0]
    return choices[rng.randrange(len(choices))]
