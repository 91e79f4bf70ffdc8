"""Consumer status per group, from a sliding window of recent polls (rules in docs/lag.md).

The window is the last ``window`` polls, stretched to cover at least ``min_span`` seconds (60 by
default): with fast polling, ten polls would span less than one auto-commit period of a consumer.

The rules are checked in this order, and the first that holds wins:

1. ``stopped``: the latest poll shows lag > 0 and no members (outside a rebalance). One poll is
   enough: a group with no members and lag is never reported as anything milder.
2. ``unknown``: fewer than ``min_polls`` polls in the window.
3. ``rewound``: a committed offset went backwards between two polls of the window.
4. ``stalled``: members present, lag > 0 now, no committed offset moved over the whole window (which
   spans at least ``min_span``), and some partition already had lag at the window's first poll. The
   last condition keeps a quiet topic that just received one message from looking stalled.
5. ``lagging``: lag > 0 now and the group falls further behind *in time*: over the window, the
   least-squares rise of its max time lag is at least ``min_rise`` seconds (default 10) and the last
   third of the window (at least two polls) lies entirely above the first third. Time lag, unlike
   message counts, does not grow when a healthy consumer meets a burst, and commit-cadence sawtooth
   (a few seconds) stays under ``min_rise``. Polls without a time lag (no history and no
   LastTimestamp yet) are left out; with too few left, message lag is used instead: the thirds rule
   plus a rise of at least 10%.
6. ``ok``.
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass

from exporter.models import ConsumerProgress

STATUSES = ("ok", "lagging", "stalled", "stopped", "rewound", "unknown")
_REBALANCING = ("preparing_rebalance", "completing_rebalance")


@dataclass(frozen=True, slots=True)
class StatusOptions:
    """Window length and the minimum polls for a verdict."""

    window: int = 10
    min_polls: int = 3
    min_rise: float = 10.0  # seconds of time-lag growth over the window that make a group lagging
    min_span: float = 60.0  # the window covers at least this many seconds
    max_samples: int = 3600  # hard bound on a stretched window


@dataclass(frozen=True, slots=True)
class Sample:
    """What one poll says about a group, reduced to what the rules need."""

    lag: int
    members: int
    state: str
    committed: tuple[tuple[tuple[str, int], int], ...]  # ((topic, partition), offset), sorted
    lagging_partitions: frozenset[tuple[str, int]]
    at: float = 0.0
    time_lag: float | None = None  # the group's max time lag at this poll

    @classmethod
    def of(cls, progress: ConsumerProgress, at: float = 0.0, time_lag: float | None = None) -> Sample:
        """Reduce a parsed answer (received at ``at``, with the group's max time lag)."""
        committed = []
        lagging = set()
        total = 0
        for topic in progress.topics:
            for p in topic.partitions:
                if p.consumer_offset is None:
                    continue
                committed.append(((topic.topic, p.partition), p.consumer_offset))
                if p.lag:
                    lagging.add((topic.topic, p.partition))
                    total += p.lag
        lag = total if committed else (progress.total_diff or 0)
        return cls(lag, len(progress.member_ids), progress.state, tuple(sorted(committed)), frozenset(lagging), at,
                   time_lag)


def _went_back(before: Sample, after: Sample) -> bool:
    old = dict(before.committed)
    return any(offset < old[key] for key, offset in after.committed if key in old)


def evaluate(samples: list[Sample], options: StatusOptions) -> str:  # noqa: PLR0911 - one return per rule
    """The status of a group from its recent samples, oldest first."""
    if not samples:
        return "unknown"
    latest = samples[-1]
    if latest.lag > 0 and latest.members == 0 and latest.state not in _REBALANCING:
        return "stopped"
    if len(samples) < options.min_polls:
        return "unknown"
    if any(_went_back(a, b) for a, b in itertools.pairwise(samples)):
        return "rewound"
    if latest.lag > 0 and latest.members > 0 and latest.at - samples[0].at >= options.min_span:
        unmoved = all(s.committed == latest.committed for s in samples)
        if unmoved and samples[0].lagging_partitions & latest.lagging_partitions:
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


def _falling_behind(samples: list[Sample], options: StatusOptions) -> bool:
    third = max(2, len(samples) // 3)  # at least two polls a side: one noisy poll never decides
    if len(samples) < 2 * third:
        return False
    timed = [s for s in samples if s.time_lag is not None]
    if len(timed) >= 2 * third:  # time lag in enough of the window (it is missing only before any history)
        values = [float(s.time_lag) for s in timed if s.time_lag is not None]
        rise = _rise([s.at for s in timed], values)
        return rise >= options.min_rise and min(values[-third:]) > max(values[:third])
    counts = [float(s.lag) for s in samples]
    return min(counts[-third:]) > max(counts[:third]) and _rise(list(range(len(counts))), counts) >= 0.1 * max(
        counts[:third])


class StatusTracker:
    """A bounded window of samples per group."""

    def __init__(self, options: StatusOptions | None = None) -> None:
        self.options = options or StatusOptions()
        self._windows: dict[tuple[str, str], deque[Sample]] = {}

    def observe(self, group: tuple[str, str], progress: ConsumerProgress, at: float = 0.0,
                time_lag: float | None = None) -> str:
        """Add a successful poll of ``group`` (at ``at``, with its max time lag) and return its status."""
        window = self._windows.get(group)
        if window is None:
            window = self._windows[group] = deque(maxlen=self.options.max_samples)
        window.append(Sample.of(progress, at, time_lag))
        while len(window) > self.options.window and at - window[1].at >= self.options.min_span:
            window.popleft()
        return evaluate(list(window), self.options)

    def forget(self, group: tuple[str, str]) -> None:
        """Drop a group's window (its pair went stale or left the configuration)."""
        self._windows.pop(group, None)
