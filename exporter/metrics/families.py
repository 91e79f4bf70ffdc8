"""Pair-derived metric families: each one's name, help text and level, declared once.

Every family fed by a pair's poll is a gauge with ``instance_id`` and ``group`` (plus ``topic`` and
``partition`` at their level), plus the labels of the pair's target. ``families`` picks the ones served
under the metrics settings, in exposition order; ``metrics.compat`` adds kafka_exporter's and
kafka-lag-exporter's names (docs/metrics.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from exporter.config.settings import MetricsSettings

P = "alikafka_consumergroup_"
END_OFFSET = "alikafka_topic_partition_end_offset"
EARLIEST_OFFSET = "alikafka_topic_partition_earliest_offset"
PRODUCE_RATE = "alikafka_topic_produce_rate"
KE = "kafka_consumergroup_"  # kafka_exporter's consumer group families (compat)
KE_PARTITION_OFFSET = "kafka_topic_partition_current_offset"
KE_TOPIC_PARTITIONS = "kafka_topic_partitions"
KLE = "kafka_consumergroup_group_"  # kafka-lag-exporter's consumer group families (compat)
KLE_LATEST_OFFSET = "kafka_partition_latest_offset"
KLE_EARLIEST_OFFSET = "kafka_partition_earliest_offset"
# kafka-lag-exporter names the instance cluster_name, and the member of a partition member_host, consumer_id
# and client_id (Metrics.scala of github.com/seglo/kafka-lag-exporter, the project's last release, 0.8.2).
KLE_CLUSTER = "cluster_name"


@dataclass(frozen=True, slots=True)
class Family:
    """A gauge family: its name, help text and the level it lives at."""

    name: str
    help: str
    level: Literal["partition", "topic", "group", "health"]
    shared: bool = False  # one series per partition or topic, whichever groups report it (TopicKey)

    def header(self) -> str:
        """The ``# HELP`` and ``# TYPE`` lines."""
        text = self.help.replace("\\", "\\\\").replace("\n", "\\n")
        return f"# HELP {self.name} {text}\n# TYPE {self.name} gauge\n"


_FAMILIES = (
    Family(P + "lag", "Messages not yet consumed: max(0, BrokerOffset - ConsumerOffset).", "partition"),
    Family(P + "current_offset", "The group's committed offset (ConsumerOffset).", "partition"),
    Family(END_OFFSET, "The partition's latest offset (BrokerOffset), highest value seen over the groups reading it.",
           "partition", shared=True),
    Family(EARLIEST_OFFSET, "The partition's earliest retained offset (GetTopicStatus MinOffset), highest value seen.",
           "partition", shared=True),
    Family(P + "lost_messages", "Messages deleted before the group read them: max(0, earliest retained offset - "
           "committed offset); 0 when none.", "partition"),
    Family(P + "last_consumed_timestamp_seconds",
           "Produce time of the last consumed message of the partition, in seconds since the epoch.", "partition"),
    Family(P + "partition_assignment_info", "The member a partition is assigned to; always 1.", "partition"),
    Family(P + "lag_seconds",
           "Estimated age of the oldest unconsumed message of the partition (0 when lag is 0); see docs/lag.md.",
           "partition"),
    Family(P + "topic_lag", "The topic's unconsumed messages (TotalDiff).", "topic"),
    Family(P + "topic_last_consumed_timestamp_seconds",
           "Produce time of the last consumed message of the topic, in seconds since the epoch.", "topic"),
    Family(P + "consume_rate", "Messages per second the group committed on the topic over the recent window.",
           "topic"),
    Family(PRODUCE_RATE, "Messages per second appended to the topic over the recent window (highest of the groups' "
           "readings).", "topic", shared=True),
    Family(P + "group_lag", "The group's unconsumed messages over all topics (TotalDiff).", "group"),
    Family(P + "state", "1 for the group's current state, 0 for the others.", "group"),
    Family(P + "members", "Distinct MemberId values in the answer.", "group"),
    Family(P + "rebalance_generation", "Generation of the newest rebalance record.", "group"),
    Family(P + "last_rebalance_timestamp_seconds", "When the newest rebalance happened, in seconds since the epoch.",
           "group"),
    Family(P + "last_rebalance_duration_seconds", "How long the newest rebalance took.", "group"),
    Family(P + "max_lag_seconds", "The largest lag_seconds over the group's partitions.", "group"),
    Family(P + "status", "1 for the group's evaluated status, 0 for the others; rules in docs/lag.md.", "group"),
    Family(P + "catch_up_seconds", "Seconds until the group's lag reaches 0 if the recent consume and produce rates "
           "hold; 0 when caught up; absent when the lag is not shrinking.", "group"),
    Family(P + "retention_margin_seconds", "Instance retention minus the group's max time lag, at least 0 (0 while "
           "messages are lost): how long until unread messages are deleted if the group makes no progress.", "group"),
    Family(P + "up", "1 if the last poll of this pair succeeded, else 0.", "health"),
    Family(P + "lag_seconds_threshold",
           "The configured time lag threshold of the pair (its target's thresholds.lag_seconds, or the default).",
           "health"),
    Family(P + "lag_threshold",
           "The configured offset lag threshold of the pair in messages (thresholds.lag); absent when not set.",
           "health"),
    Family(P + "last_success_timestamp_seconds",
           "When this pair was last polled successfully, in seconds since the epoch.", "health"),
)

