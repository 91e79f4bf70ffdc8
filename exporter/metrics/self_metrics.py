"""The families that are not per pair: instance info and the exporter's own health.

They are few, and some are counters and a histogram, so prometheus_client renders them per format
(text or OpenMetrics) at scrape time, from the board's snapshot, the API traffic counters, the instance
catalog, the configuration loads, and the guard's report the exposition hands over with each render.
"""

from __future__ import annotations

import platform
from collections.abc import Iterator, Mapping
from types import MappingProxyType
from typing import Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from exporter.cloud.models import InstanceInfo
from exporter.cloud.stats import DURATION_BUCKETS, ApiStats
from exporter.metrics.guard import SHED_LEVELS, SeriesLimits
from exporter.polling.snapshot import TARGET_STATES, Snapshot, SnapshotSource


class InstanceSource(Protocol):
    """The instance catalog: attributes by instance ID; ``version`` grows on each change."""

    @property
    def instances(self) -> Mapping[str, InstanceInfo]: ...

    @property
    def version(self) -> int: ...


class ReloadSource(Protocol):
    """How the configuration loads went; ``version`` grows on each."""

    @property
    def successful(self) -> bool: ...

    @property
    def last_success(self) -> float | None: ...

    @property
    def version(self) -> int: ...


class _NoCatalog:
    instances: Mapping[str, InstanceInfo] = MappingProxyType({})
    version = 0


class _NoReload:
    successful = True
    last_success: float | None = None
    version = 0


class TailCollector:
    """The families that are not per pair: instance info and the exporter's own health."""

    def __init__(
        self,
        board: SnapshotSource,
        stats: ApiStats,
        version: str = "0",
        python_version: str | None = None,
        *,
        catalog: InstanceSource | None = None,
        reload: ReloadSource | None = None,
        guard: bool = False,
    ) -> None:
        """``version`` and ``python_version`` (default: the running Python's) label the build info; ``guard``:
        report the cardinality guard's families (the running exporter always does)."""
        self._board = board
        self._stats = stats
        self._build = [version, python_version or platform.python_version()]
        self._catalog: InstanceSource = catalog or _NoCatalog()
        self._reload: ReloadSource = reload or _NoReload()
        self._guard = guard

    @property
    def version(self) -> tuple[int, int, int, int]:
        """Changes whenever a family here may have: a render with the same version can be reused."""
        return self._board.version, self._stats.version, self._catalog.version, self._reload.version

    def families(self, limits: SeriesLimits | None = None) -> Iterator[Metric]:
        """Instance info and the exporter families; ``limits``: the guard's report for this render."""
        info = GaugeMetricFamily(
            "alikafka_instance_info", "Attributes of a polled instance (GetInstanceList); always 1.",
            labels=["instance_id", "name", "region", "series", "spec_type"],
        )
        for instance_id, attrs in sorted(self._catalog.instances.items()):
            info.add_metric([instance_id, attrs.name, attrs.region, attrs.series, attrs.spec_type], 1.0)
        yield info
        retention = GaugeMetricFamily(
            "alikafka_instance_retention_seconds",
            "The instance's message retention (GetInstanceList MsgRetain hours x 3600).", labels=["instance_id"],
        )
        for instance_id, attrs in sorted(self._catalog.instances.items()):
            if attrs.retention_seconds is not None:
                retention.add_metric([instance_id], attrs.retention_seconds)
        yield retention
        snapshot = self._board.snapshot
        build = GaugeMetricFamily(
            "alikafka_exporter_build_info", "Exporter build information; always 1.",
            labels=["version", "python_version"],
        )
        build.add_metric(self._build, 1.0)
        yield build

        requests = CounterMetricFamily(
            "alikafka_exporter_api_requests",
            "API HTTP attempts by action, result code (200, the API error code, timeout or connection_error) and "
            "account.",
            labels=["action", "code", "account"],
        )
        for (account, action, code), count in sorted(self._stats.by_account.items()):
            requests.add_metric([action, code, account], float(count))
        yield requests

        durations = HistogramMetricFamily(
            "alikafka_exporter_api_request_duration_seconds", "Duration of API HTTP attempts, by action and account.",
            labels=["action", "account"],
        )
        for (account, action), hist in sorted(self._stats.durations_by_account.items()):
            buckets = [(repr(float(b)), float(c)) for b, c in zip(DURATION_BUCKETS, hist.counts, strict=True)]
            buckets.append(("+Inf", float(hist.total)))
            durations.add_metric([action, account], buckets, hist.sum)
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
        yield from _schedule_families(snapshot)
        yield _scalar("alikafka_exporter_config_last_reload_successful",
                      "1 if the last configuration load succeeded, else 0.", 1.0 if self._reload.successful else 0.0)
        yield _scalar("alikafka_exporter_config_last_reload_success_timestamp_seconds",
                      "When the configuration was last loaded successfully, in seconds since the epoch.",
                      self._reload.last_success)
        yield _scalar("alikafka_exporter_clock_skew_seconds",
                      "How far the local clock is from the API server's Date header, ahead or behind, in seconds.",
                      self._stats.clock_skew)
        restarts = CounterMetricFamily(
            "alikafka_exporter_task_restarts",
            "Times a long-running task of the exporter (poller, catalog, targets, retention, reload) died and was "
            "restarted.",
            labels=["task"],
        )
        for task, count in sorted(self._stats.restarts.items()):
            restarts.add_metric([task], float(count))
        yield restarts
        if self._guard and limits is not None:
            yield from _series_families(limits)


def _series_families(limits: SeriesLimits) -> Iterator[Metric]:
    """The cardinality guard's report as families."""
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


def _schedule_families(snapshot: Snapshot) -> Iterator[Metric]:
    """The poll schedule by priority class: pairs, planned interval, longest wait (docs/scaling.md)."""
    pairs = GaugeMetricFamily("alikafka_exporter_poll_pairs",
                              "Pairs per priority class of the poll schedule (new, hot, active, quiet).",
                              labels=["priority"])
    planned = GaugeMetricFamily(
        "alikafka_exporter_poll_planned_interval_seconds",
        "The interval the poll schedule plans for the pairs of a priority class (all alike when round robin).",
        labels=["priority"])
    waits = GaugeMetricFamily(
        "alikafka_exporter_poll_max_wait_seconds",
        "How long the longest-waiting pair of a priority class has gone without a poll.", labels=["priority"])
    for view in snapshot.schedule:
        pairs.add_metric([view.priority], float(view.pairs))
        if view.interval is not None:
            planned.add_metric([view.priority], view.interval)
        if view.oldest is not None:
            waits.add_metric([view.priority], view.oldest)
    yield pairs
    yield planned
    yield waits


def _scalar(name: str, documentation: str, value: float | None) -> GaugeMetricFamily:
    """A label-less gauge; without a value the family is declared but has no sample."""
    family = GaugeMetricFamily(name, documentation)
    if value is not None:
        family.add_metric([], value)
    return family
