"""The poll schedule: priority classes from poll results, the budget plan, and which pair goes next."""

from __future__ import annotations

import itertools
import logging

import pytest

from exporter.cloud.models import ConsumerProgress
from exporter.config.settings import ThresholdSettings
from exporter.polling.analysis import Insight, TimeLags
from exporter.polling.schedule import (
    ACTIVE,
    HOT,
    NEW,
    QUIET,
    SLACK,
    STRETCH,
    Memory,
    Schedule,
    classify,
    plan,
)
from exporter.polling.snapshot import PairState, PollError
from exporter.targets.pair import Pair
from tests.support.fakes import progress

NOW = 1_800_000_000.0
OLD_MS = int((NOW - 7200) * 1000)  # a newest message two hours old


def pair(i: int) -> Pair:
    return Pair("alikafka_post-cn-a", f"g{i:04d}", "cn-hangzhou")


def ok(p: Pair, answer: ConsumerProgress, status: str = "ok", polls: int = 5, time_lag: float | None = None,
       at: float = NOW) -> PairState:
    lags = TimeLags([(("t", 0), time_lag)] if time_lag is not None else [])
    return PairState(p, answer, True, at, at, None, polls, Insight(lags, status))


def caught_up(end: int = 100, last_ts_ms: int | None = None) -> ConsumerProgress:
    return progress({"t": {0: (end, end)}}, last_ts_ms=last_ts_ms)


def behind(end: int = 100, committed: int = 90, members: tuple[str, ...] = ("m1",)) -> ConsumerProgress:
    return progress({"t": {0: (end, committed)}}, members=members)


def test_caught_up_without_traffic_is_quiet_from_the_second_poll() -> None:
    """Lag 0 and end offsets that did not move since the previous poll: proven quiet."""
    memory = Memory()
    assert classify(memory, ok(pair(1), caught_up(100, last_ts_ms=None)), None, 600) == ACTIVE  # no proof yet
    assert classify(memory, ok(pair(1), caught_up(100, last_ts_ms=None)), None, 600) == QUIET
    assert classify(memory, ok(pair(1), caught_up(130, last_ts_ms=None)), None, 600) == ACTIVE  # traffic came


def test_an_old_newest_message_proves_quiet_at_once() -> None:
    """Caught up and every partition's newest message older than max_interval: quiet on the first poll."""
    assert classify(Memory(), ok(pair(1), caught_up(100, last_ts_ms=OLD_MS)), None, 600) == QUIET
    recent_ms = int((NOW - 30) * 1000)
    assert classify(Memory(), ok(pair(1), caught_up(100, last_ts_ms=recent_ms)), None, 600) == ACTIVE


def test_lag_is_never_quiet() -> None:
    """A group behind on a topic without traffic is not caught up: active, even with nothing moving."""
    memory = Memory()
    for _ in range(3):
        assert classify(memory, ok(pair(1), behind()), None, 600) == ACTIVE


def test_status_change_is_hot_for_a_few_polls_then_not() -> None:
    """ok to stopped makes the pair hot for that poll and the next two; then it is a known state."""
    memory = Memory()
    assert classify(memory, ok(pair(1), behind(), "ok"), None, 600) == ACTIVE
    got = [classify(memory, ok(pair(1), behind(members=()), "stopped"), None, 600) for _ in range(4)]
    assert got == [HOT, HOT, HOT, ACTIVE]


def test_first_verdict_ok_is_not_a_change() -> None:
    """unknown (too few polls yet) turning ok is no news."""
    memory = Memory()
    classify(memory, ok(pair(1), behind(), "unknown"), None, 600)
    assert classify(memory, ok(pair(1), behind(), "ok"), None, 600) == ACTIVE


def test_members_changing_lagging_and_rebalancing_are_hot() -> None:
    memory = Memory()
    two = {0: (100, 90), 1: (100, 90)}  # a member per partition
    classify(memory, ok(pair(1), progress({"t": two}, members=("m1",))), None, 600)
    assert classify(memory, ok(pair(1), progress({"t": two}, members=("m1", "m2"))), None, 600) == HOT
    assert classify(Memory(), ok(pair(1), behind(), "lagging"), None, 600) == HOT
    rebalancing = progress({"t": {0: (100, 90)}}, state="preparing_rebalance")
    assert classify(Memory(), ok(pair(1), rebalancing), None, 600) == HOT


def test_close_to_the_threshold_is_hot() -> None:
    """A time lag within a factor of two of the pair's threshold, either side; far above it is known."""
    for lag, expected in ((100.0, ACTIVE), (300.0, HOT), (900.0, HOT), (1200.0, ACTIVE)):
        assert classify(Memory(), ok(pair(1), behind(), time_lag=lag), 600.0, 600) == expected, lag
    assert classify(Memory(), ok(pair(1), behind(), time_lag=300.0), None, 600) == ACTIVE  # no threshold


