"""Series shared by every group that reads a topic: a partition's end and earliest offsets, a topic's partition
count and produce rate.

Such a series is one per partition or topic however many groups report it; the exposition keeps one line
each, with the highest value reported. This module gives a pair's values for them, keyed by topic, and
writes their line. Groups whose targets give them different labels share nothing: each label set has its
own series, carrying those labels, so a query by a target's label finds the end offsets of its groups.
"""

from __future__ import annotations

from exporter.config.settings import MetricsSettings
from exporter.metrics.families import (
    EARLIEST_OFFSET,
    END_OFFSET,
    KE_PARTITION_OFFSET,
    KE_TOPIC_PARTITIONS,
    KLE_CLUSTER,
    KLE_EARLIEST_OFFSET,
    KLE_LATEST_OFFSET,
    PRODUCE_RATE,
)
from exporter.metrics.render import line
from exporter.polling.snapshot import PairState

# Series shared by every group that reads a topic are keyed (family, instance_id, topic, the target's labels)
# and valued per partition (None: the topic's own series). Keyed by topic, not by partition, so the
# bookkeeping costs a small dict per topic.
TopicKey = tuple[str, str, str, tuple[tuple[str, str], ...]]
SharedValues = dict[TopicKey, dict[int | None, float]]
# The instance's label name per shared family: kafka-lag-exporter calls it cluster_name.
_INSTANCE_LABEL = {KLE_LATEST_OFFSET: KLE_CLUSTER, KLE_EARLIEST_OFFSET: KLE_CLUSTER}
# Compat families with a native shared family's values, and the metrics.compat entry serving each.
_COPIES = {END_OFFSET: ((KE_PARTITION_OFFSET, "kafka_exporter"), (KLE_LATEST_OFFSET, "kafka_lag_exporter")),
           EARLIEST_OFFSET: ((KLE_EARLIEST_OFFSET, "kafka_lag_exporter"),)}


def shared_line(key: TopicKey, partition: int | None, value: float) -> str:
    """The one line of a shared series (see :func:`shared_values`)."""
    family, instance_id, topic, extra = key
    labels = {**dict(extra), _INSTANCE_LABEL.get(family, "instance_id"): instance_id, "topic": topic}
    if partition is not None:
        labels["partition"] = str(partition)
    return line(family, labels, float(value))


def shared_values(state: PairState, options: MetricsSettings) -> SharedValues:
    """The values this pair's data gives the shared series (nothing without data), per topic.

    Shared series are per partition or per topic, not per group: every group reading the topic
    reports them, and the exposition keeps one line each, with the highest value reported. The compat
    end offset families have the end offsets' values and get the same dict, not a copy.
    """
    if state.progress is None or options.granularity == "group":
        return {}
    compat = "kafka_exporter" in options.compat
    copies = {native: [copy for copy, wanted in served if wanted in options.compat]
              for native, served in _COPIES.items()}
    partitions = options.granularity == "partition"
    instance_id, labels = state.pair.instance_id, state.pair.labels
    out: SharedValues = {}
    insight = state.insight
    produced = insight.rates.produce if insight is not None and insight.rates is not None else {}
    earliest = insight.earliest if insight is not None else {}
    for topic in state.progress.topics:
        if compat and topic.partitions:
            out[(KE_TOPIC_PARTITIONS, instance_id, topic.topic, labels)] = {None: len(topic.partitions)}
        rate = produced.get(topic.topic)
        if rate is not None:
            out[(PRODUCE_RATE, instance_id, topic.topic, labels)] = {None: rate}
        if not partitions:
            continue
        first = earliest.get(topic.topic)
        if first:
            out[(EARLIEST_OFFSET, instance_id, topic.topic, labels)] = dict(first.items())
        ends: dict[int | None, float] = {p.partition: p.broker_offset for p in topic.partitions
                                       if p.broker_offset is not None}
        key = (END_OFFSET, instance_id, topic.topic, labels)
        if key in out:  # the topic listed twice: a repeated partition's last value wins, as in the parser
            out[key].update(ends)
        elif ends:
            out[key] = ends
    if options.compat:  # the compat copies of a shared family have its values: the same dict, not a copy
        for (family, instance, name, extra), values in list(out.items()):
            for copy in copies.get(family, ()):
                out[(copy, instance, name, extra)] = values
    return out
