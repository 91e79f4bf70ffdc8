"""Retention in the simulated service: old segments are deleted as time passes, and early when the disk fills.

alikafka keeps ``MsgRetain`` hours per instance (24 to 480, default 72), deletes whole segments, and at 85% disk
usage deletes the earliest messages whatever their age (https://www.alibabacloud.com/help/en/apsaramq-for-kafka/
why-is-an-expired-message-retained, https://www.alibabacloud.com/help/doc-detail/154480.htm). Here segments roll
every ``segment_seconds`` and expire as soon as they may (the service waits for 04:00 at low disk usage: earlier
is the harsher case), so the earliest offset follows from the production curve and the clock; nothing is stored.
A ``disk_full`` episode keeps only the newest ``keep`` seconds while it lasts; what it deleted stays deleted.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from exporter.simulator.workload import Instance, PartitionCurve, Topic

DEFAULT_MSG_RETAIN = 72  # hours: alikafka's default (GetInstanceList MsgRetain; the console's default)
DEFAULT_SEGMENT_SECONDS = 600.0


@dataclass(frozen=True, slots=True)
class InstanceRetention:
    """One instance's retention: MsgRetain hours and how often its partitions roll a new segment."""

    msg_retain: int = DEFAULT_MSG_RETAIN
    segment_seconds: float = DEFAULT_SEGMENT_SECONDS

    @property
    def seconds(self) -> float:
        """The retention time in seconds."""
        return self.msg_retain * 3600.0


@dataclass(slots=True)
class DiskFull:
    """A disk-full episode: from ``started`` (until ``ended``), only the newest ``keep`` seconds stay."""

    instance_id: str | None  # None: every instance
    started: float
    keep: float
    ended: float = math.inf


class RetentionModel:
    """Earliest retained offsets of every partition, from per-instance retention and disk-full episodes."""

    def __init__(self, instances: dict[str, InstanceRetention] | None = None) -> None:
        self.instances: dict[str, InstanceRetention] = dict(instances or {})
        self.episodes: list[DiskFull] = []

    def of(self, instance_id: str) -> InstanceRetention:
        """The retention of an instance (the default when the scenario did not set one)."""
        return self.instances.get(instance_id) or InstanceRetention()

    def disk_full(self, instance_id: str | None, at: float, keep: float) -> None:
        """The disk of ``instance_id`` (None: every instance) fills at ``at``: keep only the newest ``keep`` s."""
        self.episodes.append(DiskFull(instance_id, at, max(0.0, keep)))

    def disk_cleared(self, at: float) -> None:
        """Every disk-full episode ends at ``at`` (what it deleted stays deleted)."""
        for episode in self.episodes:
            episode.ended = min(episode.ended, at)

    def _cutoff(self, instance_id: str, now: float) -> float:
        """The produce time before which the instance has deleted messages (segment boundaries aside)."""
        cutoff = now - self.of(instance_id).seconds
        for episode in self.episodes:
            if episode.instance_id in (None, instance_id) and episode.started <= now:
                cutoff = max(cutoff, min(now, episode.ended) - episode.keep)
        return cutoff

    def earliest(self, instance_id: str, curve: PartitionCurve, now: float) -> int:
        """The earliest offset still retained on a partition at ``now`` (MinOffset).

        A segment goes only as a whole, once every message in it is past the cutoff, and the segment being
        written (the active one) is never deleted.
        """
        if now <= curve.start:
            return curve.base
        segment = self.of(instance_id).segment_seconds
        active = math.floor((now - curve.start) / segment)
        gone = math.floor((self._cutoff(instance_id, now) - curve.start) / segment)  # whole segments past it
        first_kept = min(max(0, gone), active)
        return curve.offset(curve.start + first_kept * segment) if first_kept > 0 else curve.base


def topic_status(model: RetentionModel, inst: Instance, topic: Topic, now: float) -> dict[str, Any]:
    """GetTopicStatus's ``TopicStatus`` for ``topic`` at ``now``, in the documented shape
    (https://www.alibabacloud.com/help/en/apsaramq-for-kafka/api-gettopicstatus; the official Python SDK's
    ``GetTopicStatusResponseBodyTopicStatus`` reads the same keys: TotalCount, LastTimeStamp with a capital S,
    OffsetTable.OffsetTable[] of Topic, Partition, MinOffset, MaxOffset, LastUpdateTimestamp)."""
    table: list[dict[str, Any]] = []
    total, last = 0, -1
    for index in range(topic.partition_count(now)):
        curve = topic.curve(index)
        end = curve.offset(now)
        first = min(model.earliest(inst.instance_id, curve, now), end)
        updated = int(curve.produce_time(max(curve.base, end - 1)) * 1000) if end > curve.base else -1
        table.append({"Topic": topic.name, "Partition": index, "MinOffset": first, "MaxOffset": end,
                      "LastUpdateTimestamp": updated})
        total += end - first
        last = max(last, updated)
    return {"TotalCount": total, "LastTimeStamp": last, "OffsetTable": {"OffsetTable": table}}


def lost(model: RetentionModel, inst: Instance, topic: Topic, partition: int, committed: int, now: float) -> int:
    """Messages a group with ``committed`` on a partition can no longer read: max(0, earliest - committed)."""
    return max(0, model.earliest(inst.instance_id, topic.curve(partition), now) - committed)


def model_of(specs: Iterable[tuple[str, int, float]]) -> RetentionModel:
    """A model from (instance id, MsgRetain hours, segment seconds) triples."""
    return RetentionModel({i: InstanceRetention(hours, segment) for i, hours, segment in specs})
