"""The poller's schedule, snapshot swaps, failure handling and staleness."""

from __future__ import annotations

import asyncio
import logging

import pytest

from exporter.cloud.errors import NotFoundError, ServerError
from exporter.cloud.models import ConsumerProgress
from exporter.polling.poller import HEADROOM, Poller
from exporter.targets.pair import Pair
from tests.support.fakes import Clock, FakePace, FakeSource, exposition_text, progress
from tests.support.samples import find, samples, value

A = Pair("alikafka_post-cn-a", "orders", "cn-hangzhou")
B = Pair("alikafka_post-cn-a", "billing", "cn-hangzhou")


async def test_success_then_failure_keeps_data_until_stale(caplog: pytest.LogCaptureFixture) -> None:
    """A failing pair keeps its data with up 0 until stale_after, then its data goes."""
    clock = Clock()
    answers: dict[str, ConsumerProgress | Exception] = {"orders": progress({"t": {0: (10, 4)}})}
    source = FakeSource(lambda _i, g: answers[g], max_qps=3)  # type: ignore[arg-type,return-value]
    poller = Poller(source, [A], interval=60, stale_after=180, clock=clock)

    snap = await poller.poll_once()
    assert snap.pairs[A].status == "ok"
    assert snap.pairs[A].last_success == clock.now

    answers["orders"] = ServerError("InternalError", "boom", request_id="RID-9", http_status=500)
    clock.now += 60
    with caplog.at_level(logging.DEBUG):
        snap = await poller.poll_once()
    state = snap.pairs[A]
    assert (state.status, state.up, state.progress is not None) == ("failing", False, True)
    assert state.error is not None and state.error.request_id == "RID-9"
    warnings = [r for r in caplog.records if r.getMessage() == "poll failed"]
    assert len(warnings) == 1 and warnings[0].request_id == "RID-9"  # type: ignore[attr-defined]

    clock.now += 60
    caplog.clear()
    with caplog.at_level(logging.INFO):
        snap = await poller.poll_once()
    assert snap.pairs[A].status == "failing"
    assert not [r for r in caplog.records if r.getMessage() == "poll failed"], "the same failure logs once"

    clock.now += 61  # 181 s after the last success
    snap = await poller.poll_once()
    assert (snap.pairs[A].status, snap.pairs[A].progress) == ("stale", None)
    assert snap.count_by_status() == {"ok": 0, "failing": 0, "stale": 1}

    answers["orders"] = progress({"t": {0: (12, 12)}})
    snap = await poller.poll_once()
    assert snap.pairs[A].status == "ok"


async def test_one_failing_pair_does_not_affect_another() -> None:
    """A not-found group fails only its own pair."""
    def answer(_i: str, group: str) -> ConsumerProgress | Exception:
        if group == "billing":
            return NotFoundError("BIZ_SUBSCRIPTION_NOT_FOUND", "no such group")
        return progress({"t": {0: (5, 5)}})

    poller = Poller(FakeSource(answer, max_qps=3), [A, B], interval=60, stale_after=180)  # type: ignore[arg-type]
    snap = await poller.poll_once()
    assert snap.pairs[A].up and not snap.pairs[B].up
    assert snap.ready
    assert snap.pairs[B].error is not None and snap.pairs[B].error.kind == "not_found"


async def test_snapshots_are_swapped_not_mutated() -> None:
    """A snapshot taken before a poll is unchanged by it; versions grow."""
    poller = Poller(FakeSource(lambda _i, _g: progress({"t": {0: (1, 1)}}), max_qps=3), [A], interval=60,
                    stale_after=180)
    before = poller.snapshot
    assert not before.ready
    after = await poller.poll_once()
    assert before.pairs[A].polls == 0 and after.pairs[A].polls == 1
    assert after.version > before.version
    with pytest.raises(TypeError):
        after.pairs[A] = before.pairs[A]  # type: ignore[index]


async def test_unexpected_exception_fails_only_that_pair(caplog: pytest.LogCaptureFixture) -> None:
    """A bug in parsing one answer marks the pair failed with internal_error; the loop survives, and the log
    gets one line naming the exception, with no traceback unless the level is debug."""
    def answer(_i: str, group: str) -> ConsumerProgress:
        if group == "billing":
            raise ZeroDivisionError("division by zero")
        return progress({"t": {0: (1, 1)}})

    poller = Poller(FakeSource(answer, max_qps=3), [A, B], interval=60, stale_after=180)
    with caplog.at_level(logging.INFO):
        snap = await poller.poll_once()
    assert snap.pairs[B].error is not None and snap.pairs[B].error.code == "internal_error"
    assert snap.pairs[A].up
    lines = [r for r in caplog.records if r.getMessage() == "unexpected error polling"]
    assert len(lines) == 1 and lines[0].exc_info is None
    assert lines[0].error == "ZeroDivisionError: division by zero"  # type: ignore[attr-defined]


