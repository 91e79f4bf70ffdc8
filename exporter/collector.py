"""Turns a snapshot and the API statistics into metric families: the only module that names metrics.

Rendering is pure: no I/O, no awaiting, no logging per sample. Families follow contract section 4:
data families carry ``instance_id`` and ``group`` (plus ``topic``/``partition`` at their level),
never ``region``/``instance``/``job``; unknown values are absent, never NaN, -1 or negative; no
sample has a timestamp. ``granularity`` trims the finer levels.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from exporter.analysis import Insight
from exporter.models import GROUP_STATES, ConsumerProgress, InstanceInfo
from exporter.snapshot import TARGET_STATES, Pair, Snapshot
from exporter.stats import DURATION_BUCKETS, ApiStats
from exporter.status import STATUSES

Granularity = Literal["partition", "topic", "group"]

P = "alikafka_consumergroup_"
PARTITION_LABELS = ["instance_id", "group", "topic", "partition"]
TOPIC_LABELS = ["instance_id", "group", "topic"]
GROUP_LABELS = ["instance_id", "group"]


@dataclass(frozen=True, slots=True)
class CollectorOptions:
    """What the collector needs from the settings."""

    granularity: Granularity = "partition"
    member_labels: bool = False
    version: str = "0"
    python_version: str = field(default_factory=platform.python_version)


class SnapshotCollector:
    """A prometheus_client custom collector over the latest snapshot (read through ``source``)."""

    def __init__(
        self,
        source: Callable[[], Snapshot],
        stats: ApiStats,
        options: CollectorOptions,
        config_reload_ok: Callable[[], bool] = lambda: True,
        instances: Callable[[], Mapping[str, InstanceInfo]] = dict,
    ) -> None:
        self._source = source
        self._instances = instances
        self._stats = stats
        self._options = options
        self._reload_ok = config_reload_ok

    def describe(self) -> list[Metric]:
        """Nothing to pre-declare: families are built fresh from each snapshot."""
        return []

    def collect(self) -> Iterator[Metric]:
        """All families for the current snapshot."""
        snapshot = self._source()
        polled = sorted(
            (pair, state) for pair, state in snapshot.pairs.items() if state.polls > 0
        )
        with_data = [(pair, state.progress) for pair, state in polled if state.progress is not None]
        insights = [(pair, state.insight) for pair, state in polled
                    if state.progress is not None and state.insight is not None]
        if self._options.granularity == "partition":
            yield from _partition_families(with_data, self._options.member_labels)
            yield _time_lag_family(insights)
        if self._options.granularity in ("partition", "topic"):
            yield from _topic_families(with_data)
        yield from _group_families(with_data)
        yield from _insight_families(insights)

        up = GaugeMetricFamily(P + "up", "1 if the last poll of this pair succeeded, else 0.", labels=GROUP_LABELS)
        last_ok = GaugeMetricFamily(
            P + "last_success_timestamp_seconds",
            "When this pair was last polled successfully, in seconds since the epoch.",
            labels=GROUP_LABELS,
        )
        for pair, state in polled:
            up.add_metric([pair.instance_id, pair.group], 1.0 if state.up else 0.0)
            if state.last_success is not None:
                last_ok.add_metric([pair.instance_id, pair.group], state.last_success)
        yield up
        yield last_ok
        info = GaugeMetricFamily(
            "alikafka_instance_info", "Attributes of a polled instance (GetInstanceList); always 1.",
            labels=["instance_id", "name", "region", "series", "spec_type"],
        )
        for instance_id, attrs in sorted(self._instances().items()):
            info.add_metric([instance_id, attrs.name, attrs.region, attrs.series, attrs.spec_type], 1.0)
        yield info
        yield from self._exporter_families(snapshot)

    def _exporter_families(self, snapshot: Snapshot) -> Iterator[Metric]:
        build = GaugeMetricFamily(
            "alikafka_exporter_build_info", "Exporter build information; always 1.",
            labels=["version", "python_version"],
        )
        build.add_metric([self._options.version, self._options.python_version], 1.0)
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
            "alikafka_exporter_api_request_duration_seconds",
            "Duration of API HTTP attempts.",
            labels=["action"],
        )
        for action, hist in sorted(self._stats.durations.items()):
            buckets = [(_le(b), float(c)) for b, c in zip(DURATION_BUCKETS, hist.counts, strict=True)]
            buckets.append(("+Inf", float(hist.total)))
            durations.add_metric([action], buckets, hist.sum)
        yield durations

        yield _scalar(
            "alikafka_exporter_poll_cycle_duration_seconds",
            "Wall time of the last complete pass over all targets.",
            snapshot.cycle_duration,
        )

        targets = GaugeMetricFamily(
            "alikafka_exporter_targets",
            "Instance/group pairs by state: ok, failing (up 0, data kept) or stale (data dropped).",
            labels=["state"],
        )
        counts = snapshot.count_by_status()
        for state in TARGET_STATES:
            targets.add_metric([state], float(counts[state]))
        yield targets

        yield _scalar(
            "alikafka_exporter_effective_poll_interval_seconds",
            "The poll interval actually achievable under api.max_qps.",
            snapshot.effective_interval,
        )
        yield _scalar(
            "alikafka_exporter_config_last_reload_successful",
            "1 if the last configuration load succeeded, else 0.",
            1.0 if self._reload_ok() else 0.0,
        )


def _scalar(name: str, documentation: str, value: float | None) -> GaugeMetricFamily:
    """A label-less gauge; without a value the family is declared but has no sample."""
    family = GaugeMetricFamily(name, documentation)
    if value is not None:
        family.add_metric([], value)
    return family


def _le(bound: float) -> str:
    return repr(float(bound))


Data = list[tuple[Pair, ConsumerProgress]]


def _partition_families(data: Data, member_labels: bool) -> Iterator[Metric]:
    lag = GaugeMetricFamily(
        P + "lag", "Messages not yet consumed: max(0, BrokerOffset - ConsumerOffset).", labels=PARTITION_LABELS
    )
    current = GaugeMetricFamily(
        P + "current_offset", "The group's committed offset (ConsumerOffset).", labels=PARTITION_LABELS
    )
    consumed_ts = GaugeMetricFamily(
        P + "last_consumed_timestamp_seconds",
        "Produce time of the last consumed message of the partition, in seconds since the epoch.",
        labels=PARTITION_LABELS,
    )
    assignment = GaugeMetricFamily(
        P + "partition_assignment_info",
        "The member a partition is assigned to; always 1.",
        labels=[*PARTITION_LABELS, "member_id", "client_id", "client_ip"],
    )
    # One end-offset series per partition however many groups read it. Offsets only grow, so the
    # highest value over the groups is the newest one seen.
    end_offsets: dict[tuple[str, str, str], int] = {}
    for pair, progress in data:
        for topic in progress.topics:
            for p in topic.partitions:
                labels = [pair.instance_id, pair.group, topic.topic, str(p.partition)]
                if p.lag is not None and p.consumer_offset is not None:
                    lag.add_metric(labels, float(p.lag))
                    current.add_metric(labels, float(p.consumer_offset))
                if p.last_timestamp_ms is not None:
                    consumed_ts.add_metric(labels, p.last_timestamp_ms / 1000)
                if member_labels and p.member_id:
                    assignment.add_metric([*labels, p.member_id, p.client_id, p.client_ip], 1.0)
                if p.broker_offset is not None:
                    key = (pair.instance_id, topic.topic, str(p.partition))
                    end_offsets[key] = max(end_offsets.get(key, 0), p.broker_offset)
    end = GaugeMetricFamily(
        "alikafka_topic_partition_end_offset",
        "The partition's latest offset (BrokerOffset), highest value seen over the groups reading it.",
        labels=["instance_id", "topic", "partition"],
    )
    for key in sorted(end_offsets):
        end.add_metric(list(key), float(end_offsets[key]))
    yield from (lag, current, end, consumed_ts)
    if member_labels:
        yield assignment


def _time_lag_family(insights: list[tuple[Pair, Insight]]) -> Metric:
    family = GaugeMetricFamily(
        P + "lag_seconds",
        "Estimated age of the oldest unconsumed message of the partition (0 when lag is 0); see docs/lag.md.",
        labels=PARTITION_LABELS,
    )
    for pair, insight in insights:
        for (topic, partition), seconds in sorted(insight.time_lags.items()):
            family.add_metric([pair.instance_id, pair.group, topic, str(partition)], seconds)
    return family


def _insight_families(insights: list[tuple[Pair, Insight]]) -> Iterator[Metric]:
    worst = GaugeMetricFamily(
        P + "max_lag_seconds", "The largest lag_seconds over the group's partitions.", labels=GROUP_LABELS
    )
    status = GaugeMetricFamily(
        P + "status", "1 for the group's evaluated status, 0 for the others; rules in docs/lag.md.",
        labels=[*GROUP_LABELS, "status"],
    )
    for pair, insight in insights:
        labels = [pair.instance_id, pair.group]
        if insight.max_time_lag is not None:
            worst.add_metric(labels, insight.max_time_lag)
        for name in STATUSES:
            status.add_metric([*labels, name], 1.0 if insight.status == name else 0.0)
    yield worst
    yield status


def _topic_families(data: Data) -> Iterator[Metric]:
    lag = GaugeMetricFamily(P + "topic_lag", "The topic's unconsumed messages (TotalDiff).", labels=TOPIC_LABELS)
    consumed_ts = GaugeMetricFamily(
        P + "topic_last_consumed_timestamp_seconds",
        "Produce time of the last consumed message of the topic, in seconds since the epoch.",
        labels=TOPIC_LABELS,
    )
    for pair, progress in data:
        for topic in progress.topics:
            labels = [pair.instance_id, pair.group, topic.topic]
            if topic.total_diff is not None:
                lag.add_metric(labels, float(topic.total_diff))
            if topic.last_timestamp_ms is not None:
                consumed_ts.add_metric(labels, topic.last_timestamp_ms / 1000)
    yield lag
    yield consumed_ts


def _group_families(data: Data) -> Iterator[Metric]:
    lag = GaugeMetricFamily(
        P + "group_lag", "The group's unconsumed messages over all topics (TotalDiff).", labels=GROUP_LABELS
    )
    state = GaugeMetricFamily(
        P + "state", "1 for the group's current state, 0 for the others.", labels=[*GROUP_LABELS, "state"]
    )
    members = GaugeMetricFamily(P + "members", "Distinct MemberId values in the answer.", labels=GROUP_LABELS)
    generation = GaugeMetricFamily(
        P + "rebalance_generation", "Generation of the newest rebalance record.", labels=GROUP_LABELS
    )
    rebalance_ts = GaugeMetricFamily(
        P + "last_rebalance_timestamp_seconds",
        "When the newest rebalance happened, in seconds since the epoch.",
        labels=GROUP_LABELS,
    )
    rebalance_took = GaugeMetricFamily(
        P + "last_rebalance_duration_seconds", "How long the newest rebalance took.", labels=GROUP_LABELS
    )
    for pair, progress in data:
        labels = [pair.instance_id, pair.group]
        if progress.total_diff is not None:
            lag.add_metric(labels, float(progress.total_diff))
        for name in GROUP_STATES:
            state.add_metric([*labels, name], 1.0 if progress.state == name else 0.0)
        members.add_metric(labels, float(len(progress.member_ids)))
        newest = progress.newest_rebalance
        if newest is not None:
            if newest.generation is not None:
                generation.add_metric(labels, float(newest.generation))
            if newest.timestamp_seconds is not None:
                rebalance_ts.add_metric(labels, newest.timestamp_seconds)
            if newest.duration_seconds is not None:
                rebalance_took.add_metric(labels, newest.duration_seconds)
    yield from (lag, state, members, generation, rebalance_ts, rebalance_took)
