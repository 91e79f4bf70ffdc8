"""The immutable snapshot that crosses from the poller to the exposition and the web pages.

The poller replaces the whole snapshot on every poll result (one reference swap), so a scrape
never sees half an update and never waits for the API. Everything a page or metric needs about a
pair is in :class:`PairState`: its last data (kept while failing until ``stale_after``), whether
the last poll succeeded, and the last error in words safe to show (no secrets, no URLs).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

from exporter.cloud.models import ConsumerProgress
from exporter.polling.analysis import Insight
from exporter.targets.pair import Pair

PairStatus = Literal["pending", "ok", "failing", "stale"]
TARGET_STATES: tuple[PairStatus, ...] = ("ok", "failing", "stale")


@dataclass(frozen=True, slots=True)
class PollError:
    """The last failure of a pair, as shown in logs and on the status page."""

    code: str
    message: str
    kind: str
    request_id: str | None


@dataclass(frozen=True, slots=True)
class PairState:
    """What is known about one pair after its latest poll."""

    pair: Pair
    progress: ConsumerProgress | None = None
    up: bool = False
    last_poll: float | None = None
    last_success: float | None = None
    error: PollError | None = None
    polls: int = 0
    insight: Insight | None = None  # time lags and status, present with ``progress``

    @property
    def status(self) -> PairStatus:
        """``ok``; ``failing`` (up 0, data kept); ``stale`` (up 0, no data); ``pending`` (not polled)."""
        if self.polls == 0:
            return "pending"
        if self.up:
            return "ok"
        return "failing" if self.progress is not None else "stale"


@dataclass(frozen=True, slots=True)
class PriorityView:
    """One priority class of the poll schedule at one moment (the adaptive schedule, docs/scaling.md)."""

    priority: str  # new, hot, active or quiet
    pairs: int
    interval: float | None  # the interval the schedule plans for the class; None for pairs never polled
    oldest: float | None  # seconds the longest-waiting pair of the class has gone without a poll; None when empty


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Every pair's state at one moment; ``version`` grows with every swap."""

    pairs: Mapping[Pair, PairState] = field(default_factory=lambda: MappingProxyType({}))
    version: int = 0
    cycle_duration: float | None = None
    effective_interval: float | None = None
    discovering: bool = False  # the first discovery listing has not finished yet
    interval: float | None = None  # the configured poll.interval, which a config reload can change
    schedule: tuple[PriorityView, ...] = ()  # the poll schedule's priority classes (pairs, interval, longest wait)

    @property
    def ready(self) -> bool:
        """True once discovery has listed once and every pair has been polled at least once."""
        return not self.discovering and all(s.polls > 0 for s in self.pairs.values())

    def count_by_status(self) -> dict[PairStatus, int]:
        """Pairs per status, with every status of :data:`TARGET_STATES` present."""
        counts: dict[PairStatus, int] = dict.fromkeys(TARGET_STATES, 0)
        for state in self.pairs.values():
            status = state.status
            if status != "pending":
                counts[status] += 1
        return counts

