"""The analyzer's rates and retention facts: a time lag that is only a lower bound decides neither."""

from __future__ import annotations

import pytest

from exporter.polling.analysis import Analyzer
from exporter.polling.retention import Earliest
from tests.support.fakes import progress

INST = "alikafka_post-cn-an"


class View:
    """A retention view with fixed answers."""

    def __init__(self, earliest: dict[str, Earliest], retention: float | None) -> None:
        self._earliest, self._retention = earliest, retention

    def earliest(self, instance_id: str, topic: str) -> Earliest | None:
        return self._earliest.get(topic)

    def retention_seconds(self, instance_id: str) -> float | None:
        return self._retention


def test_after_a_restart_without_last_timestamp_a_far_behind_group_is_not_called_caught_up() -> None:
    analyzer = Analyzer(retention=View({"t": {0: 10_000}}, 3600.0))
    first = analyzer.observe(INST, "g", progress({"t": {0: (100_000, 40_000)}}, last_ts_ms=None), 0.0)
    assert first.rates is not None and first.rates.catch_up is None  # no rates yet
    insight = analyzer.observe(INST, "g", progress({"t": {0: (106_000, 58_000)}}, last_ts_ms=None), 60.0)
    # the history is a minute old, so the time lag is a lower bound of about a minute, not the ten it is
    assert insight.max_time_lag is not None and insight.max_time_lag <= 120
    assert insight.rates is not None
    assert insight.rates.catch_up == pytest.approx(48_000 / 200)  # draining at 300/s against 100/s
    assert insight.retention_margin is None  # retention minus a lower bound would promise too much
    assert dict(insight.lost) == {("t", 0): 0.0}


def test_margin_and_lost_messages_with_a_measured_time_lag() -> None:
    stamp = 1_000_000  # LastTimestamp (ms): the time lag is measured
    analyzer = Analyzer(retention=View({"t": {0: 50, 1: 10}}, 3600.0))
    analyzer.observe(INST, "g", progress({"t": {0: (100, 20), 1: (100, 90)}}, last_ts_ms=stamp), 1500.0)
    insight = analyzer.observe(INST, "g", progress({"t": {0: (110, 20), 1: (110, 100)}}, last_ts_ms=stamp), 1560.0)
    assert dict(insight.lost) == {("t", 0): 30.0, ("t", 1): 0.0}
    assert insight.retention_margin == 0.0  # losing messages: no margin left
    assert insight.earliest == {"t": {0: 50, 1: 10}}
    kept = Analyzer(retention=View({"t": {0: 0, 1: 0}}, 3600.0))
    kept.observe(INST, "g", progress({"t": {0: (100, 20)}}, last_ts_ms=stamp), 1500.0)
    later = kept.observe(INST, "g", progress({"t": {0: (110, 20)}}, last_ts_ms=stamp), 1560.0)
    assert later.max_time_lag is not None
    assert later.retention_margin == pytest.approx(3600.0 - later.max_time_lag)