# kafka_exporter's names for the same data (metrics.compat: kafka_exporter); help texts are ours.
_COMPAT_FAMILIES = (
    Family(KE + "current_offset", "kafka_exporter compatible: alikafka_consumergroup_current_offset.", "partition"),
    Family(KE + "lag", "kafka_exporter compatible: alikafka_consumergroup_lag.", "partition"),
    Family(KE_PARTITION_OFFSET, "kafka_exporter compatible: alikafka_topic_partition_end_offset.", "partition",
           shared=True),
    Family(KE + "current_offset_sum",
           "kafka_exporter compatible: committed offsets of the group summed over the topic's partitions.", "topic"),
    Family(KE + "lag_sum", "kafka_exporter compatible: kafka_consumergroup_lag summed over the topic's partitions.",
           "topic"),
    Family(KE_TOPIC_PARTITIONS, "kafka_exporter compatible: partitions of the topic in the GetConsumerProgress answer.",
           "topic", shared=True),
    Family(KE + "members", "kafka_exporter compatible: alikafka_consumergroup_members.", "group"),
)


# kafka-lag-exporter's names for the same data (metrics.compat: kafka_lag_exporter); help texts are ours.
# Its per-partition families carry the member's labels too (member_host, consumer_id, client_id).
_KLE_FAMILIES = (
    Family(KLE + "offset", "kafka-lag-exporter compatible: alikafka_consumergroup_current_offset.", "partition"),
    Family(KLE + "lag", "kafka-lag-exporter compatible: alikafka_consumergroup_lag.", "partition"),
    Family(KLE + "lag_seconds", "kafka-lag-exporter compatible: alikafka_consumergroup_lag_seconds.", "partition"),
    Family(KLE_LATEST_OFFSET, "kafka-lag-exporter compatible: alikafka_topic_partition_end_offset.", "partition",
           shared=True),
    # its values are the earliest retained offsets (GetTopicStatus MinOffset): a series only where those are known
    Family(KLE_EARLIEST_OFFSET, "kafka-lag-exporter compatible: alikafka_topic_partition_earliest_offset.",
           "partition", shared=True),
    Family(KLE + "topic_sum_lag",
           "kafka-lag-exporter compatible: the group's offset lag summed over the topic's partitions.", "topic"),
    Family(KLE + "max_lag", "kafka-lag-exporter compatible: the largest offset lag over the group's partitions.",
           "group"),
    Family(KLE + "max_lag_seconds", "kafka-lag-exporter compatible: alikafka_consumergroup_max_lag_seconds.",
           "group"),
    Family(KLE + "sum_lag", "kafka-lag-exporter compatible: the group's offset lag summed over its partitions.",
           "group"),
)
COMPAT_FAMILIES = {"kafka_exporter": _COMPAT_FAMILIES, "kafka_lag_exporter": _KLE_FAMILIES}


def families(options: MetricsSettings) -> tuple[Family, ...]:
    """The pair-derived families served under ``options``, in exposition order."""
    keep = {"partition": ("partition", "topic", "group", "health"), "topic": ("topic", "group", "health"),
            "group": ("group", "health")}[options.granularity]
    every = _FAMILIES + tuple(f for name, more in COMPAT_FAMILIES.items() if name in options.compat for f in more)
    return tuple(
        f for f in every
        if f.level in keep and (f.name != P + "partition_assignment_info" or options.member_labels)
    )
