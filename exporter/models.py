"""Lenient parsing of GetConsumerProgress answers into small frozen value objects.

The documented schema and the live service disagree in ways no SDK handles: list wrappers
(`TopicList.TopicList`, `OffsetList.OffsetList`) may arrive as a list, a single object, without
the inner key, missing or null; numbers may be numeric strings; `state` is the only lower-case key
and its value's case varies; the docs' sample adds a `GetConsumerProgressResponse` root. Parsing
here accepts all of these and raises :class:`ParseError` only for what cannot be understood,
so one odd answer fails one pair and never the process.

Unknown values become ``None`` rather than sentinels: ``LastTimestamp`` -1 and negative offsets
(no commit) are absent, never exported as -1.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from exporter.decoding import ParseError, kind

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

    @property
    def lag(self) -> int | None:
        """``max(0, BrokerOffset - ConsumerOffset)``, or None without a committed offset."""
        if self.consumer_offset is None or self.broker_offset is None:
            return None
        return max(0, self.broker_offset - self.consumer_offset)


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
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        return kind(value)
    if isinstance(value, int) and abs(value) >= 10**36:
        return f"a {len(str(abs(value)))}-digit number"
    text = repr(value[:41] if isinstance(value, str) else value)
    return text if len(text) <= 40 else text[:37] + "..."


def _field(obj: Mapping[str, Any], name: str) -> Any:
    """Look a key up as documented, falling back to other letter cases."""
    if name in obj:
        return obj[name]
    lowered = name.lower()
    for key, value in obj.items():
        if isinstance(key, str) and key.lower() == lowered:
            return value
    return None


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
    obj = _require_mapping(raw, f"topic {topic!r} OffsetList entry")
    partition = as_int(_field(obj, "Partition"), f"topic {topic!r} Partition")
    if partition is None or partition < 0:
        raise ParseError(f"topic {topic!r}: an OffsetList entry has no valid Partition")
    where = f"topic {topic!r} partition {partition}"
    return PartitionProgress(
        partition=partition,
        broker_offset=_non_negative(_field(obj, "BrokerOffset"), f"{where} BrokerOffset"),
        consumer_offset=_non_negative(_field(obj, "ConsumerOffset"), f"{where} ConsumerOffset"),
        last_timestamp_ms=_timestamp_ms(_field(obj, "LastTimestamp"), f"{where} LastTimestamp"),
        member_id=_shared_text(_field(obj, "MemberId")),
        client_id=_shared_text(_field(obj, "ClientId")),
        client_ip=_shared_text(_field(obj, "ClientIp")),
    )


def _topic(raw: Any) -> TopicProgress:
    obj = _require_mapping(raw, "TopicList entry")
    name = _field(obj, "Topic")
    if not isinstance(name, str) or not name:
        raise ParseError("a TopicList entry has no Topic name")
    name = sys.intern(name)  # the same on every poll, and the key of its series
    partitions: dict[int, PartitionProgress] = {}
    for entry in as_list(_field(obj, "OffsetList"), "OffsetList"):
        parsed = _partition(entry, name)
        partitions[parsed.partition] = parsed  # a repeated partition: the last one wins
    return TopicProgress(
        topic=name,
        total_diff=_non_negative(_field(obj, "TotalDiff"), f"topic {name!r} TotalDiff"),
        last_timestamp_ms=_timestamp_ms(_field(obj, "LastTimestamp"), f"topic {name!r} LastTimestamp"),
        partitions=tuple(partitions[k] for k in sorted(partitions)),
    )


def _rebalance(raw: Any) -> RebalanceInfo:
    obj = _require_mapping(raw, "RebalanceInfoList entry")
    stamp = _timestamp_ms(_field(obj, "LastRebalanceTimestamp"), "LastRebalanceTimestamp")
    took = _non_negative(_field(obj, "RebalanceTimeConsuming"), "RebalanceTimeConsuming")
    success = _field(obj, "RebalanceSuccess")
    if isinstance(success, str):
        success = {"true": True, "false": False}.get(success.strip().lower())
    return RebalanceInfo(
        generation=_non_negative(_field(obj, "Generation"), "Generation"),
        timestamp_seconds=None if stamp is None else (stamp / 1000 if stamp > _MS_THRESHOLD else float(stamp)),
        duration_seconds=None if took is None else took / 1000,
        success=success if isinstance(success, bool) else None,
        reason=_text(_field(obj, "Reason"))[:200],
    )


def unwrap_root(body: Any, action: str) -> Any:
    """Drop the ``<Action>Response`` root the XML-derived doc samples carry."""
    if isinstance(body, Mapping) and len(body) == 1:
        (key, value), = body.items()
        if key == f"{action}Response" and isinstance(value, Mapping):
            return value
    return body


def parse_consumer_progress(body: Any) -> ConsumerProgress:
    """Parse a successful GetConsumerProgress body (envelope already checked by the client)."""
    root = _require_mapping(unwrap_root(body, "GetConsumerProgress"), "response body")
    progress = _field(root, "ConsumerProgress")
    if progress is None:
        raise ParseError("response has no ConsumerProgress")
    obj = _require_mapping(progress, "ConsumerProgress")
    topics: dict[str, TopicProgress] = {}
    for entry in as_list(_field(obj, "TopicList"), "TopicList"):
        parsed = _topic(entry)
        topics[parsed.topic] = parsed
    return ConsumerProgress(
        total_diff=_non_negative(_field(obj, "TotalDiff"), "ConsumerProgress TotalDiff"),
        last_timestamp_ms=_timestamp_ms(_field(obj, "LastTimestamp"), "ConsumerProgress LastTimestamp"),
        state=normalise_state(_field(obj, "state")),
        topics=tuple(topics[k] for k in sorted(topics)),
        rebalances=tuple(
            _rebalance(r) for r in as_list(_field(obj, "RebalanceInfoList"), "RebalanceInfoList")
        ),
    )


@dataclass(frozen=True, slots=True)
class InstanceInfo:
    """Descriptive attributes of an instance, for ``alikafka_instance_info``."""

    instance_id: str
    name: str
    region: str
    series: str
    spec_type: str
    running: bool


def parse_instance_list(body: Any) -> tuple[InstanceInfo, ...]:
    """Parse GetInstanceList's ``InstanceList.InstanceVO`` leniently (same list traps as progress)."""
    root = _require_mapping(unwrap_root(body, "GetInstanceList"), "response body")
    instances = []
    for raw in as_list(_field(root, "InstanceList"), "InstanceVO"):
        obj = _require_mapping(raw, "InstanceVO entry")
        instance_id = _field(obj, "InstanceId")
        if not isinstance(instance_id, str) or not instance_id:
            raise ParseError("an InstanceVO entry has no InstanceId")
        status = as_int(_field(obj, "ServiceStatus"), f"instance {instance_id!r} ServiceStatus")
        instances.append(InstanceInfo(
            instance_id=instance_id,
            name=_text(_field(obj, "Name"))[:200],
            region=_text(_field(obj, "RegionId")),
            series=_text(_field(obj, "Series")),
            spec_type=_text(_field(obj, "SpecType")),
            running=status == 5,
        ))
    return tuple(instances)


def parse_consumer_list(body: Any) -> tuple[list[str], int | None]:
    """Group names of one GetConsumerList page (``ConsumerList.ConsumerVO``) and the reported total."""
    root = _require_mapping(unwrap_root(body, "GetConsumerList"), "response body")
    names = []
    for raw in as_list(_field(root, "ConsumerList"), "ConsumerVO"):
        name = _field(_require_mapping(raw, "ConsumerVO entry"), "ConsumerId")
        if not isinstance(name, str) or not name:
            raise ParseError("a ConsumerVO entry has no ConsumerId")
        names.append(name)
    return names, as_int(_field(root, "Total"), "GetConsumerList Total")
