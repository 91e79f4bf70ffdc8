"""Simulated retention: segments expire as time passes, a full disk deletes early, GetTopicStatus tells it."""

from __future__ import annotations

import time
from typing import Any

import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer

from exporter.cloud.errors import ForbiddenError
from exporter.cloud.models import parse_instance_list
from exporter.simulator import FaultRule, Scenario, Simulator, build_app
from exporter.simulator.faults import reshape
from exporter.simulator.retention import InstanceRetention, RetentionModel
from exporter.simulator.workload import HISTORY, PartitionCurve
from tests.support.fakes import Clock, simulated_client

INSTANCE = "alikafka_post-cn-ret0001"
START = time.time()


def scenario(**instance: Any) -> Scenario:
    return Scenario.from_dict({"seed": 3, "instances": [{
        "instance_id": INSTANCE, "region": "cn-hangzhou",
        "topics": [{"name": "orders", "partitions": 2, "rate": 10}],
        "groups": [{"name": "stuck", "topics": ["orders"], "behaviour": "stopped", "since": -HISTORY, "members": 0},
                   {"name": "live", "topics": ["orders"], "delay": 2}],
        **instance,
    }]})


def test_segments_expire_whole_and_only_past_the_retention() -> None:
    curve = PartitionCurve(base=1000, rate=10.0, shape="steady", start=0.0, idle_after=0.0)
    model = RetentionModel({"i": InstanceRetention(msg_retain=1, segment_seconds=60.0)})
    assert model.earliest("i", curve, 3600.0) == 1000  # the first segment's newest message is not an hour old yet
    assert model.earliest("i", curve, 3659.0) == 1000
    assert model.earliest("i", curve, 3660.0) == curve.offset(60.0)  # now it is: the whole segment goes
    assert model.earliest("i", curve, 3725.0) == curve.offset(120.0)
    assert model.earliest("j", curve, 3725.0) == 1000  # another instance: the default 72 h


def test_a_full_disk_deletes_early_and_what_it_deleted_stays_deleted() -> None:
    curve = PartitionCurve(base=0, rate=10.0, shape="steady", start=0.0, idle_after=0.0)
    model = RetentionModel({"i": InstanceRetention(segment_seconds=10.0)})
    model.disk_full("i", 1000.0, keep=100.0)
    assert model.earliest("i", curve, 999.0) == 0  # not full yet
    assert model.earliest("i", curve, 1000.0) == curve.offset(900.0)
    assert model.earliest("i", curve, 1095.0) == curve.offset(990.0)  # still full: keeps deleting
    model.disk_cleared(1100.0)
    assert model.earliest("i", curve, 5000.0) == curve.offset(1000.0)  # freed: nothing more, nothing back
    model.disk_full("i", 6000.0, keep=0.0)
    assert model.earliest("i", curve, 6005.0) == curve.offset(6000.0)  # never the segment being written


def test_scenario_keys_are_validated() -> None:
    with pytest.raises(ValueError, match="msg_retain"):
        scenario(msg_retain=0)
    with pytest.raises(ValueError, match="segment_seconds"):
        scenario(segment_seconds=0)


async def test_get_topic_status_answers_retention_as_time_passes_and_instance_list_has_msg_retain() -> None:
    clock = Clock(START)
    sim = Simulator(scenario(msg_retain=1, segment_seconds=30), {"AK": "SK"}, clock=clock)
    async with simulated_client(sim) as (client, stats):
        status, request_id = await client.get_topic_status("cn-hangzhou", INSTANCE, "orders")
        assert request_id
        assert [p.partition for p in status.partitions] == [0, 1]
        committed = {t.partition: t.consumer_offset for t in sim.truth(INSTANCE, "stuck")}
        assert status.earliest() == committed  # an hour of history, an hour of retention: nothing deleted yet
        assert all(p.max_offset is not None and p.max_offset > committed[p.partition] for p in status.partitions)
        assert all(p.last_update_ms is not None and abs(p.last_update_ms / 1000 - START) < 1 for p in status.partitions)

        clock.now = START + 95
        later, _ = await client.get_topic_status("cn-hangzhou", INSTANCE, "orders")
        for p in later.partitions:
            curve = sim.instances[INSTANCE].topics["orders"].curve(p.partition)
            assert p.min_offset == curve.offset(curve.start + 90) > committed[p.partition]  # three segments gone
            assert p.min_offset == sim.earliest(INSTANCE, "orders", p.partition)
        assert later.total_count == sum((p.max_offset or 0) - (p.min_offset or 0) for p in later.partitions)

        listed = parse_instance_list((await client.call("GetInstanceList", "cn-hangzhou",
                                                        {"RegionId": "cn-hangzhou"})).body)
        assert listed[0].retention_seconds == 3600.0
    assert stats.requests[("GetTopicStatus", "200")] == 2


