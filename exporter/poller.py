"""The asyncio scheduler: every pair once per interval, spread evenly, never overlapping itself.

Each pair runs in its own task, so one pair's slow answers or retries never delay another (they
only share the client's rate and concurrency limits). The first poll of every pair starts at once,
paced by the rate limiter, so the exporter is ready quickly; after that pair ``i`` of ``n`` polls at
``t0 + i * interval / n + k * interval``. A poll that overruns its next slot skips to the following
one instead of bursting to catch up.

Results are folded into an immutable :class:`~exporter.snapshot.Snapshot`, swapped in whole.
A failure keeps the pair's last data (``up`` 0) until ``stale_after`` has passed since its last
success, then drops it. A failure is logged once when it starts or its error code changes, and
recovery once, so a long outage does not flood the log.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Sequence
from types import MappingProxyType
from typing import Protocol

from exporter.analysis import Analyzer
from exporter.errors import ApiError
from exporter.models import ConsumerProgress
from exporter.snapshot import Pair, PairState, PollError, Snapshot

log = logging.getLogger(__name__)

ACTION = "GetConsumerProgress"


class ProgressSource(Protocol):
    """What the poller needs from the API client."""

    async def get_consumer_progress(
        self, region: str, instance_id: str, group: str
    ) -> tuple[ConsumerProgress, str | None]: ...


class Poller:
    """Polls a fixed set of pairs and publishes snapshots."""

    def __init__(
        self,
        source: ProgressSource,
        pairs: Sequence[Pair],
        *,
        interval: float,
        stale_after: float,
        max_qps: float,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        on_update: Callable[[PairState], None] | None = None,
        analyzer: Analyzer | None = None,
    ) -> None:
        self._source = source
        self._analyzer = analyzer or Analyzer()
        self._pairs = tuple(dict.fromkeys(pairs))
        self._interval = interval
        self._stale_after = stale_after
        self._clock = clock
        self._monotonic = monotonic
        self._on_update = on_update
        self._states = {p: PairState(p) for p in self._pairs}
        self._cycles: dict[int, list[float]] = {}  # cycle -> [start, polls remaining]
        # Until the scale work stretches schedules itself, this is what the rate limit permits.
        effective = max(interval, len(self._pairs) / max_qps) if self._pairs else interval
        self._snapshot = Snapshot(MappingProxyType(dict(self._states)), 0, None, effective)

    @property
    def snapshot(self) -> Snapshot:
        """The latest snapshot."""
        return self._snapshot

    @property
    def pairs(self) -> tuple[Pair, ...]:
        """The pairs this poller polls, in schedule order."""
        return self._pairs

    async def run(self) -> None:
        """Poll forever (until cancelled)."""
        start = self._monotonic()
        count = len(self._pairs)
        async with asyncio.TaskGroup() as group:
            for index, pair in enumerate(self._pairs):
                offset = index * self._interval / count
                group.create_task(self._pair_loop(pair, start + offset), name=f"poll {pair.instance_id}/{pair.group}")

    async def poll_once(self) -> Snapshot:
        """Poll every pair once, concurrently (paced by the client's limits); for ``--once``."""
        async with asyncio.TaskGroup() as group:
            for pair in self._pairs:
                group.create_task(self._poll(pair, 0))
        return self._snapshot

    async def _pair_loop(self, pair: Pair, phase: float) -> None:
        await self._poll(pair, 0)
        cycle = 1
        while True:
            due = phase + cycle * self._interval
            now = self._monotonic()
            if due < now:  # overran: skip the missed slots
                skipped = math.ceil((now - due) / self._interval)
                cycle += skipped
                due += skipped * self._interval
            await asyncio.sleep(due - now)
            await self._poll(pair, cycle)
            cycle += 1

    async def _poll(self, pair: Pair, cycle: int) -> None:
        started = self._monotonic()
        tracker = self._cycles.setdefault(cycle, [started, float(len(self._pairs))])
        try:
            progress, _request_id = await self._source.get_consumer_progress(pair.region, pair.instance_id, pair.group)
        except ApiError as exc:
            self._failed(pair, PollError(exc.code, exc.message, exc.kind, exc.request_id))
        except Exception as exc:  # a bug must fail this pair, not the exporter
            log.exception("unexpected error polling", extra={"instance_id": pair.instance_id, "group": pair.group})
            self._failed(pair, PollError("internal_error", type(exc).__name__, "internal", None))
        else:
            self._succeeded(pair, progress)
        tracker[1] -= 1
        cycle_duration = self._snapshot.cycle_duration
        if tracker[1] <= 0:
            cycle_duration = self._monotonic() - tracker[0]
            del self._cycles[cycle]
        self._publish(cycle_duration)
        if self._on_update is not None:
            self._on_update(self._states[pair])

    def _succeeded(self, pair: Pair, progress: ConsumerProgress) -> None:
        prev = self._states[pair]
        now = self._clock()
        if prev.error is not None:
            log.info("poll recovered", extra={"instance_id": pair.instance_id, "group": pair.group, "action": ACTION})
        insight = self._analyzer.observe(pair.instance_id, pair.group, progress, now)
        self._states[pair] = PairState(pair, progress, True, now, now, None, prev.polls + 1, insight)

    def _failed(self, pair: Pair, error: PollError) -> None:
        prev = self._states[pair]
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
        self._states[pair] = PairState(pair, progress, False, now, prev.last_success, error, prev.polls + 1, insight)

    def _publish(self, cycle_duration: float | None) -> None:
        old = self._snapshot
        self._snapshot = Snapshot(
            MappingProxyType(dict(self._states)), old.version + 1, cycle_duration, old.effective_interval
        )
