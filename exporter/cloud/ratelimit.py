"""A process-wide request-rate limit that never exceeds ``max_qps`` in any one-second window *at the server*.

The cloud counts an account's requests per second as they arrive and answers the excess with
``Throttling.User``. A request starts only once the one ``floor(max_qps)`` requests before it was answered
more than a second ago, which holds whatever the latency (a token bucket would allow bursts). Throttling
answers cut the rate by a fifth and successes give 2% back, so a shared account settles on what is left
for this process. The reasoning is in docs/scaling.md and docs/internals.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import AsyncIterator, Callable

# How far behind its virtual schedule the limiter may catch up when callers arrive late (the scheduler
# was descheduled, a garbage collection ran): within the window's bound, so the server never sees more.
CATCH_UP = 0.5
_OPEN = math.inf  # an entry whose answer has not come back: the server may admit it at any time


def enforced_rate(qps: float) -> float:
    """The steady rate the limiter admits when allowed ``qps``: whole requests per second from 1 up."""
    return float(math.floor(qps)) if qps >= 1 else qps


class Ticket:
    """One request's place in the window; :meth:`answered` records when its answer came back."""

    __slots__ = ("_limiter", "bound", "start")

    def __init__(self, limiter: RateLimiter, start: float) -> None:
        self._limiter = limiter
        self.start = start
        self.bound = _OPEN

    def answered(self) -> None:
        """The answer's headers arrived (or the attempt ended): the server admitted it before now, if at all."""
        if self.bound == _OPEN:
            self.bound = self._limiter.clock()
            self._limiter.wake()


class RateLimiter:
    """Window limiter shared by every API call of the process; fair in arrival order."""

    def __init__(self, max_qps: float, clock: Callable[[], float] = time.monotonic) -> None:
        if max_qps <= 0:
            raise ValueError("max_qps must be positive")
        if max_qps >= 1:
            self._slots = math.floor(max_qps)  # 2.5 qps -> 2 per second: never 3 in one second
            self._window = 1.0
        else:
            self._slots = 1
            self._window = 1 / max_qps
        self.clock = clock
        self._entries: deque[Ticket] = deque()
        self._lock = asyncio.Lock()
        self._answer = asyncio.Event()
        self._paused_until = 0.0
        self._max = enforced_rate(max_qps)  # backing off and recovering work from what is enforced
        self._factor = 1.0
        self._waiting = 0
        self._next = -math.inf  # the theoretical time of the next start

    @property
    def max_qps(self) -> float:
        """The steady rate actually enforced (``max_qps`` rounded down when above 1)."""
        return self._max

    @property
    def current_qps(self) -> float:
        """The rate enforced now: ``max_qps`` scaled down after throttling (recovering on success), rounded down
        to whole requests per second when 1 or more."""
        return enforced_rate(self._max * self._factor)

    @property
    def waiting(self) -> int:
        """Callers waiting for their turn now (the scheduler keeps this short instead of running ahead)."""
        return self._waiting

    def throttled(self, retry_after: float | None) -> None:
        """The service refused a call for flow control: cut the rate by a fifth, pause for its retry-after."""
        self._factor = max(0.05, self._factor * 0.8)
        self.pause_until(self.clock() + (retry_after if retry_after is not None else 1.0))

    def succeeded(self) -> None:
        """A call went through: recover 2% of the configured rate."""
        if self._factor < 1.0:
            self._factor = min(1.0, self._factor + 0.02)

    def pause_until(self, deadline: float) -> None:
        """Hold every caller until ``deadline`` (clock time), e.g. after a server retry-after."""
        self._paused_until = max(self._paused_until, deadline)

    def wake(self) -> None:
        """An answer came back: a caller waiting for the window may go now."""
        self._answer.set()

    def _delay(self, now: float) -> float:
        """Seconds until a request may start (``inf``: until an answer comes back)."""
        qps = self.current_qps
        slots, window = (math.floor(qps), 1.0) if qps >= 1 else (1, 1 / qps)
        slots = min(slots, self._slots)
        keep = max(window, self._window)
        entries = self._entries
        while entries and entries[0].bound <= now - keep:
            entries.popleft()
        wait = max(0.0, self._paused_until - now)
        wait = max(wait, self._next - min(0.25 / qps, 0.01) - now)
        bounds = sorted(t.bound for t in entries if t.bound > now - window)
        if len(bounds) >= slots:
            wait = max(wait, bounds[len(bounds) - slots] + window - now)
        return wait

    async def _take(self) -> Ticket:
        self._waiting += 1
        arrived = self.clock()
        try:
            async with self._lock:  # FIFO: asyncio.Lock wakes waiters in order
                while (wait := self._delay(self.clock())) > 0:
                    self._answer.clear()
                    if wait == _OPEN:
                        await self._answer.wait()
                    else:
                        await asyncio.sleep(wait)
                ticket = Ticket(self, self.clock())
                reference = max(arrived - CATCH_UP, min(self._paused_until, ticket.start))
                self._next = max(self._next, reference) + 1 / self.current_qps
                self._entries.append(ticket)
                return ticket
        finally:
            self._waiting -= 1

    @contextlib.asynccontextmanager
    async def request(self) -> AsyncIterator[Ticket]:
        """Wait for a turn; the block sends the request and calls ``answered()`` when the answer arrives.

        Leaving the block marks the request answered in any case (an error, a timeout, cancellation).
        """
        ticket = await self._take()
        try:
            yield ticket
        finally:
            ticket.answered()

    async def acquire(self) -> None:
        """Wait for a turn for a request whose arrival is its start (no answer to wait for)."""
        (await self._take()).answered()
