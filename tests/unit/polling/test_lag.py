"""Time-lag estimation rules (docs/lag.md): interpolation, flat stretches, bounds, restarts, memory."""

from __future__ import annotations

import bisect
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.cloud.models import parse_consumer_progress
from exporter.config.settings import LagSettings
from exporter.polling.analysis import Analyzer
from exporter.polling.lag import LagEstimator, PartitionHistory
from exporter.simulator import Scenario, Simulator

KEY = ("i", "t", 0)
OPTS = LagSettings()


def history(*points: tuple[int, float]) -> PartitionHistory:
    h = PartitionHistory()
    for offset, at in points:
        h.add(offset, at, OPTS)
    return h


def test_zero_when_caught_up() -> None:
    """Lag 0 gives 0 s whatever the history."""
    assert history().estimate(10, 10, 100.0, None, OPTS) == 0.0
    assert history((5, 1.0)).estimate(12, 10, 100.0, None, OPTS) == 0.0


def test_interpolation_dates_the_first_unconsumed_message() -> None:
    """Message c is produced when the end offset reaches c + 1, interpolated between the points around it."""
    h = history((100, 0.0), (200, 100.0), (300, 200.0))
    # committed 149: message 149 is produced when the end offset reaches 150, at t = 50
    assert h.estimate(149, 300, 200.0, None, OPTS) == pytest.approx(150.0)
    assert h.estimate(250, 300, 200.0, None, OPTS) == pytest.approx(49.0)


def test_flat_stretch_is_compacted_and_never_divides_by_zero() -> None:
    """An idle stretch keeps its first and last sighting; a message after it is dated after it."""
    h = history((100, 0.0), (100, 60.0), (100, 120.0), (100, 180.0), (101, 190.0))
    assert list(h.offsets) == [100, 100, 101]
    assert list(h.times) == [0.0, 180.0, 190.0]
    age = h.estimate(100, 101, 190.0, None, OPTS)
    assert age is not None
    assert 0.0 <= age <= 10.0  # produced between the last idle sighting and now, not an hour ago


def test_idle_topic_with_old_last_timestamp_is_not_old() -> None:
    """The naive now - LastTimestamp would say 3 h; the history knows the new message is seconds old."""
    h = history((500, 0.0), (500, 3600.0), (501, 3610.0))
    age = h.estimate(500, 501, 3610.0, last_consumed=-7200.0, options=OPTS)
    assert age is not None
    assert age <= 10.0


def test_upper_bound_by_last_timestamp() -> None:
    """The estimate never exceeds now - LastTimestamp (message c was produced after message c - 1)."""
    h = history((0, 0.0), (1000, 1000.0))
    assert h.estimate(100, 1000, 1000.0, last_consumed=960.0, options=OPTS) == pytest.approx(40.0)


def test_replay_from_far_back_is_bounded_by_what_is_known() -> None:
    """Below the history: now - LastTimestamp when known, else the first point's age; max_age caps."""
    h = history((10_000, 1000.0), (11_000, 2000.0))  # 1 msg/s
    assert h.estimate(9_000, 11_000, 2000.0, None, OPTS) == pytest.approx(1000.0)  # proven: older than t = 1000
    assert h.estimate(9_000, 11_000, 2000.0, last_consumed=500.0, options=OPTS) == pytest.approx(1500.0)
    tiny = LagSettings(max_age=600.0)
    assert h.estimate(0, 11_000, 2000.0, last_consumed=0.0, options=tiny) == 600.0
    # a flat history: the age of the oldest point is a lower bound and is used
    flat = history((10, 0.0), (10, 500.0))
    assert flat.estimate(5, 10, 500.0, None, OPTS) == pytest.approx(500.0)


def test_a_measurement_beats_an_extrapolation_after_a_restart() -> None:
    """Contract 9.4: a consumer ten minutes behind, a history of two polls taken during a burst.

    Extrapolating the burst's 200 msg/s backwards dates message 60,000 200 s back; LastTimestamp says 605 s,
    and it is right (the consumer last read a message produced at t = 400)."""
    h = history((100_000, 1000.0), (101_000, 1005.0))
    assert h.estimate(60_000, 101_000, 1005.0, last_consumed=400.0, options=OPTS) == pytest.approx(605.0)


