"""Metric families: the only module that names metrics. Renders each pair's lines once, at poll time.

Data families carry ``instance_id`` and ``group`` (plus ``topic`` and ``partition`` at their level);
unknown values are absent, never NaN or -1; no sample has a timestamp. Every pair-derived family is a
gauge, whose lines are the same bytes in the text format and OpenMetrics, so they are written by hand once
per poll (what makes scrapes cheap); the few self-metrics go through prometheus_client. With
``metrics.compat: kafka_exporter`` kafka_exporter's names are added too (docs/metrics.md).
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.utils import floatToGoString

from exporter.cloud.models import GROUP_STATES, InstanceInfo
from exporter.cloud.stats import DURATION_BUCKETS, ApiStats
from exporter.config.settings import MetricsSettings
from exporter.polling.snapshot import TARGET_STATES, PairState, Snapshot
from exporter.polling.status import STATUSES

P = "alikafka_consumergroup_"
END_OFFSET = "alikafka_topic_partition_end_offset"
KE = "kafka_consumergroup_"  # kafka_exporter's consumer group families (compat)
KE_PARTITION_OFFSET = "kafka_topic_partition_current_offset"
KE_TOPIC_PARTITIONS = "kafka_topic_partitions"
# Series shared by every group that reads a topic are keyed (family, instance_id, topic) and valued per
# partition (None: the topic's own series). Keyed by topic, not by partition, so the bookkeeping costs a
# small dict per topic.
TopicKey = tuple[str, str, str]
SharedValues = dict[TopicKey, dict[int | None, int]]


@dataclass(frozen=True, slots=True)
class Family:
    """A gauge family: its name, help text and the level it lives at."""

    name: str
    help: str
    level: Literal["partition", "topic", "group", "health"]
    shared: bool = False  # one series per partition or topic, whichever groups report it (TopicKey)

    def header(self) -> str:
        """The ``# HELP`` and ``# TYPE`` lines."""
        text = self.help.replace("\\", "\\\\").replace("\n", "\\n")
        return f"# HELP {self.name} {text}\n# TYPE {self.name} gauge\n"


_FAMILIES = (
    Family(P + "lag", "Messages not yet consumed: max(0, BrokerOffset - ConsumerOffset).", "partition"),
    Family(P + "current_offset", "The group's committed offset (ConsumerOffset).", "partition"),
    Family(END_OFFSET, "The partition's latest offset (BrokerOffset), highest value seen over the groups reading it.",
           "partition", shared=True),
    Family(P + "last_consumed_timestamp_seconds",
           "Produce time of the last consumed message of the partition, in seconds since the epoch.", "partition"),
    Family(P + "partition_assignment_info", "The member a partition is assigned to; always 1.", "partition"),
    Family(P + "lag_seconds",
           "Estimated age of the oldest unconsumed message of the partition (0 when lag is 0); see docs/lag.md.",
           "partition"),
    Family(P + "topic_lag", "The topic's unconsumed messages (TotalDiff).", "topic"),
    Family(P + "topic_last_consumed_timestamp_seconds",
           "Produce time of the last consumed message of the topic, in seconds since the epoch.", "topic"),
    Family(P + "group_lag", "The group's unconsumed messages over all topics (TotalDiff).", "group"),
    Family(P + "state", "1 for the group's current state, 0 for the others.", "group"),
    Family(P + "members", "Distinct MemberId values in the answer.", "group"),
    Family(P + "rebalance_generation", "Generation of the newest rebalance record.", "group"),
    Family(P + "last_rebalance_timestamp_seconds", "When the newest rebalance happened, in seconds since the epoch.",
           "group"),
    Family(P + "last_rebalance_duration_seconds", "How long the newest rebalance took.", "group"),
    Family(P + "max_lag_seconds", "The largest lag_seconds over the group's partitions.", "group"),
    Family(P + "status", "1 for the group's evaluated status, 0 for the others; rules in docs/lag.md.", "group"),
    Family(P + "up", "1 if the last poll of this pair succeeded, else 0.", "health"),
    Family(P + "last_success_timestamp_seconds",
           "When this pair was last polled successfully, in seconds since the epoch.", "health"),
)

# kafka_exporter's names for the same data (metrics.compat: kafka_exporter); help texts are ours.
_COMPAT_FAMILIES = (
    Family(KE + "current_offset", "kafka_exporter compatible: alikafka_consumergroup_current_offset.", "partition"),
    Family(KE + "lag", "kafka_exporter compatible: alikafka_consumergroup_lag.", "partition"),
    Family(KE_PARTITION_OFFSET, "kafka_exporter compatible: alikafka_topic_partition_end_offset.", "partition",
           shared=True),
    Family(KE + "current_offset_sum",
           "kafka_exporter compatible: committed offsets of the group summed over the topic's partitions.", "topic"),
    Family(KE + "lag_sum", "kafka_exporter compatible: kafka_consumergroup_lag summed over the topic's partitions.",
           "topic"),
    Family(KE_TOPIC_PARTITIONS, "kafka_exporter compatible: partitions of the topic in the GetConsumerProgress answer.",
           "topic", shared=True),
    Family(KE + "members", "kafka_exporter compatible: alikafka_consumergroup_members.", "group"),
)


