"""The board: the one owner of every pair's state, and the one channel from polling to serving.

The poller writes each result to the :class:`Board`; everything downstream reads from it: the exposition
takes the pairs changed since it last looked (:meth:`Board.changes`, told by a listener), pages and
self-metrics take an immutable :class:`Snapshot`, built on read and only when something changed, so a
poll costs O(1) and a scrape never sees half an update. :class:`PairState` holds all that is known of a
pair: its last data (kept while failing until ``stale_after``), its last error in words safe to show.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Literal, Protocol

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
class AccountSchedule:
    """One account's part of the poll schedule: each account's budget schedules its own pairs."""

    account: str
    pairs: int
    effective_interval: float | None
    cycle_duration: float | None


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
    # With several accounts, each one's schedule (the figures above combine them); empty with one.
    accounts: tuple[AccountSchedule, ...] = ()

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


@dataclass(frozen=True, slots=True)
class Changes:
    """What changed on a board after a given version: pairs with a new state, and pairs gone."""

    states: tuple[PairState, ...]
    removed: tuple[Pair, ...]
    version: int  # the board's version these changes bring a reader up to


class SnapshotSource(Protocol):
    """Where readers take the latest snapshot from (a :class:`Board`)."""

    @property
    def snapshot(self) -> Snapshot: ...

    @property
    def version(self) -> int: ...


class Board:
    """Every pair's latest state and the schedule's figures; ``version`` grows with every write.

    A pair's state is written whole (:meth:`put`), so readers never see a half-made one. Listeners are
    called after each write, with nothing: they read what they need (:meth:`changes`, :attr:`snapshot`).
    """

    def __init__(self, pairs: Iterable[Pair] = (), *, interval: float | None = None,
                 effective_interval: float | None = None, discovering: bool = False) -> None:
        self._states: dict[Pair, PairState] = {p: PairState(p) for p in pairs}
        self._changed: dict[Pair, int] = dict.fromkeys(self._states, 0)  # pair -> version it last changed at
        self._removed: dict[Pair, int] = {}  # pair -> version it went at, for the reader of changes
        self._version = 0
        self._figures = Snapshot(interval=interval, effective_interval=effective_interval, discovering=discovering)
        self._parts: dict[str, Snapshot] = {}  # account -> the figures its poller described
        self._snapshot: Snapshot | None = None
        self._listeners: list[Callable[[], None]] = []

    @classmethod
    def holding(cls, states: Iterable[PairState]) -> Board:
        """A board with these states written (``--once``, tests)."""
        board = cls()
        for state in states:
            board.put(state)
        return board

    @property
    def version(self) -> int:
        """Grows with every write."""
        return self._version

    @property
    def snapshot(self) -> Snapshot:
        """Every pair's state now, immutable; made again only after a write."""
        if self._snapshot is None or self._snapshot.version != self._version:
            self._snapshot = replace(self._figures, pairs=MappingProxyType(dict(self._states)), version=self._version)
        return self._snapshot

    def state(self, pair: Pair) -> PairState | None:
        """A pair's latest state, or None when the board does not hold it."""
        return self._states.get(pair)

    def listen(self, listener: Callable[[], None]) -> None:
        """Call ``listener`` after every write."""
        self._listeners.append(listener)

    def put(self, state: PairState) -> None:
        """Write a pair's new state (adding the pair if new)."""
        self._states[state.pair] = state
        self._removed.pop(state.pair, None)
        self._changed.pop(state.pair, None)  # re-inserted last: the journal stays in version order
        self._version += 1
        self._changed[state.pair] = self._version
        self._notify()

    def remove(self, pair: Pair) -> None:
        """Forget a pair that is no longer polled."""
        if self._states.pop(pair, None) is None:
            return
        self._changed.pop(pair, None)
        self._version += 1
        self._removed[pair] = self._version
        self._notify()

    def describe(self, *, cycle_duration: float | None, effective_interval: float | None, discovering: bool,
                 interval: float | None, schedule: tuple[PriorityView, ...] = (), account: str = "",
                 pairs: int = 0) -> None:
        """Write the schedule's figures of ``account``'s poller (shown with the pairs in every snapshot).

        With one poller its figures are the board's; with several (one per account) they combine: the longest
        effective interval and cycle, each priority class's pairs summed with its longest interval and wait.
        """
        self._parts[account] = Snapshot(cycle_duration=cycle_duration, effective_interval=effective_interval,
                                        discovering=discovering, interval=interval, schedule=schedule,
                                        accounts=(AccountSchedule(account, pairs, effective_interval, cycle_duration),))
        figures = _combined(self._figures, list(self._parts.values()))
        if figures != self._figures:
            self._figures = figures
            self._version += 1
            self._notify()

    def changes(self, since: int) -> Changes:
        """The pairs written or removed after version ``since``: O(changes), not O(pairs).

        Removals older than ``since`` are forgotten, so the board serves one reader of changes.
        """
        states = []
        for pair, version in reversed(self._changed.items()):
            if version <= since:
                break
            states.append(self._states[pair])
        removed = [pair for pair, version in self._removed.items() if version > since]
        if len(removed) < len(self._removed):
            self._removed = {pair: self._removed[pair] for pair in removed}
        return Changes(tuple(reversed(states)), tuple(removed), self._version)

    def _notify(self) -> None:
        for listener in self._listeners:
            listener()


def _longest(values: Iterable[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return max(known) if known else None


def _combined(figures: Snapshot, parts: list[Snapshot]) -> Snapshot:
    """The board's figures from each poller's: one poller's as they are, several combined (docs/scaling.md)."""
    if len(parts) == 1:
        only = parts[0]
        return replace(figures, cycle_duration=only.cycle_duration, effective_interval=only.effective_interval,
                       discovering=only.discovering, interval=only.interval, schedule=only.schedule, accounts=())
    views: dict[str, list[PriorityView]] = {}
    for part in parts:
        for view in part.schedule:
            views.setdefault(view.priority, []).append(view)
    schedule = tuple(
        PriorityView(priority, sum(v.pairs for v in same),
                     _longest(v.interval for v in same if v.pairs) if any(v.pairs for v in same)
                     else _longest(v.interval for v in same),
                     _longest(v.oldest for v in same))
        for priority, same in views.items())
    return replace(figures, cycle_duration=_longest(p.cycle_duration for p in parts),
                   effective_interval=_longest(p.effective_interval for p in parts),
                   discovering=any(p.discovering for p in parts), interval=_longest(p.interval for p in parts),
                   schedule=schedule, accounts=tuple(a for p in sorted(parts, key=lambda p: p.accounts[0].account)
                                                     for a in p.accounts))
