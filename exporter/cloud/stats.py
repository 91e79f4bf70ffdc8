"""Counters of the exporter's own API traffic (and its tasks' restarts), kept as plain numbers for the self-metrics.

The client reports every HTTP attempt here, the supervisor every task it starts and restarts; only
the self-metrics turn these into metric families, so metric names stay in the metrics package. Requests are
counted per account (the API's rate limit and permissions are per account); ``version`` changes on every
update, letting the exposition cache know when to render again.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from exporter.config.settings import DEFAULT_ACCOUNT

# Latency buckets for one API attempt, in seconds: loopback answers take milliseconds, the cloud
# typically 50-500 ms, and the default timeout is 10 s.
DURATION_BUCKETS: tuple[float, ...] = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass
class Histogram:
    """Cumulative-bucket histogram state for one label set."""

    counts: list[int] = field(default_factory=lambda: [0] * len(DURATION_BUCKETS))
    total: int = 0
    sum: float = 0.0

    def observe(self, value: float) -> None:
        """Add one observation."""
        index = bisect.bisect_left(DURATION_BUCKETS, value)
        for i in range(index, len(self.counts)):
            self.counts[i] += 1
        self.total += 1
        self.sum += value


    def add(self, other: Histogram) -> None:
        """Add another histogram's observations (the same buckets)."""
        self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        self.total += other.total
        self.sum += other.sum


class ApiStats:
    """Per-account, per-action request counts by result code, and latency histograms."""

    def __init__(self) -> None:
        self.by_account: dict[tuple[str, str, str], int] = {}  # (account, action, code) -> attempts
        self.durations_by_account: dict[tuple[str, str], Histogram] = {}  # (account, action) -> latencies
        self.clock_skew: float | None = None  # |local - server Date|, seconds, from the last answer with a Date
        self.restarts: dict[str, int] = {}  # supervised task -> times it died and was started again
        self.version = 0

    def task_started(self, name: str) -> None:
        """A supervised task runs: its restart count shows, from 0."""
        if name not in self.restarts:
            self.restarts[name] = 0
            self.version += 1

    def task_restarted(self, name: str) -> None:
        """A supervised task died and was started again."""
        self.restarts[name] = self.restarts.get(name, 0) + 1
        self.version += 1

    def observe_clock(self, skew: float) -> None:
        """Record the distance between the local clock and the API server's (absolute seconds)."""
        if skew != self.clock_skew:
            self.clock_skew = skew
            self.version += 1

    def observe(self, action: str, code: str, seconds: float, account: str = DEFAULT_ACCOUNT) -> None:
        """Record one HTTP attempt of ``action`` for ``account`` that ended with ``code`` after ``seconds``."""
        key = (account, action, code)
        self.by_account[key] = self.by_account.get(key, 0) + 1
        self.durations_by_account.setdefault((account, action), Histogram()).observe(max(0.0, seconds))
        self.version += 1

    @property
    def requests(self) -> dict[tuple[str, str], int]:
        """Attempts by (action, code), over every account."""
        totals: dict[tuple[str, str], int] = {}
        for (_, action, code), count in self.by_account.items():
            totals[action, code] = totals.get((action, code), 0) + count
        return totals

    @property
    def durations(self) -> dict[str, Histogram]:
        """Latencies by action, over every account."""
        merged: dict[str, Histogram] = {}
        for (_, action), hist in self.durations_by_account.items():
            merged.setdefault(action, Histogram()).add(hist)
        return merged
