"""Progress reporting from the core: a ``progress(n)`` callback, and its total when known.

The core never draws anything. Long work takes ``progress: Callable[[int], None]`` and
calls it with the units just finished. Work that learns its total only part-way (a run
knows its audience after scoring) tells it through :func:`set_total`; the command
line's bar then shows ``done/total`` instead of a bare count.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Progress = Callable[[int], None]


def set_total(progress: Progress | Any | None, total: int) -> None:
    """Tell ``progress`` how many units the whole work has (a no-op for plain callables)."""
    setter = getattr(progress, "set_total", None)
    if callable(setter):
        setter(total)
