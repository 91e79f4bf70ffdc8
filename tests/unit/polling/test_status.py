"""Consumer status rules (docs/lag.md), one test per status and per known failure of other tools."""

from __future__ import annotations

from exporter.config.settings import LagSettings
from exporter.polling.status import StatusTracker, evaluate
from tests.support.fakes import progress

OPTS = LagSettings(status_window=6, status_min_polls=3, status_min_span=60.0, lagging_min_rise=10.0)
EVERY = 15.0  # seconds between polls in these tests


def run(snapshots: list[dict[str, dict[int, tuple[int, int | None]]]], members: tuple[str, ...] = ("m",),
        state: str = "stable", time_lags: list[float] | None = None) -> list[str]:
    tracker = StatusTracker(OPTS)
    return [tracker.observe(("i", "g"), progress(s, members=members, state=state), i * EVERY,
                            None if time_lags is None else time_lags[i])
            for i, s in enumerate(snapshots)]


def test_unknown_until_enough_polls_then_ok() -> None:
    """Fewer than min_polls: unknown; a healthy group then is ok."""
    statuses = run([{"t": {0: (10 * i + 5, 10 * i + 3)}} for i in range(5)])
    assert statuses == ["unknown", "unknown", "ok", "ok", "ok"]


def test_healthy_group_with_oscillating_lag_is_ok() -> None:
    """Commit-cadence noise (lag up and down) never reads as lagging."""
    lags = [3, 40, 5, 38, 2, 41, 4, 39, 6, 40]
    statuses = run([{"t": {0: (1000 * i + lag, 1000 * i)}} for i, lag in enumerate(lags)])
    assert set(statuses[2:]) == {"ok"}


def test_time_lag_growing_is_lagging_even_with_dips() -> None:
    """A time lag that keeps growing (Burrow#453: lag grows, status OK) is lagging, even if it dips once."""
    seconds = [5.0, 12.0, 10.0, 25.0, 31.0, 29.0, 44.0, 52.0]
    statuses = run([{"t": {0: (10_000 * i + 100, 10_000 * i)}} for i in range(8)], time_lags=seconds)
    assert statuses[-1] == "lagging"
    assert statuses[5] == "lagging"


def test_burst_with_steady_time_lag_is_not_lagging() -> None:
    """A healthy consumer meeting a burst: message lag grows 10x, time lag stays ~3 s: ok."""
    counts = [50, 60, 200, 600, 900, 1200, 1500]
    statuses = run([{"t": {0: (10_000 * i + c, 10_000 * i)}} for i, c in enumerate(counts)],
                   time_lags=[3.0, 3.5, 2.8, 3.1, 3.3, 2.9, 3.2])
    assert set(statuses[2:]) == {"ok"}


def test_message_lag_fallback_without_time_lag() -> None:
    """With no time lag at all, message lag rising steadily reads as lagging."""
    lags = [100, 200, 180, 400, 500, 480, 700, 800]
    statuses = run([{"t": {0: (10_000 * i + lag, 10_000 * i)}} for i, lag in enumerate(lags)])
    assert statuses[-1] == "lagging"


def test_stalled_needs_members_unmoved_offsets_old_lag_and_a_minute() -> None:
    """Members present, offsets frozen over a window of at least min_span with lag from its start: stalled."""
    statuses = run([{"t": {0: (100 + 50 * i, 90)}} for i in range(7)],
                   time_lags=[30.0 + 15 * i for i in range(7)])
    assert statuses[4:] == ["stalled"] * 3  # from 60 s of frozen offsets on
    assert "stalled" not in statuses[:4]


def test_low_throughput_topic_is_not_stalled() -> None:
    """Burrow#303: a quiet topic whose only new message arrived just now is ok, not stalled."""
    snapshots = [{"t": {0: (500, 500)}}] * 5 + [{"t": {0: (501, 500)}}]
    assert run(snapshots)[-1] == "ok"


def test_stopped_is_immediate_and_never_masked() -> None:
    """No members and lag > 0 is stopped from the first poll; one zero-lag sample does not mask it (Burrow#745)."""
    snapshots = [{"t": {0: (100, 90)}}, {"t": {0: (100, 100)}}, {"t": {0: (120, 100)}}]
    assert run(snapshots, members=()) == ["stopped", "unknown", "stopped"]


def test_no_members_and_lag_is_never_ok() -> None:
    """Whatever the history, no members with lag > 0 is stopped."""
    snapshots = [{"t": {0: (100 + i, 100)}} for i in range(1, 8)]
    assert set(run(snapshots, members=())) == {"stopped"}


def test_empty_group_without_lag_is_ok() -> None:
    """An idle consumer that consumed everything and left is not alarming."""
    assert run([{"t": {0: (100, 100)}}] * 4, members=())[-1] == "ok"


def test_rebalancing_group_without_members_is_not_stopped() -> None:
    """During a rebalance members can be missing; that is not a stop."""
    statuses = run([{"t": {0: (100 + 10 * i, 95 + 10 * i)}} for i in range(4)], members=(),
                   state="preparing_rebalance")
    assert "stopped" not in statuses


def test_rewound_while_in_window() -> None:
    """A committed offset going backwards is rewound while both sides of the step are in the window."""
    snapshots = [{"t": {0: (1000 + 10 * i, 995 + 10 * i)}} for i in range(4)]
    snapshots.append({"t": {0: (1040, 10)}})
    snapshots += [{"t": {0: (1050 + 10 * i, 100 + 200 * i)}} for i in range(7)]
    statuses = run(snapshots)
    assert statuses[4:9] == ["rewound"] * 5
    assert statuses[9] != "rewound"


def test_evaluate_without_samples() -> None:
    """No samples: unknown."""
    assert evaluate([], OPTS) == "unknown"
