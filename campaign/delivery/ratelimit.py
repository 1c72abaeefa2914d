"""Token buckets: at most ``rate`` provider requests per second per channel, per process."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class TokenBucket:
    """A bucket of ``burst`` tokens refilled at ``rate`` per second.

    :meth:`acquire` waits (asyncio) until a token is free. Waiters are served in
    order because they take the bucket's lock one at a time. ``clock`` is a monotonic
    seconds source (``time.monotonic`` by default; tests pass their own).
    """

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.burst = max(1.0, burst if burst is not None else rate)
        self._clock = clock
        self._tokens = self.burst
        self._stamp = clock()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def wait_time(self, tokens: float = 1.0) -> float:
        """Seconds until ``tokens`` are available (0 when they are now)."""
        self._refill()
        missing = min(tokens, self.burst) - self._tokens
        return max(0.0, missing / self.rate)

    async def acquire(
        self,
        tokens: float = 1.0,
        *,
        should_stop: Callable[[], bool] | None = None,
        poll_seconds: float = 0.2,
    ) -> bool:
        """Take ``tokens`` (at most ``burst`` at once), waiting as long as needed.

        With ``should_stop`` the wait is cut into slices of ``poll_seconds`` and given
        up (False, no token taken) once it answers True: a graceful stop never waits
        out a slow channel's bucket. True when the tokens were taken.
        """
        tokens = min(tokens, self.burst)
        async with self._lock:
            while True:
                if should_stop is not None and should_stop():
                    return False
                delay = self.wait_time(tokens)
                if delay <= 0:
                    self._tokens -= tokens
                    return True
                await asyncio.sleep(delay if should_stop is None else min(delay, poll_seconds))
