"""The text format written by hand: a pair's lines of every family, rendered once per poll.

A gauge's lines are the same bytes in the classic text format and in OpenMetrics, so they are written
here once and the exposition serves them in either. Unknown values are absent, never NaN or -1, and no
sample has a timestamp. Writing the lines directly, not through prometheus_client, is what makes
scrapes cheap. Every line of a pair carries its target's labels besides the family's own.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client.utils import floatToGoString

from exporter.cloud.models import GROUP_STATES
from exporter.config.settings import MetricsSettings
from exporter.metrics.families import KE, KLE, KLE_CLUSTER, P
from exporter.polling.snapshot import PairState
from exporter.polling.status import STATUSES


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def line(name: str, labels: Mapping[str, str], value: float) -> str:
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
    return f"{name}{{{inner}}} {floatToGoString(value)}\n"  # type: ignore[no-untyped-call]


class _Lines:
    """Lines per family for one pair."""

    def __init__(self) -> None:
        self.by_family: dict[str, list[str]] = {}

    def add(self, family: str, labels: dict[str, str], value: float) -> None:
        self.by_family.setdefault(family, []).append(line(family, labels, value))

    def joined(self) -> dict[str, str]:
        return {k: "".join(v) for k, v in self.by_family.items()}


def pair_lines(state: PairState, options: MetricsSettings) -> dict[str, str]:
    """Every line of every pair-derived family for one pair, by family name (end offsets excluded)."""
    out = _Lines()
    if state.polls == 0:
        return {}
    pair = state.pair
    group = {**dict(pair.labels), "instance_id": pair.instance_id, "group": pair.group}
    out.add(P + "up", group, 1.0 if state.up else 0.0)
    if state.last_success is not None:
        out.add(P + "last_success_timestamp_seconds", group, state.last_success)
    # configuration, not data: served with up, whatever the poll gave, so an alert rule always finds them
    out.add(P + "lag_seconds_threshold", group, pair.thresholds.lag_seconds)
    if pair.thresholds.lag:
        out.add(P + "lag_threshold", group, float(pair.thresholds.lag))
    if state.progress is not None:
        if options.granularity != "group":
            _topic_lines(out, state, group, options)
        _group_lines(out, state, group)
        if "kafka_exporter" in options.compat:
            _compat_lines(out, state, options)
        if "kafka_lag_exporter" in options.compat:
            _kle_lines(out, state, options)
    return out.joined()


# kafka-lag-exporter's member labels of a partition no member holds: it says "unknown" for each
# (KafkaClient.getGroupPartitionsInfo in github.com/seglo/kafka-lag-exporter).
_NO_MEMBER = "unknown"


def _kle_lines(out: _Lines, state: PairState, options: MetricsSettings) -> None:
    """kafka-lag-exporter's per-group families; values equal to the native ones (docs/metrics.md).

    Where kafka-lag-exporter reports NaN (no committed offset, too few points for a time lag) the
    series is absent, as the native one is; sums and maxima are over the partitions whose lag is known.
    """
    progress = state.progress
    assert progress is not None
    group = {**dict(state.pair.labels), KLE_CLUSTER: state.pair.instance_id, "group": state.pair.group}
    time_lags = state.insight.time_lags if state.insight is not None else {}
    lags: list[int] = []
    for topic in progress.topics:
        by_topic = {**group, "topic": topic.topic}
        topic_lags = [p.lag for p in topic.partitions if p.lag is not None]
        lags += topic_lags
        if topic_lags and options.granularity != "group":
            out.add(KLE + "topic_sum_lag", by_topic, float(sum(topic_lags)))
        if options.granularity != "partition":
            continue
        for p in topic.partitions:
            held = bool(p.member_id)  # a client's id or address without a member is no member's
            labels = {**by_topic, "partition": str(p.partition),
                      "member_host": p.client_ip if held and p.client_ip else _NO_MEMBER,
                      "consumer_id": p.member_id if held else _NO_MEMBER,
                      "client_id": p.client_id if held and p.client_id else _NO_MEMBER}
            if p.consumer_offset is not None:
                out.add(KLE + "offset", labels, float(p.consumer_offset))
            if p.lag is not None:
                out.add(KLE + "lag", labels, float(p.lag))
            seconds = time_lags.get((topic.topic, p.partition))
            if seconds is not None:
                out.add(KLE + "lag_seconds", labels, seconds)
    if lags:
        out.add(KLE + "max_lag", group, float(max(lags)))
        out.add(KLE + "sum_lag", group, float(sum(lags)))
    if state.insight is not None and state.insight.max_time_lag is not None:
        out.add(KLE + "max_lag_seconds", group, state.insight.max_time_lag)


def _compat_lines(out: _Lines, state: PairState, options: MetricsSettings) -> None:
    """kafka_exporter's per-group families; values equal to the native ones (docs/metrics.md)."""
    assert state.progress is not None
    group = {**dict(state.pair.labels), "instance_id": state.pair.instance_id, "consumergroup": state.pair.group}
    out.add(KE + "members", group, float(len(state.progress.member_ids)))
    if options.granularity == "group":
        return
    for topic in state.progress.topics:
        by_topic = {**group, "topic": topic.topic}
        committed = [p for p in topic.partitions if p.consumer_offset is not None]
        lagged = [p for p in topic.partitions if p.lag is not None]
        # no committed offset (or no lag): absent, where kafka_exporter would say -1
        if committed:
            out.add(KE + "current_offset_sum", by_topic, float(sum(p.consumer_offset or 0 for p in committed)))
        if lagged:
            out.add(KE + "lag_sum", by_topic, float(sum(p.lag or 0 for p in lagged)))
        if options.granularity != "partition":
            continue
        for p in topic.partitions:
            labels = {**by_topic, "partition": str(p.partition)}
            if p.consumer_offset is not None:
                out.add(KE + "current_offset", labels, float(p.consumer_offset))
            if p.lag is not None:
                out.add(KE + "lag", labels, float(p.lag))


