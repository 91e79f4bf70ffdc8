"""The workload model: curves invert exactly, events change offsets, membership and the API's answers."""

from __future__ import annotations

import itertools
import math
import re
import time
import tracemalloc
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.simulator import Scenario, ScenarioError, Simulator
from exporter.simulator.auth import GatewayError
from exporter.simulator.workload import PartitionCurve
from tests.support.tools import ROOT

INSTANCE = "alikafka_post-cn-ev000001"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def simulator(groups: list[dict[str, Any]], topics: list[dict[str, Any]] | None = None,
              **instance: Any) -> tuple[Simulator, Clock]:
    clock = Clock()
    spec = {"seed": 2, "instances": [{"instance_id": INSTANCE, "region": "cn-hangzhou",
                                      "topics": topics or [{"name": "t", "partitions": 2, "rate": 10}],
                                      "groups": groups, **instance}]}
    return Simulator(Scenario.from_dict(spec), {"k": "s"}, clock=clock), clock


def progress(sim: Simulator, group: str) -> dict[str, Any]:
    params = {"RegionId": "cn-hangzhou", "InstanceId": INSTANCE, "ConsumerId": group}
    return sim.handle("GetConsumerProgress", params, "k")["ConsumerProgress"]  # type: ignore[no-any-return]


@settings(max_examples=200, deadline=None)
@given(shape=st.sampled_from(["steady", "bursty", "diurnal", "idle"]), rate=st.floats(0.1, 500),
       seconds=st.floats(1, 7200))
def test_produce_time_inverts_offset(shape: str, rate: float, seconds: float) -> None:
    """For any offset produced, produce_time(o) is the first moment the end offset passes o."""
    curve = PartitionCurve(base=1000, rate=rate, shape=shape, start=0.0, idle_after=1800.0)  # type: ignore[arg-type]
    end = curve.offset(seconds)
    if end == curve.base:
        return
    target = curve.base + (end - curve.base) // 2
    when = curve.produce_time(target)
    assert curve.offset(when + 1e-6) > target
    assert curve.offset(max(0.0, when - 1e-3)) <= target + 1


def test_stop_then_resume() -> None:
    """Stopped: offsets frozen, no members, EMPTY; resumed: members back, catching up, new generation."""
    sim, clock = simulator([{"name": "g", "topics": ["t"], "events": [{"at": 60, "type": "stop"},
                                                                       {"at": 300, "type": "resume"}]}])
    first = progress(sim, "g")
    assert first["state"] == "STABLE"
    clock.now += 120
    stopped = progress(sim, "g")
    clock.now += 100
    still = progress(sim, "g")
    assert stopped["state"] == "EMPTY"
    assert all(p["MemberId"] == "" for p in stopped["TopicList"]["TopicList"][0]["OffsetList"]["OffsetList"])
    offsets = [[p["ConsumerOffset"] for p in x["TopicList"]["TopicList"][0]["OffsetList"]["OffsetList"]]
               for x in (stopped, still)]
    assert offsets[0] == offsets[1]
    assert still["TotalDiff"] > stopped["TotalDiff"]
    clock.now += 80  # the moment of resuming
    at_resume = progress(sim, "g")
    clock.now += 20  # catching up at 3x the production rate
    resumed = progress(sim, "g")
    assert resumed["state"] == "STABLE"
    assert resumed["TotalDiff"] < at_resume["TotalDiff"] - 500
    generations = [x["RebalanceInfoList"]["RebalanceInfoList"][0]["Generation"] for x in (first, stopped, resumed)]
    assert generations[0] < generations[1] < generations[2]
    clock.now += 600
    assert progress(sim, "g")["TotalDiff"] < 2 * 10 * (2 + 5 + 1)  # back near the head


