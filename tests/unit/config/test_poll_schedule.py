"""poll.schedule and poll.max_interval: defaults, validation naming the key, the bound when left unset."""

from __future__ import annotations

from typing import Any

import pytest

from exporter.config.errors import ConfigError
from exporter.config.settings import load_settings


def test_defaults_match_the_contract() -> None:
    """adaptive, with no pair waiting longer than 10 minutes."""
    poll = load_settings({}, {}, None).poll
    assert (poll.schedule, poll.max_interval, poll.longest_wait) == ("adaptive", 600.0, 600.0)


def test_values_from_file_env_and_durations() -> None:
    poll = load_settings({"poll": {"schedule": "uniform", "max_interval": "30m"}}, {}, None).poll
    assert (poll.schedule, poll.max_interval) == ("uniform", 1800.0)
    env = {"ALIKAFKA_EXPORTER_POLL__MAX_INTERVAL": "1h", "ALIKAFKA_EXPORTER_POLL__SCHEDULE": "adaptive"}
    assert load_settings({}, env, None).poll.max_interval == 3600.0


def test_unset_under_a_longer_interval_the_interval_is_the_bound() -> None:
    """A configuration with a 20-minute interval that never heard of max_interval still loads."""
    poll = load_settings({"poll": {"interval": "20m", "stale_after": "1h"}}, {}, None).poll
    assert poll.longest_wait == 1200.0


@pytest.mark.parametrize(("poll", "needle"), [
    ({"schedule": "smart"}, "poll.schedule (flag): Input should be 'adaptive' or 'uniform'"),
    ({"interval": "2m", "max_interval": "1m"}, "poll.max_interval (flag): must be at least poll.interval (120s)"),
    ({"max_interval": "8d"}, "poll.max_interval (flag)"),
    ({"max_interval": "soon"}, "poll.max_interval (flag): invalid duration 'soon'"),
])
def test_bad_values_name_the_key(poll: dict[str, Any], needle: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({"poll": poll}, {}, None)
    assert any(needle in line for line in info.value.problems), info.value.problems
