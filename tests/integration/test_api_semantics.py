"""What the service sends, through the real simulator, client, poller and exposition.

A group that never committed is answered in every plausible way (empty or no TopicList, ConsumerProgress
empty, null or absent) and is a healthy empty group; partitions whose offsets are missing or -1 get their
lag from the service's Accumulate.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest

from exporter.cloud.stats import ApiStats
from exporter.polling.poller import Poller
from exporter.simulator import Scenario, Simulator
from exporter.targets.pair import Pair
from tests.support.fakes import exposition_text, simulated_client
from tests.support.samples import find, has

INSTANCE = "alikafka_post-cn-sem0001"
EMPTY = ["empty_list", "no_topic_list", "empty_object", "null", "absent"]
SCENARIO = {
    "seed": 9,
    "instances": [{
        "instance_id": INSTANCE, "region": "cn-hangzhou",
        "topics": [{"name": "t", "partitions": 8, "rate": 5}],
        "groups": [
            {"name": "healthy", "topics": ["t"]},
            {"name": "holes", "topics": ["t"], "behaviour": "lagging", "missing_offsets": True},
            *({"name": f"new-{shape}", "topics": ["t"], "never_committed": shape, "members": 1} for shape in EMPTY),
        ],
    }],
}


@pytest.fixture
async def polled() -> AsyncIterator[tuple[Simulator, Poller, ApiStats]]:
    sim = Simulator(Scenario.from_dict(SCENARIO), {"AK": "SK"})
    async with simulated_client(sim) as (client, stats):
        pairs = [Pair(INSTANCE, g, "cn-hangzhou") for _, _, g in sim.pairs()]
        yield sim, Poller(client, pairs, interval=60, stale_after=180), stats


async def test_group_that_never_committed_is_up_with_lag_zero(
        polled: tuple[Simulator, Poller, ApiStats], caplog: pytest.LogCaptureFixture) -> None:
    """Every plausible answer for a group without commits: up 1, group lag 0, no topic or partition series,
    no failure logged, and a status that settles on ok."""
    _, poller, stats = polled
    with caplog.at_level(logging.WARNING):
        for _ in range(3):  # enough polls for a status verdict
            snapshot = await poller.poll_once()
    assert not [r for r in caplog.records if r.getMessage() == "poll failed"]
    text = exposition_text(snapshot, stats)
    for shape in EMPTY:
        group = f"new-{shape}"
        up = find(text, "alikafka_consumergroup_up", group=group)
        assert [(dict(s.labels), s.value) for s in up] == [({"group": group, "instance_id": INSTANCE}, 1.0)], shape
        assert [s.value for s in find(text, "alikafka_consumergroup_group_lag", group=group)] == [0.0], shape
        for family in ("alikafka_consumergroup_lag", "alikafka_consumergroup_current_offset",
                       "alikafka_consumergroup_topic_lag", "alikafka_consumergroup_lag_seconds"):
            assert not has(text, family, group=group), (shape, family)
        statuses = find(text, "alikafka_consumergroup_status", group=group)
        assert [dict(s.labels) for s in statuses if s.value == 1.0] == [
            {"group": group, "instance_id": INSTANCE, "status": "ok"}], shape
    assert "NaN" not in text
    assert stats.requests[("GetConsumerProgress", "200")] == 3 * len(SCENARIO["instances"][0]["groups"])


async def test_accumulate_gives_the_lag_where_offsets_are_missing(polled: tuple[Simulator, Poller, ApiStats]) -> None:
    """Partitions answered with ConsumerOffset -1 (and some without BrokerOffset) still have a lag series,
    equal to the simulator's true lag; they have no current offset series; the others use their offsets."""
    sim, poller, stats = polled
    snapshot = await poller.poll_once()
    truth = {t.partition: t for t in sim.truth(INSTANCE, "holes")}
    assert any(t.lag > 0 for p, t in truth.items() if p % 2 == 1)  # a lagging group: the test sees real lag
    text = exposition_text(snapshot, stats)
    lag = {int(s.labels["partition"]): s.value for s in find(text, "alikafka_consumergroup_lag", group="holes")}
    committed = {int(s.labels["partition"]) for s in find(text, "alikafka_consumergroup_current_offset", group="holes")}
    assert sorted(lag) == list(range(8))
    assert committed == {0, 2, 4, 6}
    # the truth moves between the poll and now only by commits (every 5 s) and production; compare loosely
    for partition, value in lag.items():
        assert abs(value - truth[partition].lag) <= 60, partition
    progress = snapshot.pairs[Pair(INSTANCE, "holes", "cn-hangzhou")].progress
    assert progress is not None
    assert sum(p.lag or 0 for t in progress.topics for p in t.partitions) == sum(lag.values())