# The cardinality guard (metrics.max_series) sheds a pair's detail in steps: 1 its partition-level
# families, 2 its topic-level ones, 3 its group-level detail. These families, a pair's core, stay.
CORE_FAMILIES = frozenset({P + "up", P + "last_success_timestamp_seconds", P + "group_lag", P + "max_lag_seconds"})
SHED_LEVELS = ("partition", "topic", "group")  # what steps 1, 2 and 3 drop


@dataclass(frozen=True, slots=True)
class SeriesLimits:
    """What the cardinality guard did at the last render, for the exporter's own metrics."""

    limit: int = 0  # 0: no limit
    series: int = 0  # pair-derived series served
    dropped: int = 0  # series left out to stay within the limit
    limited: Mapping[str, int] = field(default_factory=lambda: MappingProxyType(dict.fromkeys(SHED_LEVELS, 0)))


def shed_step(family: Family) -> int | None:
    """The guard's step that drops ``family`` (1-3), or None for a family it never drops."""
    if family.name in CORE_FAMILIES or family.level == "health":
        return None
    return SHED_LEVELS.index(family.level) + 1


def families(options: MetricsSettings) -> tuple[Family, ...]:
    """The pair-derived families served under ``options``, in exposition order."""
    keep = {"partition": ("partition", "topic", "group", "health"), "topic": ("topic", "group", "health"),
            "group": ("group", "health")}[options.granularity]
    every = _FAMILIES + (_COMPAT_FAMILIES if options.compat == "kafka_exporter" else ())
    return tuple(
        f for f in every
        if f.level in keep and (f.name != P + "partition_assignment_info" or options.member_labels)
    )


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _line(name: str, labels: Mapping[str, str], value: float) -> str:
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
    return f"{name}{{{inner}}} {floatToGoString(value)}\n"  # type: ignore[no-untyped-call]


def shared_line(key: TopicKey, partition: int | None, value: int) -> str:
    """The one line of a shared series (see :func:`shared_values`)."""
    family, instance_id, topic = key
    labels = {"instance_id": instance_id, "topic": topic}
    if partition is not None:
        labels["partition"] = str(partition)
    return _line(family, labels, float(value))


def shared_values(state: PairState, options: MetricsSettings) -> SharedValues:
    """The values this pair's data gives the shared series (nothing without data), per topic.

    Shared series are per partition or per topic, not per group: every group reading the topic
    reports them, and the exposition keeps one line each, with the highest value reported. The
    kafka_exporter offset family has the end offsets' values and gets the same dict, not a copy.
    """
    if state.progress is None or options.granularity == "group":
        return {}
    compat = options.compat == "kafka_exporter"
    partitions = options.granularity == "partition"
    instance_id = state.pair.instance_id
    out: SharedValues = {}
    for topic in state.progress.topics:
        if compat and topic.partitions:
            out[(KE_TOPIC_PARTITIONS, instance_id, topic.topic)] = {None: len(topic.partitions)}
        if not partitions:
            continue
        ends: dict[int | None, int] = {p.partition: p.broker_offset for p in topic.partitions
                                       if p.broker_offset is not None}
        key = (END_OFFSET, instance_id, topic.topic)
        if key in out:  # the topic listed twice: a repeated partition's last value wins, as in the parser
            out[key].update(ends)
        elif ends:
            out[key] = ends
    if compat:
        for (family, instance, name), values in list(out.items()):
            if family == END_OFFSET:
                out[(KE_PARTITION_OFFSET, instance, name)] = values
    return out


class _Lines:
    """Lines per family for one pair."""

    def __init__(self) -> None:
        self.by_family: dict[str, list[str]] = {}

    def add(self, family: str, labels: dict[str, str], value: float) -> None:
        self.by_family.setdefault(family, []).append(_line(family, labels, value))

    def joined(self) -> dict[str, str]:
        return {k: "".join(v) for k, v in self.by_family.items()}


