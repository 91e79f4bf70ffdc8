"""Discovery against the simulator: instances: all, groups: all, paging, filters, shards, failures."""

from __future__ import annotations

import io
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from exporter import app
from exporter.cloud.client import AlikafkaClient
from exporter.cloud.credentials import Credentials, Secret, StaticProvider
from exporter.cloud.ratelimit import RateLimiter
from exporter.cloud.stats import ApiStats
from exporter.config.settings import Target, load_settings
from exporter.simulator import FaultRule, Scenario, Simulator
from exporter.targets.discovery import Discovery, in_shard
from exporter.targets.pair import Pair
from tests.support.fakes import api_settings, no_sleep, simulated_client

HZ = "alikafka_post-cn-demo0001"


@pytest.fixture
async def demo() -> AsyncIterator[tuple[Simulator, AlikafkaClient, ApiStats]]:
    sim = Simulator(Scenario.builtin("demo"), {"AK": "SK"})
    async with simulated_client(sim) as (client, stats):
        yield sim, client, stats


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


def unpaged_app(answer: Any, pages: list[int]) -> web.Application:
    """A GetConsumerList server of its own making: ``answer(page)`` is the body (paging is up to it)."""
    async def handle(request: web.Request) -> web.Response:
        page = int(request.query.get("CurrentPage", "1"))
        pages.append(page)
        return web.json_response({"RequestId": f"r{page}", "Success": True, "Code": 200, **answer(page)})
    application = web.Application()
    application.router.add_post("/", handle)
    return application


