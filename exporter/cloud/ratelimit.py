"""A process-wide request-rate limit that never exceeds ``max_qps`` in any one-second window *at the server*.

The cloud API counts requests per account and per second when they reach it, and answers the one
over the limit with ``Throttling.User``. The moment a request reaches the server is not known to the
client, but it is bounded: after the request started leaving, and before its answer's headers came
back. So the limiter keeps, for each of the last ``floor(max_qps)`` requests, that upper bound (the
time its answer arrived, or "not yet" while it is in flight), and lets a new request start only when
the oldest of them was admitted more than a second ago *for certain*. Whatever the latency, stalls or
arrival jitter, no one-second window at the server can then hold more than ``floor(max_qps)``
requests. The price is one round trip per ``floor(max_qps)`` requests (a local round trip of 10 ms at
20 qps costs 1%). A token bucket, by contrast, allows a burst of its capacity on top of the steady
rate, and a window of start times alone is exact only for a client whose requests all take the same
time to arrive. For rates below one per second the window stretches to ``1 / max_qps`` with one slot.
Starts are also spaced ``1 / qps`` apart on a virtual schedule (a generic cell rate algorithm: each
start moves the theoretical next start on by ``1 / qps``, from the time its caller arrived at the
latest (less half a second of catch-up) or from the end of a pause; a start may come up to a quarter
of ``1 / qps``, at most 10 ms, early). Calls queued behind a pause so do not leave at once, while a
start that leaves late (a busy event loop, a descheduled process, a wait for the window) does not push
every later start back: the ones behind it catch up, as far as the window allows.

It also backs off when the service says it is over the account's limit (other processes of the
same account count too): a throttling answer cuts the rate by a fifth and holds every caller for the
server's retry-after; each success then gives back 2% of ``max_qps``, so a shared account settles on
what is actually left for this process (additive increase, multiplicative decrease).

So the rate enforced is a whole number of requests per second from 1 up (``floor``: 2.5 runs as 2,
and 2.5 x 0.8 after a throttling answer as 2), and exact below 1. :attr:`RateLimiter.max_qps` and
:attr:`RateLimiter.current_qps` report that enforced rate, never the unrounded one, so whatever plans
with them (the poller's effective interval, its pacing) plans with what is actually admitted.
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
