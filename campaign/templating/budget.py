"""The render budget of one message: time, loop rounds, output and built text.

A :class:`RenderBudget` is armed per message (:class:`budget_scope`) and read through
a context variable by the loop guard, sandbox calls, operators, filters and the
output stream (:mod:`campaign.templating.bounds`). Pure: no file or network access.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from contextvars import ContextVar
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from jinja2.exceptions import SecurityError

DEFAULT_RENDER_TIMEOUT_SECONDS = 2.0
DEFAULT_MAX_OUTPUT_BYTES = 500_000
DEFAULT_MAX_LOOP_ITERATIONS = 10_000
# Output chunks joined (in C) between two checks of the size and time budget.
OUTPUT_BATCH = 64
# Text a message may build in macros, set/filter/call blocks and buffers, all together,
# as a multiple of max_output_bytes (the same text is often built, then output).
BUILT_TEXT_FACTOR = 8


class RenderLimitExceeded(SecurityError):
    """A render went over its time, loop or size budget (a sandbox refusal)."""


def _utf8_size(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8"))


@dataclass
class RenderBudget:
    """Per-render limits, checked by the loop guard, calls and the output stream.

    ``output_bytes`` counts output exactly in UTF-8 bytes, except texts kept aside
    by :meth:`collect` while they surely fit (at most 4 bytes a character): those
    are counted exactly only when the total could come near the limit.
    """

    timeout_seconds: float = DEFAULT_RENDER_TIMEOUT_SECONDS
    max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES
    max_loop_iterations: int = DEFAULT_MAX_LOOP_ITERATIONS
    deadline: float = field(default=0.0, init=False)
    iterations: int = field(default=0, init=False)
    output_bytes: int = field(default=0, init=False)
    chunks: int = field(default=0, init=False)
    # Characters built into buffers (macros, {% set %}/{% filter %}/{% call %} blocks).
    built_chars: int = field(default=0, init=False)
    # Output not counted exactly yet, and its length in characters.
    _uncounted: list[str] = field(default_factory=list, init=False, repr=False)
    _uncounted_chars: int = field(default=0, init=False, repr=False)

    def start(self) -> RenderBudget:
        """Arm the deadline now (monotonic clock); returns self."""
        self.deadline = time.monotonic() + self.timeout_seconds
        self.iterations = 0
        self.output_bytes = 0
        self.chunks = 0
        self.built_chars = 0
        self._uncounted = []
        self._uncounted_chars = 0
        return self

    def used_bytes(self) -> int:
        """The output so far in UTF-8 bytes (counts what was kept aside)."""
        self._settle()
        return self.output_bytes

    def _settle(self) -> None:
        if self._uncounted:
            self.output_bytes += sum(_utf8_size(text) for text in self._uncounted)
            self._uncounted = []
            self._uncounted_chars = 0

    def check_time(self) -> None:
        """Raise when the wall-clock budget is spent."""
        if time.monotonic() > self.deadline:
            raise RenderLimitExceeded(
                f"rendering took longer than {self.timeout_seconds:g} s (render_timeout_seconds)"
            )

    def count_iteration(self) -> None:
        """One more loop iteration; raise past the loop or time budget."""
        self.iterations += 1
        if self.iterations > self.max_loop_iterations:
            raise RenderLimitExceeded(
                f"loops ran more than {self.max_loop_iterations} iterations in one message"
            )
        self.check_time()

    def count_built(self, chars: int) -> None:
        """Charge ``chars`` characters built into a buffer; raise past the built-text cap."""
        self.built_chars += chars
        cap = BUILT_TEXT_FACTOR * self.max_output_bytes
        if self.built_chars > cap:
            raise RenderLimitExceeded(
                f"templates built more than {cap} characters in macros and blocks"
                " (8 x max_output_bytes)"
            )

    def count_output(self, chunk: str) -> None:
        """Account for ``chunk`` of output; raise past the size or time budget."""
        self._settle()
        self.output_bytes += _utf8_size(chunk)
        if self.output_bytes > self.max_output_bytes:
            self._too_large()
        self.chunks += 1
        if self.chunks % 32 == 0:
            self.check_time()

    def collect(self, chunks: Iterable[str]) -> str:
        """Join one template's output stream, charging it against the size and time budget.

        The same limit as :meth:`count_output` (UTF-8 bytes), enforced while the
        output streams, but cheaply: chunks are taken ``OUTPUT_BATCH`` at a time and
        joined in C, and a text of n characters takes at most 4n bytes, so bytes are
        only counted once the characters could exceed what is left. The clock is read
        after every batch (loops and calls read it too).

        Raises:
            RenderLimitExceeded: the output grew past ``max_output_bytes`` or the
                render ran out of time.
        """
        stream = iter(chunks)
        parts: list[str] = []
        left = self.max_output_bytes - self.output_bytes - 4 * self._uncounted_chars
        chars = 0  # characters streamed so far
        counted = 0  # parts[:counted] are counted exactly ...
        exact = 0  # ... and take this many bytes
        sure = left // 4  # up to this many characters fit whatever they are
        while True:
            batch = list(islice(stream, OUTPUT_BATCH))
            piece = "".join(batch)
            parts.append(piece)
            self.chunks += len(batch)
            chars += len(piece)
            if chars > sure:
                if self._uncounted:
                    self._settle()
                    left = self.max_output_bytes - self.output_bytes
                for part in parts[counted:]:
                    exact += _utf8_size(part)
                counted = len(parts)
                if exact > left:
                    self._too_large()
                sure = chars + (left - exact) // 4
            self.check_time()
            if len(batch) < OUTPUT_BATCH:  # the stream ended
                break
        text = parts[0] if len(parts) == 1 else "".join(parts)
        if counted:
            for part in parts[counted:]:
                exact += _utf8_size(part)
            self.output_bytes += exact
            if self.output_bytes > self.max_output_bytes:  # pragma: no cover - caught above
                self._too_large()
        else:
            # Surely within the limit: counted exactly only if it ever matters.
            self._uncounted.append(text)
            self._uncounted_chars += chars
        return text

    def _too_large(self) -> None:
        raise RenderLimitExceeded(
            f"output is larger than {self.max_output_bytes} bytes (max_output_bytes)"
        )


_budget: ContextVar[RenderBudget | None] = ContextVar("campaign_render_budget", default=None)


def active_budget() -> RenderBudget | None:
    """The budget of the render running in this thread/task, if any."""
    return _budget.get()


class budget_scope:  # noqa: N801 - used as a context manager like a function
    """``with budget_scope(budget):`` arms ``budget`` for the renders inside."""

    def __init__(self, budget: RenderBudget) -> None:
        self.budget = budget
        self._token: Any = None

    def __enter__(self) -> RenderBudget:
        self._token = _budget.set(self.budget.start())
        return self.budget

    def __exit__(self, *exc: object) -> None:
        _budget.reset(self._token)


def _tick() -> None:
    budget = _budget.get()
    if budget is not None:
        budget.check_time()