def pair_lines(state: PairState, options: MetricsSettings) -> dict[str, str]:
    """Every line of every pair-derived family for one pair, by family name (end offsets excluded)."""
    out = _Lines()
    if state.polls == 0:
        return {}
    group = {"instance_id": state.pair.instance_id, "group": state.pair.group}
    out.add(P + "up", group, 1.0 if state.up else 0.0)
    if state.last_success is not None:
        out.add(P + "last_success_timestamp_seconds", group, state.last_success)
    if state.progress is not None:
        if options.granularity != "group":
            _topic_lines(out, state, group, options)
        _group_lines(out, state, group)
        if options.compat == "kafka_exporter":
            _compat_lines(out, state, options)
    return out.joined()


def _compat_lines(out: _Lines, state: PairState, options: MetricsSettings) -> None:
    """kafka_exporter's per-group families; values equal to the native ones (docs/metrics.md)."""
    assert state.progress is not None
    group = {"instance_id": state.pair.instance_id, "consumergroup": state.pair.group}
    out.add(KE + "members", group, float(len(state.progress.member_ids)))
    if options.granularity == "group":
        return
    for topic in state.progress.topics:
        by_topic = {**group, "topic": topic.topic}
        committed = [p for p in topic.partitions if p.consumer_offset is not None]
        lagged = [p for p in topic.partitions if p.lag is not None]
        # no committed offset (or no lag): absent, where kafka_exporter would say -1
        if committed:
            out.add(KE + "current_offset_sum", by_topic, float(sum(p.consumer_offset or 0 for p in committed)))
        if lagged:
            out.add(KE + "lag_sum", by_topic, float(sum(p.lag or 0 for p in lagged)))
        if options.granularity != "partition":
            continue
        for p in topic.partitions:
            labels = {**by_topic, "partition": str(p.partition)}
            if p.consumer_offset is not None:
                out.add(KE + "current_offset", labels, float(p.consumer_offset))
            if p.lag is not None:
                out.add(KE + "lag", labels, float(p.lag))


def _topic_lines(out: _Lines, state: PairState, group: dict[str, str], options: MetricsSettings) -> None:
    assert state.progress is not None
    time_lags = state.insight.time_lags if state.insight is not None else {}
    for topic in state.progress.topics:
        by_topic = {**group, "topic": topic.topic}
        if topic.total_diff is not None:
            out.add(P + "topic_lag", by_topic, float(topic.total_diff))
        if topic.last_timestamp_ms is not None:
            out.add(P + "topic_last_consumed_timestamp_seconds", by_topic, topic.last_timestamp_ms / 1000)
        if options.granularity != "partition":
            continue
        for p in topic.partitions:
            labels = {**by_topic, "partition": str(p.partition)}
            if p.lag is not None:  # from the offsets, or the service's Accumulate where one is missing
                out.add(P + "lag", labels, float(p.lag))
            if p.consumer_offset is not None:
                out.add(P + "current_offset", labels, float(p.consumer_offset))
            if p.last_timestamp_ms is not None:
                out.add(P + "last_consumed_timestamp_seconds", labels, p.last_timestamp_ms / 1000)
            if options.member_labels and p.member_id:
                member = {"member_id": p.member_id, "client_id": p.client_id, "client_ip": p.client_ip}
                out.add(P + "partition_assignment_info", {**labels, **member}, 1.0)
            seconds = time_lags.get((topic.topic, p.partition))
            if seconds is not None:
                out.add(P + "lag_seconds", labels, seconds)


def _group_lines(out: _Lines, state: PairState, group: dict[str, str]) -> None:
    progress, insight = state.progress, state.insight
    assert progress is not None
    if progress.total_diff is not None:
        out.add(P + "group_lag", group, float(progress.total_diff))
    for name in GROUP_STATES:
        out.add(P + "state", {**group, "state": name}, 1.0 if progress.state == name else 0.0)
    out.add(P + "members", group, float(len(progress.member_ids)))
    newest = progress.newest_rebalance
    if newest is not None:
        for family, value in (("rebalance_generation", newest.generation),
                              ("last_rebalance_timestamp_seconds", newest.timestamp_seconds),
                              ("last_rebalance_duration_seconds", newest.duration_seconds)):
            if value is not None:
                out.add(P + family, group, float(value))
    if insight is not None:
        if insight.max_time_lag is not None:
            out.add(P + "max_lag_seconds", group, insight.max_time_lag)
        for name in STATUSES:
            out.add(P + "status", {**group, "status": name}, 1.0 if insight.status == name else 0.0)


