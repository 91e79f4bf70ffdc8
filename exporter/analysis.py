"""Turns each successful poll into time lags and a status, and remembers what that needs.

The poller calls :meth:`Analyzer.observe` with every parsed answer and the wall time it arrived;
the result is stored in the pair's immutable state, so the collector only renders numbers that were
computed once, at poll time, never at scrape time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from exporter.lag import LagEstimator, LagOptions
from exporter.models import ConsumerProgress
from exporter.status import StatusOptions, StatusTracker


@dataclass(frozen=True, slots=True)
class Insight:
    """Derived facts about one group at one poll."""

    time_lags: Mapping[tuple[str, int], float] = field(default_factory=lambda: MappingProxyType({}))
    status: str = "unknown"

    @property
    def max_time_lag(self) -> float | None:
        """The oldest unconsumed message over the group's partitions, or None without estimates."""
        return max(self.time_lags.values(), default=None)


class Analyzer:
    """Owns the per-partition offset histories and per-group status windows."""

    def __init__(self, lag: LagOptions | None = None, status: StatusOptions | None = None) -> None:
        self.estimator = LagEstimator(lag)
        self.status = StatusTracker(status)

    def observe(self, instance_id: str, group: str, progress: ConsumerProgress, at: float) -> Insight:
        """Record one answer received at ``at`` (epoch seconds) and derive the group's insight."""
        for topic in progress.topics:
            for p in topic.partitions:
                if p.broker_offset is not None:
                    self.estimator.observe((instance_id, topic.topic, p.partition), p.broker_offset, at)
        lags: dict[tuple[str, int], float] = {}
        for topic in progress.topics:
            for p in topic.partitions:
                if p.consumer_offset is None or p.broker_offset is None:
                    continue
                consumed = None if p.last_timestamp_ms is None else p.last_timestamp_ms / 1000
                age = self.estimator.estimate((instance_id, topic.topic, p.partition), p.consumer_offset,
                                              p.broker_offset, at, consumed)
                if age is not None:
                    lags[(topic.topic, p.partition)] = age
        worst = max(lags.values(), default=None) if len(lags) == _with_offsets(progress) else None
        status = self.status.observe((instance_id, group), progress, at, worst)
        return Insight(MappingProxyType(lags), status)

    def forget(self, instance_id: str, group: str) -> None:
        """Drop a group's status window (its data went stale)."""
        self.status.forget((instance_id, group))


def _with_offsets(progress: ConsumerProgress) -> int:
    """Partitions with both offsets: the ones a complete set of time lags covers."""
    return sum(1 for t in progress.topics for p in t.partitions
               if p.consumer_offset is not None and p.broker_offset is not None)
