"""The whole exporter against the simulator: retention deletes unread messages and the exposition says so; a
GetTopicStatus the RAM policy refuses is logged once and lag export carries on."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from exporter import app
from exporter.cloud.credentials import Credentials, Secret, StaticProvider
from exporter.config.settings import Settings, load_settings
from exporter.simulator import Scenario, Simulator, build_app
from tests.support.procs import free_port
from tests.support.samples import find, has, value

INSTANCE = "alikafka_post-cn-retn0001"
KEY = StaticProvider(Credentials("AK", Secret("SK")), "t")
# An hour of retention over an hour of history, one-second segments: from the first second on, the archiver,
# stopped since production began, has messages deleted before it read them.
SCENARIO = {"seed": 4, "instances": [{
    "instance_id": INSTANCE, "region": "cn-hangzhou", "msg_retain": 1, "segment_seconds": 1,
    "topics": [{"name": "orders", "partitions": 2, "rate": 5}],
    "groups": [{"name": "archiver", "topics": ["orders"], "behaviour": "stopped", "since": -3600, "members": 0},
               {"name": "live", "topics": ["orders"], "delay": 1}],
}]}


@contextlib.asynccontextmanager
async def exporter(sim: Simulator) -> AsyncIterator[int]:
    for action in ("GetConsumerProgress", "GetInstanceList", "GetTopicStatus"):
        sim.set_qps_limit(action, 1000)
    server = TestServer(build_app(sim), host="127.0.0.1")
    await server.start_server()
    port = free_port()
    settings: Settings = load_settings({
        "targets": [{"instance_id": INSTANCE, "region": "cn-hangzhou", "groups": ["archiver", "live"]}],
        "api": {"endpoint": str(server.make_url("/")), "max_qps": 1000, "max_retries": 0},
        "poll": {"interval": "1s"}, "retention": {"refresh": "10s"},
        "web": {"listen_address": f"127.0.0.1:{port}"}}, {}, None)
    stop = asyncio.Event()
    plan = app.Plan(app.plan_pairs(settings), settings.api, KEY, tuple(settings.targets))
    task = asyncio.create_task(app.serve(settings, plan, stop))
    try:
        yield port
    finally:
        stop.set()
        assert await asyncio.wait_for(task, 5) == 0
        await server.close()


async def scrape_until(port: int, ready: Any, seconds: float) -> str:
    """Scrape every 0.5 s until ``ready(text)`` holds; the last exposition either way."""
    text = ""
    async with aiohttp.ClientSession() as session:
        for _ in range(int(seconds * 2)):
            with contextlib.suppress(aiohttp.ClientConnectionError):  # not listening yet
                async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
                    text = await response.text()
                if ready(text):
                    break
            await asyncio.sleep(0.5)
    return text


async def test_retention_deletes_unread_messages_lost_and_margin_show_it() -> None:
    sim = Simulator(Scenario.from_dict(SCENARIO), {"AK": "SK"})
    archiver = {"instance_id": INSTANCE, "group": "archiver"}

    def ready(text: str) -> bool:  # both groups polled since the first answer, the archiver behind it
        lost = find(text, "alikafka_consumergroup_lost_messages", **archiver)
        return bool(lost) and all(s.value > 0 for s in lost) and has(
            text, "alikafka_consumergroup_retention_margin_seconds", instance_id=INSTANCE, group="live") and has(
            text, "alikafka_consumergroup_lost_messages", instance_id=INSTANCE, group="live")

    async with exporter(sim) as port:
        text = await scrape_until(port, ready, 20)
    assert ready(text), "no lost messages for the archiver"
    for partition in ("0", "1"):
        earliest = value(text, "alikafka_topic_partition_earliest_offset", topic="orders", partition=partition)
        committed = value(text, "alikafka_consumergroup_current_offset", **archiver, topic="orders", partition=partition)
        lost = value(text, "alikafka_consumergroup_lost_messages", **archiver, topic="orders", partition=partition)
        assert lost == earliest - committed > 0
        assert earliest <= sim.earliest(INSTANCE, "orders", int(partition))  # the truth only moves on
        assert value(text, "alikafka_consumergroup_lost_messages", instance_id=INSTANCE, group="live", topic="orders",
                     partition=partition) == 0
    assert value(text, "alikafka_consumergroup_retention_margin_seconds", **archiver) == 0
    live_margin = value(text, "alikafka_consumergroup_retention_margin_seconds", instance_id=INSTANCE, group="live")
    assert 3500 < live_margin < 3600
    assert value(text, "alikafka_instance_retention_seconds", instance_id=INSTANCE) == 3600
    assert value(text, "alikafka_exporter_api_requests_total", action="GetTopicStatus", code="200") >= 1


async def test_refused_topic_status_is_logged_once_and_lag_export_carries_on(caplog: pytest.LogCaptureFixture) -> None:
    sim = Simulator(Scenario.from_dict(SCENARIO), {"AK": "SK"}, denied_actions={"AK": frozenset({"GetTopicStatus"})})

    def refused_twice(_: str) -> bool:
        return sum(1 for r in sim.requests if r.action == "GetTopicStatus" and r.code == "Forbidden.RAM") >= 2

    with caplog.at_level(logging.WARNING):
        async with exporter(sim) as port:
            first = await scrape_until(port, lambda t: has(t, "alikafka_consumergroup_lag", group="live"), 10)
            text = await scrape_until(port, refused_twice, 25)
    assert refused_twice(text)
    refusals = [r for r in caplog.records if "alikafka:ListTopic" in r.getMessage()]
    assert len(refusals) == 1, [r.getMessage() for r in caplog.records]
    for group in ("archiver", "live"):
        assert value(text, "alikafka_consumergroup_up", instance_id=INSTANCE, group=group) == 1
        assert has(text, "alikafka_consumergroup_lag", group=group)
    success = {"instance_id": INSTANCE, "group": "live"}
    assert value(text, "alikafka_consumergroup_last_success_timestamp_seconds", **success) > value(
        first, "alikafka_consumergroup_last_success_timestamp_seconds", **success)
    assert not has(text, "alikafka_topic_partition_earliest_offset")
    assert not has(text, "alikafka_consumergroup_lost_messages")
    assert value(text, "alikafka_exporter_api_requests_total", action="GetTopicStatus", code="Forbidden.RAM") >= 2
