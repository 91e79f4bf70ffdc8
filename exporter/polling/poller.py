"""The asyncio scheduler: every pair once per interval, spread evenly, never overlapping itself.

Each poll runs in its own task, so a slow or failing pair never delays another, and a pair still in flight
when its slot comes round is skipped. When the rate limit cannot poll every pair within the interval, the
effective interval stretches (exported and logged), the limiter sets the pace, and the schedule's policy
(:mod:`exporter.polling.schedule`: round robin, or by priority) decides which pair each slot polls. Each
result is written whole to the :class:`~exporter.polling.snapshot.Board`, the one place readers take it from;
a failing pair keeps its last data (``up`` 0) until ``stale_after``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from exporter.cloud.errors import ApiError
from exporter.cloud.models import ConsumerProgress
from exporter.cloud.ratelimit import enforced_rate
from exporter.config.settings import DEFAULT_ACCOUNT
from exporter.logs import log_unexpected
from exporter.polling.analysis import Analyzer
from exporter.polling.schedule import Mode, Schedule, Threshold
from exporter.polling.snapshot import Board, PairState, PollError, Snapshot
from exporter.targets.pair import Pair

log = logging.getLogger(__name__)

ACTION = "GetConsumerProgress"
# Share of the rate the effective interval plans for when rate-bound: the limiter gives up one round
# trip per floor(max_qps) requests to stay exact at the server (about 1% locally), listing calls share
# the budget. The schedule itself follows the limiter, so this only sets the exported estimate.
HEADROOM = 0.98
# Calls that may wait at the limiter before the rate-bound schedule holds back the next poll.
BACKLOG = 2


class Pace(Protocol):
    """How fast the API client lets one account's calls go (its rate limiter, read-only)."""

    @property
    def max_qps(self) -> float: ...  # the steady rate enforced

    @property
    def current_qps(self) -> float: ...  # lower while backing off after throttling

    @property
    def waiting(self) -> int: ...  # calls queued for their turn


class ProgressSource(Protocol):
    """What the poller needs from the API client: the answers, and the pace they come at (one account's)."""

    async def get_consumer_progress(
        self, region: str, instance_id: str, group: str
    ) -> tuple[ConsumerProgress, str | None]: ...

    @property
    def pace(self) -> Pace: ...