@pytest.fixture
async def own_server() -> AsyncIterator[Any]:
    servers: list[TestServer] = []

    async def start(answer: Any, pages: list[int]) -> AlikafkaClient:
        server = TestServer(unpaged_app(answer, pages), host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        return AlikafkaClient(api_settings(str(server.make_url("/")), max_retries=0),
                              StaticProvider(Credentials("AK", Secret("SK")), "t"), RateLimiter(1000), ApiStats(),
                              sleep=no_sleep)
    yield start
    for server in servers:
        await server.close()


def groups_page(names: list[str], total: int | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"ConsumerList": {"ConsumerVO": [{"ConsumerId": n} for n in names]}}
    return body if total is None else {**body, "Total": total}


@pytest.mark.parametrize("total", [None, 400], ids=["no-total", "total-too-high"])
async def test_paging_ends_when_the_server_ignores_it(own_server: Any, total: int | None) -> None:
    """A server that answers every page with the same 150 groups (no paging, no or a wrong Total): 2 pages."""
    pages: list[int] = []
    names = [f"g{n}" for n in range(150)]
    async with await own_server(lambda _page: groups_page(names, total), pages) as client:
        spec = target(instance_id="i-1", region="r", groups="all")
        pairs = await Discovery(client, [spec], None).resolve()
    assert sorted(p.group for p in pairs) == sorted(names)
    assert pages == [1, 2]  # the second page added nothing new: the listing ends there


async def test_paging_stops_at_the_page_cap_and_warns_once(own_server: Any,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    """A server inventing new groups on every page forever is asked max_pages pages, warned about once."""
    pages: list[int] = []
    async with await own_server(lambda page: groups_page([f"p{page}-{n}" for n in range(10)]), pages) as client:
        discovery = Discovery(client, [target(instance_id="i-endless", region="r", groups="all")], None,
                              page_size=10, max_pages=7)
        with caplog.at_level(logging.WARNING, logger="exporter.targets.discovery"):
            first = await discovery.resolve()
            again = await discovery.resolve()
    assert len(first) == len(again) == 70
    assert pages == list(range(1, 8)) * 2
    warnings = [r for r in caplog.records if "page cap" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].__dict__["instance_id"] == "i-endless"


async def test_a_region_is_listed_once_per_resolve(demo: tuple[Simulator, AlikafkaClient, ApiStats]) -> None:
    """Two instances: all targets of one region (different filters) share one GetInstanceList, whose answer
    goes to on_instances (the catalog) with every instance, running or not."""
    _, client, stats = demo
    seen: list[tuple[str, list[str]]] = []
    targets = [target(instances="all", region="cn-hangzhou", groups="all", group_allow="^a"),
               target(instances="all", region="cn-hangzhou", groups="all", group_allow="^n")]
    discovery = Discovery(client, targets, None, on_instances=lambda r, infos, _account: seen.append(
        (r, sorted(i.instance_id for i in infos))))
    assert discovery.instance_regions == {"cn-hangzhou"}
    await discovery.resolve()
    assert stats.requests[("GetInstanceList", "200")] == 1
    assert seen == [("cn-hangzhou", ["alikafka_post-cn-demo0001", "alikafka_serverless-cn-demo0003"])]


STATES_REGION = "cn-beijing"
# One instance per state the real service reports; the simulator answers each as the real one would.
STATE_INSTANCES = {
    "upgrading": {"status": "upgrading"},
    "scaling": {"status": "scaling", "status_fields": "view"},  # only ViewInstanceStatusCode sent
    "migrating": {"status": "migrating", "status_fields": "service"},  # only the deprecated ServiceStatus
    "expiring": {"status": "expiring"},
    "upgrade-failed": {"status": "upgrade_failed"},
    "running-no-status": {"status_fields": "none"},
    "upgrading-now": {"status_changes": [{"at": -60, "status": "upgrading"}]},
    "pending": {"status": "pending"},
    "deploying": {"status": "deploying"},
    "stopped": {"status": "stopped"},
    "expired": {"status": "expired"},
    "released": {"status": "released", "status_fields": "service"},
    "expired-by-time": {"stopped": -30},
}
SERVING = {"upgrading", "scaling", "migrating", "expiring", "upgrade-failed", "running-no-status", "upgrading-now"}


@pytest.fixture
async def states() -> AsyncIterator[tuple[Simulator, AlikafkaClient, ApiStats]]:
    spec = {"seed": 3, "instances": [
        {"instance_id": f"alikafka_post-cn-{name}", "region": STATES_REGION, **fields,
         "topics": [{"name": "t", "partitions": 2}], "groups": [{"name": "g", "topics": ["t"]}]}
        for name, fields in STATE_INSTANCES.items()]}
    sim = Simulator(Scenario.from_dict(spec), {"AK": "SK"})
    async with simulated_client(sim) as (client, stats):
        yield sim, client, stats


async def test_instances_being_upgraded_scaled_or_migrated_are_discovered(
        states: tuple[Simulator, AlikafkaClient, ApiStats]) -> None:
    """instances: all keeps every instance that serves, whatever status fields are sent; drops the rest."""
    sim, client, stats = states
    pairs = await Discovery(client, [target(instances="all", region=STATES_REGION, groups="all")], None).resolve()
    assert {p.instance_id.removeprefix("alikafka_post-cn-") for p in pairs} == SERVING
    # the ones kept really answer (the upgrade does not stop the service), the ones dropped really do not
    upgrading = next(p for p in pairs if p.instance_id.endswith("-upgrading"))
    progress, _ = await client.get_consumer_progress(STATES_REGION, upgrading.instance_id, "g")
    assert progress.topics[0].partitions
    assert stats.requests.get(("GetConsumerList", "BIZ_INSTANCE_STATUS_ERROR"), 0) == 0
    assert not any(sim.instances[f"alikafka_post-cn-{name}"].serving(sim.clock())
                   for name in set(STATE_INSTANCES) - SERVING)


async def test_undocumented_instance_status_is_kept_and_logged_once(own_server: Any,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    """A status code no source documents keeps the instance, and is logged once however often it is seen."""
    def answer(_page: int) -> dict[str, Any]:
        return {"InstanceList": {"InstanceVO": [
            {"InstanceId": "i-new", "ViewInstanceStatusCode": 42, "ServiceStatus": 5},
            {"InstanceId": "i-gone", "ViewInstanceStatusCode": 6, "ServiceStatus": 10},
            {"InstanceId": "i-odd", "ServiceStatus": "Running"}]}}
    async with await own_server(answer, []) as client:
        discovery = Discovery(client, [target(instances="all", region="r", groups=["g"])], None)
        with caplog.at_level(logging.INFO, logger="exporter.targets.discovery"):
            first = await discovery.resolve()
            again = await discovery.resolve()
    assert {p.instance_id for p in first} == {p.instance_id for p in again} == {"i-new", "i-odd"}
    logged = [r.__dict__["status"] for r in caplog.records if "not in the documented list" in r.getMessage()]
    assert logged == ["ViewInstanceStatusCode 42", "ServiceStatus 'Running'"]
