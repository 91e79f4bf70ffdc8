"""The process-wide limiter never lets more than max_qps requests start in any one-second window."""

from __future__ import annotations

import asyncio
import itertools
import time

import pytest

from exporter.ratelimit import RateLimiter


def max_in_window(starts: list[float], window: float = 1.0) -> int:
    starts = sorted(starts)
    best = 0
    j = 0
    for i, t in enumerate(starts):
        while starts[j] <= t - window:
            j += 1
        best = max(best, i - j + 1)
    return best


@pytest.mark.parametrize("qps", [40.0, 12.5])
async def test_never_exceeds_max_qps_in_any_second(qps: float) -> None:
    """Concurrent callers: every sliding one-second window holds at most floor(max_qps) starts."""
    limiter = RateLimiter(qps)
    starts: list[float] = []

    async def one() -> None:
        await limiter.acquire()
        starts.append(time.monotonic())

    await asyncio.gather(*(one() for _ in range(int(qps * 2) + 5)))
    assert max_in_window(starts) <= int(qps)
    assert limiter.max_qps == int(qps)


async def test_pause_holds_everyone() -> None:
    """pause_until delays the next start to the deadline."""
    limiter = RateLimiter(100)
    limiter.pause_until(time.monotonic() + 0.3)
    started = time.monotonic()
    await limiter.acquire()
    assert time.monotonic() - started >= 0.29


def test_invalid_rate() -> None:
    """A non-positive rate is a programming error."""
    with pytest.raises(ValueError, match="positive"):
        RateLimiter(0)


async def test_throttling_halves_the_rate_and_successes_recover_it() -> None:
    """AIMD: a throttling answer cuts the rate by a fifth (and pauses); each success gives back 2% of max_qps."""
    limiter = RateLimiter(10)
    limiter.throttled(0.0)
    assert limiter.current_qps == pytest.approx(8)
    limiter.throttled(None)
    assert limiter.current_qps == pytest.approx(6.4)
    for _ in range(100):
        limiter.succeeded()
    assert limiter.current_qps == 10
    limiter.throttled(0.2)
    started = time.monotonic()
    await limiter.acquire()
    assert time.monotonic() - started >= 0.19


async def test_backed_off_rate_is_enforced() -> None:
    """After throttling, the window allows only the reduced rate."""
    limiter = RateLimiter(20)
    limiter.throttled(0.0)
    limiter.throttled(0.0)  # 20 x 0.64 = 12.8 per second
    starts: list[float] = []
    for _ in range(25):
        await limiter.acquire()
        starts.append(time.monotonic())
    assert max_in_window(starts) <= 12


async def test_no_burst_after_a_pause() -> None:
    """Calls queued behind a pause start 1/qps apart, not all at once when it ends."""
    limiter = RateLimiter(10)
    limiter.pause_until(time.monotonic() + 0.2)
    starts: list[float] = []

    async def one() -> None:
        await limiter.acquire()
        starts.append(time.monotonic())

    await asyncio.gather(*(one() for _ in range(5)))
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert min(gaps) >= 0.095