async def test_disk_full_fault_deletes_early_through_the_api() -> None:
    clock = Clock(START)
    sim = Simulator(scenario(segment_seconds=10), {"AK": "SK"}, clock=clock)
    async with simulated_client(sim) as (client, _):
        before, _ = await client.get_topic_status("cn-hangzhou", INSTANCE, "orders")
        sim.add_fault(FaultRule("disk_full", instance_id=INSTANCE, delay=120.0))
        assert sim.faults == []  # no rule on answers
        after, _ = await client.get_topic_status("cn-hangzhou", INSTANCE, "orders")
        for old, new in zip(before.partitions, after.partitions, strict=True):
            assert old.min_offset is not None and new.min_offset is not None and new.max_offset is not None
            assert new.min_offset > old.min_offset
            assert new.max_offset - new.min_offset <= 10 * 1.2 * 130  # about two minutes left at ~10 msg/s
        sim.clear_faults()
        clock.now += 600
        kept, _ = await client.get_topic_status("cn-hangzhou", INSTANCE, "orders")
        assert kept.earliest() == after.earliest()  # nothing comes back, nothing more goes


async def test_single_object_table_and_strings_parse_and_a_denied_key_is_forbidden() -> None:
    sim = Simulator(scenario(), {"AK": "SK"}, denied_actions={"AK": frozenset({"GetTopicStatus"})})
    async with simulated_client(sim) as (client, stats):
        with pytest.raises(ForbiddenError) as denied:
            await client.get_topic_status("cn-hangzhou", INSTANCE, "orders")
        assert denied.value.code == "Forbidden.RAM"
    assert stats.requests[("GetTopicStatus", "Forbidden.RAM")] == 1

    one = Scenario.from_dict({"instances": [{"instance_id": INSTANCE, "topics": [{"name": "t", "partitions": 1}],
                                             "groups": [{"name": "g", "topics": ["t"]}]}]})
    sim = Simulator(one, {"AK": "SK"}, clock=Clock(START))
    sim.add_fault(FaultRule("single_object", action="GetTopicStatus", count=1))
    sim.add_fault(FaultRule("numbers_as_strings", action="GetTopicStatus", count=1))
    async with simulated_client(sim) as (client, _):
        single, _ = await client.get_topic_status("cn-hangzhou", INSTANCE, "t")
        strings, _ = await client.get_topic_status("cn-hangzhou", INSTANCE, "t")
    assert len(single.partitions) == len(strings.partitions) == 1
    assert single.partitions[0].min_offset == strings.partitions[0].min_offset is not None
    body = sim.handle("GetTopicStatus", {"RegionId": "cn-hangzhou", "InstanceId": INSTANCE, "Topic": "t"}, "AK")
    assert isinstance(reshape(body, "single_object", "GetTopicStatus")["TopicStatus"]["OffsetTable"]["OffsetTable"],
                      dict)  # the fault really sent one object where the list was


def test_the_demo_has_a_group_losing_messages_on_a_full_disk() -> None:
    sim = Simulator(Scenario.builtin("demo"), {"AK": "SK"})
    orders_prod = "alikafka_post-cn-demo0001"
    lost = [sim.earliest(orders_prod, t.topic, t.partition) - t.consumer_offset  # type: ignore[operator]
            for t in sim.truth(orders_prod, "email-sender")]
    assert lost and all(n > 0 for n in lost)
    for healthy in ("orders-consumer", "fraud-detector"):  # fraud-detector: stalled 7 minutes, 10 kept
        assert all(sim.earliest(orders_prod, t.topic, t.partition) <= t.consumer_offset  # type: ignore[operator]
                   for t in sim.truth(orders_prod, healthy))


async def test_truth_tells_earliest_offsets_and_lost_messages() -> None:
    clock = Clock(time.time())
    sim = Simulator(scenario(msg_retain=1, segment_seconds=1), {"AK": "SK"}, clock=clock)
    clock.now += 30  # half a minute of segments past the hour of retention
    server = TestServer(build_app(sim), host="127.0.0.1")
    await server.start_server()
    try:
        async with ClientSession() as session, session.get(server.make_url("/_sim/truth")) as response:
            rows = (await response.json())["partitions"]
    finally:
        await server.close()
    stuck = [r for r in rows if r["group"] == "stuck"]
    assert stuck and all(r["lost_messages"] == r["earliest_offset"] - r["consumer_offset"] > 0 for r in stuck)
    assert all(r["lost_messages"] == 0 for r in rows if r["group"] == "live")
