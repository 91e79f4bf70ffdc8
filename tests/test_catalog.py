"""The instance catalog against the simulator: attributes, failures keep the last values, logged once."""

from __future__ import annotations

import logging

import pytest
from aiohttp.test_utils import TestServer

from exporter.catalog import InstanceCatalog
from exporter.client import AlikafkaClient
from exporter.credentials import Credentials, Secret, StaticProvider
from exporter.models import ParseError, parse_instance_list
from exporter.ratelimit import RateLimiter
from exporter.simulator import FaultRule, Scenario, Simulator, build_app
from exporter.stats import ApiStats
from tests.fakes import ApiTestOptions


async def no_sleep(_: float) -> None:
    return None


async def test_catalog_lists_polled_instances_and_survives_failures(caplog: pytest.LogCaptureFixture) -> None:
    """Only the polled instances appear; a failing refresh keeps them and logs once per failure."""
    sim = Simulator(Scenario.builtin("demo"), {"AK": "SK"}, denied_actions={"RO": frozenset({"GetInstanceList"})})
    server = TestServer(build_app(sim), host="127.0.0.1")
    await server.start_server()
    try:
        creds = StaticProvider(Credentials("AK", Secret("SK")), "t")
        async with AlikafkaClient(ApiTestOptions(str(server.make_url("/")), max_retries=0), creds,
                                  RateLimiter(100), ApiStats(), sleep=no_sleep) as client:
            catalog = InstanceCatalog(client, ["cn-hangzhou", "cn-shanghai"],
                                      ["alikafka_post-cn-demo0001", "alikafka_pre-cn-demo0002"])
            await catalog.refresh_once()
            assert sorted(catalog.instances) == ["alikafka_post-cn-demo0001", "alikafka_pre-cn-demo0002"]
            info = catalog.instances["alikafka_pre-cn-demo0002"]
            assert (info.name, info.region, info.series, info.running) == ("logistics", "cn-shanghai", "v3", True)
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
    assert info.running
    assert parse_instance_list({"Success": True}) == ()
    with pytest.raises(ParseError, match="no InstanceId"):
        parse_instance_list({"InstanceList": {"InstanceVO": [{"Name": "x"}]}})
