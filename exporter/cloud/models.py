"""Lenient parsing of the API's answers (GetConsumerProgress, GetInstanceList, GetConsumerList, GetTopicStatus)
into small frozen value objects.

The documented schema and the live service disagree (list wrappers that arrive as a list, one object or
nothing; numbers as strings; the case of ``state``), so parsing accepts every such shape and raises
:class:`ParseError` only for what cannot be understood: one odd answer fails one pair, never the process.
Unknown values become ``None``, never sentinels such as -1.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from exporter.cloud.decoding import ParseError, kind, lookup

__all__ = ["ParseError"]  # defined with the decoding step every answer passes; raised here for shapes too

GROUP_STATES = (
    "stable",
    "empty",
    "dead",
    "preparing_rebalance",
    "completing_rebalance",
    "unknown",
)

# LastRebalanceTimestamp is documented in milliseconds while the doc's own sample is in seconds;
# anything above this (year 5138 in seconds, 1973 in ms) must be milliseconds.
_MS_THRESHOLD = 100_000_000_000
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


@dataclass(frozen=True, slots=True)
class PartitionProgress:
    """One partition as seen by one consumer group."""

    partition: int
    broker_offset: int | None
    consumer_offset: int | None  # None: the group has no committed offset here
    last_timestamp_ms: int | None  # None: hidden, unsupported or never consumed
    member_id: str = ""
    client_id: str = ""
    client_ip: str = ""
    accumulate: int | None = None  # the service's own per-partition count (``Accumulate``); None when not sent

    @property
    def lag(self) -> int | None:
        """``max(0, BrokerOffset - ConsumerOffset)`` when both are known, else the service's ``Accumulate``.

        ``Accumulate`` has no description in any public source; Alibaba's accumulation FAQ defines the
        console's per-partition number as latest offset minus consumer offset (and, for a partition without
        a committed offset, latest minus earliest while a consumer is online, 0 when none is), which is what
        this field carries in the SDKs' samples. The offsets come first, so the lag always matches the end
        and committed offsets exported beside it; Accumulate fills in where one of them is missing or -1.
        None when neither is there.
        """
        if self.consumer_offset is not None and self.broker_offset is not None:
            return max(0, self.broker_offset - self.consumer_offset)
        return self.accumulate


@dataclass(frozen=True, slots=True)
class TopicProgress:
    """One topic of a consumer group, with its partitions."""

    topic: str
    total_diff: int | None
    last_timestamp_ms: int | None
    partitions: tuple[PartitionProgress, ...]


@dataclass(frozen=True, slots=True)
class RebalanceInfo:
    """One rebalance record of the group."""

    generation: int | None
    timestamp_seconds: float | None
    duration_seconds: float | None
    success: bool | None
    reason: str


@dataclass(frozen=True, slots=True)
class ConsumerProgress:
    """The parsed ``ConsumerProgress`` of one instance/group pair."""

    total_diff: int | None
    last_timestamp_ms: int | None
    state: str
    topics: tuple[TopicProgress, ...]
    rebalances: tuple[RebalanceInfo, ...]

    @property
    def member_ids(self) -> frozenset[str]:
        """Distinct non-empty MemberId values over all partitions."""
        return frozenset(
            p.member_id for t in self.topics for p in t.partitions if p.member_id
        )

    @property
    def newest_rebalance(self) -> RebalanceInfo | None:
        """The most recent rebalance record, by timestamp and then generation."""
        if not self.rebalances:
            return None
        return max(
            self.rebalances,
            key=lambda r: (r.timestamp_seconds or 0.0, r.generation or 0),
        )


def as_list(value: Any, inner_key: str) -> list[Any]:
    """Normalise ``{"X": [..]}``, ``{"X": {..}}``, ``[..]``, ``{..}`` without the key, or null."""
    if value is None:
        return []
    if isinstance(value, Mapping) and inner_key in value:
        value = value[inner_key]
        if value is None:
            return []
    if isinstance(value, list):
        return value
    if isinstance(value, Mapping):
        return [value]
    raise ParseError(f"{inner_key}: expected a list or an object, got {kind(value)}")


def as_int(value: Any, field: str) -> int | None:
    """An int64 from an int, an integral float or a numeric string; None when missing."""
    number = _integer(value, field)
    if number is not None and not _INT64_MIN <= number <= _INT64_MAX:  # the API's int64; past it, not a count
        raise ParseError(f"{field}: {_describe(value)} is outside the 64-bit integer range")
    return number


def _integer(value: Any, field: str) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ParseError(f"{field}: expected a number, got a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            try:
                number = float(value)
            except ValueError:
                pass
            else:
                if number.is_integer():
                    return int(number)
    raise ParseError(f"{field}: expected an integer, got {_describe(value)}")


def _non_negative(value: Any, field: str) -> int | None:
    number = as_int(value, field)
    return number if number is not None and number >= 0 else None


def _timestamp_ms(value: Any, field: str) -> int | None:
    number = as_int(value, field)
    return number if number is not None and number > 0 else None


def _text(value: Any) -> str:
    """A text field: a string, or a number written out; anything else (null, a list, an object) is no text."""
    if isinstance(value, str):
        return value
    return str(value) if isinstance(value, int | float) and not isinstance(value, bool) else ""


def _shared_text(value: Any) -> str:
    """A text repeated on every partition of an answer (member, client, address): one string, not one a
    partition. JSON decoding makes a new string per occurrence; a hundred thousand partitions each keeping
    three would cost tens of megabytes."""
    return sys.intern(_text(value))


def _describe(value: Any) -> str:
    """A value for an error message: a short scalar quoted, a list or an object only named (never walked)."""
    if not isinstance(value, str | int | float):
        return kind(value)
    if isinstance(value, int) and abs(value) >= 10**36:
        return f"a {len(str(abs(value)))}-digit number"
    text = repr(value[:41] if isinstance(value, str) else value)
    return text if len(text) <= 40 else text[:37] + "..."


def _require_mapping(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ParseError(f"{what}: expected an object, got {kind(value)}")
    return value


def normalise_state(value: Any) -> str:
    """``STABLE``, ``Stable``, ``PreparingRebalance``... to one of :data:`GROUP_STATES`."""
    text = _text(value).strip().lower().replace("-", "_")
    if text in GROUP_STATES:
        return text
    compact = text.replace("_", "")
    for state in GROUP_STATES:
        if state.replace("_", "") == compact:
            return state
    return "unknown"


def _partition(raw: Any, topic: str) -> PartitionProgress:
    obj = _require_mapping(raw, f"topic {_describe(topic)} OffsetList entry")
    partition = as_int(lookup(obj, "Partition"), f"topic {_describe(topic)} Partition")
    if partition is None or partition < 0:
        raise ParseError(f"topic {_describe(topic)}: an OffsetList entry has no valid Partition")
    where = f"topic {_describe(topic)} partition {partition}"
    return PartitionProgress(
        partition=partition,
        broker_offset=_non_negative(lookup(obj, "BrokerOffset"), f"{where} BrokerOffset"),
        consumer_offset=_non_negative(lookup(obj, "ConsumerOffset"), f"{where} ConsumerOffset"),
        last_timestamp_ms=_timestamp_ms(lookup(obj, "LastTimestamp"), f"{where} LastTimestamp"),
        member_id=_shared_text(lookup(obj, "MemberId")),
        client_id=_shared_text(lookup(obj, "ClientId")),
        client_ip=_shared_text(lookup(obj, "ClientIp")),
        accumulate=_non_negative(lookup(obj, "Accumulate"), f"{where} Accumulate"),
    )


def _topic(raw: Any) -> TopicProgress:
    obj = _require_mapping(raw, "TopicList entry")
    name = lookup(obj, "Topic")
    if not isinstance(name, str) or not name:
        raise ParseError("a TopicList entry has no Topic name")
    name = sys.intern(name)  # the same on every poll, and the key of its series
    partitions: dict[int, PartitionProgress] = {}
    for entry in as_list(lookup(obj, "OffsetList"), "OffsetList"):
        parsed = _partition(entry, name)
        partitions[parsed.partition] = parsed  # a repeated partition: the last one wins
    return TopicProgress(
        topic=name,
        total_diff=_non_negative(lookup(obj, "TotalDiff"), f"topic {_describe(name)} TotalDiff"),
        last_timestamp_ms=_timestamp_ms(lookup(obj, "LastTimestamp"), f"topic {_describe(name)} LastTimestamp"),
        partitions=tuple(partitions[k] for k in sorted(partitions)),
    )


def _rebalance(raw: Any) -> RebalanceInfo:
    obj = _require_mapping(raw, "RebalanceInfoList entry")
    stamp = _timestamp_ms(lookup(obj, "LastRebalanceTimestamp"), "LastRebalanceTimestamp")
    took = _non_negative(lookup(obj, "RebalanceTimeConsuming"), "RebalanceTimeConsuming")
    success = lookup(obj, "RebalanceSuccess")
    if isinstance(success, str):
        success = {"true": True, "false": False}.get(success.strip().lower())
    return RebalanceInfo(
        generation=_non_negative(lookup(obj, "Generation"), "Generation"),
        timestamp_seconds=None if stamp is None else (stamp / 1000 if stamp > _MS_THRESHOLD else float(stamp)),
        duration_seconds=None if took is None else took / 1000,
        success=success if isinstance(success, bool) else None,
        reason=_text(lookup(obj, "Reason"))[:200],
    )


def unwrap_root(body: Any, action: str) -> Any:
    """Drop the ``<Action>Response`` root the XML-derived doc samples carry."""
    if isinstance(body, Mapping) and len(body) == 1:
        (key, value), = body.items()
        if key == f"{action}Response" and isinstance(value, Mapping):
            return value
    return body


def parse_consumer_progress(body: Any) -> ConsumerProgress:
    """Parse a successful GetConsumerProgress body (envelope already checked by the client).

    A successful answer whose ``ConsumerProgress`` is null, absent or empty (``{}``, or ``""`` as an
    XML-to-JSON conversion writes an empty element) is a group that has never committed an offset: a
    healthy group with nothing to report, lag 0 and no topics, not a malformed answer.
    """
    root = _require_mapping(unwrap_root(body, "GetConsumerProgress"), "response body")
    progress = lookup(root, "ConsumerProgress")
    if progress is None or progress == "":
        return EMPTY_PROGRESS
    obj = _require_mapping(progress, "ConsumerProgress")
    topics: dict[str, TopicProgress] = {}
    for entry in as_list(lookup(obj, "TopicList"), "TopicList"):
        parsed = _topic(entry)
        topics[parsed.topic] = parsed
    total = _non_negative(lookup(obj, "TotalDiff"), "ConsumerProgress TotalDiff")
    if total is None and not topics:
        total = 0  # no topic at all: nothing is unconsumed, whether or not TotalDiff was sent
    return ConsumerProgress(
        total_diff=total,
        last_timestamp_ms=_timestamp_ms(lookup(obj, "LastTimestamp"), "ConsumerProgress LastTimestamp"),
        state=normalise_state(lookup(obj, "state")),
        topics=tuple(topics[k] for k in sorted(topics)),
        rebalances=tuple(
            _rebalance(r) for r in as_list(lookup(obj, "RebalanceInfoList"), "RebalanceInfoList")
        ),
    )


# A group without any committed offset, as a successful answer without ConsumerProgress describes it.
EMPTY_PROGRESS = ConsumerProgress(total_diff=0, last_timestamp_ms=None, state="unknown", topics=(), rebalances=())


@dataclass(frozen=True, slots=True)
class InstanceInfo:
    """Descriptive attributes of an instance, for ``alikafka_instance_info``, and whether it serves."""

    instance_id: str
    name: str
    region: str
    series: str
    spec_type: str
    serving: bool  # False only for a state that cannot answer (see _VIEW_STATES); unknown states serve
    status: str = ""  # e.g. "running", "upgrading"; "ViewInstanceStatusCode 99" when undocumented; "" when not sent
    unknown_status: str = ""  # a status value no public source lists, e.g. "ViewInstanceStatusCode 99"
    retention_seconds: float | None = None  # MsgRetain (hours) x 3600; None when not sent or not a positive integer


# Instance states of GetInstanceList, as (name, can it serve). Source: the alikafka 2019-09-16 API reference
# (https://www.alibabacloud.com/help/en/apsaramq-for-kafka/cloud-message-queue-for-kafka/developer-reference/api-alikafka-2019-09-16-getinstancelist)
# as carried by the official SDKs' models, e.g. aliyun/alibabacloud-typescript-sdk
# alikafka-20190916/src/models/GetInstanceListResponseBody.ts (the Java, Go and Python models have the
# same fields). ViewInstanceStatusCode is "consistent with the values displayed in the console" and is the
# one to read; ServiceStatus is marked out of date in its favour. Only states in which the instance cannot
# answer are excluded: not deployed yet, deploying, stopped, starting again, expired, being released or
# released, a deployment that failed. Upgrading, migrating, scaling, expiring soon, stopping, and an upgrade
# or migration that failed (the instance keeps serving its old version) all serve, and their lag matters
# most then. A code not listed here is kept (and logged once by discovery): a new state is far more
# likely to be a new kind of maintenance than a new way of not existing.
_VIEW_STATES: dict[int, tuple[str, bool]] = {
    0: ("pending", False),
    1: ("deploying", False),
    2: ("running", True),
    3: ("stopped", False),
    4: ("expiring", True),
    5: ("expired", False),
    6: ("released", False),
    7: ("upgrading", True),
    8: ("migrating", True),
    21: ("stopping", True),
    22: ("starting", False),
    23: ("releasing", False),
    30: ("auto scaling", True),
    101: ("deployment failed", False),
    102: ("upgrade failed", True),
    103: ("migration failed", True),
}
# The deprecated field, read only when ViewInstanceStatusCode is absent or undocumented. Same sources (the
# Python SDK alibabacloud_alikafka20190916 models both fields as integers, without the descriptions);
# Terraform's alikafka instance resource waits for 5 ("in service") and treats 10 as released
# (aliyun/terraform-provider-alicloud alicloud/service_alicloud_alikafka.go). 0 to 3 are the steps of the
# first deployment, before the instance has ever served.
_SERVICE_STATES: dict[int, tuple[str, bool]] = {
    0: ("pending", False),
    1: ("preparing hardware resources", False),
    2: ("initializing", False),
    3: ("starting", False),
    5: ("running", True),
    6: ("migrating", True),
    7: ("ready for upgrade", True),
    8: ("upgrading", True),
    9: ("ready for change", True),
    10: ("released", False),
    11: ("changing", True),
    15: ("expired", False),
    30: ("scaling", True),
}


def _instance_state(obj: Mapping[str, Any]) -> tuple[str, bool, str]:
    """(status, serving, undocumented value) from ViewInstanceStatusCode, else ServiceStatus.

    Each field may be an int, a numeric string, another string or missing. The first documented code
    decides; a value that is not one is reported and, when no documented code follows, keeps the instance.
    """
    unknown = ""
    for field, table in (("ViewInstanceStatusCode", _VIEW_STATES), ("ServiceStatus", _SERVICE_STATES)):
        raw = lookup(obj, field)
        if raw is None or raw == "":
            continue
        try:
            code = as_int(raw, field)
        except ParseError:
            code = None
        if code is not None and code in table:
            name, serving = table[code]
            return name, serving, unknown
        unknown = unknown or f"{field} {_describe(raw)}"
    return unknown, True, unknown


def parse_instance_list(body: Any) -> tuple[InstanceInfo, ...]:
    """Parse GetInstanceList's ``InstanceList.InstanceVO`` leniently (same list traps as progress)."""
    root = _require_mapping(unwrap_root(body, "GetInstanceList"), "response body")
    instances = []
    for raw in as_list(lookup(root, "InstanceList"), "InstanceVO"):
        obj = _require_mapping(raw, "InstanceVO entry")
        instance_id = lookup(obj, "InstanceId")
        if not isinstance(instance_id, str) or not instance_id:
            raise ParseError("an InstanceVO entry has no InstanceId")
        status, serving, unknown = _instance_state(obj)
        instances.append(InstanceInfo(
            instance_id=instance_id,
            name=_text(lookup(obj, "Name"))[:200],
            region=_text(lookup(obj, "RegionId")),
            series=_text(lookup(obj, "Series")),
            spec_type=_text(lookup(obj, "SpecType")),
            serving=serving,
            status=status,
            unknown_status=unknown,
            retention_seconds=_retention_seconds(lookup(obj, "MsgRetain")),
        ))
    return tuple(instances)


