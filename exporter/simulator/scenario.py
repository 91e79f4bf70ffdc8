"""Scenarios: validated descriptions of instances, topics and consumer groups, plus built-ins.

A scenario is data (a YAML file or a dict), validated with clear errors naming the key, and turned
into a workload deterministically from its seed and the simulator's start time. Built-ins:
``minimal`` (one instance, for tests that reason about exact values) and ``demo`` (several
instances in two regions and dozens of groups, among them one lagging, one stopped, one stalled,
one rebalancing and one that rebalances every five minutes, on an instance whose full disk deletes the
messages its stopped group has not read).
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from exporter.simulator.faults import BOMB_SIZE, REDIRECT_LOCATION, FaultKind, FaultRule
from exporter.simulator.retention import DEFAULT_MSG_RETAIN, DEFAULT_SEGMENT_SECONDS
from exporter.simulator.traffic import Traffic
from exporter.simulator.workload import (
    HISTORY,
    Consumer,
    EmptyAnswer,
    GeneratedSpec,
    Group,
    Instance,
    InstanceState,
    Phase,
    Shape,
    Topic,
)

_STRICT = ConfigDict(extra="forbid", frozen=True)
Behaviour = Literal["healthy", "lagging", "stopped", "stalled", "rebalancing"]
# Times in a scenario are seconds relative to the simulator's start: -600 is ten minutes before it,
# 120 two minutes after. History begins HISTORY seconds before the start.
Relative = Annotated[float, Field(ge=-HISTORY)]


class ScenarioError(ValueError):
    """An invalid scenario; the message lists every problem, one per line."""


class PartitionsAdded(BaseModel):
    """Partitions grow to ``partitions`` at ``at``."""

    model_config = _STRICT
    at: Relative
    partitions: Annotated[int, Field(ge=1, le=10_000)]


class DiurnalSpec(BaseModel):
    """A daily wave: the rate times ``1 + amplitude * cos(2 pi (t - peak) / period)``."""

    model_config = _STRICT
    amplitude: Annotated[float, Field(ge=0, le=1)] = 0.8
    period: Annotated[float, Field(ge=60)] = 86400.0
    peak: float = 0.0  # relative to the start: a maximum of the wave


class TrafficSpec(BaseModel):
    """Poisson arrivals instead of a smooth curve: bursts between levels, a daily wave, skewed partitions."""

    model_config = _STRICT
    levels: Annotated[list[Annotated[float, Field(ge=0)]], Field(min_length=1)] | None = None  # None: [rate]
    dwell: Annotated[list[Annotated[float, Field(ge=1)]], Field(min_length=2, max_length=2)] = [10.0, 40.0]
    diurnal: DiurnalSpec | None = None
    skew: Annotated[float, Field(ge=0, le=5)] = 0.0

    @model_validator(mode="after")
    def _dwell_ordered(self) -> TrafficSpec:
        if self.dwell[0] > self.dwell[1]:
            raise ValueError("dwell: the shortest stay comes first")
        return self


class TopicSpec(BaseModel):
    """A topic: partitions, per-partition produce rate and shape, and its lifetime."""

    model_config = _STRICT
    name: Annotated[str, Field(min_length=1)]
    partitions: Annotated[int, Field(ge=1, le=10_000)] = 3
    rate: Annotated[float, Field(ge=0)] = 5.0
    shape: Shape = "steady"
    local_storage: bool = False
    created: Relative | None = None  # None: exists from the start of history
    deleted: Relative | None = None
    partitions_added: list[PartitionsAdded] = []
    traffic: TrafficSpec | None = None  # set: Poisson arrivals (``shape`` is then ignored)


class EventSpec(BaseModel):
    """Something that happens to a group at ``at``."""

    model_config = _STRICT
    at: Relative
    type: Literal["stop", "stall", "resume", "rewind", "lag", "rebalance", "delete"]
    fraction: Annotated[float, Field(ge=0, le=1)] = 0.5  # lag
    to: Relative | None = None  # rewind: the moment whose offset to restart from; None: the earliest offset
    duration: Annotated[float, Field(gt=0)] = 30.0  # rebalance


class GroupSpec(BaseModel):
    """A consumer group: what it reads, how it behaves, what happens to it."""

    model_config = _STRICT
    name: Annotated[str, Field(min_length=1)]
    topics: Annotated[list[str], Field(min_length=1)]
    behaviour: Behaviour = "healthy"
    delay: Annotated[float, Field(ge=0)] = 2.0
    fraction: Annotated[float, Field(ge=0, le=1)] = 0.5
    since: Annotated[float, Field(ge=-HISTORY, le=0)] = -600.0
    members: Annotated[int, Field(ge=0, le=1000)] = 2
    events: list[EventSpec] = []
    # The group has never committed an offset; GetConsumerProgress answers it this way (see workload.py).
    never_committed: EmptyAnswer | None = None
    # Odd partitions answer ConsumerOffset -1 and every fourth one no BrokerOffset at all, with Accumulate
    # still carrying the lag: the offsets the exporter must do without.
    missing_offsets: bool = False
    # Messages per second per partition the consumer can process: it drains like a queue, falling behind in
    # bursts and catching up after them (None: follows the head, catching up at 3x the mean rate).
    capacity: Annotated[float, Field(gt=0)] | None = None
    # 5 s is the Kafka consumer's auto.commit.interval.ms default (5000,
    # https://kafka.apache.org/documentation/#consumerconfigs_auto.commit.interval.ms)
    commit_interval: Annotated[float, Field(gt=0, le=3600)] = 5.0
    commit_jitter: Annotated[float, Field(ge=0)] = 0.0  # consecutive commits commit_interval +- this apart

    @model_validator(mode="after")
    def _jitter_below_interval(self) -> GroupSpec:
        if self.commit_jitter >= self.commit_interval:
            raise ValueError("commit_jitter must be smaller than commit_interval")
        return self


class GenerateSpec(BaseModel):
    """Many identical healthy groups, each with its own topic, generated on demand (for scale runs)."""

    model_config = _STRICT
    groups: Annotated[int, Field(ge=1, le=100_000)]
    partitions: Annotated[int, Field(ge=1, le=10_000)] = 10
    rate: Annotated[float, Field(ge=0)] = 1.0
    shape: Shape = "steady"
    delay: Annotated[float, Field(ge=0)] = 2.0
    members: Annotated[int, Field(ge=0, le=100)] = 1


class StatusChange(BaseModel):
    """The instance enters ``status`` at ``at``."""

    model_config = _STRICT
    at: Relative
    status: InstanceState


class InstanceSpec(BaseModel):
    """An instance with its topics and groups."""

    model_config = _STRICT
    instance_id: Annotated[str, Field(min_length=1, pattern=r"^\S+$")]
    region: Annotated[str, Field(min_length=1)] = "cn-hangzhou"
    name: str = ""
    serverless: bool = False
    spec_type: str = "normal"
    series: str = "v3"
    stopped: Relative | None = None  # the instance expires then (and stops answering)
    status: InstanceState = "running"  # its state from the start of history (upgrading, scaling...)
    status_changes: list[StatusChange] = []
    # Which status fields GetInstanceList sends: both, only ViewInstanceStatusCode, only the deprecated
    # ServiceStatus, or neither.
    status_fields: Literal["both", "view", "service", "none"] = "both"
    topics: list[TopicSpec] = []
    groups: list[GroupSpec] = []
    generate: GenerateSpec | None = None
    # Message retention in hours (GetInstanceList MsgRetain; the service allows 24 to 480, the simulator from 1
    # so that deletion shows within a demo) and how often partitions roll a segment (see retention.py).
    msg_retain: Annotated[int, Field(ge=1, le=480)] = DEFAULT_MSG_RETAIN
    segment_seconds: Annotated[float, Field(ge=1, le=86400)] = DEFAULT_SEGMENT_SECONDS


class FaultSpec(BaseModel):
    """A fault active from the start (see faults.py for the kinds)."""

    model_config = _STRICT
    kind: FaultKind
    action: str | None = None
    instance_id: str | None = None
    group: str | None = None
    count: Annotated[int, Field(ge=1)] | None = None
    probability: Annotated[float, Field(gt=0, le=1)] = 1.0
    delay: Annotated[float, Field(ge=0, le=600)] = 1.0
    pieces: Annotated[int, Field(ge=1, le=10_000)] = 2  # slow_body
    location: str = REDIRECT_LOCATION  # redirect
    size: Annotated[int, Field(ge=0, le=1024**3)] = BOMB_SIZE  # gzip_bomb


class ScenarioSpec(BaseModel):
    """A whole scenario."""

    model_config = _STRICT
    seed: int = 1
    instances: Annotated[list[InstanceSpec], Field(min_length=1)]
    faults: list[FaultSpec] = []


def _format(exc: ValidationError, where: str) -> str:
    lines = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        lines.append(f"{where}: {loc}: {msg}")
    return "\n".join(lines)


def _check_references(spec: ScenarioSpec, name: str) -> list[str]:
    problems = []
    ids = [inst.instance_id for inst in spec.instances]
    problems += [f"{name}: instances: {i} appears twice" for i in sorted({i for i in ids if ids.count(i) > 1})]
    for i, inst in enumerate(spec.instances):
        topics = {t.name for t in inst.topics}
        groups = [g.name for g in inst.groups]
        problems += [f"{name}: instances.{i}.groups: {g} appears twice" for g in sorted(set(groups))
                     if groups.count(g) > 1]
        for j, group in enumerate(inst.groups):
            problems += [f"{name}: instances.{i}.groups.{j}.topics: no topic {t!r} on {inst.instance_id}"
                         for t in group.topics if t not in topics]
    return problems


@dataclass
class _Timeline:
    """Folds a group's behaviour and events into phases, member absences, rebalances and deletion."""

    phases: list[Phase]
    absent: list[tuple[float, float]] = field(default_factory=list)
    rebalances: list[tuple[float, float]] = field(default_factory=list)
    away_since: float | None = None
    deleted: float = math.inf

    def leave(self, at: float) -> None:
        if self.away_since is None:
            self.away_since = at

    def come_back(self, at: float) -> None:
        if self.away_since is not None:
            self.absent.append((self.away_since, at))
            self.away_since = None

    def apply(self, event: EventSpec, now: float, delay: float, capacity: float | None = None) -> None:
        at = now + event.at
        if event.type in ("stop", "stall"):
            self.phases.append(Phase(at, "frozen"))
            if event.type == "stop":
                self.leave(at)
        elif event.type == "resume":
            self.phases.append(Phase(at, "follow", delay=delay, capacity=capacity))
            self.come_back(at)
        elif event.type == "rewind":
            to = None if event.to is None else now + event.to
            self.phases.append(Phase(at, "rewind", delay=delay, rewind_to=to, capacity=capacity))
        elif event.type == "lag":
            self.phases.append(Phase(at, "fraction", fraction=event.fraction))
        elif event.type == "rebalance":
            self.rebalances.append((at, event.duration))
        else:
            self.deleted = min(self.deleted, at)


