"""The retention refresher: one GetTopicStatus per topic per refresh, spread out; refusals logged once."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time

import pytest

from exporter.cloud.client import AlikafkaClient
from exporter.cloud.models import TopicStatus
from exporter.config.settings import RetentionSettings
from exporter.polling.retention import RetentionRefresher, lost_messages, retention_margin
from exporter.simulator import Scenario, Simulator
from tests.support.fakes import Clock, progress, simulated_client

INSTANCE = "alikafka_post-cn-ret0001"
REGION = "cn-hangzhou"


def scenario() -> Scenario:
    return Scenario.from_dict({"seed": 3, "instances": [{
        "instance_id": INSTANCE, "region": REGION, "msg_retain": 1, "segment_seconds": 30,
        "topics": [{"name": f"t{i}", "partitions": 2, "rate": 5} for i in range(4)],
        "groups": [{"name": "g", "topics": [f"t{i}" for i in range(4)]}],
    }]})


TOPICS = [(REGION, INSTANCE, f"t{i}", "default") for i in range(4)]


class Recording:
    """The real client, with the refresher's clock reading at each call."""

    def __init__(self, client: AlikafkaClient, clock: Clock) -> None:
        self.client, self.clock, self.calls = client, clock, list[tuple[float, str]]()

    async def get_topic_status(self, region: str, instance_id: str, topic: str, *,
                               account: str | None = None) -> tuple[TopicStatus, str | None]:
        self.calls.append((self.clock.now, topic))
        return await self.client.get_topic_status(region, instance_id, topic, account=account)


async def run_for(refresher: RetentionRefresher, clock: Clock, seconds: float) -> None:
    """Run the refresher's loop on a fake clock until ``seconds`` have passed on it."""
    end = clock.now + seconds

    async def sleep(delay: float) -> None:
        clock.now += max(delay, 0.001)
        if clock.now > end:
            raise asyncio.CancelledError
        await asyncio.sleep(0)

    refresher._sleep = sleep
    with pytest.raises(asyncio.CancelledError):
        await refresher.run()


async def test_earliest_offsets_of_every_polled_topic_match_the_simulator() -> None:
    sim = Simulator(scenario(), {"AK": "SK"}, clock=Clock(time.time() + 120))  # two minutes: segments expired
    async with simulated_client(sim) as (client, stats):
        refresher = RetentionRefresher(client, RetentionSettings(), lambda: TOPICS, lambda _: 3600.0)
        await refresher.refresh_once()
    for _, _, topic, _ in TOPICS:
        found = refresher.earliest(INSTANCE, topic)
        assert found == {p: sim.earliest(INSTANCE, topic, p) for p in (0, 1)}
    assert refresher.retention_seconds(INSTANCE) == 3600.0
    assert refresher.version == 4
    assert stats.requests[("GetTopicStatus", "200")] == 4  # counted like every call


async def test_calls_are_spread_over_the_refresh_and_gone_topics_are_dropped() -> None:
    sim = Simulator(scenario(), {"AK": "SK"})
    clock = Clock(0.0)
    wanted = list(TOPICS)
    async with simulated_client(sim) as (client, stats):
        source = Recording(client, clock)
        refresher = RetentionRefresher(source, RetentionSettings(refresh=60), lambda: wanted, clock=clock)
        await run_for(refresher, clock, 130)
        times = [at for at, _ in source.calls]
        assert {topic for _, topic in source.calls[:4]} == {"t0", "t1", "t2", "t3"}
        assert times[3] <= 6.5  # first answers soon, 2 s apart...
        assert [round(t) for t in times[4:]] == [60, 75, 90, 105, 120]  # ...then four a minute, one every 15 s
        wanted.remove(TOPICS[0])
        source.calls.clear()
        await run_for(refresher, clock, 120)
    assert "t0" not in {topic for _, topic in source.calls}
    assert refresher.earliest(INSTANCE, "t0") is None and refresher.earliest(INSTANCE, "t1") is not None
    for topic in ("t1", "t2", "t3"):  # each keeps its slot, once a minute
        at = [t for t, name in source.calls if name == topic]
        assert len(at) >= 2 and all(b - a == 60 for a, b in itertools.pairwise(at))
    assert stats.requests[("GetTopicStatus", "200")] == len(times) + len(source.calls)


async def test_a_long_refresh_still_gives_every_topic_its_first_answer_within_seconds() -> None:
    sim = Simulator(scenario(), {"AK": "SK"})
    clock = Clock(0.0)
    async with simulated_client(sim) as (client, _):
        source = Recording(client, clock)
        refresher = RetentionRefresher(source, RetentionSettings(refresh=3600), lambda: TOPICS, clock=clock)
        await run_for(refresher, clock, 30)
    times = [at for at, _ in source.calls]
    assert len(times) == 4 and times[-1] <= 6.5  # at most 2 s apart, not spread over the hour
    assert all(b - a >= 2 for a, b in itertools.pairwise(times))  # and never in a burst
    assert all(refresher.earliest(INSTANCE, topic) is not None for _, _, topic, _ in TOPICS)


async def test_a_refused_permission_is_logged_once_with_the_action_to_grant(caplog: pytest.LogCaptureFixture) -> None:
    sim = Simulator(scenario(), {"AK": "SK"}, denied_actions={"AK": frozenset({"GetTopicStatus"})})
    clock = Clock(0.0)
    async with simulated_client(sim) as (client, stats):
        source = Recording(client, clock)
        refresher = RetentionRefresher(source, RetentionSettings(refresh=60), lambda: TOPICS, clock=clock)
        with caplog.at_level(logging.INFO, logger="exporter.polling.retention"):
            await run_for(refresher, clock, 300)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "alikafka:ListTopic" in warnings[0].getMessage()
    assert getattr(warnings[0], "grant", None) == "alikafka:ListTopic"
    assert refresher.earliest(INSTANCE, "t0") is None
    # one refused call, then one a refresh: six in five minutes where twenty would be the full cost
    assert len(source.calls) <= 6
    assert stats.requests[("GetTopicStatus", "Forbidden.RAM")] == len(source.calls)


async def test_disabled_asks_nothing() -> None:
    sim = Simulator(scenario(), {"AK": "SK"})
    clock = Clock(0.0)
    async with simulated_client(sim) as (client, _):
        source = Recording(client, clock)
        refresher = RetentionRefresher(source, RetentionSettings(enabled=False), lambda: TOPICS, lambda _: 1.0,
                                       clock=clock)
        await run_for(refresher, clock, 60)
        assert source.calls == [] and refresher.retention_seconds(INSTANCE) is None
        refresher.configure(RetentionSettings(refresh=10))
        await run_for(refresher, clock, 20)
    assert len(source.calls) >= 4


def test_lost_messages_and_margin() -> None:
    answer = progress({"a": {0: (500, 100), 1: (500, 400), 2: (500, None)}, "b": {0: (50, 10)}})
    earliest = {"a": {0: 250, 1: 250, 2: 250}}
    assert lost_messages(answer, earliest.get) == {("a", 0): 150, ("a", 1): 0}  # b unknown, a/2 never committed
    assert retention_margin(3600.0, 600.0, losing=False) == 3000.0
    assert retention_margin(3600.0, 7200.0, losing=False) == 0.0
    assert retention_margin(3600.0, 60.0, losing=True) == 0.0
    assert retention_margin(None, 60.0, losing=False) is None
    assert retention_margin(3600.0, None, losing=False) is None
