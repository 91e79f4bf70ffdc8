"""The instance catalog against the simulator: attributes, failures keep the last values, logged once."""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import logging
import os
import signal
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from exporter import app
from exporter.cloud.client import AlikafkaClient
from exporter.cloud.credentials import Credentials, Secret, StaticProvider
from exporter.cloud.models import ParseError, parse_instance_list
from exporter.cloud.ratelimit import RateLimiter
from exporter.cloud.stats import ApiStats
from exporter.config.settings import Settings, load_settings
from exporter.simulator import FaultRule, Scenario, Simulator, build_app
from exporter.targets.catalog import InstanceCatalog
from tests.support.fakes import api_settings
from tests.support.procs import free_port
from tests.support.samples import find, has, value


async def no_sleep(_: float) -> None:
    return None


async def test_catalog_lists_polled_instances_and_survives_failures(caplog: pytest.LogCaptureFixture) -> None:
    """Only the polled instances appear; a failing refresh keeps them and logs once per failure."""
    sim = Simulator(Scenario.builtin("demo"), {"AK": "SK"}, denied_actions={"RO": frozenset({"GetInstanceList"})})
    server = TestServer(build_app(sim), host="127.0.0.1")
    await server.start_server()
    try:
        creds = StaticProvider(Credentials("AK", Secret("SK")), "t")
        async with AlikafkaClient(api_settings(str(server.make_url("/")), max_retries=0), creds,
                                  RateLimiter(100), ApiStats(), sleep=no_sleep) as client:
            catalog = InstanceCatalog(client, ["cn-hangzhou", "cn-shanghai"],
                                      ["alikafka_post-cn-demo0001", "alikafka_pre-cn-demo0002"], refresh=600)
            await catalog.refresh_once()
            assert sorted(catalog.instances) == ["alikafka_post-cn-demo0001", "alikafka_pre-cn-demo0002"]
            info = catalog.instances["alikafka_pre-cn-demo0002"]
            assert (info.name, info.region, info.series, info.serving) == ("logistics", "cn-shanghai", "v3", True)
            version = catalog.version

            sim.add_fault(FaultRule(kind="http_500", action="GetInstanceList"))
            with caplog.at_level(logging.INFO):
                await catalog.refresh_once()
                await catalog.refresh_once()
            assert sorted(catalog.instances) == ["alikafka_post-cn-demo0001", "alikafka_pre-cn-demo0002"]
            assert catalog.version == version
            warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
            assert len(warnings) == 2  # one per region, not one per refresh
            sim.clear_faults()
            with caplog.at_level(logging.INFO):
                await catalog.refresh_once()
            assert "instance list recovered" in caplog.text
    finally:
        await server.close()


def test_instance_list_parsing_is_lenient() -> None:
    """A single InstanceVO object, numeric strings and a missing list are accepted; no id is an error."""
    one = {"InstanceList": {"InstanceVO": {"InstanceId": "i-1", "Name": "n", "RegionId": "r", "ServiceStatus": "5",
                                           "Series": "v2", "SpecType": "normal"}}}
    (info,) = parse_instance_list(one)
    assert info.serving
    assert parse_instance_list({"Success": True}) == ()
    with pytest.raises(ParseError, match="no InstanceId"):
        parse_instance_list({"InstanceList": {"InstanceVO": [{"Name": "x"}]}})


HZ, SH, SL = "alikafka_post-cn-demo0001", "alikafka_pre-cn-demo0002", "alikafka_serverless-cn-demo0003"
KEY = StaticProvider(Credentials("AK", Secret("SK")), "t")


@pytest.fixture
async def simulator() -> AsyncIterator[tuple[Simulator, str]]:
    sim = Simulator(Scenario.builtin("demo"), {"AK": "SK"})
    for action in ("GetConsumerProgress", "GetConsumerList", "GetInstanceList"):
        sim.set_qps_limit(action, 1000)
    server = TestServer(build_app(sim), host="127.0.0.1")
    await server.start_server()
    yield sim, str(server.make_url("/"))
    await server.close()


def instance_list_calls(sim: Simulator, since: float = 0.0) -> list[tuple[float, str]]:
    """(time, region) of every GetInstanceList the simulator served."""
    return [(r.at, r.params["RegionId"]) for r in sim.requests if r.action == "GetInstanceList" and r.at >= since]


