"""The poller under a short budget: adaptive polls busy pairs more often, uniform round robin as before."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from exporter.cloud.models import ConsumerProgress
from exporter.polling.poller import Poller
from exporter.polling.schedule import Mode
from exporter.targets.pair import Pair
from tests.support.fakes import FakeSource, progress

PAIRS = [Pair("i", f"g{n:03d}", "r") for n in range(200)]
BUSY = {p.group for p in PAIRS[:10]}


def answer(_instance: str, group: str) -> ConsumerProgress:
    if group in BUSY:
        return progress({"t": {0: (100, 90)}})  # behind: never quiet
    return progress({"t": {0: (100, 100)}})  # caught up, newest message from 2023: quiet at the first poll


async def polls_after_first_round(mode: Mode, then: Mode | None = None) -> tuple[Counter[str], Poller]:
    """200 pairs at 100 qps (a round of 2 s) with a 0.5 s interval: rate-bound. Count polls after the first round
    (switching to ``then`` by a reload, if given)."""
    source = FakeSource(answer, max_qps=100)
    poller = Poller(source, PAIRS, interval=0.5, stale_after=60, schedule=mode, max_interval=4.0)
    task = asyncio.create_task(poller.run())
    for _ in range(200):  # the first round: about 2 s
        if poller.snapshot.ready:
            break
        await asyncio.sleep(0.05)
    assert poller.snapshot.ready
    if then is not None:
        poller.reconfigure(interval=0.5, stale_after=60, schedule=then, max_interval=4.0)
    start = asyncio.get_running_loop().time()
    await asyncio.sleep(3.0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert source.overlaps == 0
    return Counter(group for _i, group, begun, _e in source.calls if begun >= start), poller


async def test_adaptive_polls_busy_pairs_more_often_within_max_interval() -> None:
    """Busy pairs about every interval (0.5 s) instead of every round (2 s); every quiet pair still polled."""
    counts, poller = await polls_after_first_round("adaptive")
    assert min(counts[g] for g in BUSY) >= 4, counts
    quiet = [p.group for p in PAIRS[10:]]
    assert all(counts[g] >= 1 for g in quiet), [g for g in quiet if not counts[g]]
    views = {v.priority: v for v in poller.snapshot.schedule}
    assert (views["active"].pairs, views["quiet"].pairs) == (10, 190)
    assert views["active"].interval == pytest.approx(0.5)
    assert views["quiet"].oldest is not None and views["quiet"].oldest < 4.0


async def test_uniform_stays_round_robin() -> None:
    """The same workload under uniform: every pair alike, about once per 2 s round."""
    counts, poller = await polls_after_first_round("uniform")
    assert max(counts[g] for g in BUSY) <= 2, counts
    views = {v.priority: v for v in poller.snapshot.schedule}
    assert views["active"].interval == views["quiet"].interval == pytest.approx(200 / (100 * 0.98))


async def test_a_reload_switches_the_schedule() -> None:
    """poll.schedule is live: uniform for the first round, adaptive from the reload on."""
    counts, _ = await polls_after_first_round("uniform", then="adaptive")
    assert min(counts[g] for g in BUSY) >= 4, counts
