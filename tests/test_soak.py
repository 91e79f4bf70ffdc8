"""The fault soak's short form: 40 s against the simulator with every fault kind, scraped all along."""

from __future__ import annotations

import pytest

from benchmarks import soak


@pytest.mark.e2e
def test_short_soak_holds_every_check() -> None:
    """The exporter stays up, flat and fresh through mixed faults; failing pairs go up 0 then stale; counters
    never decrease; the log has no traceback and stays small."""
    result = soak.run(40)
    assert result.ok, soak.report(result, "tests/test_soak.py")
    assert result.scrapes > 50 and result.polls_ok > 100
    assert result.polls_failed > 0, "the faults fired"
