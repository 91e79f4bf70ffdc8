"""The simulated Kafka workload: offsets and produce times computed from the clock, never ticked.

Each partition has a cumulative production curve ``F(t)`` (messages produced since history
start, plus a base offset). Because ``F`` is monotonic, the produce time of any offset is
``F^-1(offset)``, so the true offset lag and the true time lag of every partition are known at any
moment: the oracle that the exporter's numbers are checked against. Consumers are defined by how
their committed offset follows ``F`` (a delay, a fraction of the rate, or frozen at a moment).
Nothing is precomputed per message, so large scenarios cost only their definitions.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from typing import Literal

Shape = Literal["steady", "bursty", "diurnal", "idle"]
Behaviour = Literal["healthy", "lagging", "stopped", "stalled", "rebalancing"]

HISTORY = 3600.0  # seconds of production that exist before the simulator starts
_BURST_PERIOD = 60.0
_BURST_HIGH = 10.0  # seconds per period at 5x the rate; the rest at 0.25x (average about 1x)
_DIURNAL_PERIOD = 86400.0
_DIURNAL_AMPLITUDE = 0.8


@dataclass(frozen=True, slots=True)
class PartitionCurve:
    """Cumulative production of one partition: ``offset(t)`` and its inverse ``produce_time(o)``."""

    base: int
    rate: float
    shape: Shape
    start: float  # history start (epoch seconds)
    idle_after: float  # idle topics stop producing here

    def _cumulative(self, t: float) -> float:
        elapsed = max(0.0, t - self.start)
        if self.shape == "idle":
            return self.rate * min(elapsed, max(0.0, self.idle_after - self.start))
        if self.shape == "bursty":
            periods, rest = divmod(elapsed, _BURST_PERIOD)
            per_period = self.rate * (5 * _BURST_HIGH + 0.25 * (_BURST_PERIOD - _BURST_HIGH))
            partial = 5 * self.rate * min(rest, _BURST_HIGH) + 0.25 * self.rate * max(0.0, rest - _BURST_HIGH)
            return periods * per_period + partial
        if self.shape == "diurnal":
            w = 2 * math.pi / _DIURNAL_PERIOD
            wave = _DIURNAL_AMPLITUDE / w * (math.cos(w * self.start) - math.cos(w * (self.start + elapsed)))
            return self.rate * (elapsed + wave)
        return self.rate * elapsed

    def offset(self, t: float) -> int:
        """The end offset (next offset to be written) at time ``t``."""
        return self.base + math.floor(self._cumulative(t))

    def produce_time(self, offset: int) -> float:
        """When message ``offset`` was produced (the first moment the end offset passed it)."""
        target = offset - self.base + 1
        if target <= 0:
            return self.start
        lo, hi = self.start, self.start + 1.0
        while self._cumulative(hi) < target:
            hi = self.start + (hi - self.start) * 2
            if hi - self.start > 1e10:
                return math.inf
        for _ in range(60):
            mid = (lo + hi) / 2
            if self._cumulative(mid) >= target:
                hi = mid
            else:
                lo = mid
        return hi


@dataclass(frozen=True, slots=True)
class Consumer:
    """How a group's committed offset follows production on every partition it reads."""

    behaviour: Behaviour
    delay: float = 2.0  # healthy: seconds behind the head
    fraction: float = 0.5  # lagging: share of the production rate consumed
    since: float = 0.0  # epoch seconds when stopping/stalling/lagging began
    commit_every: float = 5.0  # offsets are committed on this cadence

    def committed(self, curve: PartitionCurve, t: float) -> int:
        """The committed offset at ``t``."""
        if self.behaviour in ("stopped", "stalled"):
            t = min(t, self.since)
        t = math.floor(t / self.commit_every) * self.commit_every
        head = curve.offset(t - self.delay)
        if self.behaviour == "lagging" and t > self.since:
            at_start = curve.offset(self.since - self.delay)
            return min(head, at_start + math.floor(self.fraction * (curve.offset(t) - at_start)))
        return head


@dataclass(frozen=True, slots=True)
class PartitionTruth:
    """What is really true about one partition for one group at one moment."""

    topic: str
    partition: int
    broker_offset: int
    consumer_offset: int
    lag: int
    time_lag_seconds: float
    last_consumed_produce_time: float | None  # None: nothing consumed yet


@dataclass
class Topic:
    """A topic of an instance."""

    name: str
    curves: list[PartitionCurve]
    local_storage: bool = False


@dataclass
class Group:
    """A consumer group and the topics it reads."""

    name: str
    topics: list[str]
    consumer: Consumer
    members: list[tuple[str, str, str]] = field(default_factory=list)  # (member id, client id, client ip)
    generation: int = 1
    last_rebalance: float = 0.0
    rebalance_ms: int = 300


@dataclass
class Instance:
    """An alikafka instance."""

    instance_id: str
    region: str
    name: str
    serverless: bool = False
    running: bool = True
    spec_type: str = "normal"
    series: str = "v3"
    topics: dict[str, Topic] = field(default_factory=dict)
    groups: dict[str, Group] = field(default_factory=dict)


def truth(instance: Instance, group: Group, t: float) -> list[PartitionTruth]:
    """The true state of every partition ``group`` reads, at time ``t``."""
    result = []
    for name in group.topics:
        topic = instance.topics.get(name)
        if topic is None:
            continue
        for index, curve in enumerate(topic.curves):
            end = curve.offset(t)
            committed = min(end, group.consumer.committed(curve, t))
            lag = end - committed
            time_lag = 0.0 if lag == 0 else max(0.0, t - curve.produce_time(committed))
            consumed = curve.produce_time(committed - 1) if committed > curve.base else None
            result.append(PartitionTruth(name, index, end, committed, lag, time_lag, consumed))
    return result


def make_curve(rng: random.Random, rate: float, shape: Shape, start: float) -> PartitionCurve:
    """A partition curve with a random base offset and +-20% rate jitter."""
    return PartitionCurve(
        base=rng.randrange(0, 1_000_000),
        rate=rate * rng.uniform(0.8, 1.2),
        shape=shape,
        start=start,
        idle_after=start + HISTORY / 2,
    )
