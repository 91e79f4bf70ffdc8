"""The simulated Kafka workload: offsets and produce times computed from the clock, never ticked.

Each partition has a cumulative production curve ``F(t)`` (messages produced since it began, plus a
base offset), monotonic, so the produce time of any offset is ``F^-1(offset)``: the true lags of every
partition are known at any moment, the oracle the exporter is checked against. A consumer group is a
sequence of phases (follow the head, consume a fraction of the rate, frozen, rewound) switched by timed
events. Nothing is stored per message or partition, except the drawn counts of a topic with realistic
traffic (Poisson arrivals, see traffic.py).
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass, field
from typing import Literal

from exporter.simulator.traffic import Arrivals, Traffic

Shape = Literal["steady", "bursty", "diurnal", "idle"]
Mode = Literal["follow", "fraction", "frozen", "rewind"]
InstanceState = Literal[
    "pending", "deploying", "running", "stopped", "expiring", "expired", "released", "upgrading", "migrating",
    "stopping", "starting", "releasing", "scaling", "deployment_failed", "upgrade_failed", "migration_failed",
]
# How GetConsumerProgress answers for a group that has never committed an offset (no public source shows
# it, so every plausible answer): an empty TopicList, no TopicList, ConsumerProgress {}, null or absent.
EmptyAnswer = Literal["empty_list", "no_topic_list", "empty_object", "null", "absent"]

# Each state as GetInstanceList reports it: (ViewInstanceStatusCode, ServiceStatus or None when the
# deprecated field has no such state, whether the instance answers the other actions). The codes are the
# API reference's (alikafka 2019-09-16 GetInstanceList, as carried by the official SDK models, e.g.
# aliyun/alibabacloud-typescript-sdk alikafka-20190916/src/models/GetInstanceListResponseBody.ts).
INSTANCE_STATES: dict[str, tuple[int, int | None, bool]] = {
    "pending": (0, 0, False),
    "deploying": (1, 1, False),
    "running": (2, 5, True),
    "stopped": (3, None, False),
    "expiring": (4, 5, True),
    "expired": (5, 15, False),
    "released": (6, 10, False),
    "upgrading": (7, 8, True),
    "migrating": (8, 6, True),
    "stopping": (21, None, True),
    "starting": (22, 3, False),
    "releasing": (23, None, False),
    "scaling": (30, 30, True),
    "deployment_failed": (101, None, False),
    "upgrade_failed": (102, None, True),
    "migration_failed": (103, None, True),
}

HISTORY = 3600.0  # seconds of production that exist before the simulator starts
_BURST_PERIOD = 60.0
_BURST_HIGH = 10.0  # seconds per period at 5x the rate; the rest at 0.25x
_DIURNAL_PERIOD = 86400.0
_DIURNAL_AMPLITUDE = 0.8
_CATCH_UP = 3.0  # a consumer that is behind consumes at up to 3x the partition's average rate


@dataclass(frozen=True, slots=True)
class PartitionCurve:
    """Cumulative production of one partition: ``offset(t)`` and its inverse ``produce_time(o)``."""

    base: int
    rate: float
    shape: Shape
    start: float  # when the partition began producing (epoch seconds)
    idle_after: float  # idle topics stop producing here
    arrivals: Arrivals | None = None  # set: Poisson arrivals (traffic.py) replace the smooth curve

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

    @property
    def mean_rate(self) -> float:
        """Average messages per second (bursty averages its two rates)."""
        if self.arrivals is not None:
            return self.arrivals.mean_rate
        if self.shape == "bursty":
            return self.rate * (5 * _BURST_HIGH + 0.25 * (_BURST_PERIOD - _BURST_HIGH)) / _BURST_PERIOD
        return self.rate

    def offset(self, t: float) -> int:
        """The end offset (the next offset to be written) at time ``t``."""
        if self.arrivals is not None:
            return self.base + self.arrivals.count(t)
        return self.base + math.floor(self._cumulative(t))

    def produce_time(self, offset: int) -> float:
        """When message ``offset`` was produced: the first moment the end offset passed it."""
        target = offset - self.base + 1
        if target <= 0:
            return self.start
        if self.arrivals is not None:
            return self.arrivals.time_of(target - 1)
        if self.shape == "steady" and self.rate > 0:
            return self.start + target / self.rate
        lo, hi = self.start, self.start + 1.0
        while self._cumulative(hi) < target:
            hi = self.start + (hi - self.start) * 2
            if hi - self.start > 1e10:
                return math.inf
        for _ in range(50):
            mid = (lo + hi) / 2
            if self._cumulative(mid) >= target:
                hi = mid
            else:
                lo = mid
        return hi


@dataclass(frozen=True, slots=True)
class Phase:
    """From ``start`` on, how the committed offset moves."""

    start: float
    mode: Mode
    delay: float = 2.0  # follow/rewind: how far behind the head the consumer settles, seconds
    fraction: float = 0.5  # fraction: share of the production consumed
    rewind_to: float | None = None  # rewind: epoch time whose offset to restart from (None: earliest)
    capacity: float | None = None  # follow/rewind: messages per second per partition the consumer can process


@dataclass(frozen=True, slots=True)
class Consumer:
    """A group's consumption, as phases in time order; offsets are committed every ``commit_every`` s.

    With ``commit_jitter``, commit ``k`` lands at ``k * commit_every`` moved by up to ``commit_jitter / 2``
    either way (drawn from ``seed``), so consecutive commits are ``commit_every +- commit_jitter`` apart.
    """

    phases: tuple[Phase, ...]
    commit_every: float = 5.0
    commit_jitter: float = 0.0
    seed: str = ""

    def last_commit(self, t: float) -> float:
        """The time of the newest commit at or before ``t``."""
        if not self.commit_jitter:
            return math.floor(t / self.commit_every) * self.commit_every
        k = math.floor(t / self.commit_every) + 1
        while True:
            digest = hashlib.blake2b(f"{self.seed}/{k}".encode(), digest_size=8).digest()
            at = k * self.commit_every + (int.from_bytes(digest, "big") / 2**64 - 0.5) * self.commit_jitter
            if at <= t:
                return at
            k -= 1

    def committed(self, curve: PartitionCurve, t: float) -> int:
        """The committed offset at ``t`` on a partition with production ``curve``."""
        t = self.last_commit(t)
        current = curve.offset(min(t, curve.start))
        for index, phase in enumerate(self.phases):
            if phase.start > t:
                break
            begin = max(phase.start, curve.start)
            end = t if index + 1 == len(self.phases) else min(t, self.phases[index + 1].start)
            if end < begin:
                continue
            current = self._advance(phase, curve, current, begin, end)
        return max(curve.base, min(current, curve.offset(t)))

    @staticmethod
    def _advance(phase: Phase, curve: PartitionCurve, start_offset: int, begin: float, end: float) -> int:
        if phase.mode == "frozen":
            return start_offset
        if phase.mode == "fraction":
            return start_offset + math.floor(phase.fraction * (curve.offset(end) - curve.offset(begin)))
        if phase.mode == "rewind":
            start_offset = curve.base if phase.rewind_to is None else curve.offset(phase.rewind_to)
        if phase.capacity is not None and curve.arrivals is not None:  # a queue, solved exactly
            return curve.arrivals.drain((phase, begin, start_offset), start_offset, begin, end, phase.capacity,
                                        lambda at: curve.offset(at - phase.delay))
        head = curve.offset(end - phase.delay)
        rate = _CATCH_UP * curve.mean_rate if phase.capacity is None else phase.capacity
        budget = math.floor(rate * (end - begin))
        return max(start_offset, min(head, start_offset + budget))


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


@dataclass(frozen=True)
class Topic:
    """A topic: partition curves are derived from a seed on demand, never stored."""

    name: str
    partitions: int
    rate: float
    shape: Shape
    seed: str
    created: float  # epoch seconds
    local_storage: bool = False
    deleted: float = math.inf
    grown: tuple[tuple[float, int], ...] = ()  # (when, new partition count)
    traffic: Traffic | None = None  # set: Poisson arrivals at a bursty, diurnal, skewed rate (traffic.py)
    # with traffic, each partition's curve (and the arrivals drawn for it) is built once and kept here
    _curves: dict[int, PartitionCurve] = field(default_factory=dict, compare=False, repr=False)

    def exists(self, t: float) -> bool:
        """Whether the topic exists at ``t``."""
        return self.created <= t < self.deleted

    def partition_count(self, t: float) -> int:
        """Partitions at ``t`` (partitions can be added, never removed)."""
        count = self.partitions
        for when, new in self.grown:
            if when <= t:
                count = max(count, new)
        return count

    def curve(self, partition: int) -> PartitionCurve:
        """The production curve of one partition, the same every time for the same seed."""
        cached = self._curves.get(partition)
        if cached is not None:
            return cached
        digest = hashlib.blake2b(f"{self.seed}/{partition}".encode(), digest_size=8).digest()
        rng = random.Random(int.from_bytes(digest, "big"))  # noqa: S311 - simulation, not security
        start = self.created
        for when, new in self.grown:
            if partition >= self.partitions and partition < new:
                start = max(start, when)
                break
        curve = PartitionCurve(
            base=rng.randrange(0, 1_000_000) if start == self.created else 0,
            rate=self.rate * rng.uniform(0.8, 1.2),
            shape=self.shape,
            start=start,
            idle_after=start + HISTORY / 2,
        )
        if self.traffic is not None:
            factor = curve.rate / self.rate if self.rate > 0 else 1.0
            curve = PartitionCurve(curve.base, curve.rate, curve.shape, start, curve.idle_after,
                                   self.traffic.arrivals(partition, start, factor))
            self._curves[partition] = curve
        return curve


@dataclass(frozen=True)
class Group:
    """A consumer group: the topics it reads, how it consumes, and its membership over time."""

    name: str
    topics: tuple[str, ...]
    consumer: Consumer
    members: tuple[tuple[str, str, str], ...]  # (member id, client id, client ip) while present
    absent: tuple[tuple[float, float], ...] = ()  # [from, until) windows without members
    rebalances: tuple[tuple[float, float], ...] = ()  # (when, duration) of rebalances
    generation: int = 1
    deleted: float = math.inf
    never_committed: EmptyAnswer | None = None  # set: the group has no committed offset, answered this way
    missing_offsets: bool = False  # some partitions answer without usable offsets (Accumulate only)

    def members_at(self, t: float) -> tuple[tuple[str, str, str], ...]:
        """Members present at ``t``."""
        return () if any(a <= t < b for a, b in self.absent) else self.members

    def state_at(self, t: float) -> str:
        """The group state the API reports at ``t``."""
        if any(when <= t < when + took for when, took in self.rebalances):
            return "PREPARING_REBALANCE"
        return "EMPTY" if not self.members_at(t) else "STABLE"

    def rebalance_at(self, t: float) -> tuple[int, float, float, bool] | None:
        """(generation, when, seconds taken so far, finished) of the newest rebalance at ``t``.

        Every membership change (members leaving or coming back) is a rebalance too.
        """
        past = [(when, took) for when, took in self.rebalances if when <= t]
        past += [(edge, 0.2) for window in self.absent for edge in window if edge <= t]
        if not past:
            return None
        when, took = max(past)
        return self.generation + len(past), when, min(took, t - when), t >= when + took


@dataclass
class Instance:
    """An alikafka instance. Generated groups (``gen-gNNNNN`` reading ``gen-tNNNNN``) are built on demand."""

    instance_id: str
    region: str
    name: str
    serverless: bool = False
    stopped: float = math.inf
    spec_type: str = "normal"
    series: str = "v3"
    topics: dict[str, Topic] = field(default_factory=dict)
    groups: dict[str, Group] = field(default_factory=dict)
    generated: GeneratedSpec | None = None
    states: tuple[tuple[float, InstanceState], ...] = ()  # (from when, state) in time order; before: running
    status_fields: Literal["both", "view", "service", "none"] = "both"  # which status fields GetInstanceList sends

    def state_at(self, t: float) -> InstanceState:
        """The instance's state at ``t`` (``stopped`` at its time means it expired)."""
        if t >= self.stopped:
            return "expired"
        state: InstanceState = "running"
        for when, name in self.states:
            if when <= t:
                state = name
        return state

    def serving(self, t: float) -> bool:
        """Whether the instance answers at ``t``."""
        return INSTANCE_STATES[self.state_at(t)][2]

    def group_names(self) -> list[str]:
        """Every group name, explicit and generated, sorted."""
        names = list(self.groups)
        if self.generated is not None:
            names += [self.generated.group_name(i) for i in range(self.generated.groups)]
        return sorted(names)

    def topic_names(self) -> list[str]:
        """Every topic name, explicit and generated, sorted."""
        names = list(self.topics)
        if self.generated is not None:
            names += [self.generated.topic_name(i) for i in range(self.generated.groups)]
        return sorted(names)

    def group(self, name: str) -> Group | None:
        """An explicit group, or a generated one built from its name."""
        found = self.groups.get(name)
        if found is None and self.generated is not None:
            return self.generated.group(self.instance_id, name)
        return found

    def topic(self, name: str) -> Topic | None:
        """An explicit topic, or a generated one built from its name."""
        found = self.topics.get(name)
        if found is None and self.generated is not None:
            return self.generated.topic(self.instance_id, name)
        return found


