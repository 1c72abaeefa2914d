"""The whole demo in order: the set-up steps, then the closed loop.

Both lists are plain tuples built where their steps live; nothing is registered at
import time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from campaign.demo.loop import LOOP_STEPS
from campaign.demo.steps import SETUP_STEPS, DemoContext, DemoStep, StepSummary

DEMO_STEPS: tuple[DemoStep, ...] = (*SETUP_STEPS, *LOOP_STEPS)


def run_steps(
    context: DemoContext,
    steps: Sequence[DemoStep] | None = None,
    on_step: Callable[[DemoStep, StepSummary], None] | None = None,
) -> list[StepSummary]:
    """Run ``steps`` (default :data:`DEMO_STEPS`) in order; ``on_step`` sees each result."""
    summaries: list[StepSummary] = []
    for step in DEMO_STEPS if steps is None else steps:
        summary = step.run(context)
        summaries.append(summary)
        if on_step is not None:
            on_step(step, summary)
    return summaries