def _timeline(g: GroupSpec, now: float) -> _Timeline:
    line = _Timeline([Phase(now - HISTORY, "follow", delay=g.delay, capacity=g.capacity)])
    since = now + g.since
    if g.behaviour == "lagging":
        line.phases.append(Phase(since, "fraction", fraction=g.fraction))
    elif g.behaviour in ("stopped", "stalled"):
        line.phases.append(Phase(since, "frozen"))
        if g.behaviour == "stopped":
            line.leave(since)
    elif g.behaviour == "rebalancing":
        line.rebalances.append((now - 5.0, math.inf))
    for event in sorted(g.events, key=lambda e: e.at):
        line.apply(event, now, g.delay, g.capacity)
    if line.away_since is not None:
        line.absent.append((line.away_since, math.inf))
    line.phases.sort(key=lambda p: p.start)
    return line


class Scenario:
    """A validated scenario, ready to be built into a workload."""

    def __init__(self, spec: ScenarioSpec, name: str) -> None:
        problems = _check_references(spec, name)
        if problems:
            raise ScenarioError("\n".join(problems))
        self.spec = spec
        self.name = name

    @classmethod
    def from_dict(cls, data: Any, name: str = "scenario") -> Scenario:
        """Validate a parsed scenario."""
        try:
            return cls(ScenarioSpec.model_validate(data), name)
        except ValidationError as exc:
            raise ScenarioError(_format(exc, name)) from None

    @classmethod
    def from_file(cls, path: Path) -> Scenario:
        """Load and validate a YAML scenario file."""
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ScenarioError(f"{path}: cannot read: {exc.strerror}") from None
        except yaml.YAMLError as exc:
            raise ScenarioError(f"{path}: YAML syntax error: {exc}") from None
        return cls.from_dict(data, str(path))

    @classmethod
    def builtin(cls, name: str) -> Scenario:
        """One of the built-in scenarios."""
        try:
            factory = _BUILTINS[name]
        except KeyError:
            raise ScenarioError(f"builtin:{name}: no such scenario (have: {', '.join(sorted(_BUILTINS))})") from None
        return cls.from_dict(factory(), f"builtin:{name}")

    @classmethod
    def load(cls, ref: str) -> Scenario:
        """``builtin:NAME`` or a file path."""
        if ref.startswith("builtin:"):
            return cls.builtin(ref.removeprefix("builtin:"))
        return cls.from_file(Path(ref))

    def faults(self) -> list[FaultRule]:
        """The scenario's standing fault rules."""
        return [FaultRule(**f.model_dump()) for f in self.spec.faults]

    def build(self, now: float, seed: int | None = None) -> dict[str, Instance]:
        """The workload for a simulator started at ``now``; deterministic for a seed."""
        seed = self.spec.seed if seed is None else seed
        rng = random.Random(seed)  # noqa: S311 - simulation, not security
        history = now - HISTORY
        instances = {}
        for spec in self.spec.instances:
            inst = Instance(spec.instance_id, spec.region, spec.name or spec.instance_id, spec.serverless,
                            math.inf if spec.stopped is None else now + spec.stopped, spec.spec_type, spec.series,
                            states=((now - HISTORY, spec.status),
                                    *sorted((now + c.at, c.status) for c in spec.status_changes)),
                            status_fields=spec.status_fields)
            for t in spec.topics:
                inst.topics[t.name] = Topic(
                    t.name, t.partitions, t.rate, t.shape, f"{seed}/{spec.instance_id}/{t.name}",
                    history if t.created is None else now + t.created, t.local_storage,
                    math.inf if t.deleted is None else now + t.deleted,
                    tuple(sorted((now + a.at, a.partitions) for a in t.partitions_added)),
                    _traffic(t, f"{seed}/{spec.instance_id}/{t.name}",
                             history if t.created is None else now + t.created, now),
                )
            for g in spec.groups:
                line = _timeline(g, now)
                members = tuple(
                    (f"consumer-{i + 1}-{rng.getrandbits(48):012x}", f"consumer-{i + 1}",
                     f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}")
                    for i in range(g.members)
                )
                absent = ((history, math.inf),) if g.members == 0 else tuple(line.absent)
                rebalances = ((now - rng.uniform(600, 3000), rng.uniform(0.05, 3.0)), *line.rebalances)
                consumer = Consumer(tuple(line.phases), g.commit_interval, g.commit_jitter,
                                    f"{seed}/{spec.instance_id}/{g.name}")
                inst.groups[g.name] = Group(g.name, tuple(g.topics), consumer, members, absent,
                                            rebalances, rng.randrange(1, 40), line.deleted, g.never_committed,
                                            g.missing_offsets)
            if spec.generate is not None:
                gen = spec.generate
                inst.generated = GeneratedSpec(gen.groups, gen.partitions, gen.rate, gen.shape, gen.delay,
                                               gen.members, history)
            instances[spec.instance_id] = inst
        return instances


