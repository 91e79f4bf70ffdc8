"""Rates over a window of several commits, and a catch-up time that is never Inf, NaN or negative."""

from __future__ import annotations

import math
from array import array

import pytest

from exporter.polling.rates import MIN_SPAN, RateTracker, catch_up, window_rate
from tests.support.fakes import progress

INST, G = "alikafka_post-cn-r", "g"


def staircase(rate: float, commit_every: float, poll_every: float, seconds: float,
              phase: float = 0.3) -> tuple[array[float], array[float]]:
    """What polls see of a group committing ``rate`` msg/s every ``commit_every`` seconds."""
    times, values = array("d"), array("d")
    t = phase
    while t <= seconds:
        times.append(t)
        values.append(rate * math.floor(t / commit_every) * commit_every)
        t += poll_every
    return times, values


@pytest.mark.parametrize(("commit_every", "poll_every"), [(5, 1), (5, 5.5), (60, 5), (120, 15), (1, 60)])
def test_a_consumer_committing_every_few_seconds_is_not_idle_between_commits(commit_every: float,
                                                                            poll_every: float) -> None:
    times, values = staircase(100.0, commit_every, poll_every, 900)
    found = window_rate(times[-400:], values[-400:], 300)
    assert found is not None
    assert found[0] == pytest.approx(100.0, rel=0.05)
    # the naive reading between the last two polls says idle (or a multiple) whenever no commit fell between
    if poll_every < commit_every:
        naive = [(values[i] - values[i - 1]) / (times[i] - times[i - 1]) for i in range(len(times) - 10, len(times))]
        assert min(naive) == 0.0


def test_a_stopped_consumer_falls_to_zero_and_a_short_history_has_no_rate() -> None:
    times, values = staircase(50.0, 5, 5, 600)
    frozen = values[-1]
    for k in range(1, 80):  # stops: the same committed offset from now on
        times.append(times[-1] + 5)
        values.append(frozen)
        found = window_rate(times, values, 300)
        assert found is not None and 0 <= found[0] <= 50.5
        if k == 10:
            assert found[0] < 50 * 0.95  # 50 s of silence already shows
    assert window_rate(times[-62:], values[-62:], 300) == (0.0, pytest.approx(305.0))
    assert window_rate(array("d", [0.0, MIN_SPAN - 1]), array("d", [0.0, 10.0])) is None


@pytest.mark.parametrize(("lag", "consume", "produce", "time_lag", "expected"), [
    (0, None, None, None, 0.0),  # caught up needs no rates
    (1000, None, (10.0, 5.0), None, None),  # rates unknown yet: absent
    (6000, (30.0, 5.0), (10.0, 5.0), 600.0, 300.0),  # draining at 20 msg/s net
    (6000, (10.0, 5.0), (30.0, 5.0), 600.0, None),  # growing
    (6000, (10.2, 5.0), (10.0, 5.0), 600.0, None),  # within the noise: not shrinking
    (40, (10.0, 5.0), (10.0, 5.0), 6.0, 0.0),  # trails by about a commit: keeps up
    (40, (10.0, 5.0), (10.0, 5.0), None, 0.0),  # the same, judged from the count
    (6000, (0.0, 300.0), (0.0, 300.0), 900.0, None),  # idle topic, stopped group
    (6000, (0.0, 660.0), (20.0, 5.0), 1264.0, None),  # stopped: no commit in the window is no cadence to trail by
    (6000, (1e-300, 5.0), (0.0, 5.0), 900.0, None),  # a rate too small to mean anything: never Inf
])
def test_catch_up(lag: int, consume: tuple[float, float] | None, produce: tuple[float, float] | None,
                  time_lag: float | None, expected: float | None) -> None:
    assert catch_up(lag, consume, produce, time_lag) == expected


def test_tracker_rates_and_eta_from_polls_of_a_draining_group() -> None:
    tracker = RateTracker()
    committed, end = 0, 60_000
    result = None
    for k in range(80):  # 400 s: draining at 30 msg/s while 10 msg/s arrive, two partitions
        at = 1000.0 + 5 * k
        answer = progress({"t": {0: (end // 2, committed // 2), 1: (end - end // 2, committed - committed // 2)}})
        result = tracker.observe(INST, G, answer, at)
        committed += 150
        end += 50
    assert result is not None
    assert result.consume["t"] == pytest.approx(30.0, rel=0.02)
    assert result.produce["t"] == pytest.approx(10.0, rel=0.02)
    assert tracker.produce_rate(INST, "t") == pytest.approx(10.0, rel=0.02)
    lag = (end - 50) - (committed - 150)
    assert result.catch_up == pytest.approx(lag / 20.0, rel=0.05)


def test_partitions_coming_and_going_and_rewinds_count_nothing() -> None:
    tracker = RateTracker()
    for k in range(30):
        at = 10.0 * k
        parts = {0: (1000 + 10 * k, 900 + 10 * k)}
        if 10 <= k < 20:
            parts[1] = (5_000_000, 4_000_000)  # a partition appearing with huge offsets is no production
        if k >= 25:
            parts[0] = (1000 + 10 * k, 10 * (k - 25))  # rewound to 0, reading again: the step back counts 0
        result = tracker.observe(INST, G, progress({"t": parts}), at)
        assert all(v >= 0 and math.isfinite(v) for v in (*result.consume.values(), *result.produce.values()))
        assert result.catch_up is None or result.catch_up >= 0
    assert result.produce["t"] == pytest.approx(1.0, rel=0.05)
    assert 0.8 < result.consume["t"] < 1.0  # 10 a poll, but nothing for the poll that went back
    assert tracker.observe(INST, G, progress({"t": {0: (0, 0)}}), 5.0).consume == result.consume  # out of order
    tracker.forget(INST, G)
    assert tracker.observe(INST, G, progress({"t": {0: (10, 5)}}), 400.0).consume == {}


def test_series_of_groups_and_topics_no_longer_polled_are_swept() -> None:
    tracker = RateTracker(window=60)
    for k in range(5):
        tracker.observe(INST, "old", progress({"a": {0: (k, k)}}), 10.0 * k)
    assert len(tracker) == 2
    for k in range(30):
        tracker.observe(INST, "new", progress({"b": {0: (k, k)}}), 500.0 + 10 * k)
    assert len(tracker) == 2  # only the new group's series and its topic's
