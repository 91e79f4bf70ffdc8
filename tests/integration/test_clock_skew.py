"""Clock skew: the simulator plays a server (or a client) with a wrong clock; the exporter measures and names it."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from exporter.cloud.client import AlikafkaClient
from exporter.cloud.credentials import Credentials, Secret, StaticProvider
from exporter.cloud.errors import AuthError
from exporter.cloud.ratelimit import RateLimiter
from exporter.cloud.stats import ApiStats
from exporter.config.settings import MetricsSettings
from exporter.metrics.exposition import render_states
from exporter.metrics.self_metrics import TailCollector
from exporter.polling.snapshot import Board
from exporter.simulator import Scenario, Simulator, build_app
from tests.support.fakes import api_settings
from tests.support.samples import has, value

INSTANCE = "alikafka_post-cn-test0001"
GROUP = "orders-consumer"
KEY_ID, SECRET = "LTAI-skew-key", "skew-secret-value-0a1b2c"


@pytest.fixture
async def sim() -> AsyncIterator[tuple[Simulator, str]]:
    simulator = Simulator(Scenario.builtin("minimal"), access_keys={KEY_ID: SECRET}, seed=7)
    simulator.set_qps_limit("GetConsumerProgress", 1000)
    server = TestServer(build_app(simulator), host="127.0.0.1")
    await server.start_server()
    yield simulator, str(server.make_url("/"))
    await server.close()


async def _poll(url: str, offset: float = 0.0) -> tuple[ApiStats, AlikafkaClient, Exception | None]:
    stats = ApiStats()
    creds = StaticProvider(Credentials(KEY_ID, Secret(SECRET)), "test")
    client = AlikafkaClient(api_settings(url, max_retries=0), creds, RateLimiter(1000), stats,
                            clock=lambda: time.time() + offset)
    error: Exception | None = None
    async with client:
        try:
            await client.get_consumer_progress("cn-hangzhou", INSTANCE, GROUP)
        except AuthError as exc:
            error = exc
    return stats, client, error


def _stated_seconds(message: str, way: str) -> float:
    match = re.search(rf"clock skew: local clock is (\d+) s {way} the API server", message)
    assert match, message
    return float(match.group(1))


async def test_server_ahead_is_reported_as_local_clock_behind(
    sim: tuple[Simulator, str], caplog: pytest.LogCaptureFixture
) -> None:
    """A gateway 20 minutes ahead refuses with InvalidTimeStamp.Expired; the error and the log say 1200 s behind."""
    simulator, url = sim
    # the simulator's control endpoint, as an operator would use it
    async with aiohttp.ClientSession() as session, session.post(url + "_sim/clock", json={"offset": 1200}) as resp:
        assert resp.status == 200
    with caplog.at_level(logging.WARNING, logger="exporter.cloud.client"):
        stats, client, error = await _poll(url)
    assert isinstance(error, AuthError) and error.code == "InvalidTimeStamp.Expired"
    assert abs(_stated_seconds(error.message, "behind") - 1200) <= 2
    assert "expired" in error.message  # the server's own words are kept
    assert any(abs(_stated_seconds(r.getMessage(), "behind") - 1200) <= 2
               for r in caplog.records if r.name == "exporter.cloud.client")  # not what another test left on
    assert stats.clock_skew is not None and abs(stats.clock_skew - 1200) <= 2
    assert client.clock_offset is not None and client.clock_offset < 0
    assert simulator.requests[-1].code == "InvalidTimeStamp.Expired"


async def test_client_clock_ahead_is_reported_as_ahead(sim: tuple[Simulator, str]) -> None:
    """A local clock 1000 s fast: the same refusal, stated the other way round."""
    _, url = sim
    stats, _, error = await _poll(url, offset=1000)
    assert isinstance(error, AuthError)
    assert abs(_stated_seconds(error.message, "ahead of") - 1000) <= 2
    assert stats.clock_skew is not None and abs(stats.clock_skew - 1000) <= 2


async def test_small_skew_is_measured_on_every_answer_and_exported(sim: tuple[Simulator, str]) -> None:
    """Within the window the call succeeds, and the gauge already shows the drift (within the Date's 1 s)."""
    simulator, url = sim
    simulator.clock_offset = -45.0
    stats, client, error = await _poll(url)
    assert error is None
    assert stats.clock_skew is not None and abs(stats.clock_skew - 45) <= 1.5
    assert client.clock_offset is not None and client.clock_offset > 0  # local ahead of a server that lags
    tail = TailCollector(Board(), stats)
    text = render_states([], MetricsSettings(max_series=0), tail).decode()
    assert abs(value(text, "alikafka_exporter_clock_skew_seconds") - 45) <= 1.5


async def test_no_skew_measures_about_zero_and_no_date_means_absent(sim: tuple[Simulator, str]) -> None:
    """A right clock measures under a second; before any answer the family has no sample."""
    _, url = sim
    stats, _, error = await _poll(url)
    assert error is None and stats.clock_skew is not None and stats.clock_skew <= 1.0
    text = render_states([], MetricsSettings(max_series=0), TailCollector(Board(), ApiStats())).decode()
    assert not has(text, "alikafka_exporter_clock_skew_seconds")
    assert "# TYPE alikafka_exporter_clock_skew_seconds gauge" in text


async def test_simulator_clock_control_rejects_junk(sim: tuple[Simulator, str]) -> None:
    """/_sim/clock takes a finite number of seconds only."""
    simulator, url = sim
    async with aiohttp.ClientSession() as session:
        for body in ({"offset": "soon"}, {"offset": True}, [1], {}):
            async with session.post(url + "_sim/clock", json=body) as resp:
                assert resp.status == 400
    assert simulator.clock_offset == 0.0