async def test_schedule_spreads_pairs_never_overlaps_and_isolates_slow_pairs() -> None:
    """Over a few intervals: no pair overlaps itself, the slow pair skips slots, the fast ones keep time."""
    pairs = [Pair("i", f"g{n}", "r") for n in range(4)]
    source = FakeSource(lambda _i, _g: progress({"t": {0: (1, 1)}}))
    source.delay["g0"] = 0.5  # slower than the interval
    poller = Poller(source, pairs, interval=0.2, stale_after=10)
    task = asyncio.create_task(poller.run())
    await asyncio.sleep(1.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert source.overlaps == 0
    starts = {g: sorted(s for _i, grp, s, _e in source.calls if grp == g) for g in ("g0", "g1", "g2", "g3")}
    assert all(len(starts[g]) >= 5 for g in ("g1", "g2", "g3")), starts
    assert len(starts["g0"]) <= 3
    # after the first (immediate) poll, pair n is offset by n * interval / 4 from pair 0's phase
    offsets = [starts[g][1] - starts["g1"][1] for g in ("g2", "g3")]
    assert offsets == pytest.approx([0.05, 0.10], abs=0.03)
    assert poller.snapshot.cycle_duration is not None


def test_effective_interval_reflects_the_rate_limit() -> None:
    """With more pairs than max_qps allows per interval, the interval stretches to pairs / (98% of max_qps)."""
    pairs = [Pair("i", f"g{n}", "r") for n in range(300)]
    source = FakeSource(lambda _i, _g: progress({}), max_qps=3)
    stretched = Poller(source, pairs, interval=60, stale_after=180).snapshot.effective_interval
    assert stretched == pytest.approx(300 / (3 * HEADROOM))
    assert stretched <= 300 / 3 * 1.05  # within 5% of the floor
    assert Poller(source, pairs[:10], interval=60, stale_after=180).snapshot.effective_interval == 60
    pace = source.pace = FakePace(3, 3)
    backing_off = Poller(source, pairs, interval=60, stale_after=180)
    pace.current_qps = 1.5
    assert backing_off.effective_interval == pytest.approx(300 / (1.5 * HEADROOM))


async def test_stretched_schedule_warns_once(caplog: pytest.LogCaptureFixture) -> None:
    """When the rate limit stretches the interval, one warning says so, with the numbers, even as back-off moves it."""
    pairs = [Pair("i", f"g{n}", "r") for n in range(20)]
    source = FakeSource(lambda _i, _g: progress({"t": {0: (1, 1)}}))
    pace = source.pace = FakePace(200, 10)
    poller = Poller(source, pairs, interval=1, stale_after=10)
    with caplog.at_level(logging.WARNING):
        task = asyncio.create_task(poller.run())
        await asyncio.sleep(2.5)
        pace.current_qps = 8.0  # throttling back-off changes the effective interval: no new warning
        await asyncio.sleep(1.5)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    warnings = [r for r in caplog.records if r.getMessage() == "poll interval stretched by the API rate limit"]
    assert len(warnings) == 1
    assert warnings[0].effective_interval_s == pytest.approx(20 / (10 * HEADROOM), abs=0.1)  # type: ignore[attr-defined]
    assert poller.snapshot.cycle_duration is not None


async def test_pairs_can_change_while_running() -> None:
    """Added pairs get polled, removed pairs stop being polled and leave the board; others keep data."""
    a, b, c = (Pair("i", g, "r") for g in ("a", "b", "c"))
    source = FakeSource(lambda _i, _g: progress({"t": {0: (5, 1)}}))
    poller = Poller(source, [a, b], interval=0.3, stale_after=10)
    task = asyncio.create_task(poller.run())
    await asyncio.sleep(0.5)
    polls_a = poller.snapshot.pairs[a].polls
    seen = poller.board.version
    poller.set_pairs([a, c])
    await asyncio.sleep(0.7)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert poller.board.changes(seen).removed == (b,)
    assert set(poller.snapshot.pairs) == {a, c}
    assert poller.snapshot.pairs[c].polls >= 1
    assert poller.snapshot.pairs[a].polls > polls_a


async def test_topics_and_partitions_that_leave_disappear_at_next_success() -> None:
    """Series of a topic or partition missing from the next successful answer are gone."""
    answers = [progress({"keep": {0: (5, 1), 1: (5, 1)}, "gone": {0: (3, 1)}}), progress({"keep": {0: (6, 2)}})]
    poller = Poller(FakeSource(lambda _i, _g: answers.pop(0), max_qps=3), [A], interval=60, stale_after=180)
    await poller.poll_once()
    before = exposition_text(poller.snapshot)
    assert find(before, "alikafka_consumergroup_lag", topic="gone")
    assert find(before, "alikafka_consumergroup_lag", partition="1", topic="keep")
    await poller.poll_once()
    after = exposition_text(poller.snapshot)
    assert not [s for s in samples(after) if s.labels.get("topic") == "gone"]
    assert not [s for s in samples(after) if s.labels.get("topic") == "keep" and s.labels.get("partition") == "1"]
    assert value(after, "alikafka_consumergroup_lag", partition="0", topic="keep") == 4


@pytest.mark.parametrize(("max_qps", "enforced"), [(2.5, 2.0), (0.5, 0.5), (1.9, 1.0)])
def test_effective_interval_uses_the_enforced_rate(max_qps: float, enforced: float) -> None:
    """A fractional max_qps above 1 plans with what the limiter admits (2.5 -> 2), not 2.5 (25% too short);
    below 1 the rate is exact."""
    pairs = [Pair("i", f"g{n}", "r") for n in range(120)]
    source = FakeSource(lambda _i, _g: progress({}), max_qps=max_qps)
    fed = Poller(source, pairs, interval=10, stale_after=180)
    assert fed.snapshot.effective_interval == pytest.approx(120 / (enforced * HEADROOM))
