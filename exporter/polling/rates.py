"""Consume and produce rates over a recent window, and how long a group needs to catch up.

Each poll adds a point per (group, topic): messages committed and appended since the series began, summed over
the partitions seen in this answer and the last. Groups commit every few seconds, not continuously, so a rate is
read over a window of several commits (see :func:`window_rate`), never between two polls. The catch-up time is
``lag / (consume - produce)``, the slowest topic deciding: 0 when caught up, absent when the lag is not shrinking
beyond the measurement's noise (never Inf, NaN or negative). Rules and limits: docs/lag.md.
"""

from __future__ import annotations

import bisect
import math
from array import array
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from exporter.cloud.models import ConsumerProgress, TopicProgress

WINDOW = 300.0  # seconds of history a rate is read over (at least POLLS polls)
MIN_SPAN = 60.0  # no rate from a shorter history: a few commits are not a rate
POLLS = 10  # the window covers at least this many polls: 5 minutes, or 10 minutes at a 60 s interval
MAX_POINTS = 128  # per series; past it the oldest points go (the window shortens at very short poll intervals)
FREQUENT = 10  # changes in a window from which the staircase of commits is read as a trend
NOISE = 0.05  # lag shrinks only when consume exceeds produce by more than this share of the larger


def window_rate(times: array[float], values: array[float], window: float = WINDOW) -> tuple[float, float] | None:
    """(messages per second, mean gap between changes in seconds) over the last ``window`` seconds of the points,
    or None when they span less than :data:`MIN_SPAN`. ``values`` never decrease.

    With many changes in the window (a topic being written, a group committing every few seconds) the rate is
    read over exactly the window, the value at its start interpolated: the staircase of commits is off the
    trend by at most one commit at either end. With few (a group committing every minute or two), it is read
    between the first sightings of the first and last changes, each late by less than one poll interval.
    """
    n = len(times)
    if n < 2 or times[-1] - times[0] < MIN_SPAN:
        return None
    span = times[-1] - times[0]
    changes = [i for i in range(1, n) if values[i] > values[i - 1]]
    if not changes:
        return 0.0, span
    first, last = changes[0], changes[-1]
    gap = (times[last] - times[first]) / (len(changes) - 1) if len(changes) > 1 else span
    start = times[-1] - window
    if len(changes) >= FREQUENT and times[0] <= start:
        i = bisect.bisect_right(times, start)  # times[i - 1] <= start < times[i]
        t0, t1 = times[i - 1], times[i]
        v0 = values[i - 1] + (values[i] - values[i - 1]) * (start - t0) / (t1 - t0)
        return (values[-1] - v0) / window, gap
    if len(changes) == 1 or times[-1] - times[last] > 2 * gap:
        return (values[-1] - values[0]) / span, gap  # silent for longer than its cadence: the silence counts
    return (values[last] - values[first]) / (times[last] - times[first]), gap


class _Series:
    """Cumulative counts of one (instance, group, topic) or (instance, topic), and the last offsets per partition."""

    __slots__ = ("consumed", "last_committed", "last_end", "partitions", "produced", "times")

    def __init__(self) -> None:
        self.times: array[float] = array("d")
        self.consumed: array[float] = array("d")
        self.produced: array[float] = array("d")
        self.partitions: array[int] = array("q")
        self.last_committed: array[int] = array("q")  # -1: none
        self.last_end: array[int] = array("q")  # -1: none

    def add(self, at: float, offsets: list[tuple[int, int, int]], window: float) -> None:
        """Add a point from (partition, committed or -1, end or -1), sorted by partition."""
        if self.times and at <= self.times[-1]:
            return  # out of order (two groups' answers crossing): the newer point is already in
        consumed = produced = 0
        partitions = array("q", (p for p, _, _ in offsets))
        committed_now = array("q", (c for _, c, _ in offsets))
        ends_now = array("q", (e for _, _, e in offsets))
        pairs: Iterable[tuple[int, int, int, int]]
        if partitions == self.partitions:  # the usual answer: the same partitions as last time
            pairs = zip(self.last_committed, self.last_end, committed_now, ends_now, strict=True)
        else:
            previous = dict(zip(self.partitions, zip(self.last_committed, self.last_end, strict=True), strict=True))
            pairs = ((*previous[p], c, e) for p, c, e in offsets if p in previous)
        for committed_before, end_before, committed, end in pairs:
            if committed >= 0 and committed_before >= 0 and committed > committed_before:
                consumed += committed - committed_before
            if end >= 0 and end_before >= 0 and end > end_before:
                produced += end - end_before
        self.partitions, self.last_committed, self.last_end = partitions, committed_now, ends_now
        self.times.append(at)
        self.consumed.append((self.consumed[-1] if self.consumed else 0.0) + consumed)
        self.produced.append((self.produced[-1] if self.produced else 0.0) + produced)
        drop = 0
        window = self.span(window)
        while len(self.times) - drop > 2 and self.times[drop + 1] <= at - window:
            drop += 1  # keep one point at or before the window's start
        drop = max(drop, len(self.times) - MAX_POINTS)
        if drop:
            for values in (self.times, self.consumed, self.produced):
                del values[:drop]

    def span(self, window: float) -> float:
        """The window this series is read over: ``window``, or :data:`POLLS` of its polls when they are sparser."""
        n = len(self.times)
        return window if n < 2 else max(window, POLLS * (self.times[-1] - self.times[0]) / (n - 1))

    def consume(self, window: float) -> tuple[float, float] | None:
        return window_rate(self.times, self.consumed, self.span(window))

    def produce(self, window: float) -> tuple[float, float] | None:
        return window_rate(self.times, self.produced, self.span(window))


