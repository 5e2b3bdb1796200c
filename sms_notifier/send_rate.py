"""How fast this replica submits: never more than the configured messages per
second, and slower for a while when the SMS centre says it is throttling us.

Submits are spaced evenly, `(1 + guard) / rate` seconds apart, so any
`rate + 1` consecutive submits span more than one second plus the guard: the
far end, counting the PDUs it receives per second, never sees more than
`rate` even when network jitter bunches two of them (a pure sliding window
of one second would allow `rate + 1` in a second at the receiver whenever
an earlier PDU is delayed more than a later one).

On ESME_RTHROTTLED the rate halves (down to `min_rate`) and submitting
pauses for `pause` seconds; every accepted submit then wins back 10 % of
the configured rate (additive increase, multiplicative decrease).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


class SendPacer:
    def __init__(
        self,
        max_per_second: float,
        *,
        pause: float = 1.0,
        guard: float = 0.05,
        min_rate: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if max_per_second <= 0:
            raise ValueError("max_per_second must be positive")
        self.max_rate = float(max_per_second)
        self.rate = self.max_rate
        self._min_rate = min(min_rate, self.max_rate)
        self._pause = pause
        self._guard = guard
        self._clock = clock
        self._sleep = sleep
        self._next_at = 0.0
        self._paused_until = 0.0
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        """Returns when the next submit may go; callers are served in order."""
        async with self._lock:
            while True:
                now = self._clock()
                at = max(self._next_at, self._paused_until)
                if at <= now:
                    break
                # Re-checked after the sleep: a throttle reply that came in
                # meanwhile may have moved the pause further out.
                await self._sleep(at - now)
            self._next_at = now + (1.0 + self._guard) / self.rate

    def throttled(self) -> None:
        self.rate = max(self._min_rate, self.rate / 2)
        self._paused_until = max(self._paused_until, self._clock() + self._pause)
        # The spacing after the pause follows the new, lower rate.
        self._next_at = max(self._next_at, self._paused_until)

    def accepted(self) -> None:
        if self.rate < self.max_rate:
            self.rate = min(self.max_rate, self.rate + 0.1 * self.max_rate)
