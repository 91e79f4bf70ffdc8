"""Consumer status per group, from a sliding window of recent polls (rules in docs/lag.md).

The rules are checked in this order, and the first that holds wins:

1. ``stopped``: the latest poll shows lag > 0 and no members (outside a rebalance). One poll is
   enough: a group with no members and lag is never reported as anything milder.
2. ``unknown``: fewer than ``min_polls`` polls in the window.
3. ``rewound``: a committed offset went backwards between two polls of the window.
4. ``stalled``: members present, lag > 0 now, no committed offset moved over the whole window, and
   some partition already had lag at the window's first poll. The last condition keeps a quiet
   topic that just received one message from looking stalled.
5. ``lagging``: lag > 0 now and the lag of the last third of the window (at least two polls) is
   entirely above the lag of its first third (its minimum exceeds their maximum). Oscillation from
   commit cadence overlaps and does not count; steady growth does, even if it dips in between.
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


@dataclass(frozen=True, slots=True)
class Sample:
    """What one poll says about a group, reduced to what the rules need."""

    lag: int
    members: int
    state: str
    committed: tuple[tuple[tuple[str, int], int], ...]  # ((topic, partition), offset), sorted
    lagging_partitions: frozenset[tuple[str, int]]

    @classmethod
    def of(cls, progress: ConsumerProgress) -> Sample:
        """Reduce a parsed answer."""
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
        return cls(lag, len(progress.member_ids), progress.state, tuple(sorted(committed)), frozenset(lagging))


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
    if latest.lag > 0 and latest.members > 0:
        unmoved = all(s.committed == latest.committed for s in samples)
        if unmoved and samples[0].lagging_partitions & latest.lagging_partitions:
            return "stalled"
    third = max(2, len(samples) // 3)  # at least two polls a side: one noisy poll never decides
    if latest.lag > 0 and min(s.lag for s in samples[-third:]) > max(s.lag for s in samples[:third]):
        return "lagging"
    return "ok"


class StatusTracker:
    """A bounded window of samples per group."""

    def __init__(self, options: StatusOptions | None = None) -> None:
        self.options = options or StatusOptions()
        self._windows: dict[tuple[str, str], deque[Sample]] = {}

    def observe(self, group: tuple[str, str], progress: ConsumerProgress) -> str:
        """Add a successful poll of ``group`` and return its status."""
        window = self._windows.get(group)
        if window is None:
            window = self._windows[group] = deque(maxlen=self.options.window)
        window.append(Sample.of(progress))
        return evaluate(list(window), self.options)

    def forget(self, group: tuple[str, str]) -> None:
        """Drop a group's window (its pair went stale or left the configuration)."""
        self._windows.pop(group, None)