def _traffic(t: TopicSpec, seed: str, created: float, now: float) -> Traffic | None:
    """The Poisson traffic of a topic that asks for it."""
    spec = t.traffic
    if spec is None:
        return None
    wave = spec.diurnal
    return Traffic(tuple(spec.levels or [t.rate]), (spec.dwell[0], spec.dwell[1]), seed, t.partitions, created,
                   0.0 if wave is None else wave.amplitude, 86400.0 if wave is None else wave.period,
                   now + (0.0 if wave is None else wave.peak), spec.skew)


def _minimal() -> dict[str, Any]:
    return {
        "seed": 7,
        "instances": [{
            "instance_id": "alikafka_post-cn-test0001", "region": "cn-hangzhou", "name": "test",
            "topics": [{"name": "orders", "partitions": 3, "rate": 10},
                       {"name": "audit", "partitions": 1, "rate": 2, "local_storage": True}],
            "groups": [{"name": "orders-consumer", "topics": ["orders"], "delay": 3, "members": 2},
                       {"name": "billing", "topics": ["orders", "audit"], "behaviour": "lagging", "fraction": 0.5,
                        "members": 1}],
        }],
    }


def _demo() -> dict[str, Any]:
    # rebalances while someone watches: 15 s after the start, then every 5 minutes for a day
    rebalances = [{"at": 15 + 300 * k, "type": "rebalance", "duration": 2 + k % 5} for k in range(288)]
    hz = {
        "instance_id": "alikafka_post-cn-demo0001", "region": "cn-hangzhou", "name": "orders-prod",
        "topics": [
            {"name": "orders", "partitions": 12, "rate": 40},
            {"name": "payments", "partitions": 6, "rate": 15, "shape": "bursty"},
            {"name": "clicks", "partitions": 24, "rate": 120, "shape": "diurnal"},
            {"name": "audit-log", "partitions": 3, "rate": 1, "local_storage": True},
            {"name": "legacy-events", "partitions": 2, "rate": 3, "shape": "idle"},
        ],
        "groups": [
            {"name": "orders-consumer", "topics": ["orders"], "delay": 2, "members": 4},
            {"name": "payments-processor", "topics": ["payments"], "delay": 1, "members": 3},
            {"name": "analytics-etl", "topics": ["clicks", "orders"], "behaviour": "lagging", "fraction": 0.7,
             "since": -900, "members": 6},
            {"name": "fraud-detector", "topics": ["payments", "orders"], "behaviour": "stalled", "since": -420,
             "members": 2},
            {"name": "email-sender", "topics": ["orders"], "behaviour": "stopped", "since": -1200, "members": 0},
            {"name": "audit-archiver", "topics": ["audit-log"], "delay": 30, "members": 1},
            {"name": "legacy-sync", "topics": ["legacy-events"], "delay": 5, "members": 1},
        ] + [{"name": f"search-indexer-{n}", "topics": ["orders", "clicks"], "delay": 1 + n, "members": 2,
              "events": rebalances if n == 1 else []} for n in range(1, 9)],
    }
    sh = {
        "instance_id": "alikafka_pre-cn-demo0002", "region": "cn-shanghai", "name": "logistics",
        "topics": [
            {"name": "shipments", "partitions": 8, "rate": 20},
            {"name": "tracking", "partitions": 16, "rate": 60, "shape": "diurnal"},
        ],
        "groups": [
            {"name": "shipment-router", "topics": ["shipments"], "delay": 2, "members": 3},
            {"name": "tracking-aggregator", "topics": ["tracking"], "behaviour": "rebalancing", "delay": 4,
             "members": 4},
        ] + [{"name": f"warehouse-{n}", "topics": ["shipments"], "delay": 3, "members": 1} for n in range(1, 9)],
    }
    serverless = {
        "instance_id": "alikafka_serverless-cn-demo0003", "region": "cn-hangzhou", "name": "notifications",
        "serverless": True,
        "topics": [{"name": "push", "partitions": 4, "rate": 8}, {"name": "sms", "partitions": 2, "rate": 2}],
        "groups": [{"name": f"notifier-{n}", "topics": ["push", "sms"], "delay": 1, "members": 2}
                   for n in range(1, 7)],
    }
    # orders-prod's disk is full: only its newest ten minutes are kept, whatever MsgRetain says, so email-sender
    # (stopped 20 minutes ago) loses messages at once, fraud-detector (stalled 7 minutes ago) within minutes
    disk_full = {"kind": "disk_full", "instance_id": hz["instance_id"], "delay": 600}
    return {"seed": 42, "instances": [hz, sh, serverless], "faults": [disk_full]}