def test_rewind_to_the_beginning_replays() -> None:
    """A rewind to the earliest offset makes the true time lag about the age of the oldest message."""
    sim, clock = simulator([{"name": "g", "topics": ["t"], "events": [{"at": 10, "type": "rewind"}]}])
    clock.now += 10
    truth = sim.truth(INSTANCE, "g")
    assert all(t.consumer_offset == sim.instances[INSTANCE].topic("t").curve(t.partition).base for t in truth)  # type: ignore[union-attr]
    assert all(3500 < t.time_lag_seconds <= 3610 for t in truth)
    clock.now += 600
    later = sim.truth(INSTANCE, "g")
    assert all(a.consumer_offset > b.consumer_offset for a, b in zip(later, truth, strict=True))
    assert all(a.time_lag_seconds < b.time_lag_seconds for a, b in zip(later, truth, strict=True))


def test_stall_keeps_members_and_lag_event_slows() -> None:
    """A stall freezes offsets with members present; a lag event consumes a fraction of production."""
    sim, clock = simulator([{"name": "stall", "topics": ["t"], "events": [{"at": 0, "type": "stall"}]},
                            {"name": "slow", "topics": ["t"], "events": [{"at": 0, "type": "lag", "fraction": 0.25}]}])
    base = {g: sum(t.lag for t in sim.truth(INSTANCE, g)) for g in ("stall", "slow")}
    clock.now += 400
    answer = progress(sim, "stall")
    assert answer["state"] == "STABLE"
    assert answer["TopicList"]["TopicList"][0]["OffsetList"]["OffsetList"][0]["MemberId"]
    grown = {g: sum(t.lag for t in sim.truth(INSTANCE, g)) for g in ("stall", "slow")}
    produced = 2 * 10 * 400
    assert grown["stall"] - base["stall"] == pytest.approx(produced, rel=0.25)
    assert grown["slow"] - base["slow"] == pytest.approx(0.75 * produced, rel=0.25)


def test_rebalance_window() -> None:
    """During a rebalance the state is PREPARING_REBALANCE and the record is not yet successful."""
    sim, clock = simulator([{"name": "g", "topics": ["t"], "events": [{"at": 30, "type": "rebalance",
                                                                         "duration": 20}]}])
    clock.now += 40
    during = progress(sim, "g")
    record = during["RebalanceInfoList"]["RebalanceInfoList"][0]
    assert during["state"] == "PREPARING_REBALANCE"
    assert (record["RebalanceSuccess"], record["LastRebalanceTimestamp"]) == (False, int((clock.now - 10) * 1000))
    clock.now += 20
    after = progress(sim, "g")
    assert after["state"] == "STABLE"
    assert after["RebalanceInfoList"]["RebalanceInfoList"][0]["RebalanceTimeConsuming"] == 20_000


def test_lifetimes_of_groups_topics_partitions_and_instances() -> None:
    """Deleted groups and topics vanish, created topics and added partitions appear, a stopped instance errors."""
    topics = [{"name": "t", "partitions": 2, "rate": 10, "partitions_added": [{"at": 30, "partitions": 4}]},
              {"name": "new", "partitions": 1, "created": 30}, {"name": "old", "partitions": 1, "deleted": 30}]
    sim, clock = simulator([{"name": "g", "topics": ["t", "new", "old"]},
                            {"name": "gone", "topics": ["t"], "events": [{"at": 30, "type": "delete"}]}],
                           topics, stopped=90)
    before = progress(sim, "g")
    assert {t["Topic"]: len(t["OffsetList"]["OffsetList"]) for t in before["TopicList"]["TopicList"]} == {
        "t": 2, "old": 1}
    clock.now += 40
    after = progress(sim, "g")
    assert {t["Topic"]: len(t["OffsetList"]["OffsetList"]) for t in after["TopicList"]["TopicList"]} == {
        "t": 4, "new": 1}
    with pytest.raises(GatewayError, match="BIZ_SUBSCRIPTION_NOT_FOUND"):
        progress(sim, "gone")
    listing = sim.handle("GetConsumerList", {"RegionId": "cn-hangzhou", "InstanceId": INSTANCE}, "k")
    assert [c["ConsumerId"] for c in listing["ConsumerList"]["ConsumerVO"]] == ["g"]
    clock.now += 60
    with pytest.raises(GatewayError, match="BIZ_INSTANCE_STATUS_ERROR"):
        progress(sim, "g")