def test_without_last_timestamp_a_young_quiet_history_never_overstates() -> None:
    """Contract 9.4: the 25x overstatement of issue 15. Two polls in a quiet stretch (2 msg/s) after a
    restart; the consumer is 600 s behind (36,000 messages at 60 msg/s). Extrapolating 2 msg/s backwards
    says 18,005 s; the history only proves 5 s, and the estimate grows with the history, never past it."""
    h = history((100_000, 1000.0), (100_010, 1005.0))
    assert h.estimate(64_000, 100_010, 1005.0, None, OPTS) == pytest.approx(5.0)
    h.add(100_030, 1010.0, OPTS)
    assert h.estimate(64_100, 100_030, 1010.0, None, OPTS) == pytest.approx(10.0)


def test_thinning_keeps_the_edges_of_a_burst() -> None:
    """A ten-second burst (1,000 msg/s) in a 1 msg/s stream, polled every 5 s, kept in 8 points: the burst's
    start and end survive thinning, so messages just before and inside it are dated right. Thinning by gap
    alone dropped them and dated a message 201 s old at 299 s."""
    opts = LagSettings(max_points=8)

    def produced(t: float) -> int:
        return int(t + 999 * min(max(t - 100, 0), 10))

    h = PartitionHistory()
    for t in range(0, 301, 5):
        h.add(produced(t), float(t), opts)
    assert len(h.offsets) == 8
    assert h.estimate(produced(99), produced(300), 300.0, None, opts) == pytest.approx(201.0, abs=1.5)
    assert h.estimate(produced(104), produced(300), 300.0, None, opts) == pytest.approx(196.0, abs=1.5)


@settings(max_examples=300, deadline=None)
@given(
    gaps=st.lists(st.floats(0.001, 30.0), min_size=2, max_size=400),
    polls=st.lists(st.floats(0.5, 60.0), min_size=2, max_size=30),
    start=st.floats(0.0, 5000.0),
    pick=st.floats(0.0, 1.0),
    points=st.integers(2, 40),
)
def test_never_overstates_by_more_than_a_gap_between_polls(gaps: list[float], polls: list[float], start: float,
                                                           pick: float, points: int) -> None:
    """Any production (message k at a random time), polls from ``start`` on, any unconsumed message, no
    LastTimestamp: the estimate is never above the truth by more than the gap between two polls around
    the message (where interpolation may misplace it), and never above it at all below the history; with
    any number of points kept (thinning widens gaps, never breaks this)."""
    options = LagSettings(max_points=points)
    produced = [sum(gaps[: k + 1]) for k in range(len(gaps))]
    h = PartitionHistory()
    at = start
    for dt in polls:
        at += dt
        h.add(bisect.bisect_right(produced, at), at, options)
    end = bisect.bisect_right(produced, at)
    if end == 0:
        return
    committed = min(end - 1, int(pick * end))
    truth = at - produced[committed]
    age = h.estimate(committed, end, at, None, options)
    if age is None:
        return
    widest = max((b - a for a, b in zip(h.times[:-1], h.times[1:], strict=True)), default=0.0)
    if committed + 1 <= h.offsets[0]:
        assert age <= truth + 1e-6
    assert age <= truth + widest + 1e-6


def test_restart_without_history() -> None:
    """A fresh exporter: with LastTimestamp it uses now - LastTimestamp; without, the value is absent."""
    fresh = history((1000, 100.0))
    assert fresh.estimate(900, 1000, 100.0, last_consumed=40.0, options=OPTS) == pytest.approx(60.0)
    assert fresh.estimate(900, 1000, 100.0, None, OPTS) is None
    assert PartitionHistory().estimate(900, 1000, 100.0, None, OPTS) is None


def test_offsets_going_back_reset_or_are_ignored() -> None:
    """A stale read is ignored; an offset below the whole history (recreated partition) starts over."""
    h = history((100, 0.0), (200, 10.0))
    h.add(150, 20.0, OPTS)
    assert list(h.offsets) == [100, 200]
    h.add(5, 30.0, OPTS)
    assert list(h.offsets) == [5]
    h.add(7, 25.0, OPTS)  # out of order in time
    assert list(h.offsets) == [5]


