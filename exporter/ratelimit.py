"""A process-wide request-rate limit that never exceeds ``max_qps`` in any one-second window.

A token bucket allows a burst of ``capacity`` on top of the steady rate, so a one-second window
can see up to twice the limit; the cloud API counts per account and per second and answers such
bursts with ``Throttling.User``. A sliding window of start times keeps the guarantee exact: a
request may start only when fewer than ``floor(max_qps)`` requests started within the last second
(for rates below one per second, the window stretches to ``1 / max_qps`` seconds with one slot).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable


class RateLimiter:
    """Sliding-window limiter shared by every API call of the process; fair in arrival order."""

    def __init__(self, max_qps: float, clock: Callable[[], float] = time.monotonic) -> None:
        if max_qps <= 0:
            raise ValueError("max_qps must be positive")
        if max_qps >= 1:
            self._slots = math.floor(max_qps)  # 2.5 qps -> 2 per second: never 3 in one second
            self._window = 1.0
        else:
            self._slots = 1
            self._window = 1 / max_qps
        self._clock = clock
        self._starts: deque[float] = deque()
        self._lock = asyncio.Lock()
        self._paused_until = 0.0

    @property
    def max_qps(self) -> float:
        """The steady rate actually enforced (``max_qps`` rounded down when above 1)."""
        return self._slots / self._window

    def pause_until(self, deadline: float) -> None:
        """Hold every caller until ``deadline`` (clock time), e.g. after a server retry-after."""
        self._paused_until = max(self._paused_until, deadline)

    def _delay(self, now: float) -> float:
        while self._starts and self._starts[0] <= now - self._window:
            self._starts.popleft()
        wait = max(0.0, self._paused_until - now)
        if len(self._starts) >= self._slots:
            wait = max(wait, self._starts[0] + self._window - now)
        return wait

    async def acquire(self) -> None:
        """Wait until a request may start, then record its start."""
        async with self._lock:  # FIFO: asyncio.Lock wakes waiters in order
            wait = self._delay(self._clock())
            while wait > 0:
                await asyncio.sleep(wait)
                wait = self._delay(self._clock())
            self._starts.append(self._clock())
