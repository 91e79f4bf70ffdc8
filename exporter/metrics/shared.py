"""Series shared by every group that reads a topic: a partition's end and earliest offsets, a topic's partition
count and produce rate.

Such a series is one per partition or topic however many groups report it; the exposition keeps one line
each, with the highest value reported. This module gives a pair's values for them, keyed by topic, and
writes their line.
"""

from __future__ import annotations

from exporter.config.settings import MetricsSettings
from exporter.metrics.families import (
    EARLIEST_OFFSET,
    END_OFFSET,
    KE_PARTITION_OFFSET,
    KE_TOPIC_PARTITIONS,
    PRODUCE_RATE,
)
from exporter.metrics.render import line
from exporter.polling.snapshot import PairState

# Series shared by every group that reads a topic are keyed (family, instance_id, topic) and valued per
# partition (None: the topic's own series). Keyed by topic, not by partition, so the bookkeeping costs a
# small dict per topic.
TopicKey = tuple[str, str, str]
SharedValues = dict[TopicKey, dict[int | None, float]]


def shared_line(key: TopicKey, partition: int | None, value: float) -> str:
    """The one line of a shared series (see :func:`shared_values`)."""
    family, instance_id, topic = key
    labels = {"instance_id": instance_id, "topic": topic}
    if partition is not None:
        labels["partition"] = str(partition)
    return line(family, labels, float(value))


def shared_values(state: PairState, options: MetricsSettings) -> SharedValues:
    """The values this pair's data gives the shared series (nothing without data), per topic.

    Shared series are per partition or per topic, not per group: every group reading the topic
    reports them, and the exposition keeps one line each, with the highest value reported. The
    kafka_exporter offset family has the end offsets' values and gets the same dict, not a copy.
    """
    if state.progress is None or options.granularity == "group":
        return {}
    compat = options.compat == "kafka_exporter"
    partitions = options.granularity == "partition"
    instance_id = state.pair.instance_id
    out: SharedValues = {}
    insight = state.insight
    produced = insight.rates.produce if insight is not None and insight.rates is not None else {}
    earliest = insight.earliest if insight is not None else {}
    for topic in state.progress.topics:
        if compat and topic.partitions:
            out[(KE_TOPIC_PARTITIONS, instance_id, topic.topic)] = {None: len(topic.partitions)}
        rate = produced.get(topic.topic)
        if rate is not None:
            out[(PRODUCE_RATE, instance_id, topic.topic)] = {None: rate}
        if not partitions:
            continue
        first = earliest.get(topic.topic)
        if first:
            out[(EARLIEST_OFFSET, instance_id, topic.topic)] = dict(first.items())
        ends: dict[int | None, float] = {p.partition: p.broker_offset for p in topic.partitions
                                       if p.broker_offset is not None}
        key = (END_OFFSET, instance_id, topic.topic)
        if key in out:  # the topic listed twice: a repeated partition's last value wins, as in the parser
            out[key].update(ends)
        elif ends:
            out[key] = ends
    if compat:
        for (family, instance, name), values in list(out.items()):
            if family == END_OFFSET:
                out[(KE_PARTITION_OFFSET, instance, name)] = values
    return out
