"""Consumer status per group (ok, lagging, stalled, stopped, rewound, unknown) from a window of recent polls.

The window is the last ``window`` polls, stretched to cover at least ``min_span`` seconds, so fast polling
never judges a group on less than one auto-commit period. The rules are checked in a fixed order and the
first that holds wins; they are written out in docs/lag.md.
"""

from __future__ import annotations

import itertools
from array import array
from collections import deque
from dataclasses import dataclass

from exporter.cloud.models import ConsumerProgress
from exporter.config.settings import LagSettings

STATUSES = ("ok", "lagging", "stalled", "stopped", "rewound", "unknown")
REBALANCING = ("preparing_rebalance", "completing_rebalance")


_MAX_SAMPLES = 3600  # hard bound on a window stretched by lag.status_min_span


Key = tuple[str, int]  # (topic, partition)


@dataclass(frozen=True, slots=True)
class Sample:
    """What one poll says about a group, reduced to what the rules need.

    Compact, since a window holds ten of them for every group: the committed offsets are one typed
    array aligned with ``keys`` (topics, each with its partition numbers), and ``keys`` is the very same
    tuple in successive samples of a group whose partitions did not change (8 bytes a partition a
    sample, not a tuple of tuples). ``lagging`` has one byte per partition: 1 where it had lag.
    """

    lag: int
    members: int
    state: str
    keys: tuple[tuple[str, tuple[int, ...]], ...]  # (topic, partitions) with a committed offset, sorted
    offsets: array[int]  # their committed offsets
    lagging: bytes
    at: float = 0.0
    time_lag: float | None = None  # the group's max time lag at this poll

    @classmethod
    def of(cls, progress: ConsumerProgress, at: float = 0.0, time_lag: float | None = None,
           previous: Sample | None = None) -> Sample:
        """Reduce a parsed answer (received at ``at``, with the group's max time lag); ``previous``
        is the group's last sample, whose ``keys`` are reused when equal."""
        rows = []
        total = 0
        counted = False  # some partition has a lag (from its offsets, or the service's Accumulate)
        for topic in progress.topics:
            for p in topic.partitions:
                lag = p.lag
                if lag is not None:
                    total += lag
                    counted = True
                if p.consumer_offset is None:
                    continue
                rows.append(((topic.topic, p.partition), p.consumer_offset, 1 if lag else 0))
        rows.sort()
        grouped: dict[str, list[int]] = {}
        for (topic_name, partition), _, _ in rows:
            grouped.setdefault(topic_name, []).append(partition)
        keys = tuple((name, tuple(partitions)) for name, partitions in grouped.items())
        if previous is not None and previous.keys == keys:
            keys = previous.keys
        lag = total if counted else (progress.total_diff or 0)
        return cls(lag, len(progress.member_ids), progress.state, keys, array("q", [r[1] for r in rows]),
                   bytes(r[2] for r in rows), at, time_lag)

    @property
    def partitions(self) -> list[Key]:
        """The (topic, partition) of each committed offset, in order."""
        return [(topic, partition) for topic, partitions in self.keys for partition in partitions]

    @property
    def committed(self) -> dict[Key, int]:
        """Committed offset by partition."""
        return dict(zip(self.partitions, self.offsets, strict=True))

    @property
    def lagging_partitions(self) -> frozenset[Key]:
        """The partitions that had lag at this poll."""
        return frozenset(k for k, lagging in zip(self.partitions, self.lagging, strict=True) if lagging)


def _went_back(before: Sample, after: Sample) -> bool:
    if before.keys is after.keys:
        return any(new < old for old, new in zip(before.offsets, after.offsets, strict=True))
    old = before.committed
    return any(offset < old[key] for key, offset in zip(after.partitions, after.offsets, strict=True) if key in old)


def _same_commits(a: Sample, b: Sample) -> bool:
    return a.keys == b.keys and a.offsets == b.offsets


def _lagging_in_both(a: Sample, b: Sample) -> bool:
    if a.keys is b.keys:
        return any(x and y for x, y in zip(a.lagging, b.lagging, strict=True))
    return bool(a.lagging_partitions & b.lagging_partitions)


def evaluate(samples: list[Sample], options: LagSettings) -> str:  # noqa: PLR0911 - one return per rule
    """The status of a group from its recent samples, oldest first."""
    if not samples:
        return "unknown"
    latest = samples[-1]
    if latest.lag > 0 and latest.members == 0 and latest.state not in REBALANCING:
        return "stopped"
    if len(samples) < options.status_min_polls:
        return "unknown"
    if any(_went_back(a, b) for a, b in itertools.pairwise(samples)):
        return "rewound"
    if latest.lag > 0 and latest.members > 0 and latest.at - samples[0].at >= options.status_min_span:
        unmoved = all(_same_commits(s, latest) for s in samples)
        if unmoved and _lagging_in_both(samples[0], latest):
            return "stalled"
    if latest.lag > 0 and _falling_behind(samples, options):
        return "lagging"
    return "ok"


def _rise(times: list[float], values: list[float]) -> float:
    """Least-squares slope of ``values`` over ``times``, times the window's span."""
    mean_t, mean_v = sum(times) / len(times), sum(values) / len(values)
    spread = sum((t - mean_t) ** 2 for t in times)
    if spread <= 0:
        return 0.0
    slope = sum((t - mean_t) * (v - mean_v) for t, v in zip(times, values, strict=True)) / spread
    return slope * (times[-1] - times[0])


def _falling_behind(samples: list[Sample], options: LagSettings) -> bool:
    third = max(2, len(samples) // 3)  # at least two polls a side: one noisy poll never decides
    if len(samples) < 2 * third:
        return False
    timed = [s for s in samples if s.time_lag is not None]
    if len(timed) >= 2 * third:  # time lag in enough of the window (it is missing only before any history)
        values = [float(s.time_lag) for s in timed if s.time_lag is not None]
        rise = _rise([s.at for s in timed], values)
        return rise >= options.lagging_min_rise and min(values[-third:]) > max(values[:third])
    counts = [float(s.lag) for s in samples]
    return min(counts[-third:]) > max(counts[:third]) and _rise(list(range(len(counts))), counts) >= 0.1 * max(
        counts[:third])


class StatusTracker:
    """A bounded window of samples per group."""

    def __init__(self, options: LagSettings | None = None) -> None:
        self.options = options or LagSettings()
        self._windows: dict[tuple[str, str], deque[Sample]] = {}

    def observe(self, group: tuple[str, str], progress: ConsumerProgress, at: float = 0.0,
                time_lag: float | None = None) -> str:
        """Add a successful poll of ``group`` (at ``at``, with its max time lag) and return its status."""
        window = self._windows.get(group)
        if window is None:
            window = self._windows[group] = deque(maxlen=_MAX_SAMPLES)
        window.append(Sample.of(progress, at, time_lag, window[-1] if window else None))
        while len(window) > self.options.status_window and at - window[1].at >= self.options.status_min_span:
            window.popleft()
        return evaluate(list(window), self.options)

    def forget(self, group: tuple[str, str]) -> None:
        """Drop a group's window (its pair went stale or left the configuration)."""
        self._windows.pop(group, None)