def _traffic_restart() -> dict[str, Any]:
    """Issue 15's case: bursty Poisson traffic, the exporter starting while consumers are 8-10 minutes behind."""
    def consumer(name: str, topic: str, capacity: float, behind: float = 0) -> dict[str, Any]:
        events = [{"at": -behind, "type": "stall"}, {"at": 0, "type": "resume"}] if behind else []
        return {"name": name, "topics": [topic], "capacity": capacity, "delay": 1, "commit_jitter": 1,
                "members": 2, "events": events}

    bursts = {"levels": [2, 20, 200], "dwell": [10, 40], "skew": 0.5}
    return {"seed": 7, "instances": [{
        "instance_id": "alikafka_post-cn-traffic01", "region": "cn-hangzhou", "name": "traffic",
        "topics": [{"name": "events", "partitions": 4, "traffic": bursts},
                   {"name": "events-local", "partitions": 4, "local_storage": True, "traffic": bursts}],
        "groups": [consumer("keeps-up", "events", 500), consumer("keeps-up-local", "events-local", 500),
                   consumer("behind-10m", "events", 120, 600), consumer("behind-10m-local", "events-local", 120, 600),
                   consumer("behind-8m", "events", 60, 480), consumer("behind-8m-local", "events-local", 60, 480)],
    }]}


def _scale(groups: int, partitions: int) -> dict[str, Any]:
    return {"seed": 11, "instances": [{
        "instance_id": "alikafka_post-cn-scale0001", "region": "cn-hangzhou", "name": "scale",
        "generate": {"groups": groups, "partitions": partitions, "rate": 1.0, "delay": 2.0},
    }]}


_BUILTINS: dict[str, Callable[[], dict[str, Any]]] = {
    "minimal": _minimal,
    "demo": _demo,
    "traffic": _traffic_restart,
    # The scale issue's benchmark tiers: groups x partitions.
    "scale-s": lambda: _scale(10, 10),
    "scale-m": lambda: _scale(500, 50),
    "scale-l": lambda: _scale(2_000, 50),
    "scale-xl": lambda: _scale(10_000, 100),
}