@dataclass(frozen=True)
class GeneratedSpec:
    """``groups`` healthy groups, each reading its own topic of ``partitions`` partitions."""

    groups: int
    partitions: int
    rate: float
    shape: Shape
    delay: float
    members: int
    start: float

    @staticmethod
    def group_name(index: int) -> str:
        """The name of generated group ``index``."""
        return f"gen-g{index:05d}"

    @staticmethod
    def topic_name(index: int) -> str:
        """The name of generated topic ``index``."""
        return f"gen-t{index:05d}"

    def _index(self, name: str, prefix: str) -> int | None:
        if not name.startswith(prefix) or not name[len(prefix):].isdigit():
            return None
        index = int(name[len(prefix):])
        return index if 0 <= index < self.groups and name == f"{prefix}{index:05d}" else None

    def topic(self, instance_id: str, name: str) -> Topic | None:
        """Generated topic ``name``, if it is one."""
        if self._index(name, "gen-t") is None:
            return None
        return Topic(name, self.partitions, self.rate, self.shape, f"{instance_id}/{name}", self.start)

    def group(self, instance_id: str, name: str) -> Group | None:
        """Generated group ``name``, if it is one."""
        index = self._index(name, "gen-g")
        if index is None:
            return None
        members = tuple(
            (f"consumer-{i + 1}-{index:05d}", f"consumer-{i + 1}", f"10.{index % 250}.{i % 250}.{1 + index % 200}")
            for i in range(self.members)
        )
        consumer = Consumer((Phase(self.start, "follow", delay=self.delay),))
        rebalanced = self.start + HISTORY / 2 + index % 600
        return Group(name, (self.topic_name(index),), consumer, members, rebalances=((rebalanced, 0.5),))


def truth(instance: Instance, group: Group, t: float) -> list[PartitionTruth]:
    """The true state of every partition ``group`` reads, at time ``t``."""
    result = []
    for name in group.topics:
        topic = instance.topic(name)
        if topic is None or not topic.exists(t):
            continue
        for index in range(topic.partition_count(t)):
            curve = topic.curve(index)
            end = curve.offset(t)
            committed = min(end, group.consumer.committed(curve, t))
            lag = end - committed
            time_lag = 0.0 if lag == 0 else max(0.0, t - curve.produce_time(committed))
            consumed = curve.produce_time(committed - 1) if committed > curve.base else None
            result.append(PartitionTruth(name, index, end, committed, lag, time_lag, consumed))
    return result
