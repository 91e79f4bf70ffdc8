"""Which pair to poll next: round robin, or by priority when the API budget cannot poll every pair every interval.

Under ``poll.schedule: adaptive`` each poll puts its pair in a class: ``new``, ``hot`` (its next poll can change
what an operator must know: lag growing, a status or member change, a failure, a time lag near its threshold),
``quiet`` (caught up, no traffic) or ``active``. Every pair is owed one poll per ``max_interval`` (stretched to
STRETCH rounds when the budget cannot keep it); the rest goes to hot pairs four times as much as to active ones,
up to one poll per ``poll.interval``. Classes take turns by their share, the longest-waiting pair first. Where
the budget covers every pair every interval, it is round robin, exactly as ``uniform``.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Container, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from exporter.cloud.models import ConsumerProgress
from exporter.polling.snapshot import PairState, PriorityView
from exporter.polling.status import REBALANCING
from exporter.targets.pair import Pair

log = logging.getLogger(__name__)

Mode = Literal["adaptive", "uniform"]
NEW, HOT, ACTIVE, QUIET = "new", "hot", "active", "quiet"
PRIORITIES = (NEW, HOT, ACTIVE, QUIET)
# Share of the budget beyond every pair's one poll per max_interval, per pair: hot four times active.
WEIGHTS: Mapping[str, float] = {NEW: 4.0, HOT: 4.0, ACTIVE: 1.0, QUIET: 0.0}
HOLD = 2  # polls a pair stays hot after a change, so the status window sees it through
NEAR = 2.0  # a time lag within this factor of the threshold, either side, is close to it
# Pairs are planned to wait at most this share of max_interval, so a late slot never pushes one past it.
SLACK = 0.95
# When the budget cannot poll every pair once per max_interval, no schedule can keep it (round robin itself
# takes a whole round): the longest wait stretches to this many rounds, so quiet pairs, caught up and without
# traffic, wait a little longer and the busy ones are seen several times a round instead of once.
STRETCH = 1.3

Threshold = Callable[[Pair], float | None]


def lag_seconds_threshold(pair: Pair) -> float | None:
    """The pair's alert threshold on its time lag: its target's ``thresholds.lag_seconds``, or the default."""
    return pair.thresholds.lag_seconds


@dataclass(slots=True)
class Memory:
    """What the schedule keeps of a pair's previous polls."""

    priority: str = NEW
    members: int | None = None
    status: str | None = None
    ends: int | None = None  # a fingerprint of the end offsets at the last successful poll
    hold: int = 0  # polls left to stay hot after a change


def lag_of(progress: ConsumerProgress) -> int:
    """The group's total lag in messages: per partition where known, else the answer's TotalDiff."""
    lags = [p.lag for t in progress.topics for p in t.partitions if p.lag is not None]
    return sum(lags) if lags else progress.total_diff or 0


def _untouched(progress: ConsumerProgress, at: float, age: float) -> bool:
    """Every partition is empty or its newest consumed message is at least ``age`` old (at lag 0, the newest)."""
    return all(p.broker_offset == 0 or (p.last_timestamp_ms is not None and at - p.last_timestamp_ms / 1000 >= age)
               for t in progress.topics for p in t.partitions)


def classify(memory: Memory, state: PairState, threshold: float | None, quiet_age: float) -> str:
    """The priority class of a pair after its latest poll; updates ``memory`` with that poll."""
    if state.polls == 0:
        return NEW
    progress = state.progress
    if not state.up or progress is None:
        memory.hold = HOLD
        return HOT if progress is not None else ACTIVE  # failing with data kept; stale data is gone
    insight = state.insight
    status = insight.status if insight is not None else "unknown"
    members = len(progress.member_ids)
    ends = hash(tuple(p.broker_offset for t in progress.topics for p in t.partitions))
    moved = memory.status is not None and status != memory.status and (memory.status, status) != ("unknown", "ok")
    changed = moved or (memory.members is not None and members != memory.members) or progress.state in REBALANCING
    recent = changed or memory.hold > 0
    memory.hold = HOLD if changed else max(0, memory.hold - 1)
    quiet = lag_of(progress) == 0 and (
        ends == memory.ends or _untouched(progress, state.last_success or 0.0, quiet_age))
    memory.members, memory.status, memory.ends = members, status, ends
    worst = insight.max_time_lag if insight is not None else None
    near = threshold is not None and worst is not None and threshold / NEAR <= worst < threshold * NEAR
    if recent or near or status == "lagging":
        return HOT
    return QUIET if quiet else ACTIVE


