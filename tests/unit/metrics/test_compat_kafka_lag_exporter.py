"""``metrics.compat: [kafka_lag_exporter]``: kafka-lag-exporter's family and label names for the same data.

A golden file pins the families (UPDATE_GOLDEN=1 rewrites it); every value equals the native one it is
named after, read through the one sample parser; the granularity trims them at their level; both compat
sets can be on together. kafka-lag-exporter's own Grafana dashboard queries are run against the demo in
a real Prometheus in tests/e2e/test_dashboards.py.
"""

from __future__ import annotations

import os
from typing import Literal

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from exporter.config.settings import MetricsSettings
from exporter.metrics.families import families
from tests.support.samples import samples, series
from tests.support.tools import FIXTURES, ROOT
from tests.unit.metrics.test_compat import render

GOLDEN = FIXTURES / "golden-compat-kafka-lag-exporter.prom"
PARTITION = {"kafka_consumergroup_group_offset", "kafka_consumergroup_group_lag",
             "kafka_consumergroup_group_lag_seconds", "kafka_partition_latest_offset"}
TOPIC = {"kafka_consumergroup_group_topic_sum_lag"}
GROUP = {"kafka_consumergroup_group_max_lag", "kafka_consumergroup_group_max_lag_seconds",
         "kafka_consumergroup_group_sum_lag"}
KLE = PARTITION | TOPIC | GROUP
# declared with the partition level; its series come with the earliest retained offsets (GetTopicStatus)
EARLIEST = "kafka_partition_earliest_offset"
MEMBER = ("member_host", "consumer_id", "client_id")
Granularity = Literal["partition", "topic", "group"]
Series = dict[frozenset[tuple[str, str]], float]


def options(granularity: Granularity = "partition") -> MetricsSettings:
    return MetricsSettings(granularity=granularity, compat=("kafka_lag_exporter",), max_series=0)


def blocks(text: str) -> str:
    """Only kafka-lag-exporter's families' HELP, TYPE and sample lines."""
    return "".join(line for line in text.splitlines(keepends=True)
                   if (line.split()[2] if line.startswith("#") else line.split("{")[0]) in KLE | {EARLIEST})


def native(labels: frozenset[tuple[str, str]], drop: tuple[str, ...] = ()) -> frozenset[tuple[str, str]]:
    """kafka-lag-exporter's labels in native terms: cluster_name is instance_id, member labels dropped."""
    return frozenset(("instance_id" if k == "cluster_name" else k, v) for k, v in labels if k not in drop)


def as_native(found: Series, drop: tuple[str, ...] = ()) -> Series:
    return {native(labels, drop): value for labels, value in found.items()}


def test_golden() -> None:
    """kafka-lag-exporter's families of the fixed snapshot match golden-compat-kafka-lag-exporter.prom."""
    text = blocks(render(options()))
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()


def test_label_names_are_kafka_lag_exporters() -> None:
    """The label sets of its Metrics.scala: cluster_name, group, topic, partition and the member's three."""
    text = render(options())
    by_family: dict[str, set[frozenset[str]]] = {}
    for s in samples(text):
        if s.name in KLE:
            by_family.setdefault(s.name, set()).add(frozenset(s.labels))
    partition = frozenset({"cluster_name", "group", "topic", "partition", *MEMBER})
    assert by_family == {
        **{key: {partition} for key in PARTITION - {"kafka_partition_latest_offset"}},
        "kafka_partition_latest_offset": {frozenset({"cluster_name", "topic", "partition"})},
        "kafka_consumergroup_group_topic_sum_lag": {frozenset({"cluster_name", "group", "topic"})},
        **{key: {frozenset({"cluster_name", "group"})} for key in GROUP},
    }


