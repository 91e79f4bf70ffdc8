"""Turns each successful poll into time lags, a status, rates and retention facts, and remembers what that needs.

The poller calls :meth:`Analyzer.observe` with every parsed answer and the wall time it arrived;
the result is stored in the pair's immutable state, so the metrics layer only renders numbers that were
computed once, at poll time, never at scrape time.
"""

from __future__ import annotations

import bisect
from array import array
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from exporter.cloud.models import ConsumerProgress
from exporter.config.settings import LagSettings
from exporter.polling.history import EMPTY, LagHistory, LagSeries
from exporter.polling.lag import LagEstimator
from exporter.polling.rates import GroupRates, RateTracker
from exporter.polling.retention import Earliest, RetentionView, lost_messages, retention_margin
from exporter.polling.status import StatusTracker


class TimeLags(Mapping[tuple[str, int], float]):
    """Read-only time lag by (topic, partition), stored per topic as two typed arrays.

    Every group keeps one of these for every partition it reads, so a dictionary of tuples to floats
    (about 100 bytes a partition) is replaced by 16 bytes a partition: sorted partition numbers and
    their values, looked up by bisection.
    """

    __slots__ = ("_by_topic", "_len")

    def __init__(self, items: Iterable[tuple[tuple[str, int], float]] = ()) -> None:
        by_topic: dict[str, tuple[array[int], array[float]]] = {}
        for (topic, partition), value in sorted(items):
            partitions, values = by_topic.get(topic) or by_topic.setdefault(topic, (array("q"), array("d")))
            if partitions and partitions[-1] == partition:
                values[-1] = value
                continue
            partitions.append(partition)
            values.append(value)
        self._by_topic = by_topic
        self._len = sum(len(p) for p, _ in by_topic.values())

    def __getitem__(self, key: tuple[str, int]) -> float:
        found = self._by_topic.get(key[0])
        if found is not None:
            partitions, values = found
            index = bisect.bisect_left(partitions, key[1])
            if index < len(partitions) and partitions[index] == key[1]:
                return values[index]
        raise KeyError(key)

    def __iter__(self) -> Iterator[tuple[str, int]]:
        for topic, (partitions, _) in self._by_topic.items():
            for partition in partitions:
                yield topic, partition

    def __len__(self) -> int:
        return self._len

    def max(self) -> float | None:
        """The largest value, or None when empty."""
        return max((max(v) for _, v in self._by_topic.values() if v), default=None)


@dataclass(frozen=True, slots=True)
class Insight:
    """Derived facts about one group at one poll."""

    time_lags: Mapping[tuple[str, int], float] = field(default_factory=TimeLags)
    status: str = "unknown"
    rates: GroupRates | None = None  # consume and produce rates by topic, catch-up time
    lost: Mapping[tuple[str, int], float] = field(default_factory=TimeLags)  # lost messages, where earliest is known
    retention_margin: float | None = None
    earliest: Mapping[str, Earliest] = field(default_factory=lambda: _NO_TOPICS)  # the topics' earliest offsets
    history: LagSeries = EMPTY  # the max time lag over the last hour, one point per 30 s at most (status page)

    @property
    def max_time_lag(self) -> float | None:
        """The oldest unconsumed message over the group's partitions, or None without estimates."""
        if isinstance(self.time_lags, TimeLags):
            return self.time_lags.max()
        return max(self.time_lags.values(), default=None)


_NO_TOPICS: Mapping[str, Earliest] = MappingProxyType({})


class Analyzer:
    """Owns the per-partition offset histories, rate series and per-group status windows."""

    def __init__(self, options: LagSettings | None = None, retention: RetentionView | None = None) -> None:
        """``retention`` (the retention refresher) gives earliest offsets and retention, when enabled."""
        self.estimator = LagEstimator(options)
        self.status = StatusTracker(options)
        self.rates = RateTracker()
        self.history = LagHistory()
        self.retention = retention

    def observe(self, instance_id: str, group: str, progress: ConsumerProgress, at: float) -> Insight:
        """Record one answer received at ``at`` (epoch seconds) and derive the group's insight."""
        for topic in progress.topics:
            for p in topic.partitions:
                if p.broker_offset is not None:
                    self.estimator.observe((instance_id, topic.topic, p.partition), p.broker_offset, at)
        lags: dict[tuple[str, int], float] = {}
        bounded = False  # some value is only a lower bound (below the history, no LastTimestamp)
        for topic in progress.topics:
            for p in topic.partitions:
                if p.consumer_offset is None or p.broker_offset is None:
                    continue
                key = (instance_id, topic.topic, p.partition)
                consumed = None if p.last_timestamp_ms is None else p.last_timestamp_ms / 1000
                age = self.estimator.estimate(key, p.consumer_offset, p.broker_offset, at, consumed)
                if age is not None:
                    lags[(topic.topic, p.partition)] = age
                    if consumed is None and age > 0 and self.estimator.below_history(key, p.consumer_offset):
                        bounded = True
        # The status judges the trend of the max time lag; a lower bound climbs with the history's age while
        # a consumer catches up, so such a poll gives the status no time lag (it falls back to message lag).
        complete = len(lags) == _with_offsets(progress) and not bounded
        worst = max(lags.values(), default=None) if complete else None
        status = self.status.observe((instance_id, group), progress, at, worst)
        time_lags = TimeLags(lags.items())
        # A lower bound says neither that a group is caught up nor how long until its messages go.
        measured = None if bounded else time_lags
        rates = self.rates.observe(instance_id, group, progress, at, measured)
        highest = time_lags.max()
        history = self.history.observe((instance_id, group), at, highest)
        if self.retention is None:
            return Insight(time_lags, status, rates, history=history)
        view = self.retention
        earliest = {t.topic: e for t in progress.topics if (e := view.earliest(instance_id, t.topic)) is not None}
        lost = lost_messages(progress, earliest.get)
        margin = retention_margin(view.retention_seconds(instance_id), None if bounded else highest,
                                  any(lost.values()))
        return Insight(time_lags, status, rates, TimeLags((k, float(v)) for k, v in lost.items()), margin,
                       MappingProxyType(earliest) if earliest else _NO_TOPICS, history)

    def forget(self, instance_id: str, group: str) -> None:
        """Drop a group's status window, rate series and time-lag history (its data went stale)."""
        self.status.forget((instance_id, group))
        self.history.forget((instance_id, group))
        self.rates.forget(instance_id, group)


def _with_offsets(progress: ConsumerProgress) -> int:
    """Partitions with both offsets: the ones a complete set of time lags covers."""
    return sum(1 for t in progress.topics for p in t.partitions
               if p.consumer_offset is not None and p.broker_offset is not None)