class Poller:
    """Polls a set of pairs of one account and writes each result to the board (:class:`Fleet`: one per account)."""

    def __init__(
        self,
        source: ProgressSource,
        pairs: Sequence[Pair],
        *,
        interval: float,
        stale_after: float,
        board: Board | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        analyzer: Analyzer | None = None,
        discovering: bool = False,
        schedule: Mode = "uniform",
        max_interval: float = 600.0,
        threshold: Threshold | None = None,
        account: str = DEFAULT_ACCOUNT,
    ) -> None:
        """``board`` receives the results (a new one when not given); ``discovering``: the pairs are not
        known until discovery has listed them once (:meth:`set_pairs`), so not ready before. ``schedule``,
        ``max_interval`` and ``threshold`` (a pair's lag_seconds alert threshold) set the schedule's policy.
        ``source`` is ``account``'s caller: its pace is that account's budget, which the schedule plans on."""
        self._source = source
        self._account = account
        self._pace = source.pace
        self._analyzer = analyzer or Analyzer()
        self._pairs: list[Pair] = list(dict.fromkeys(pairs))
        self._interval = interval
        self._stale_after = stale_after
        self._clock = clock
        self._monotonic = monotonic
        self._board = board or Board()
        for pair in self._pairs:
            if self._board.state(pair) is None:
                self._board.put(PairState(pair))
        self._in_flight: set[Pair] = set()
        self._cycles: dict[int, list[float]] = {}  # cycle -> [first start, polls running, closed]
        self._cycle_duration: float | None = None
        self._stretch_logged: int | None = None  # the pair count the last stretch warning was about
        self._changed = asyncio.Event()
        self._discovering = discovering
        self._schedule = Schedule(self._pairs, mode=schedule, interval=interval, max_interval=max_interval,
                                  threshold=threshold, now=monotonic())
        self._describe()

    @property
    def board(self) -> Board:
        """Where the results go."""
        return self._board

    @property
    def snapshot(self) -> Snapshot:
        """The board's latest snapshot."""
        return self._board.snapshot

    @property
    def _max_qps(self) -> float:
        return enforced_rate(self._pace.max_qps)  # what the limiter admits: 2.5 runs as 2

    @property
    def pairs(self) -> tuple[Pair, ...]:
        """The pairs this poller polls, in schedule order."""
        return tuple(self._pairs)

    @property
    def effective_interval(self) -> float:
        """The configured interval, or longer when the rate limit cannot poll every pair within it."""
        qps = self._rate()
        return max(self._interval, len(self._pairs) / qps) if self._pairs else self._interval

    def _rate(self) -> float:
        """The polls a second the schedule plans for: the limiter's current rate, less the headroom."""
        return max(self._pace.current_qps, 1e-3) * HEADROOM

    def set_pairs(self, pairs: Iterable[Pair]) -> None:
        """Replace the set of pairs (discovery); data of pairs that stay is kept."""
        wanted = list(dict.fromkeys(pairs))
        keep = set(wanted)
        for pair in [p for p in self._pairs if p not in keep]:
            self._board.remove(pair)
            self._analyzer.forget(pair.instance_id, pair.group)
        self._pairs = wanted
        for pair in wanted:
            state = self._board.state(pair)
            if state is None:
                self._board.put(PairState(pair))
            elif (state.pair.labels, state.pair.thresholds) != (pair.labels, pair.thresholds):
                self._board.put(dataclasses.replace(state, pair=pair))  # its target's new labels, shown at once
        self._schedule.set_pairs(wanted, self._monotonic())
        self._discovering = False
        self._describe()
        self._changed.set()

    def reconfigure(self, *, interval: float, stale_after: float, schedule: Mode | None = None,
                    max_interval: float | None = None) -> None:
        """Change the schedule (a config reload); the next slot already uses the new interval."""
        mode = schedule or self._schedule.mode
        longest = self._schedule.max_interval if max_interval is None else max_interval
        if (interval, stale_after, mode, longest) == (self._interval, self._stale_after, self._schedule.mode,
                                                      self._schedule.max_interval):
            return
        self._interval = interval
        self._stale_after = stale_after
        self._schedule.reconfigure(mode=mode, interval=interval, max_interval=longest)
        self._stretch_logged = None
        self._describe()
        self._changed.set()

    async def run(self) -> None:
        """Poll forever (until cancelled)."""
        cycle = 0
        deadline = self._monotonic()
        async with asyncio.TaskGroup() as tasks:
            while True:
                if not self._pairs:
                    self._changed.clear()
                    await self._changed.wait()
                    continue
                pair = self._schedule.next(self._monotonic(), self._rate(), self._in_flight)
                if self._schedule.cycle != cycle:
                    self._close_cycle(cycle)
                    cycle = self._schedule.cycle
                first_time = self._polls(pair) == 0
                if pair not in self._in_flight:
                    self._in_flight.add(pair)
                    tasks.create_task(self._poll(pair, cycle), name=f"poll {pair.instance_id}/{pair.group}")
                slot = self._slot()
                paced = first_time or slot * self._pace.current_qps <= 1 / HEADROOM + 1e-9
                if paced:
                    slot = 1 / max(self._pace.current_qps, 1e-3)
                # Absolute deadlines, so time spent between slots does not accumulate into drift;
                # after a stall (a long GC, a busy host) the schedule resumes without a burst (and when
                # paced by the limiter, catches up to a second: the limiter's window bounds them anyway).
                deadline = max(deadline + slot, self._monotonic() - (max(4 * slot, 1.0) if paced else slot))
                self._changed.clear()
                while True:
                    with contextlib.suppress(TimeoutError):  # a membership change ends the slot early
                        await asyncio.wait_for(self._changed.wait(),
                                               timeout=max(0.0, deadline - self._monotonic()))
                    if not paced or self._changed.is_set() or self._pace.waiting <= BACKLOG:
                        break
                    deadline = self._monotonic() + slot / 4  # the limiter is behind: let it take this one first

    def _slot(self) -> float:
        effective = self.effective_interval
        stretched = effective > self._interval * 1.01
        if not stretched:
            self._stretch_logged = None
        elif self._stretch_logged != len(self._pairs):  # once per stretch, again only if the pairs change
            self._stretch_logged = len(self._pairs)
            fields: dict[str, object] = {"account": self._account} if self._account != DEFAULT_ACCOUNT else {}
            fields.update(pairs=len(self._pairs), max_qps=self._max_qps, current_qps=self._pace.current_qps,
                          interval_s=self._interval, effective_interval_s=round(effective, 1))
            log.warning("poll interval stretched by the API rate limit", extra=fields)
        return effective / len(self._pairs)

    async def poll_once(self) -> Snapshot:
        """Poll every pair once, concurrently (paced by the client's limits); for ``--once``."""
        async with asyncio.TaskGroup() as group:
            for pair in self._pairs:
                self._in_flight.add(pair)
                group.create_task(self._poll(pair, 0))
        self._close_cycle(0)
        return self.snapshot

    def _polls(self, pair: Pair) -> int:
        state = self._board.state(pair)
        return state.polls if state is not None else 0

    def _close_cycle(self, cycle: int) -> None:
        tracker = self._cycles.get(cycle)
        if tracker is not None:
            tracker[2] = 1.0
            self._finish_cycle(cycle)

    def _finish_cycle(self, cycle: int) -> None:
        tracker = self._cycles.get(cycle)
        if tracker is not None and tracker[2] and tracker[1] <= 0:
            self._cycle_duration = self._monotonic() - tracker[0]
            del self._cycles[cycle]
            self._describe()

    async def _poll(self, pair: Pair, cycle: int) -> None:
        tracker = self._cycles.setdefault(cycle, [self._monotonic(), 0.0, 0.0])
        tracker[1] += 1
        try:
            progress, _request_id = await self._source.get_consumer_progress(pair.region, pair.instance_id,
                                                                              pair.group)
        except ApiError as exc:
            self._failed(pair, PollError(exc.code, exc.message, exc.kind, exc.request_id))
        except Exception as exc:  # noqa: BLE001 - a bug must fail this pair, not the exporter
            log_unexpected(log, "unexpected error polling", exc, {"instance_id": pair.instance_id, "group": pair.group})
            self._failed(pair, PollError("internal_error", type(exc).__name__, "internal", None))
        else:
            self._succeeded(pair, progress)
        finally:
            self._in_flight.discard(pair)
            tracker[1] -= 1
        state = self._board.state(pair)
        if state is not None:  # not removed while in flight
            self._schedule.observe(state)
        self._describe()  # the rate may have changed (throttling), and the schedule's classes
        self._finish_cycle(cycle)

    def _succeeded(self, pair: Pair, progress: ConsumerProgress) -> None:
        prev = self._board.state(pair)
        if prev is None:  # removed while in flight
            return
        now = self._clock()
        if prev.error is not None:
            log.info("poll recovered", extra={"instance_id": pair.instance_id, "group": pair.group, "action": ACTION})
        insight = self._analyzer.observe(pair.instance_id, pair.group, progress, now)
        self._board.put(PairState(pair, progress, True, now, now, None, prev.polls + 1, insight))

    def _failed(self, pair: Pair, error: PollError) -> None:
        prev = self._board.state(pair)
        if prev is None:  # removed while in flight
            return
        now = self._clock()
        fields = {
            "instance_id": pair.instance_id,
            "group": pair.group,
            "action": ACTION,
            "code": error.code,
            "request_id": error.request_id or "",
            "error": error.message,
        }
        if prev.error is None or prev.error.code != error.code:
            log.warning("poll failed", extra=fields)
        else:
            log.debug("poll failed again", extra=fields)
        keep = prev.last_success is not None and now - prev.last_success <= self._stale_after
        progress = prev.progress if keep else None
        if prev.progress is not None and progress is None:
            self._analyzer.forget(pair.instance_id, pair.group)
            log.warning(
                "pair data is stale; its series are dropped",
                extra={"instance_id": pair.instance_id, "group": pair.group, "stale_after_s": self._stale_after},
            )
        insight = prev.insight if keep else None
        self._board.put(PairState(pair, progress, False, now, prev.last_success, error, prev.polls + 1, insight))

    def _describe(self) -> None:
        self._board.describe(cycle_duration=self._cycle_duration, effective_interval=self.effective_interval,
                             discovering=self._discovering, interval=self._interval,
                             schedule=self._schedule.view(self._monotonic(), self._rate()), account=self._account,
                             pairs=len(self._pairs))
