"""The fault soak's short form: 40 s against the simulator with every fault kind, scraped all along.

Credentials come from the simulator's STS through RRSA and live 20 s, so they really expire and are
refreshed several times under the faults, one refresh failing whole during an STS outage.
"""

from __future__ import annotations

import pytest

from benchmarks import soak


@pytest.mark.e2e
def test_short_soak_holds_every_check() -> None:
    """The exporter stays up, flat and fresh through mixed faults; failing pairs go up 0 then stale; counters
    never decrease; the log has no traceback and stays small; expiring STS keys are refreshed in time."""
    result = soak.run(40)
    assert result.ok, soak.report(result, "tests/e2e/test_soak.py")
    assert result.scrapes > 50 and result.polls_ok > 100
    assert result.polls_failed > 0, "the faults fired"
    assert result.credentials == "rrsa" and result.sts_lifetime == 20
    assert result.sts_issued >= 3, "keys expired and were refreshed during the run"
    assert result.sts_codes.get("ServiceUnavailable") == soak.STS_OUTAGE
    assert result.expired_key_refusals == 0 and result.credentials_failures == 0 and result.secrets_in_log == 0