def plan(counts: Mapping[str, int], rate: float, interval: float, longest: float) -> dict[str, float]:
    """The interval of each priority class when ``rate`` polls a second are shared by ``counts`` pairs.

    Every class gets the round-robin interval (``interval``, or pairs / rate when longer) unless the budget
    falls between one poll per pair per ``interval`` and one per ``longest``.
    """
    total = sum(counts.values())
    if not adaptive_range(total, rate, interval, longest):
        return dict.fromkeys(PRIORITIES, max(interval, total / rate) if total else interval)
    cap, floor = 1 / interval, 1 / (longest * SLACK)
    favoured = sum(n for p, n in counts.items() if WEIGHTS[p] > 0)
    if favoured * cap + (total - favoured) * floor <= rate:  # the favoured all at interval: the rest to the quiet
        rest = (rate - favoured * cap) / (total - favoured)
        rates = {p: cap if WEIGHTS[p] > 0 else min(cap, rest) for p in PRIORITIES}
    else:  # share of the spare budget per unit of weight, found by bisection (the sum grows with it)
        low, high = 0.0, cap / min(w for w in WEIGHTS.values() if w > 0)
        for _ in range(60):
            mid = (low + high) / 2
            used = sum(n * min(cap, floor + WEIGHTS[p] * mid) for p, n in counts.items())
            low, high = (low, mid) if used > rate else (mid, high)
        rates = {p: min(cap, floor + WEIGHTS[p] * low) for p in PRIORITIES}
    return {p: 1 / r for p, r in rates.items()}


def adaptive_range(pairs: int, rate: float, interval: float, longest: float) -> bool:
    """True when ``rate`` cannot poll ``pairs`` every ``interval`` but can poll each within ``longest``."""
    return rate * interval < pairs <= rate * longest * SLACK


def beyond_reach(pairs: int, rate: float, interval: float, longest: float) -> bool:
    """True when ``rate`` polls ``pairs`` neither every ``interval`` nor each within ``longest``."""
    return pairs > rate * interval and pairs > rate * longest * SLACK


def reach(pairs: int, rate: float, interval: float, longest: float) -> float:
    """The longest a pair waits under ``adaptive``: ``longest``, or STRETCH rounds when the budget cannot keep it."""
    if rate > 0 and beyond_reach(pairs, rate, interval, longest):
        return STRETCH * pairs / (rate * SLACK)
    return longest