def test_failures() -> None:
    """Failing with data kept is hot, and stays hot two polls after recovering; stale (no data) is active."""
    memory = Memory()
    error = PollError("InternalError", "boom", "server", None)
    classify(memory, ok(pair(1), behind()), None, 600)
    failing = PairState(pair(1), behind(), False, NOW, NOW - 10, error, 6, Insight())
    assert classify(memory, failing, None, 600) == HOT
    got = [classify(memory, ok(pair(1), behind()), None, 600) for _ in range(3)]
    assert got == [HOT, HOT, ACTIVE]
    stale = PairState(pair(1), None, False, NOW, NOW - 999, error, 9, None)
    assert classify(Memory(), stale, None, 600) == ACTIVE
    assert classify(Memory(), PairState(pair(1)), None, 600) == NEW


def test_plan_outside_the_adaptive_range_is_round_robin() -> None:
    """Budget for everything: every class at the interval; too little for max_interval: pairs / rate."""
    counts = {NEW: 0, HOT: 10, ACTIVE: 40, QUIET: 50}
    assert set(plan(counts, 2.0, 60, 600).values()) == {60}
    assert list(plan(counts, 0.1, 60, 600).values()) == [pytest.approx(1000)] * 4
    assert set(plan(counts, 0.5, 60, 0).values()) == {200}  # uniform passes longest 0


def test_plan_shares_the_budget() -> None:
    """Quiet at max_interval, hot polled more often than active, the whole budget used, none above it."""
    counts = {NEW: 0, HOT: 10, ACTIVE: 100, QUIET: 890}
    rate = 2.0
    got = plan(counts, rate, 60, 900)
    assert got[QUIET] == pytest.approx(900 * SLACK)
    assert 60 <= got[HOT] < got[ACTIVE] < got[QUIET]
    assert sum(n / got[p] for p, n in counts.items()) == pytest.approx(rate)


def test_plan_gives_quiet_pairs_what_the_others_cannot_use() -> None:
    """Hot and active all at the interval: the quiet ones share what is left."""
    counts = {NEW: 0, HOT: 2, ACTIVE: 8, QUIET: 990}
    got = plan(counts, 2.0, 60, 1800)
    assert got[HOT] == got[ACTIVE] == 60
    assert got[QUIET] == pytest.approx(990 / (2.0 - 10 / 60))


def test_uniform_is_round_robin_in_list_order() -> None:
    """uniform: list order, cycle after cycle, and the pair whose turn it is even when in flight."""
    pairs = [pair(i) for i in range(3)]
    schedule = Schedule(pairs, mode="uniform", interval=60, max_interval=600)
    got = [schedule.next(float(t), 0.01, busy={pairs[1]}) for t in range(7)]
    assert got == [*pairs, *pairs, pairs[0]]
    assert schedule.cycle == 2


def run(schedule: Schedule, answer: dict[Pair, ConsumerProgress], rate: float, seconds: float,
        start: float = 0.0) -> dict[Pair, list[float]]:
    """Drive a schedule on a virtual clock: one poll per 1 / rate seconds, answered at once."""
    starts: dict[Pair, list[float]] = {}
    polls: dict[Pair, int] = {}
    t = start
    while t < start + seconds:
        p = schedule.next(t, rate)
        starts.setdefault(p, []).append(t)
        polls[p] = polls.get(p, 0) + 1
        schedule.observe(ok(p, answer[p], polls=polls[p], at=NOW + t))
        t += 1 / rate
    return starts


def test_adaptive_matches_uniform_when_the_budget_covers_every_pair() -> None:
    """Budget for every pair every interval: the same picks in the same order as uniform."""
    pairs = [pair(i) for i in range(20)]
    answer = {p: caught_up(100, OLD_MS) if i % 2 else behind() for i, p in enumerate(pairs)}
    uniform = Schedule(pairs, mode="uniform", interval=60, max_interval=600)
    adaptive = Schedule(pairs, mode="adaptive", interval=60, max_interval=600)
    assert run(uniform, answer, 0.5, 600) == run(adaptive, answer, 0.5, 600)


