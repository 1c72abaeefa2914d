"""Pure holdout assignment: a stable hash of (campaign, user) decides the control group.

The same user is held out of the same campaign in every run, on every host and after
every restart, without storing anything: ``sha256("campaign:user_key")`` read as a
number in [0, 1) is compared with the campaign's holdout share. The user key is the
shop's own id (``users.external_id``), so re-importing users never reshuffles groups.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

_SCALE = float(1 << 64)


def holdout_position(campaign: str, user_key: str) -> float:
    """The user's fixed position in [0, 1) for ``campaign`` (first 8 bytes of SHA-256)."""
    digest = hashlib.sha256(f"{campaign}:{user_key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


def is_held_out(campaign: str, user_key: str, share: float) -> bool:
    """Whether the user belongs to the control group of ``campaign`` at ``share`` (0..1).

    Monotone in ``share``: raising the share only adds users to the control group.
    """
    return holdout_position(campaign, user_key) < share


def assign_holdout(campaign: str, user_keys: Iterable[str], share: float) -> list[bool]:
    """:func:`is_held_out` for many users, in the order given."""
    return [holdout_position(campaign, key) < share for key in user_keys]