class TailCollector:
    """The families that are not per pair: instance info and the exporter's own health."""

    def __init__(
        self,
        source: Callable[[], Snapshot],
        stats: ApiStats,
        version: str = "0",
        python_version: str | None = None,
        *,
        config_reload_ok: Callable[[], bool] = lambda: True,
        instances: Callable[[], Mapping[str, InstanceInfo]] = dict,
        config_reload_time: Callable[[], float | None] = lambda: None,
        series_limits: Callable[[], SeriesLimits | None] = lambda: None,
    ) -> None:
        """``version`` and ``python_version`` (default: the running Python's) label the build info."""
        self._source = source
        self._stats = stats
        self._build = [version, python_version or platform.python_version()]
        self._reload_ok = config_reload_ok
        self._reload_time = config_reload_time
        self._limits = series_limits
        self._instances = instances

    def describe(self) -> list[Metric]:
        """Nothing to pre-declare."""
        return []

    def collect(self) -> Iterator[Metric]:
        """Instance info and the exporter families."""
        info = GaugeMetricFamily(
            "alikafka_instance_info", "Attributes of a polled instance (GetInstanceList); always 1.",
            labels=["instance_id", "name", "region", "series", "spec_type"],
        )
        for instance_id, attrs in sorted(self._instances().items()):
            info.add_metric([instance_id, attrs.name, attrs.region, attrs.series, attrs.spec_type], 1.0)
        yield info
        snapshot = self._source()
        build = GaugeMetricFamily(
            "alikafka_exporter_build_info", "Exporter build information; always 1.",
            labels=["version", "python_version"],
        )
        build.add_metric(self._build, 1.0)
        yield build

        requests = CounterMetricFamily(
            "alikafka_exporter_api_requests",
            "API HTTP attempts by action and result code (200, the API error code, timeout or connection_error).",
            labels=["action", "code"],
        )
        for (action, code), count in sorted(self._stats.requests.items()):
            requests.add_metric([action, code], float(count))
        yield requests

        durations = HistogramMetricFamily(
            "alikafka_exporter_api_request_duration_seconds", "Duration of API HTTP attempts.", labels=["action"],
        )
        for action, hist in sorted(self._stats.durations.items()):
            buckets = [(repr(float(b)), float(c)) for b, c in zip(DURATION_BUCKETS, hist.counts, strict=True)]
            buckets.append(("+Inf", float(hist.total)))
            durations.add_metric([action], buckets, hist.sum)
        yield durations

        yield _scalar("alikafka_exporter_poll_cycle_duration_seconds",
                      "Wall time of the last complete pass over all targets.", snapshot.cycle_duration)
        targets = GaugeMetricFamily(
            "alikafka_exporter_targets",
            "Instance/group pairs by state: ok, failing (up 0, data kept) or stale (data dropped).",
            labels=["state"],
        )
        counts = snapshot.count_by_status()
        for state in TARGET_STATES:
            targets.add_metric([state], float(counts[state]))
        yield targets
        yield _scalar("alikafka_exporter_effective_poll_interval_seconds",
                      "The poll interval actually achievable under api.max_qps.", snapshot.effective_interval)
        yield _scalar("alikafka_exporter_config_last_reload_successful",
                      "1 if the last configuration load succeeded, else 0.", 1.0 if self._reload_ok() else 0.0)
        yield _scalar("alikafka_exporter_config_last_reload_success_timestamp_seconds",
                      "When the configuration was last loaded successfully, in seconds since the epoch.",
                      self._reload_time())
        yield _scalar("alikafka_exporter_clock_skew_seconds",
                      "How far the local clock is from the API server's Date header, ahead or behind, in seconds.",
                      self._stats.clock_skew)
        restarts = CounterMetricFamily(
            "alikafka_exporter_task_restarts",
            "Times a long-running task of the exporter (poller, catalog, targets, reload) died and was restarted.",
            labels=["task"],
        )
        for task, count in sorted(self._stats.restarts.items()):
            restarts.add_metric([task], float(count))
        yield restarts
        yield from self._series_families()

    def _series_families(self) -> Iterator[Metric]:
        limits = self._limits()
        if limits is None:
            return
        yield _scalar("alikafka_exporter_series", "Pair-derived series in this exposition (metrics.max_series "
                      "counts these).", float(limits.series))
        yield _scalar("alikafka_exporter_series_limit", "The metrics.max_series budget; absent when unlimited.",
                      float(limits.limit) if limits.limit else None)
        yield _scalar("alikafka_exporter_series_dropped",
                      "Series left out to stay within metrics.max_series.", float(limits.dropped))
        limited = GaugeMetricFamily(
            "alikafka_exporter_series_limited_groups",
            "Pairs whose detail metrics.max_series leaves out, by the coarsest level dropped (partition, topic, "
            "or group: group-level detail beyond the core).",
            labels=["dropped"],
        )
        for level in SHED_LEVELS:
            limited.add_metric([level], float(limits.limited.get(level, 0)))
        yield limited


def _scalar(name: str, documentation: str, value: float | None) -> GaugeMetricFamily:
    """A label-less gauge; without a value the family is declared but has no sample."""
    family = GaugeMetricFamily(name, documentation)
    if value is not None:
        family.add_metric([], value)
    return family
