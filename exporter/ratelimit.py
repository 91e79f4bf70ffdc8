"""A process-wide request-rate limit that never exceeds ``max_qps`` in any one-second window.

It also backs off when the service says it is over the account's limit (other processes of the
same account count too): a throttling answer cuts the rate by a fifth and holds every caller for the
server's retry-after; each success then gives back 2% of ``max_qps``, so a shared account settles on
what is actually left for this process (additive increase, multiplicative decrease).

A token bucket allows a burst of ``capacity`` on top of the steady rate, so a one-second window
can see up to twice the limit; the cloud API counts per account and per second and answers such
bursts with ``Throttling.User``. A sliding window of start times keeps the guarantee exact: a
request may start only when fewer than ``floor(max_qps)`` requests started within the last second
(for rates below one per second, the window stretches to ``1 / max_qps`` seconds with one slot).
Starts are also spaced at least ``1 / qps`` apart: the gateway counts requests when they arrive, so
a burst that fits the window on leaving can exceed it on arriving (after a pause, for example, when
every waiting call would otherwise start at once).
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
        self._max = max_qps
        self._factor = 1.0

    @property
    def max_qps(self) -> float:
        """The steady rate actually enforced (``max_qps`` rounded down when above 1)."""
        return self._slots / self._window

    @property
    def current_qps(self) -> float:
        """The rate allowed now: ``max_qps`` scaled down after throttling, recovering on success."""
        return self._max * self._factor

    def throttled(self, retry_after: float | None) -> None:
        """The service refused a call for flow control: cut the rate by a fifth, pause for its retry-after."""
        self._factor = max(0.05, self._factor * 0.8)
        self.pause_until(self._clock() + (retry_after if retry_after is not None else 1.0))

    def succeeded(self) -> None:
        """A call went through: recover 2% of the configured rate."""
        if self._factor < 1.0:
            self._factor = min(1.0, self._factor + 0.02)

    def pause_until(self, deadline: float) -> None:
        """Hold every caller until ``deadline`` (clock time), e.g. after a server retry-after."""
        self._paused_until = max(self._paused_until, deadline)

    def _delay(self, now: float) -> float:
        qps = self.current_qps
        slots, window = (math.floor(qps), 1.0) if qps >= 1 else (1, 1 / qps)
        slots = min(slots, self._slots)
        while self._starts and self._starts[0] <= now - max(window, self._window):
            self._starts.popleft()
        wait = max(0.0, self._paused_until - now)
        if self._starts:
            wait = max(wait, self._starts[-1] + 1 / qps - now)
        recent = [t for t in self._starts if t > now - window]
        if len(recent) >= slots:
            wait = max(wait, recent[-slots] + window - now)
        return wait

    async def acquire(self) -> None:
        """Wait until a request may start, then record its start."""
        async with self._lock:  # FIFO: asyncio.Lock wakes waiters in order
            wait = self._delay(self._clock())
            while wait > 0:
                await asyncio.sleep(wait)
                wait = self._delay(self._clock())
            self._starts.append(self._clock())
