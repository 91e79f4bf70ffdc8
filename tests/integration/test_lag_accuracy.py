"""The accuracy benchmark's quick mode meets the issue's targets (accuracy, not speed: no timing)."""

from __future__ import annotations

from benchmarks.lag_accuracy import report


def test_quick_accuracy_targets() -> None:
    """p90 error within max(interval, 10%), no scrape overstating by more than 10% + one interval (among the
    runs, an exporter starting in a quiet stretch while consumers are ten minutes behind, with and without
    LastTimestamp), no invalid values, >= 95% statuses right, no false alarms."""
    table, ok = report(quick=True)
    assert ok, table
    assert "KLE" in table
    assert "quiet stretch" in table