def test_adaptive_favours_busy_pairs_and_keeps_max_interval() -> None:
    """Quiet pairs are polled within max_interval; the rest far more often than round robin would."""
    pairs = [pair(i) for i in range(200)]
    answer = {p: behind() if i < 20 else caught_up(100, OLD_MS) for i, p in enumerate(pairs)}
    schedule = Schedule(pairs, mode="adaptive", interval=10, max_interval=600)
    starts = run(schedule, answer, 0.5, 3600)
    gaps = {p: [b - a for a, b in itertools.pairwise(s)] for p, s in starts.items()}
    assert max(max(g) for g in gaps.values()) <= 600
    busy = [g for p, gs in gaps.items() if p in pairs[:20] for g in gs[1:]]
    assert max(busy) < 0.5 * 200 / 0.5  # round robin: every pair every 400 s
    assert schedule.priority(pairs[0]) == ACTIVE and schedule.priority(pairs[-1]) == QUIET
    views = {v.priority: v for v in schedule.view(3600, 0.5)}
    assert (views[ACTIVE].pairs, views[QUIET].pairs, views[NEW].pairs) == (20, 180, 0)
    assert views[QUIET].interval == pytest.approx(600 * SLACK)
    assert views[QUIET].oldest is not None and views[QUIET].oldest <= 600
    assert views[ACTIVE].interval is not None and views[ACTIVE].interval < 200


def test_a_class_that_grows_never_pushes_pairs_past_max_interval() -> None:
    """Pairs turning active all at once (traffic everywhere) shift the budget without breaking the bound."""
    pairs = [pair(i) for i in range(200)]
    answer = {p: behind() if i < 10 else caught_up(100, OLD_MS) for i, p in enumerate(pairs)}
    schedule = Schedule(pairs, mode="adaptive", interval=10, max_interval=600)
    starts = run(schedule, answer, 0.5, 1800)
    answer.update({p: behind() for p in pairs[10:150]})
    later = run(schedule, answer, 0.5, 3600, start=1800)
    for p in pairs:
        times = starts.get(p, []) + later.get(p, [])
        assert max(b - a for a, b in itertools.pairwise(times)) <= 600, p


def test_new_pairs_go_first_and_removed_ones_never_come_back() -> None:
    pairs = [pair(i) for i in range(100)]
    answer = {p: caught_up(100, OLD_MS) for p in pairs}
    schedule = Schedule(pairs, mode="adaptive", interval=10, max_interval=600)
    run(schedule, answer, 0.5, 400)
    fresh = [pair(i) for i in range(100, 103)]
    schedule.set_pairs([*pairs[1:], *fresh], 400.0)
    answer.update({p: caught_up(100, OLD_MS) for p in fresh})
    assert [schedule.next(400.0 + i, 0.5) for i in range(3)] == fresh
    assert pairs[0] not in run(schedule, answer, 0.5, 2000, start=403)
    assert schedule.priority(pairs[0]) is None


def test_in_flight_pairs_are_passed_over() -> None:
    pairs = [pair(i) for i in range(100)]
    schedule = Schedule(pairs, mode="adaptive", interval=10, max_interval=600)
    assert schedule.next(0.0, 0.5, busy={pairs[0], pairs[1]}) == pairs[2]


def test_a_budget_short_of_max_interval_stretches_it_and_still_favours_busy_pairs(
        caplog: pytest.LogCaptureFixture) -> None:
    """1,000 pairs at 1 poll a second cannot each be polled within 600 s (a round takes 1,000 s): the bound
    stretches to 1.3 rounds, with one warning, and the 100 pairs with lag are polled more often than once a
    round while every quiet pair is still polled within the stretched bound."""
    pairs = [pair(i) for i in range(1000)]
    schedule = Schedule(pairs, mode="adaptive", interval=60, max_interval=600)
    stretched = STRETCH * 1000 / SLACK
    assert schedule.longest_wait(1.0) == pytest.approx(stretched) and schedule.max_interval == 600
    answer = {p: behind() if i < 100 else caught_up() for i, p in enumerate(pairs)}
    with caplog.at_level(logging.WARNING):
        starts = run(schedule, answer, 1.0, 5000)
    assert schedule.adaptive(1.0)
    assert [r.getMessage() for r in caplog.records].count(
        "poll.max_interval cannot be kept: the API budget cannot poll every pair once per max_interval; "
        "quiet pairs wait up to stretched_max_interval_s") == 1
    busy = [len(starts[p]) for p in pairs[:100]]
    assert min(busy) >= 7  # round robin: 5 in 5,000 s
    for p in pairs:
        times = [0.0, *starts[p], 5000.0]
        assert max(b - a for a, b in itertools.pairwise(times)) <= stretched, p


def test_a_pairs_own_threshold_decides_what_is_close() -> None:
    """By default the threshold is the pair's thresholds.lag_seconds (its target's, or the default 600 s)."""
    strict = Pair("alikafka_post-cn-a", "strict", "cn-hangzhou", thresholds=ThresholdSettings(lag_seconds=100))
    lenient = pair(1)
    schedule = Schedule([strict, lenient], mode="adaptive", interval=10, max_interval=600)
    assert schedule.observe(ok(strict, behind(), time_lag=150.0)) == HOT
    assert schedule.observe(ok(lenient, behind(), time_lag=150.0)) == ACTIVE