class Schedule:
    """Picks the next pair to poll and keeps each pair's priority class.

    The poller calls :meth:`next` once per slot and :meth:`observe` with every poll's result. Times are the
    caller's monotonic seconds; ``rate`` is the polls a second the budget allows now.
    """

    def __init__(self, pairs: Iterable[Pair], *, mode: Mode = "adaptive", interval: float = 60.0,
                 max_interval: float = 600.0, threshold: Threshold | None = None, now: float = 0.0) -> None:
        self._mode: Mode = mode
        self._interval = interval
        self._longest = max(max_interval, interval)
        self._threshold = threshold or lag_seconds_threshold
        self._pairs: list[Pair] = []
        self._memory: dict[Pair, Memory] = {}
        # Per class, its pairs in the order of their last poll's start (or when they were added), with that time.
        self._queues: dict[str, OrderedDict[Pair, float]] = {p: OrderedDict() for p in PRIORITIES}
        self._cursor = 0  # round robin: the index of the next pair
        self._picks = 0  # adaptive: polls started in the current cycle
        self._passes = dict.fromkeys(PRIORITIES, 0.0)  # stride scheduling: each class's next turn
        self._virtual = 0.0  # the turn last taken; a class that was empty gets no credit for it
        self.cycle = 0  # grows when round robin wraps, or after as many adaptive picks as there are pairs
        self._plan_key: tuple[object, ...] = ()
        self._plan: dict[str, float] = {}
        self._warned: int | None = None  # the pair count the last "cannot keep max_interval" warning was about
        self.set_pairs(pairs, now)

    @property
    def mode(self) -> Mode:
        """``adaptive`` or ``uniform``."""
        return self._mode

    @property
    def max_interval(self) -> float:
        """The configured longest wait under ``adaptive`` (``max_interval``, or ``interval`` when longer)."""
        return self._longest

    def longest_wait(self, rate: float) -> float:
        """The longest a pair waits at ``rate``: :attr:`max_interval`, stretched when the budget cannot keep it."""
        return reach(len(self._pairs), rate, self._interval, self._longest)

    def set_pairs(self, pairs: Iterable[Pair], now: float) -> None:
        """Replace the pairs; pairs that stay keep their class and place, new ones join ``new``."""
        wanted = list(dict.fromkeys(pairs))
        keep = set(wanted)
        for pair in [p for p in self._pairs if p not in keep]:
            memory = self._memory.pop(pair)
            del self._queues[memory.priority][pair]
        for pair in wanted:
            if pair not in self._memory:
                self._memory[pair] = Memory()
                self._queues[NEW][pair] = now
        self._pairs = wanted

    def reconfigure(self, *, mode: Mode, interval: float, max_interval: float,
                    threshold: Threshold | None = None) -> None:
        """Apply a config reload; the next pick uses it (thresholds count from each pair's next poll)."""
        self._mode, self._interval, self._longest = mode, interval, max(max_interval, interval)
        if threshold is not None:
            self._threshold = threshold
        self._warned = None

    def adaptive(self, rate: float) -> bool:
        """True when the next pick goes by priority rather than round robin."""
        if self._mode != "adaptive" or not self._pairs:
            return False
        pairs = len(self._pairs)
        longest = self.longest_wait(rate)
        if longest > self._longest:
            if self._warned != pairs:
                self._warned = pairs
                log.warning("poll.max_interval cannot be kept: the API budget cannot poll every pair once per "
                            "max_interval; quiet pairs wait up to stretched_max_interval_s",
                            extra={"pairs": pairs, "rate": round(rate, 3), "max_interval_s": self._longest,
                                   "round_s": round(pairs / rate, 1), "stretched_max_interval_s": round(longest)})
        elif self._warned is not None:
            self._warned = None
        return adaptive_range(pairs, rate, self._interval, longest)

    def next(self, now: float, rate: float, busy: Container[Pair] = ()) -> Pair:
        """The pair to poll now, noted as started at ``now``; ``busy`` pairs (in flight) are passed over.

        Round robin returns the pair whose turn it is even when busy (the caller skips it, as ``uniform``
        always has). Raises LookupError when there are no pairs.
        """
        if not self._pairs:
            raise LookupError("no pairs to poll")
        pair = self._earliest(now, rate, busy) if self.adaptive(rate) else None
        if pair is None:
            if self._cursor >= len(self._pairs):
                self._cursor = 0
                self.cycle += 1
            pair = self._pairs[self._cursor]
            self._cursor += 1
        else:
            self._picks += 1
            if self._picks >= len(self._pairs):
                self._picks = 0
                self.cycle += 1
        queue = self._queues[self._memory[pair].priority]
        del queue[pair]
        queue[pair] = now
        return pair

    def _earliest(self, now: float, rate: float, busy: Container[Pair]) -> Pair | None:
        """A new pair; else the longest waiting if one reached the guard; else the next class's longest waiting.

        Classes take turns in proportion to their share of the budget (pairs / planned interval; stride
        scheduling), and within a class the pair polled longest ago goes first, so a class's polls are spread
        evenly over its interval even when its pairs were first polled in one burst.
        """
        intervals = self.intervals(rate)
        guard = now - self.longest_wait(rate) * SLACK
        heads: dict[str, tuple[Pair, float]] = {}
        for priority, queue in self._queues.items():
            for pair, start in queue.items():  # the head, unless in flight (they were moved to the end)
                if pair not in busy:
                    heads[priority] = (pair, start)
                    break
        if not heads:
            return None
        if NEW in heads:
            return heads[NEW][0]
        late = [head for head in heads.values() if head[1] <= guard]
        if late:  # a planned interval ran late (a class grew faster than its polls): max_interval comes first
            return min(late, key=lambda head: head[1])[0]
        turn = min(heads, key=lambda p: (max(self._passes[p], self._virtual), PRIORITIES.index(p)))
        self._virtual = max(self._passes[turn], self._virtual)
        self._passes[turn] = self._virtual + intervals[turn] / len(self._queues[turn])
        return heads[turn][0]

    def observe(self, state: PairState) -> str | None:
        """Take a poll's result into the pair's class; returns the class (None for a pair no longer scheduled)."""
        memory = self._memory.get(state.pair)
        if memory is None:
            return None
        priority = classify(memory, state, self._threshold(state.pair), self._longest)
        if priority != memory.priority:
            start = self._queues[memory.priority].pop(state.pair)
            self._queues[priority][state.pair] = start
            memory.priority = priority
        return priority

    def priority(self, pair: Pair) -> str | None:
        """The class of a scheduled pair."""
        memory = self._memory.get(pair)
        return memory.priority if memory is not None else None

    def intervals(self, rate: float) -> dict[str, float]:
        """The planned interval of each class at ``rate`` (every class alike outside the adaptive range)."""
        counts = {p: len(q) for p, q in self._queues.items()}
        key = (tuple(counts.values()), rate, self._interval, self._longest, self._mode)
        if key != self._plan_key:
            # uniform: never in the adaptive range
            longest = reach(sum(counts.values()), rate, self._interval, self._longest) if self._mode == "adaptive" \
                else 0.0
            self._plan_key, self._plan = key, plan(counts, rate, self._interval, longest)
        return self._plan

    def view(self, now: float, rate: float) -> tuple[PriorityView, ...]:
        """Each class's pairs, planned interval and longest wait at ``now``.

        The longest wait is the head's: queues are in start order except that a pair changing class joins the
        new one's tail with the start of the poll that moved it, so it can be short by one poll's latency.
        """
        intervals = self.intervals(rate)
        views = []
        for priority, queue in self._queues.items():
            oldest = now - next(iter(queue.values())) if queue else None
            views.append(PriorityView(priority, len(queue), None if priority == NEW else intervals[priority],
                                      None if oldest is None else max(0.0, oldest)))
        return tuple(views)
