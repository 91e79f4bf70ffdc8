"""The process-wide limiter never lets more than max_qps requests start in any one-second window."""

from __future__ import annotations

import asyncio
import io
import logging
import random
import time

import pytest
from aiohttp.test_utils import TestServer

from exporter import app
from exporter.cloud.client import AlikafkaClient
from exporter.cloud.credentials import Credentials, Secret, StaticProvider
from exporter.cloud.ratelimit import RateLimiter
from exporter.cloud.stats import ApiStats
from exporter.config.settings import load_settings
from exporter.polling.poller import HEADROOM
from exporter.simulator import FaultRule, Scenario, Simulator, build_app
from tests.support.fakes import api_settings
from tests.support.samples import value


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
    assert limiter.current_qps == 6  # 6.4 allowed: enforced as 6 whole requests per second
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
    """Calls queued behind a pause start on a 1/qps schedule from its end (less the 10 ms the virtual schedule
    tolerates), not all at once when it ends. (A start the event loop delays lets the next catch up, so the
    schedule, not each gap, is the bound: on a busy machine one gap can be short after a long one.)"""
    limiter = RateLimiter(10)
    resume = time.monotonic() + 0.2
    limiter.pause_until(resume)
    starts: list[float] = []

    async def one() -> None:
        await limiter.acquire()
        starts.append(time.monotonic())

    await asyncio.gather(*(one() for _ in range(5)))
    assert all(start >= resume + k * 0.1 - 0.011 for k, start in enumerate(starts)), [s - resume for s in starts]


async def test_never_exceeds_max_qps_at_the_server_whatever_the_jitter() -> None:
    """Requests reach the server after a random delay and answer after another: the arrivals, as the
    server counts them, never hold more than floor(max_qps) in any one-second window. (A window of
    start times alone fails this: a slow request followed a second later by a fast one collide.)"""
    rng = random.Random(5)
    limiter = RateLimiter(20)
    arrivals: list[float] = []

    async def one() -> None:
        async with limiter.request() as ticket:
            await asyncio.sleep(rng.choice([0.0, 0.0, 0.002, 0.15]))  # on the way: mostly fast, some slow
            arrivals.append(time.monotonic())  # the server counts it here
            await asyncio.sleep(rng.uniform(0, 0.02))  # the server builds the answer
            ticket.answered()
            await asyncio.sleep(0.01)  # the client reads the body after the headers

    started = time.monotonic()
    await asyncio.gather(*(one() for _ in range(70)))
    elapsed = time.monotonic() - started
    assert max_in_window(arrivals) <= 20
    assert elapsed < 70 / 20 * 1.25, "exact, but not much slower than the limit"


async def test_an_unanswered_request_holds_its_place() -> None:
    """While a request is in flight the server may still count it: the window cannot move past it."""
    limiter = RateLimiter(1)
    gate = asyncio.Event()

    async def slow() -> None:
        async with limiter.request():
            await gate.wait()

    task = asyncio.create_task(slow())
    await asyncio.sleep(0)
    second = asyncio.create_task(limiter.acquire())
    await asyncio.sleep(1.3)
    assert not second.done() and limiter.waiting == 1
    gate.set()
    answered = time.monotonic()
    await asyncio.wait_for(second, 1.5)
    assert time.monotonic() - answered >= 0.99, "a full second after the answer, not after the start"
    await task


async def test_real_simulator_at_its_limit_never_throttles() -> None:
    """The client at max_qps equal to the simulator's limit, with uneven latency, never gets Throttling.User."""
    simulator = Simulator(Scenario.builtin("minimal"), access_keys={"AK": "SK"}, seed=3)
    simulator.set_qps_limit("GetConsumerProgress", 10)
    simulator.add_fault(FaultRule(kind="latency", delay=0.12, probability=0.3))
    server = TestServer(build_app(simulator), host="127.0.0.1")
    await server.start_server()
    stats = ApiStats()
    client = AlikafkaClient(api_settings(str(server.make_url("/"))),
                            StaticProvider(Credentials("AK", Secret("SK"), None), "test"), RateLimiter(10), stats)
    try:
        async with client:
            await asyncio.gather(*(client.get_consumer_progress("cn-hangzhou", "alikafka_post-cn-test0001",
                                                                "orders-consumer") for _ in range(35)))
    finally:
        await server.close()
    assert stats.requests == {("GetConsumerProgress", "200"): 35}


async def test_fractional_rates_report_what_is_enforced() -> None:
    """max_qps 2.5 is enforced as 2 per second, and max_qps/current_qps say 2 (also after a back-off: 2 x 0.8
    runs as 1); 0.5 is enforced exactly, one request every 2 s. What they report is what the starts show."""
    fast, slow = RateLimiter(2.5), RateLimiter(0.5)
    assert (fast.max_qps, fast.current_qps, slow.max_qps, slow.current_qps) == (2, 2, 0.5, 0.5)

    async def starts(limiter: RateLimiter, count: int) -> list[float]:
        out = []
        for _ in range(count):
            await limiter.acquire()
            out.append(time.monotonic())
        return out

    fast_starts, slow_starts = await asyncio.gather(starts(fast, 5), starts(slow, 2))
    assert max_in_window(fast_starts) <= 2
    observed = (len(fast_starts) - 1) / (fast_starts[-1] - fast_starts[0])
    assert observed == pytest.approx(fast.current_qps, rel=0.05)
    assert slow_starts[1] - slow_starts[0] == pytest.approx(1 / slow.current_qps, abs=0.02)
    fast.throttled(0.0)
    assert fast.current_qps == 1  # 2.5 configured, 2 enforced, cut by a fifth: 1.6, enforced as 1
    slow.throttled(0.0)
    assert slow.current_qps == pytest.approx(0.4)


async def test_exporter_exports_and_says_the_enforced_rate(caplog: pytest.LogCaptureFixture) -> None:
    """--once at max_qps 2.5 against the simulator: one warning says 2 is enforced, the exported effective
    interval is planned with 2 (2 pairs / (2 x 98%) > the 1 s interval; 2.5 would give 1 s), and
    --check-config says so too."""
    simulator = Simulator(Scenario.builtin("minimal"), access_keys={"AK": "SK"})
    server = TestServer(build_app(simulator), host="127.0.0.1")
    await server.start_server()
    try:
        settings = load_settings({"targets": [{"instance_id": "alikafka_post-cn-test0001", "region": "cn-hangzhou",
                                               "groups": ["orders-consumer", "billing"]}],
                                  "api": {"endpoint": str(server.make_url("/")), "max_qps": 2.5},
                                  "poll": {"interval": "1s"}}, {}, None)
        plan = app.Plan(app.plan_pairs(settings), settings.api, StaticProvider(Credentials("AK", Secret("SK")), "t"),
                        tuple(settings.targets))
        out = io.StringIO()
        with caplog.at_level(logging.WARNING, logger="exporter.app"):
            assert await app.run_once(settings, plan, out) == 0
    finally:
        await server.close()
    warnings = [r for r in caplog.records if "max_qps" in r.getMessage()]
    assert len(warnings) == 1
    assert (warnings[0].__dict__["max_qps"], warnings[0].__dict__["enforced_qps"]) == (2.5, 2)
    interval = value(out.getvalue(), "alikafka_exporter_effective_poll_interval_seconds")
    assert interval == pytest.approx(2 / (2 * HEADROOM))
    assert any("max_qps 2.5 (enforced as 2" in x for x in app.summary_lines(settings, plan))