def test_scenario_faults_apply_from_the_start() -> None:
    """Faults listed in the scenario are active without any control call."""
    spec = {"instances": [{"instance_id": INSTANCE, "topics": [{"name": "t"}], "groups": [{"name": "g", "topics": ["t"]}]}],
            "faults": [{"kind": "http_503", "group": "g", "probability": 0.5}]}
    sim = Simulator(Scenario.from_dict(spec), {"k": "s"})
    assert [(f.kind, f.group, f.probability) for f in sim.faults] == [("http_503", "g", 0.5)]
    with pytest.raises(Exception, match="kind"):
        Scenario.from_dict({**spec, "faults": [{"kind": "meteor"}]})


def test_scale_xl_is_lazy() -> None:
    """10,000 groups x 100 partitions (1M partitions): built in well under the memory of one series each."""
    tracemalloc.start()
    started = time.perf_counter()
    sim = Simulator(Scenario.builtin("scale-xl"), {"k": "s"})
    built = time.perf_counter() - started
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 20 * 1024 * 1024, peak  # 1M partitions stored eagerly would need far more
    assert built < 5.0
    params = {"RegionId": "cn-hangzhou", "InstanceId": "alikafka_post-cn-scale0001", "ConsumerId": "gen-g09999"}
    body = sim.handle("GetConsumerProgress", params, "k")["ConsumerProgress"]
    assert len(body["TopicList"]["TopicList"][0]["OffsetList"]["OffsetList"]) == 100
    assert math.isfinite(body["TotalDiff"])
    listing = sim.handle("GetConsumerList", {"RegionId": "cn-hangzhou", "InstanceId": "alikafka_post-cn-scale0001",
                                             "CurrentPage": "100", "PageSize": "100"}, "k")
    assert listing["Total"] == 10_000
    assert listing["ConsumerList"]["ConsumerVO"][-1]["ConsumerId"] == "gen-g09999"
    with pytest.raises(GatewayError, match="BIZ_SUBSCRIPTION_NOT_FOUND"):
        sim.handle("GetConsumerProgress", {**params, "ConsumerId": "gen-g10000"}, "k")


def test_documented_example_scenario_is_valid() -> None:
    """The YAML example in docs/simulator.md validates and builds."""
    doc = (ROOT / "docs" / "simulator.md").read_text()
    (example,) = [block for block in re.findall(r"```yaml\n(.*?)```", doc, re.S) if "instances:" in block]
    sim = Simulator(Scenario.from_dict(yaml.safe_load(example)), {"k": "s"})
    assert len(sim.pairs()) == 10_001


def traffic_sim(seed: int = 3) -> tuple[Simulator, Clock]:
    clock = Clock()
    spec = {"seed": seed, "instances": [{"instance_id": INSTANCE, "region": "cn-hangzhou", "topics": [
        {"name": "t", "partitions": 4,
         "traffic": {"levels": [2, 20, 200], "dwell": [10, 40], "skew": 1.0,
                     "diurnal": {"amplitude": 0.5, "period": 7200, "peak": 600}}}],
        "groups": [
            {"name": "up", "topics": ["t"], "capacity": 2000, "delay": 1, "commit_jitter": 1},
            {"name": "behind", "topics": ["t"], "capacity": 100, "delay": 1, "commit_jitter": 1,
             "events": [{"at": -600, "type": "stall"}, {"at": 0, "type": "resume"}]}]}]}
    return Simulator(Scenario.from_dict(spec), {"k": "s"}, clock=clock), clock


def test_poisson_traffic_is_deterministic_bursty_and_skewed() -> None:
    """Same seed, same messages whatever the order of questions; the rate jumps between levels; partition 0
    (skew 1) produces most; produce_time inverts offset exactly."""
    sim, clock = traffic_sim()
    other, _ = traffic_sim()
    topic, twin = sim.instances[INSTANCE].topic("t"), other.instances[INSTANCE].topic("t")
    assert topic is not None and twin is not None
    late = clock.now + 1800
    assert twin.curve(2).offset(late) > 0  # asked in another order first
    for p in range(4):
        assert topic.curve(p).offset(late) == twin.curve(p).offset(late)
    curve = topic.curve(0)
    per_second = [curve.offset(clock.now + s + 1) - curve.offset(clock.now + s) for s in range(600)]
    assert min(per_second) < 10 and max(per_second) > 150  # quiet seconds and burst seconds
    produced = [topic.curve(p).offset(late) - topic.curve(p).offset(clock.now) for p in range(4)]
    assert produced[0] > 1.5 * produced[3]
    start = curve.offset(clock.now)
    for offset in range(start, start + 5000, 37):
        when = curve.produce_time(offset)
        assert curve.offset(when) == offset + 1  # the end offset passes it at that moment
        assert curve.offset(when - 0.01) <= offset  # not before


