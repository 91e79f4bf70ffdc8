"""Scenarios: validated descriptions of instances, topics and consumer groups, plus built-ins.

A scenario is data (a YAML file or a dict), validated with clear errors naming the key, and turned
into a workload deterministically from its seed and the simulator's start time. Built-ins:
``minimal`` (one instance, for tests that reason about exact values) and ``demo`` (several
instances in two regions and dozens of groups, among them one lagging, one stopped, one stalled
and one rebalancing).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from exporter.simulator.workload import (
    HISTORY,
    Behaviour,
    Consumer,
    Group,
    Instance,
    Shape,
    Topic,
    make_curve,
)

_STRICT = ConfigDict(extra="forbid", frozen=True)


class ScenarioError(ValueError):
    """An invalid scenario; the message lists every problem, one per line."""


class TopicSpec(BaseModel):
    """A topic: partitions, per-partition produce rate and shape."""

    model_config = _STRICT
    name: Annotated[str, Field(min_length=1)]
    partitions: Annotated[int, Field(ge=1, le=10_000)] = 3
    rate: Annotated[float, Field(ge=0)] = 5.0
    shape: Shape = "steady"
    local_storage: bool = False


class GroupSpec(BaseModel):
    """A consumer group: what it reads and how it behaves."""

    model_config = _STRICT
    name: Annotated[str, Field(min_length=1)]
    topics: Annotated[list[str], Field(min_length=1)]
    behaviour: Behaviour = "healthy"
    delay: Annotated[float, Field(ge=0)] = 2.0
    fraction: Annotated[float, Field(ge=0, le=1)] = 0.5
    since: Annotated[float, Field(le=0)] = -600.0  # seconds relative to the simulator start
    members: Annotated[int, Field(ge=0, le=1000)] = 2


class InstanceSpec(BaseModel):
    """An instance with its topics and groups."""

    model_config = _STRICT
    instance_id: Annotated[str, Field(min_length=1, pattern=r"^\S+$")]
    region: Annotated[str, Field(min_length=1)] = "cn-hangzhou"
    name: str = ""
    serverless: bool = False
    running: bool = True
    spec_type: str = "normal"
    topics: list[TopicSpec] = []
    groups: list[GroupSpec] = []


class ScenarioSpec(BaseModel):
    """A whole scenario."""

    model_config = _STRICT
    seed: int = 1
    instances: Annotated[list[InstanceSpec], Field(min_length=1)]


def _format(exc: ValidationError, where: str) -> str:
    lines = []
    for err in exc.errors(include_url=False):
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        lines.append(f"{where}: {loc}: {msg}")
    return "\n".join(lines)


class Scenario:
    """A validated scenario, ready to be built into a workload."""

    def __init__(self, spec: ScenarioSpec, name: str) -> None:
        self.spec = spec
        self.name = name
        problems = []
        for i, inst in enumerate(spec.instances):
            topics = {t.name for t in inst.topics}
            for j, group in enumerate(inst.groups):
                problems += [f"{name}: instances.{i}.groups.{j}.topics: no topic {t!r} on {inst.instance_id}"
                             for t in group.topics if t not in topics]
        if problems:
            raise ScenarioError("\n".join(problems))

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
        """One of the built-in scenarios (``minimal``, ``demo``)."""
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

    def build(self, now: float, seed: int | None = None) -> dict[str, Instance]:
        """The workload at simulator start ``now``, deterministic for a seed."""
        rng = random.Random(self.spec.seed if seed is None else seed)  # noqa: S311 - simulation, not security
        start = now - HISTORY
        instances = {}
        for spec in self.spec.instances:
            inst = Instance(spec.instance_id, spec.region, spec.name or spec.instance_id, spec.serverless,
                            spec.running, spec.spec_type)
            for t in spec.topics:
                curves = [make_curve(rng, t.rate, t.shape, start) for _ in range(t.partitions)]
                inst.topics[t.name] = Topic(t.name, curves, t.local_storage)
            for g in spec.groups:
                consumer = Consumer(g.behaviour, g.delay, g.fraction, now + g.since)
                present = g.behaviour != "stopped"
                members = [
                    (f"consumer-{i + 1}-{rng.getrandbits(48):012x}", f"consumer-{i + 1}",
                     f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}")
                    for i in range(g.members if present else 0)
                ]
                rebalanced = now - (5.0 if g.behaviour == "rebalancing" else rng.uniform(600, 3000))
                inst.groups[g.name] = Group(g.name, list(g.topics), consumer, members, rng.randrange(1, 40),
                                            rebalanced, rng.randrange(50, 3000))
            instances[spec.instance_id] = inst
        return instances


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
        ] + [{"name": f"search-indexer-{n}", "topics": ["orders", "clicks"], "delay": 1 + n, "members": 2}
             for n in range(1, 9)],
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
    return {"seed": 42, "instances": [hz, sh, serverless]}


_BUILTINS = {"minimal": _minimal, "demo": _demo}