def settings_for(endpoint: str, targets: list[dict[str, Any]], refresh: float, **extra: Any) -> Settings:
    """Settings as loaded, with a discovery.refresh shorter than validation allows (seconds, for the test)."""
    settings = load_settings({"targets": targets, "api": {"endpoint": endpoint, "max_qps": 1000, "max_retries": 0},
                              "poll": {"interval": "1s"}, **extra}, {}, None)
    return settings.model_copy(update={"discovery": settings.discovery.model_copy(update={"refresh": refresh})})


DISCOVERED = {"instances": "all", "region": "cn-hangzhou", "groups": "all"}
STATIC_SH = {"instance_id": SH, "region": "cn-shanghai", "groups": ["shipment-router"]}
STATIC_HZ = {"instance_id": HZ, "region": "cn-hangzhou", "groups": ["email-sender"]}


async def test_once_describes_discovered_instances_from_discoverys_own_calls(
        simulator: tuple[Simulator, str]) -> None:
    """instances: all in one region, an explicit instance in another: one GetInstanceList per region, no more,
    and alikafka_instance_info describes the instances of both."""
    sim, endpoint = simulator
    settings = settings_for(endpoint, [DISCOVERED, STATIC_SH], 300)
    plan = app.Plan(app.plan_pairs(settings), settings.api, KEY, tuple(settings.targets))
    out = io.StringIO()
    await app.run_once(settings, plan, out)
    assert sorted(region for _, region in instance_list_calls(sim)) == ["cn-hangzhou", "cn-shanghai"]
    text = out.getvalue()
    described = {s.labels["instance_id"] for s in find(text, "alikafka_instance_info")}
    assert described == {HZ, SH, SL}
    assert value(text, "alikafka_exporter_api_requests_total", action="GetInstanceList", code="200") == 2


@contextlib.asynccontextmanager
async def serving(settings: Settings, plan: app.Plan, reload: Any = None) -> AsyncIterator[None]:
    stop = asyncio.Event()
    task = asyncio.create_task(app.serve(settings, plan, stop, reload=reload))
    try:
        yield
    finally:
        stop.set()
        assert await asyncio.wait_for(task, 5) == 0


def web(port: int) -> dict[str, Any]:
    return {"web": {"listen_address": f"127.0.0.1:{port}"}}


async def test_serving_with_discovery_lists_each_region_once_per_refresh(simulator: tuple[Simulator, str]) -> None:
    """Served, refreshing every 0.3 s: the discovered region is listed once per refresh (discovery's call, which
    the catalog reuses), the explicit one by the catalog at the same cadence; never two calls at once."""
    sim, endpoint = simulator
    settings = settings_for(endpoint, [DISCOVERED, STATIC_SH], 0.3, **web(free_port()))
    async with serving(settings, app.Plan(app.plan_pairs(settings), settings.api, KEY, tuple(settings.targets))):
        await asyncio.sleep(1.5)
    calls = instance_list_calls(sim)
    by_region = {r: sorted(t for t, region in calls if region == r) for r in ("cn-hangzhou", "cn-shanghai")}
    assert all(3 <= len(times) <= 7 for times in by_region.values()), by_region  # 1.5 s / 0.3 s, give or take
    for times in by_region.values():
        assert min(b - a for a, b in itertools.pairwise(times)) >= 0.25  # no second call for the same answer


async def test_a_region_removed_by_a_reload_is_no_longer_called(simulator: tuple[Simulator, str]) -> None:
    """Static targets in two regions, the catalog listing them every 0.3 s; a reload keeps only one region:
    the other is not called again and its instance leaves alikafka_instance_info."""
    sim, endpoint = simulator
    port = free_port()
    before = settings_for(endpoint, [STATIC_HZ, STATIC_SH], 0.3, **web(port))
    after = settings_for(endpoint, [STATIC_HZ], 0.3, **web(port))
    async with serving(before, app.Plan(app.plan_pairs(before), before.api, KEY, tuple(before.targets)),
                       reload=lambda: after), aiohttp.ClientSession() as session:
        await asyncio.sleep(0.8)
        assert {region for _, region in instance_list_calls(sim)} == {"cn-hangzhou", "cn-shanghai"}
        async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
            assert f'instance_id="{SH}"' in next(x for x in (await response.text()).splitlines()
                                                  if x.startswith("alikafka_instance_info{") and SH in x)
        os.kill(os.getpid(), signal.SIGHUP)
        await asyncio.sleep(0.3)
        reloaded = time.time()
        await asyncio.sleep(1.0)
        async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
            text = await response.text()
    later = instance_list_calls(sim, since=reloaded)
    assert {region for _, region in later} == {"cn-hangzhou"} and len(later) >= 2
    assert not has(text, "alikafka_instance_info", instance_id=SH)