def _retention_seconds(value: Any) -> float | None:
    """MsgRetain, the instance's message retention in hours (an integer in the official SDKs' models,
    e.g. alibabacloud_alikafka20190916 ``GetInstanceListResponseBodyInstanceListInstanceVO.msg_retain``; the
    console allows 24 to 480), in seconds. A value that is not a positive whole number of hours is no value:
    it describes the instance, and must not fail the list."""
    try:
        hours = as_int(value, "MsgRetain")
    except ParseError:
        return None
    return hours * 3600.0 if hours is not None and hours > 0 else None


def parse_consumer_list(body: Any) -> tuple[list[str], int | None]:
    """Group names of one GetConsumerList page (``ConsumerList.ConsumerVO``) and the reported total."""
    root = _require_mapping(unwrap_root(body, "GetConsumerList"), "response body")
    names = []
    for raw in as_list(lookup(root, "ConsumerList"), "ConsumerVO"):
        name = lookup(_require_mapping(raw, "ConsumerVO entry"), "ConsumerId")
        if not isinstance(name, str) or not name:
            raise ParseError("a ConsumerVO entry has no ConsumerId")
        names.append(name)
    return names, as_int(lookup(root, "Total"), "GetConsumerList Total")


@dataclass(frozen=True, slots=True)
class PartitionStatus:
    """One partition of GetTopicStatus's OffsetTable; None where the answer had no usable value."""

    partition: int
    min_offset: int | None  # the earliest offset still retained
    max_offset: int | None  # the next offset to be written
    last_update_ms: int | None  # when the partition was last written, epoch milliseconds