@dataclass(frozen=True, slots=True)
class GroupRates:
    """A group's rates at one poll: what it consumed and what was produced, by topic, and its catch-up time."""

    consume: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))  # topic -> msg/s
    produce: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))  # topic -> msg/s
    catch_up: float | None = None  # seconds; None: not shrinking, or not known yet


def _offsets(topic: TopicProgress) -> list[tuple[int, int, int]]:
    return [(p.partition, -1 if p.consumer_offset is None else p.consumer_offset,
             -1 if p.broker_offset is None else p.broker_offset) for p in topic.partitions]


def _topic_lag(topic: TopicProgress) -> int | None:
    lags = [p.lag for p in topic.partitions]
    if any(lag is None for lag in lags):
        return topic.total_diff
    return sum(lag or 0 for lag in lags)


def catch_up(lag: int, consume: tuple[float, float] | None, produce: tuple[float, float] | None,
             time_lag: float | None = None) -> float | None:
    """Seconds until ``lag`` reaches 0 at these rates ((rate, gap) pairs); 0 when caught up; None when the lag
    is not shrinking or the rates are not known.

    Caught up: the oldest unconsumed message (``time_lag``, when known; else the lag in messages at the consume
    rate) is no older than two of the group's gaps between commits, as seen by the polls. A group that keeps up
    always trails by about one commit interval, more during a burst; a draining one reaches that point at most
    about one gap before the lag is 0.
    """
    if lag <= 0:
        return 0.0
    if consume is None or produce is None:
        return None
    (rate, gap), (made, _) = consume, produce
    behind = time_lag if time_lag is not None else (lag / rate if rate > 0 else math.inf)
    if rate > 0 and behind <= 2 * gap:
        return 0.0
    net = rate - made
    if net <= NOISE * max(rate, made) or net < 1 / WINDOW:  # less than a message a window: not shrinking
        return None
    eta = lag / net
    return eta if math.isfinite(eta) else None


def _worst_by_topic(progress: ConsumerProgress,
                    time_lags: Mapping[tuple[str, int], float] | None) -> dict[str, float]:
    """Each topic's largest time lag, for the topics where every partition with a lag has one."""
    if not time_lags:
        return {}
    worst: dict[str, float] = {}
    for topic in progress.topics:
        values = [time_lags.get((topic.topic, p.partition)) for p in topic.partitions if p.lag]
        if values and all(v is not None for v in values):
            worst[topic.topic] = max(v for v in values if v is not None)
    return worst


class RateTracker:
    """Rate series of every polled (group, topic) and every polled topic."""

    def __init__(self, window: float = WINDOW) -> None:
        self.window = window
        self._groups: dict[tuple[str, str, str], _Series] = {}
        self._topics: dict[tuple[str, str], _Series] = {}
        self._group_seen: dict[tuple[str, str, str], float] = {}
        self._topic_seen: dict[tuple[str, str], float] = {}
        self._last_sweep = -math.inf

    def __len__(self) -> int:
        return len(self._groups) + len(self._topics)

    def observe(self, instance_id: str, group: str, progress: ConsumerProgress, at: float,
                time_lags: Mapping[tuple[str, int], float] | None = None) -> GroupRates:
        """Add a poll's answer received at ``at`` and read the group's rates and catch-up time (``time_lags``:
        the poll's time lags by (topic, partition), which say whether the group is caught up)."""
        consume: dict[str, float] = {}
        produce: dict[str, float] = {}
        etas: list[float | None] = []
        worst = _worst_by_topic(progress, time_lags)
        for topic in progress.topics:
            offsets = _offsets(topic)
            key = (instance_id, group, topic.topic)
            series = self._groups.get(key) or self._groups.setdefault(key, _Series())
            series.add(at, offsets, self.window)
            shared_key = (instance_id, topic.topic)
            shared = self._topics.get(shared_key) or self._topics.setdefault(shared_key, _Series())
            shared.add(at, offsets, self.window)
            self._group_seen[key] = self._topic_seen[shared_key] = at
            consumed, produced = series.consume(self.window), shared.produce(self.window)
            if consumed is not None:
                consume[topic.topic] = consumed[0]
            if produced is not None:
                produce[topic.topic] = produced[0]
            lag = _topic_lag(topic)
            etas.append(None if lag is None else catch_up(lag, consumed, series.produce(self.window),
                                                               worst.get(topic.topic)))
        eta = None if any(e is None for e in etas) else max((e for e in etas if e is not None), default=0.0)
        if at - self._last_sweep > self.window:
            self._sweep(at - 2 * self.window)
            self._last_sweep = at
        return GroupRates(MappingProxyType(consume), MappingProxyType(produce), eta)

    def produce_rate(self, instance_id: str, topic: str) -> float | None:
        """Messages per second appended to a topic over the window, from every group's polls of it."""
        series = self._topics.get((instance_id, topic))
        found = series.produce(self.window) if series is not None else None
        return None if found is None else found[0]

    def forget(self, instance_id: str, group: str) -> None:
        """Drop a group's series (its data went stale or it is no longer polled)."""
        for key in [k for k in self._groups if k[0] == instance_id and k[1] == group]:
            del self._groups[key]
            self._group_seen.pop(key, None)

    def _sweep(self, cutoff: float) -> None:
        for key in [k for k, seen in self._group_seen.items() if seen < cutoff]:
            del self._group_seen[key], self._groups[key]
        for shared in [k for k, seen in self._topic_seen.items() if seen < cutoff]:
            del self._topic_seen[shared], self._topics[shared]
