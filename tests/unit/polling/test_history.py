"""The per-group max-time-lag history: one point per 30 s at most, an hour at most, fixed series, bounded memory."""

from __future__ import annotations

import gc
import itertools
import tracemalloc

import pytest

from exporter.polling.analysis import Analyzer
from exporter.polling.history import MAX_POINTS, SLACK, SPACING, WINDOW, LagHistory
from tests.support.fakes import progress

INST = "alikafka_post-cn-hist"
KEY = (INST, "g")


def test_polls_every_5s_for_two_hours_keep_one_point_per_30s_of_the_last_hour() -> None:
    history = LagHistory()
    start = 1_800_000_000.0
    series = None
    for n in range(2 * 3600 // 5 + 1):
        series = history.observe(KEY, start + 5 * n, float(n))
    assert series is not None
    points = series.points()
    now = start + 7200
    assert points[-1] == (now, 1440.0)  # the latest poll, kept or not
    assert len(points) <= MAX_POINTS + 1
    assert all(now - t <= WINDOW for t, _ in points)
    kept = [t for t, _ in points[:-1]]
    assert all(b - a >= SPACING for a, b in itertools.pairwise(kept))
    assert now - kept[0] >= WINDOW - 2 * SPACING  # it really covers the hour
    assert len(series) == len(points)


def test_a_series_handed_out_never_changes_even_after_compaction() -> None:
    history = LagHistory()
    early = history.observe(KEY, 0.0, 1.0)
    for n in range(1, 40):
        history.observe(KEY, 30.0 * n, 2.0)
    middle = history.observe(KEY, 1200.0 + 5, 3.0)  # not kept: carried as its last point
    before = middle.points()
    for n in range(41, 41 + MAX_POINTS + 3 * SLACK):  # several compactions
        history.observe(KEY, 30.0 * n, float(n))
    assert early.points() == ((0.0, 1.0),)
    assert middle.points() == before
    assert before[-1] == (1205.0, 3.0) and before[-2] == (1170.0, 2.0)


def test_polls_at_a_long_interval_keep_each_poll_of_the_hour() -> None:
    history = LagHistory()
    series = None
    for n in range(200):
        series = history.observe(KEY, 60.0 * n, 7.0)
    assert series is not None
    assert [t for t, _ in series.points()] == [60.0 * n for n in range(139, 200)]  # 3600 s back, inclusive


def test_no_estimate_adds_nothing_out_of_order_is_ignored_and_forget_drops() -> None:
    history = LagHistory()
    assert history.observe(KEY, 0.0, None).points() == ()
    assert len(history) == 0  # a group never estimated costs nothing
    history.observe(KEY, 100.0, 5.0)
    assert history.observe(KEY, 140.0, None).points() == ((100.0, 5.0),)
    assert history.observe(KEY, 90.0, 9.0).points() == ((100.0, 5.0),)
    history.forget(KEY)
    assert len(history) == 0
    assert history.observe(KEY, 200.0, 1.0).points() == ((200.0, 1.0),)


def test_memory_per_group_is_bounded() -> None:
    """After three hours of 5 s polls each group holds at most MAX_POINTS + SLACK points: about 2.8 KB."""
    groups = 200
    gc.collect()
    tracemalloc.start()
    try:
        history = LagHistory()
        keys = [(INST, f"group-{n:03}") for n in range(groups)]
        for step in range(3 * 3600 // 15):
            for key in keys:
                history.observe(key, 15.0 * step, float(step))
        gc.collect()
        used, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    per_group = used / groups
    print(f"lag history: {per_group:.0f} bytes per group")
    assert per_group < 3200  # two float64 arrays of at most MAX_POINTS + SLACK, their headers, the dict entry


@pytest.mark.parametrize("with_last_timestamp", [True, False])
def test_the_analyzer_puts_each_polls_max_time_lag_in_the_insight(with_last_timestamp: bool) -> None:
    analyzer = Analyzer()
    stamp = 1_800_000_000_000 if with_last_timestamp else None
    insights = []
    for n in range(6):
        at = 1_800_000_100.0 + 20 * n
        data = progress({"t": {0: (1000 + 100 * n, 900 + 90 * n), 1: (500, 500)}}, last_ts_ms=stamp)
        insights.append(analyzer.observe(INST, "g", data, at))
    last = insights[-1]
    points = last.history.points()
    assert points, "no history"
    assert points[-1] == (1_800_000_200.0, last.max_time_lag)
    assert all(b[0] - a[0] >= SPACING for a, b in itertools.pairwise(points[:-1]))
    analyzer.forget(INST, "g")
    assert len(analyzer.history) == 0
