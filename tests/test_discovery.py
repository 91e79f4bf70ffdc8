"""Discovery against the simulator: instances: all, groups: all, paging, filters, shards, failures."""

from __future__ import annotations

import io
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from exporter import app
from exporter.client import AlikafkaClient
from exporter.credentials import Credentials, Secret, StaticProvider
from exporter.discovery import Discovery, in_shard
from exporter.ratelimit import RateLimiter
from exporter.settings import Target, load_settings
from exporter.simulator import FaultRule, Scenario, Simulator, build_app
from exporter.snapshot import Pair
from exporter.stats import ApiStats
from tests.fakes import ApiTestOptions

HZ = "alikafka_post-cn-demo0001"


async def no_sleep(_: float) -> None:
    return None


@pytest.fixture
async def demo() -> AsyncIterator[tuple[Simulator, AlikafkaClient, ApiStats]]:
    sim = Simulator(Scenario.builtin("demo"), {"AK": "SK"})
    sim.set_qps_limit("GetConsumerProgress", 1000)
    server = TestServer(build_app(sim), host="127.0.0.1")
    await server.start_server()
    stats = ApiStats()
    creds = StaticProvider(Credentials("AK", Secret("SK")), "t")
    async with AlikafkaClient(ApiTestOptions(str(server.make_url("/")), max_retries=0), creds, RateLimiter(1000),
                              stats, sleep=no_sleep) as client:
        yield sim, client, stats
    await server.close()


def target(**fields: Any) -> Target:
    return Target(**fields)


async def test_instances_all_and_groups_all(demo: tuple[Simulator, AlikafkaClient, ApiStats]) -> None:
    """Every running instance of the region and every group of each, as the simulator has them."""
    sim, client, _ = demo
    pairs = await Discovery(client, [target(instances="all", region="cn-hangzhou", groups="all")], None).resolve()
    expected = {(i, g) for i, r, g in sim.pairs() if r == "cn-hangzhou"}
    assert {(p.instance_id, p.group) for p in pairs} == expected
    assert all(p.region == "cn-hangzhou" for p in pairs)


async def test_paging_and_filters(demo: tuple[Simulator, AlikafkaClient, ApiStats]) -> None:
    """Pages of 4 are followed to the end; allow and deny regexes filter names."""
    _, client, stats = demo
    spec = target(instance_id=HZ, region="cn-hangzhou", groups="all", group_allow="^search-indexer-",
                  group_deny="-[78]$")
    pairs = await Discovery(client, [spec], None, page_size=4).resolve()
    assert sorted(p.group for p in pairs) == [f"search-indexer-{n}" for n in range(1, 7)]
    assert stats.requests[("GetConsumerList", "200")] == 4  # 15 groups in pages of 4


async def test_failed_listing_keeps_the_last_answer(demo: tuple[Simulator, AlikafkaClient, ApiStats],
                                                    caplog: pytest.LogCaptureFixture) -> None:
    """A listing that fails keeps what it found before, logged once; a deleted group goes at the next listing."""
    sim, client, _ = demo
    discovery = Discovery(client, [target(instance_id=HZ, region="cn-hangzhou", groups="all")], None)
    first = await discovery.resolve()
    sim.add_fault(FaultRule(kind="http_503", action="GetConsumerList"))
    with caplog.at_level(logging.INFO):
        assert await discovery.resolve() == first
        assert await discovery.resolve() == first
    assert len([r for r in caplog.records if r.getMessage().startswith("discovery listing failed")]) == 1
    sim.clear_faults()
    del sim.instances[HZ].groups["email-sender"]
    later = await discovery.resolve()
    assert {p.group for p in first} - {p.group for p in later} == {"email-sender"}


def test_shards_split_without_overlap_or_gap() -> None:
    """Shards 0..N-1 partition any set of pairs, stably."""
    pairs = [Pair(f"i{n % 7}", f"g{n}", "r") for n in range(1000)]
    shards = [{p for p in pairs if in_shard(p, (i, 3))} for i in range(3)]
    assert set().union(*shards) == set(pairs)
    assert sum(len(s) for s in shards) == len(pairs)
    assert all(250 < len(s) < 420 for s in shards)
    assert in_shard(Pair("alikafka_post-cn-x", "orders", "r"), (1, 2)) == in_shard(
        Pair("alikafka_post-cn-x", "orders", "other-region"), (1, 2))


async def test_once_with_discovery_and_shard(demo: tuple[Simulator, AlikafkaClient, ApiStats]) -> None:
    """--once with groups: all polls what discovery finds in this shard."""
    sim, client, _ = demo
    settings = load_settings({"targets": [{"instance_id": HZ, "region": "cn-hangzhou", "groups": "all"}],
                              "api": {"endpoint": client._options.endpoint_for("x"), "max_qps": 1000},
                              "shard": "1/2"}, {}, None)
    creds = StaticProvider(Credentials("AK", Secret("SK")), "t")
    plan = app.Plan(app.plan_pairs(settings), settings.api, creds, tuple(settings.targets))
    out = io.StringIO()
    await app.run_once(settings, plan, out)
    groups = {line.split('group="')[1].split('"')[0] for line in out.getvalue().splitlines()
              if line.startswith("alikafka_consumergroup_up{")}
    expected = {g for i, _, g in sim.pairs() if i == HZ and in_shard(Pair(HZ, g, "cn-hangzhou"), (1, 2))}
    assert groups == expected
    assert 0 < len(groups) < 15