@dataclass(frozen=True, slots=True)
class TopicStatus:
    """The parsed ``TopicStatus`` of one topic."""

    topic: str
    total_count: int | None
    last_timestamp_ms: int | None
    partitions: tuple[PartitionStatus, ...]

    def earliest(self) -> dict[int, int]:
        """MinOffset by partition, for the partitions that sent one."""
        return {p.partition: p.min_offset for p in self.partitions if p.min_offset is not None}


def parse_topic_status(body: Any, topic: str) -> TopicStatus:
    """Parse a successful GetTopicStatus body for ``topic`` (envelope already checked by the client).

    The documented shape (https://www.alibabacloud.com/help/en/apsaramq-for-kafka/api-gettopicstatus, read the
    same way by the official Python SDK alibabacloud_alikafka20190916, GetTopicStatusResponseBody): TopicStatus
    {TotalCount, LastTimeStamp (capital S), OffsetTable.OffsetTable[] {Topic, Partition, MinOffset, MaxOffset,
    LastUpdateTimestamp}}. The table may arrive as a list, one object or without its wrapper, numbers as
    strings; a row naming another topic is not this topic's and is left out. A negative offset is no offset.
    """
    root = _require_mapping(unwrap_root(body, "GetTopicStatus"), "response body")
    status = lookup(root, "TopicStatus")
    if status is None or status == "":
        return TopicStatus(topic, None, None, ())
    obj = _require_mapping(status, "TopicStatus")
    partitions: dict[int, PartitionStatus] = {}
    for raw in as_list(lookup(obj, "OffsetTable"), "OffsetTable"):
        row = _require_mapping(raw, "OffsetTable entry")
        named = lookup(row, "Topic")
        if isinstance(named, str) and named and named != topic:
            continue
        partition = as_int(lookup(row, "Partition"), "OffsetTable Partition")
        if partition is None or partition < 0:
            raise ParseError("an OffsetTable entry has no valid Partition")
        where = f"topic {_describe(topic)} partition {partition}"
        partitions[partition] = PartitionStatus(
            partition=partition,
            min_offset=_non_negative(lookup(row, "MinOffset"), f"{where} MinOffset"),
            max_offset=_non_negative(lookup(row, "MaxOffset"), f"{where} MaxOffset"),
            last_update_ms=_timestamp_ms(lookup(row, "LastUpdateTimestamp"), f"{where} LastUpdateTimestamp"),
        )
    return TopicStatus(
        topic=topic,
        total_count=_non_negative(lookup(obj, "TotalCount"), "TopicStatus TotalCount"),
        last_timestamp_ms=_timestamp_ms(lookup(obj, "LastTimeStamp"), "TopicStatus LastTimeStamp"),
        partitions=tuple(partitions[k] for k in sorted(partitions)),
    )