def test_memory_is_bounded_by_points_and_age() -> None:
    """max_points caps the history by thinning its older half, so it keeps its span and estimates deep
    lags; points older than `history` go; idle partitions are forgotten."""
    small = LagSettings(history=100.0, max_points=10)
    estimator = LagEstimator(small)
    for i in range(1000):
        estimator.observe(KEY, i * 3, float(i))
        assert estimator.points(KEY) <= 10
    history = estimator._histories[KEY]
    assert history.times[0] <= 999.0 - 100.0 <= history.times[1]  # still spans `history` (one point before)
    assert list(history.times[-3:]) == [997.0, 998.0, 999.0]  # the newest points stay dense
    assert list(history.offsets) == sorted(history.offsets)
    assert estimator.estimate(KEY, 3 * 930 - 1, 3 * 999, 999.0, None) == pytest.approx(69.0)  # interpolated
    tiny = LagEstimator(LagSettings(history=100.0, max_points=2))
    for i in range(50):
        tiny.observe(KEY, i, float(i))
    assert tiny.points(KEY) == 2
    aged = LagEstimator(LagSettings(history=100.0, max_points=10_000))
    for i in range(1000):
        aged.observe(KEY, i * 3, float(i))
    assert aged.points(KEY) <= 102
    aged.observe(("i", "t", 1), 5, 5000.0)
    assert aged.points(KEY) == 0  # not seen for longer than `history`
    assert len(aged) == 1


@settings(max_examples=300, deadline=None)
@given(
    steps=st.lists(st.tuples(st.integers(0, 500), st.floats(0.5, 120)), min_size=1, max_size=40),
    back=st.integers(0, 30_000),
    last=st.one_of(st.none(), st.floats(-1e6, 1e7)),
    max_age=st.floats(1, 1e6),
)
def test_never_nan_negative_or_above_bounds(steps: list[tuple[int, float]], back: int, last: float | None,
                                            max_age: float) -> None:
    """Any history, any committed offset: finite, >= 0, <= max_age and <= now - LastTimestamp when known."""
    options = LagSettings(max_age=max_age)
    h = PartitionHistory()
    offset, at = 1000, 0.0
    for grow, dt in steps:
        offset += grow
        at += dt
        h.add(offset, at, options)
    committed = max(0, offset - back)
    age = h.estimate(committed, offset, at, last, options)
    if age is None:
        return
    assert math.isfinite(age)
    assert 0.0 <= age <= max_age
    if last is not None:
        assert age <= max(0.0, at - last) + 1e-9


def test_a_catching_up_consumer_without_last_timestamp_is_neither_overstated_nor_lagging() -> None:
    """The exporter starts while a consumer without LastTimestamp is ten minutes behind and catching up
    (builtin:traffic, bursty Poisson traffic), polled every 5 s for 10 minutes. Its time lags never exceed
    the truth, and the lower bound climbing with the history's age is not mistaken for falling behind:
    the status judges such polls by message lag (which shrinks), not as `lagging`."""
    start = 1_800_000_000.0
    clock = [start]
    sim = Simulator(Scenario.builtin("traffic"), {"k": "s"}, clock=lambda: clock[0])
    analyzer = Analyzer(LagSettings())
    instance, group = "alikafka_post-cn-traffic01", "behind-10m-local"
    statuses = []
    for poll in range(121):
        clock[0] = start + 5 * poll
        body = sim.handle("GetConsumerProgress", {"RegionId": "cn-hangzhou", "InstanceId": instance,
                                                  "ConsumerId": group}, "k")
        insight = analyzer.observe(instance, group, parse_consumer_progress(body), clock[0])
        statuses.append(insight.status)
        for truth in sim.truth(instance, group, clock[0]):
            age = insight.time_lags.get((truth.topic, truth.partition))
            assert age is None if poll == 0 else age is not None  # one point, no LastTimestamp: absent
            assert age is None or age <= truth.time_lag_seconds + 5
    assert "lagging" not in statuses
    assert statuses[-1] == "ok"
