"""Hand-written fakes that satisfy the project's Protocols (no mock.patch anywhere)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from aiohttp.test_utils import TestServer

from exporter.cloud.client import AlikafkaClient
from exporter.cloud.credentials import Credentials, Secret, StaticProvider
from exporter.cloud.errors import ApiError
from exporter.cloud.models import ConsumerProgress, InstanceInfo, PartitionProgress, RebalanceInfo, TopicProgress
from exporter.cloud.ratelimit import RateLimiter
from exporter.cloud.stats import ApiStats
from exporter.config.settings import ApiSettings, MetricsSettings
from exporter.metrics.exposition import render_states
from exporter.metrics.self_metrics import TailCollector
from exporter.polling.snapshot import Board, Snapshot
from exporter.simulator import Simulator, build_app


def progress(
    lags: dict[str, dict[int, tuple[int, int | None]]],
    *,
    state: str = "stable",
    members: tuple[str, ...] = ("member-1",),
    last_ts_ms: int | None = 1_700_000_000_000,
    rebalance: RebalanceInfo | None = None,
) -> ConsumerProgress:
    """Build a ConsumerProgress from {topic: {partition: (broker, consumer)}}."""
    topics = []
    for name, parts in sorted(lags.items()):
        partitions = tuple(
            PartitionProgress(p, broker, consumer, last_ts_ms, members[p % len(members)] if members else "",
                              f"client-{p}", "10.0.0.9")
            for p, (broker, consumer) in sorted(parts.items())
        )
        diff = sum(max(0, b - c) for b, c in parts.values() if c is not None)
        topics.append(TopicProgress(name, diff, last_ts_ms, partitions))
    total = sum(t.total_diff or 0 for t in topics)
    return ConsumerProgress(total, last_ts_ms, state, tuple(topics), (rebalance,) if rebalance else ())


@dataclass
class FakePace:
    """A pace set by hand (a limiter backing off, or with callers queued)."""

    max_qps: float
    current_qps: float
    waiting: int = 0


class FakeSource:
    """Answers from a per-(instance, group) script; records call overlap and order."""

    def __init__(self, answer: Callable[[str, str], ConsumerProgress | ApiError], delay: float = 0.0,
                 max_qps: float = 1000.0) -> None:
        self.answer = answer
        self.pace: RateLimiter | FakePace = RateLimiter(max_qps)  # read by the poller; answers never wait for it
        self.delay: dict[str, float] = {}
        self.default_delay = delay
        self.calls: list[tuple[str, str, float, float]] = []
        self.in_flight: set[tuple[str, str]] = set()
        self.overlaps = 0

    async def get_consumer_progress(
        self, region: str, instance_id: str, group: str
    ) -> tuple[ConsumerProgress, str | None]:
        key = (instance_id, group)
        if key in self.in_flight:
            self.overlaps += 1
        self.in_flight.add(key)
        loop = asyncio.get_running_loop()
        start = loop.time()
        try:
            await asyncio.sleep(self.delay.get(group, self.default_delay))
            result = self.answer(instance_id, group)
        finally:
            self.in_flight.discard(key)
            self.calls.append((instance_id, group, start, loop.time()))
        if isinstance(result, ApiError):
            raise result
        return result, "REQ-1"


class Clock:
    """A settable wall clock."""

    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def api_settings(endpoint: str, /, **changes: Any) -> ApiSettings:
    """The API settings of a test: every region's calls go to ``endpoint``, with a 2-second timeout.

    ``changes`` are applied without validation (``model_copy``), so a test may go past a bound (a
    512-byte answer cap) that a configuration may not.
    """
    return ApiSettings(endpoint=endpoint, timeout=2.0).model_copy(update=changes)


async def no_sleep(_: float) -> None:
    """A sleep that returns at once: retries and backoff cost no time in tests."""


@contextlib.asynccontextmanager
async def simulated_client(sim: Simulator) -> AsyncIterator[tuple[AlikafkaClient, ApiStats]]:
    """The exporter's client against ``sim`` served on loopback: key ``AK``/``SK`` (the simulator must know
    it), no retries, a rate limit of 1,000 per second and no sleeping; GetConsumerProgress's own limit is
    raised to match."""
    sim.set_qps_limit("GetConsumerProgress", 1000)
    server = TestServer(build_app(sim), host="127.0.0.1")
    await server.start_server()
    stats = ApiStats()
    try:
        async with AlikafkaClient(api_settings(str(server.make_url("/")), max_retries=0),
                                  StaticProvider(Credentials("AK", Secret("SK")), "t"), RateLimiter(1000), stats,
                                  sleep=no_sleep) as client:
            yield client, stats
    finally:
        await server.close()


def exposition_text(snapshot: Snapshot, stats: ApiStats | None = None, member_labels: bool = False) -> str:
    """The text exposition of a snapshot, as the web layer would serve it."""
    options = MetricsSettings(member_labels=member_labels, max_series=0)
    tail = TailCollector(board_of(snapshot), stats or ApiStats())
    return render_states(snapshot.pairs.values(), options, tail).decode()


def board_of(snapshot: Snapshot) -> Board:
    """A board holding a snapshot's states and figures, as the poller would have written them."""
    board = Board.holding(snapshot.pairs.values())
    board.describe(cycle_duration=snapshot.cycle_duration, effective_interval=snapshot.effective_interval,
                   discovering=snapshot.discovering, interval=snapshot.interval, schedule=snapshot.schedule)
    return board


@dataclass
class Catalog:
    """Instance attributes by ID, as the instance catalog holds them."""

    instances: dict[str, InstanceInfo]
    version: int = 0
