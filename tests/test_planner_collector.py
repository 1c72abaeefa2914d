"""The planner's garbage-collector freeze is shared safely between runs in threads."""

from __future__ import annotations

import gc
import threading

from campaign.planner.collector import freeze_more, holders, long_lived_frozen


def test_a_run_leaving_does_not_unfreeze_another_run_still_planning() -> None:
    gc.unfreeze()
    first_in = threading.Event()
    second_in = threading.Event()
    first_out = threading.Event()
    seen: dict[str, int] = {}

    def first() -> None:
        with long_lived_frozen():
            first_in.set()
            second_in.wait(10)
        first_out.set()

    def second() -> None:
        first_in.wait(10)
        with long_lived_frozen():
            second_in.set()
            first_out.wait(10)
            # The first run has left: this one's objects must still be frozen.
            seen["frozen_after_first_left"] = gc.get_freeze_count()
            seen["holders"] = holders()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert seen["holders"] == 1
    assert seen["frozen_after_first_left"] > 0
    assert holders() == 0
    assert gc.get_freeze_count() == 0


def test_freeze_more_outside_a_run_freezes_nothing() -> None:
    gc.unfreeze()
    freeze_more()
    assert gc.get_freeze_count() == 0
    with long_lived_frozen():
        before = gc.get_freeze_count()
        late = [[i] for i in range(1000)]  # allocated inside the run
        freeze_more()
        assert gc.get_freeze_count() >= before + len(late)
    assert gc.get_freeze_count() == 0