def test_values_equal_the_native_families() -> None:
    """Each family carries the native value it is named after; sums and maxima are over the native lags."""
    text = render(options())
    for kle, own in (("offset", "current_offset"), ("lag", "lag"), ("lag_seconds", "lag_seconds")):
        assert as_native(series(text, f"kafka_consumergroup_group_{kle}"), MEMBER) == \
            series(text, f"alikafka_consumergroup_{own}"), kle
    assert as_native(series(text, "kafka_partition_latest_offset")) == \
        series(text, "alikafka_topic_partition_end_offset")
    earliest = series(text, EARLIEST)  # from the earliest retained offsets of the pairs' data
    assert earliest and as_native(earliest) == series(text, "alikafka_topic_partition_earliest_offset")
    assert as_native(series(text, "kafka_consumergroup_group_max_lag_seconds")) == \
        series(text, "alikafka_consumergroup_max_lag_seconds")
    lags = series(text, "alikafka_consumergroup_lag")
    by_topic: dict[frozenset[tuple[str, str]], list[float]] = {}
    by_group: dict[frozenset[tuple[str, str]], list[float]] = {}
    for labels, value in lags.items():
        by_topic.setdefault(frozenset(kv for kv in labels if kv[0] != "partition"), []).append(value)
        by_group.setdefault(frozenset(kv for kv in labels if kv[0] in ("instance_id", "group")), []).append(value)
    assert as_native(series(text, "kafka_consumergroup_group_topic_sum_lag")) == \
        {k: sum(v) for k, v in by_topic.items()}
    assert as_native(series(text, "kafka_consumergroup_group_sum_lag")) == {k: sum(v) for k, v in by_group.items()}
    assert as_native(series(text, "kafka_consumergroup_group_max_lag")) == {k: max(v) for k, v in by_group.items()}
    # the member labels of a partition come from the answer's ClientIp, MemberId and ClientId
    lag = [s for s in samples(text) if s.name == "kafka_consumergroup_group_lag"
           and s.labels["group"] == "orders-consumer" and s.labels["partition"] == "0"]
    assert [tuple(lag[0].labels[k] for k in MEMBER)] == [("10.0.0.9", "m-1", "client-0")]
    # never NaN or negative, where kafka-lag-exporter would say NaN
    assert all(s.value >= 0 for s in samples(text) if s.name in KLE)


def test_a_partition_no_member_holds_says_unknown() -> None:
    """kafka-lag-exporter's own word for a partition without a member (a group with none): unknown."""
    text = render(options())
    billing = [s for s in samples(text) if s.name == "kafka_consumergroup_group_lag" and s.labels["group"] == "billing"]
    assert billing and all(s.labels[k] == "unknown" for s in billing for k in MEMBER)


@pytest.mark.parametrize(("granularity", "expected"), [
    ("partition", KLE), ("topic", TOPIC | GROUP), ("group", GROUP)])
def test_granularity_trims_the_families(granularity: Granularity, expected: set[str]) -> None:
    opts = options(granularity)
    assert {f.name for f in families(opts)} & (KLE | {EARLIEST}) == expected | ({EARLIEST} if granularity == "partition"
                                                                               else set())
    text = render(opts)
    assert {name for name in KLE if series(text, name)} == expected


def test_both_compat_sets_together_and_off_by_default() -> None:
    both = MetricsSettings(compat=("kafka_exporter", "kafka_lag_exporter"), max_series=0)
    text = render(both)
    assert {name for name in KLE if series(text, name)} == KLE
    assert series(text, "kafka_consumergroup_lag_sum") and series(text, "kafka_topic_partitions")
    assert blocks(text) == blocks(render(options()))
    assert not {f.name for f in families(MetricsSettings())} & KLE
    parsed = [f.name for f in text_string_to_metric_families(render(both, openmetrics=True))]
    assert sorted(n for n in parsed if n in KLE) == sorted(KLE)


def test_documented_with_samples_from_the_golden_file() -> None:
    doc = (ROOT / "docs" / "metrics.md").read_text()
    section = doc.split("## Migrating from kafka-lag-exporter", 1)[1].split("\n## ", 1)[0]
    for family in KLE:
        assert f"| `{family}` |" in section, f"{family} has no row"
        assert f"\n{family}{{" in section, f"{family} has no sample"
    golden = GOLDEN.read_text().splitlines()
    shown = [line for line in section.splitlines() if line.startswith("kafka_")]
    assert shown and all(line in golden for line in shown), "docs samples differ from the golden file"
