"""Keeping the cyclic garbage collector off a run's long-lived objects, safely shared.

A run allocates millions of objects (result rows, frames, picks, messages), which set
off full collections, and each of those would walk every object the process already
holds (the imported libraries alone are hundreds of thousands) again.
:func:`gc.freeze` moves every object that exists to the permanent generation and
:func:`gc.unfreeze` hands them all back.

Both act on the whole process, and the daemon plans in threads next to its sender,
its ingest jobs and, in tests, other runs. So freezing is counted: the first run in
freezes, later ones (and :func:`freeze_more` inside a run) freeze what has appeared
since, and only the last one out unfreezes, so no run hands back another's objects
half-way through it. Objects created meanwhile are collected as usual until frozen.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_holders = 0


@contextmanager
def long_lived_frozen() -> Iterator[None]:
    """Freeze the objects that exist on entry until the last holder leaves."""
    global _holders
    with _lock:
        _holders += 1
        gc.freeze()
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0:
                gc.unfreeze()


def freeze_more() -> None:
    """Inside :func:`long_lived_frozen`: also freeze what was allocated since entry
    (a run's audience and picks, which live until it ends). Outside: nothing."""
    with _lock:
        if _holders:
            gc.freeze()


def holders() -> int:
    """How many runs hold the collector's freeze now (for tests)."""
    return _holders