def test_queue_consumer_and_jittered_commits() -> None:
    """A consumer ten minutes behind drains at its capacity, commits every 5 +- 1 s, and the truth's time lag
    is now minus the produce time of the first unconsumed message."""
    sim, clock = traffic_sim()
    group = sim.instances[INSTANCE].group("behind")
    assert group is not None
    commits = sorted({group.consumer.last_commit(clock.now + s / 10) for s in range(3000)})
    gaps = [b - a for a, b in itertools.pairwise(commits)]
    assert min(gaps) >= 4.0 and max(gaps) <= 6.0 and min(gaps) < 4.8 and max(gaps) > 5.2
    first = {p.partition: p for p in sim.truth(INSTANCE, "behind")}
    assert all(p.time_lag_seconds >= 590 for p in first.values())
    # partition 0 (the skew's hottest) produces more than 100/s: it was behind before it stopped too
    assert all(p.time_lag_seconds <= 610 for p in first.values() if p.partition > 0)
    assert first[0].time_lag_seconds > 700
    topic = sim.instances[INSTANCE].topic("t")
    assert topic is not None
    clock.now += 120
    for p in sim.truth(INSTANCE, "behind"):
        consumed = p.consumer_offset - first[p.partition].consumer_offset
        assert 100 * 110 <= consumed <= 100 * 126  # capacity x (120 s +- one commit)
        curve = topic.curve(p.partition)
        assert p.time_lag_seconds == pytest.approx(clock.now - curve.produce_time(p.consumer_offset))
    up = sim.truth(INSTANCE, "up")
    assert all(p.time_lag_seconds <= 1 + 6.5 for p in up)  # delay + one commit period with jitter


def test_traffic_and_capacity_are_validated() -> None:
    """Bad traffic or commit settings are refused naming the key."""
    base = {"instance_id": INSTANCE, "region": "cn-hangzhou"}
    with pytest.raises(ScenarioError, match="commit_jitter"):
        Scenario.from_dict({"instances": [{**base, "topics": [{"name": "t"}], "groups": [
            {"name": "g", "topics": ["t"], "commit_interval": 5, "commit_jitter": 5}]}]})
    with pytest.raises(ScenarioError, match=r"traffic: .*dwell"):
        Scenario.from_dict({"instances": [{**base, "topics": [{"name": "t", "traffic": {"dwell": [40, 10]}}]}]})
    with pytest.raises(ScenarioError, match=r"traffic\.levels"):
        Scenario.from_dict({"instances": [{**base, "topics": [{"name": "t", "traffic": {"levels": []}}]}]})


def test_builtin_traffic_scenario_starts_with_consumers_behind() -> None:
    """builtin:traffic: consumers 10 and 8 minutes behind at the start, LastTimestamp -1 on the local topic."""
    clock = Clock()
    sim = Simulator(Scenario.builtin("traffic"), {"k": "s"}, clock=clock)
    instance = "alikafka_post-cn-traffic01"
    ages = {g: max(p.time_lag_seconds for p in sim.truth(instance, g)) for _, _, g in sim.pairs()}
    assert ages["behind-10m"] >= 590 and ages["behind-8m-local"] >= 470
    assert ages["keeps-up"] < 10
    params = {"RegionId": "cn-hangzhou", "InstanceId": instance, "ConsumerId": "behind-10m-local"}
    body = sim.handle("GetConsumerProgress", params, "k")["ConsumerProgress"]
    assert {p["LastTimestamp"] for t in body["TopicList"]["TopicList"] for p in t["OffsetList"]["OffsetList"]} == {-1}