def _topic_lines(out: _Lines, state: PairState, group: dict[str, str], options: MetricsSettings) -> None:
    assert state.progress is not None
    insight = state.insight
    time_lags = insight.time_lags if insight is not None else {}
    lost_by_partition = insight.lost if insight is not None else {}
    consume = insight.rates.consume if insight is not None and insight.rates is not None else {}
    for topic in state.progress.topics:
        by_topic = {**group, "topic": topic.topic}
        if topic.total_diff is not None:
            out.add(P + "topic_lag", by_topic, float(topic.total_diff))
        rate = consume.get(topic.topic)
        if rate is not None:
            out.add(P + "consume_rate", by_topic, rate)
        if topic.last_timestamp_ms is not None:
            out.add(P + "topic_last_consumed_timestamp_seconds", by_topic, topic.last_timestamp_ms / 1000)
        if options.granularity != "partition":
            continue
        for p in topic.partitions:
            labels = {**by_topic, "partition": str(p.partition)}
            if p.lag is not None:  # from the offsets, or the service's Accumulate where one is missing
                out.add(P + "lag", labels, float(p.lag))
            if p.consumer_offset is not None:
                out.add(P + "current_offset", labels, float(p.consumer_offset))
            if p.last_timestamp_ms is not None:
                out.add(P + "last_consumed_timestamp_seconds", labels, p.last_timestamp_ms / 1000)
            if options.member_labels and p.member_id:
                member = {"member_id": p.member_id, "client_id": p.client_id, "client_ip": p.client_ip}
                out.add(P + "partition_assignment_info", {**labels, **member}, 1.0)
            seconds = time_lags.get((topic.topic, p.partition))
            if seconds is not None:
                out.add(P + "lag_seconds", labels, seconds)
            lost = lost_by_partition.get((topic.topic, p.partition))
            if lost is not None:
                out.add(P + "lost_messages", labels, lost)


def _group_lines(out: _Lines, state: PairState, group: dict[str, str]) -> None:
    progress, insight = state.progress, state.insight
    assert progress is not None
    if progress.total_diff is not None:
        out.add(P + "group_lag", group, float(progress.total_diff))
    for name in GROUP_STATES:
        out.add(P + "state", {**group, "state": name}, 1.0 if progress.state == name else 0.0)
    out.add(P + "members", group, float(len(progress.member_ids)))
    newest = progress.newest_rebalance
    if newest is not None:
        for family, value in (("rebalance_generation", newest.generation),
                              ("last_rebalance_timestamp_seconds", newest.timestamp_seconds),
                              ("last_rebalance_duration_seconds", newest.duration_seconds)):
            if value is not None:
                out.add(P + family, group, float(value))
    if insight is not None:
        if insight.max_time_lag is not None:
            out.add(P + "max_lag_seconds", group, insight.max_time_lag)
        for name in STATUSES:
            out.add(P + "status", {**group, "status": name}, 1.0 if insight.status == name else 0.0)
        if insight.rates is not None and insight.rates.catch_up is not None:
            out.add(P + "catch_up_seconds", group, insight.rates.catch_up)
        if insight.retention_margin is not None:
            out.add(P + "retention_margin_seconds", group, insight.retention_margin)
