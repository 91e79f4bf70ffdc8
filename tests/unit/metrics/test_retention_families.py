"""Rates, catch-up and retention families: present with their data, absent without, one series per topic."""

from __future__ import annotations

from types import MappingProxyType

from exporter.cloud.stats import ApiStats
from exporter.config.settings import MetricsSettings
from exporter.metrics.exposition import render_states
from exporter.metrics.self_metrics import TailCollector
from exporter.polling.analysis import Insight, TimeLags
from exporter.polling.rates import GroupRates
from exporter.polling.snapshot import PairState, Snapshot
from exporter.targets.pair import Pair
from tests.support.fakes import board_of, exposition_text, progress
from tests.support.samples import find, has, samples, value

A = Pair("alikafka_post-cn-a", "a", "cn-hangzhou")
B = Pair("alikafka_post-cn-a", "b", "cn-hangzhou")
NEW = ("alikafka_consumergroup_catch_up_seconds", "alikafka_consumergroup_consume_rate",
       "alikafka_topic_produce_rate", "alikafka_topic_partition_earliest_offset",
       "alikafka_consumergroup_lost_messages", "alikafka_consumergroup_retention_margin_seconds")


def state(pair: Pair, insight: Insight) -> PairState:
    return PairState(pair, progress({"t": {0: (100, 10), 1: (100, 100)}}), True, 1.0, 1.0, None, 1, insight)


def snapshot(*states: PairState) -> Snapshot:
    return Snapshot(MappingProxyType({s.pair: s for s in states}), 1)


def test_without_rates_or_retention_data_the_families_are_absent() -> None:
    text = exposition_text(snapshot(state(A, Insight(TimeLags([(("t", 0), 30.0)]), "ok"))))
    assert not [s for s in samples(text) if s.name in NEW]


def test_values_and_one_produce_rate_and_earliest_offset_series_per_topic() -> None:
    earliest = MappingProxyType({"t": MappingProxyType({0: 40, 1: 60})})
    a = Insight(TimeLags([(("t", 0), 30.0)]), "ok", GroupRates(MappingProxyType({"t": 2.0}),
                                                              MappingProxyType({"t": 5.0}), None),
                TimeLags([(("t", 0), 30.0), (("t", 1), 0.0)]), 0.0, earliest)
    b = Insight(TimeLags([(("t", 0), 3.0)]), "ok", GroupRates(MappingProxyType({"t": 9.0}),
                                                             MappingProxyType({"t": 5.5}), 12.0),
                TimeLags([(("t", 0), 0.0), (("t", 1), 0.0)]), 3597.0, earliest)
    text = exposition_text(snapshot(state(A, a), state(B, b)))
    group_a = {"instance_id": A.instance_id, "group": "a"}
    assert not has(text, "alikafka_consumergroup_catch_up_seconds", **group_a)  # not shrinking: absent
    assert value(text, "alikafka_consumergroup_catch_up_seconds", instance_id=A.instance_id, group="b") == 12.0
    assert value(text, "alikafka_consumergroup_lost_messages", **group_a, topic="t", partition="0") == 30.0
    assert value(text, "alikafka_consumergroup_retention_margin_seconds", **group_a) == 0.0
    assert value(text, "alikafka_consumergroup_consume_rate", instance_id=A.instance_id, group="b", topic="t") == 9.0
    produce = find(text, "alikafka_topic_produce_rate")
    assert [(dict(s.labels), s.value) for s in produce] == [({"instance_id": A.instance_id, "topic": "t"}, 5.5)]
    assert len(find(text, "alikafka_topic_partition_earliest_offset")) == 2
    assert value(text, "alikafka_topic_partition_earliest_offset", partition="1") == 60.0


def test_group_granularity_keeps_only_group_level_families() -> None:
    insight = Insight(TimeLags(), "ok", GroupRates(MappingProxyType({"t": 2.0}), MappingProxyType({"t": 1.0}), 0.0),
                      TimeLags([(("t", 0), 5.0)]), 0.0, MappingProxyType({"t": MappingProxyType({0: 15})}))
    snap = snapshot(state(A, insight))
    text = render_states(snap.pairs.values(), MetricsSettings(granularity="group", max_series=0),
                         TailCollector(board_of(snap), ApiStats())).decode()
    names = {s.name for s in samples(text)}
    assert {"alikafka_consumergroup_catch_up_seconds", "alikafka_consumergroup_retention_margin_seconds"} <= names
    assert not names & {"alikafka_consumergroup_consume_rate", "alikafka_topic_produce_rate",
                        "alikafka_topic_partition_earliest_offset", "alikafka_consumergroup_lost_messages"}
