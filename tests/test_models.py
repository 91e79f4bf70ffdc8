"""The parser accepts every documented and observed shape of GetConsumerProgress, and fails cleanly."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.models import (
    ParseError,
    as_list,
    normalise_state,
    parse_consumer_progress,
    parse_instance_list,
)


def body(topic_list: Any, **progress: Any) -> dict[str, Any]:
    return {
        "RequestId": "R1",
        "Success": True,
        "Code": 200,
        "ConsumerProgress": {"TotalDiff": 5, "LastTimestamp": 1700000000000, "state": "STABLE",
                             "TopicList": topic_list, **progress},
    }


PARTITION = {"Partition": 0, "BrokerOffset": 10, "ConsumerOffset": 7, "LastTimestamp": 1700000000000,
             "MemberId": "m-1", "ClientId": "c-1", "ClientIp": "10.0.0.1"}
TOPIC = {"Topic": "orders", "TotalDiff": 3, "LastTimestamp": 1700000000000, "OffsetList": {"OffsetList": [PARTITION]}}


def test_documented_shape_parses() -> None:
    """Arrays inside wrapper objects, as every SDK models them."""
    progress = parse_consumer_progress(body({"TopicList": [TOPIC]}))
    assert progress.total_diff == 5
    assert progress.state == "stable"
    (topic,) = progress.topics
    (part,) = topic.partitions
    assert (topic.topic, part.partition, part.lag, part.consumer_offset) == ("orders", 0, 3, 7)
    assert progress.member_ids == frozenset({"m-1"})


@pytest.mark.parametrize(
    "topic_list",
    [
        {"TopicList": TOPIC},  # one-element list collapsed into an object (XML-to-JSON artefact)
        [TOPIC],  # wrapper missing
        TOPIC,  # wrapper missing and collapsed
    ],
)
def test_single_objects_and_missing_wrappers_parse(topic_list: Any) -> None:
    """The list traps of reference/alikafka-api.md section 1.3 all give the same result."""
    assert parse_consumer_progress(body(topic_list)) == parse_consumer_progress(body({"TopicList": [TOPIC]}))


@pytest.mark.parametrize("topic_list", [None, {"TopicList": None}, {"TopicList": []}, []])
def test_missing_or_empty_topic_list_means_no_topics(topic_list: Any) -> None:
    """A group without committed offsets has no topics rather than an error."""
    assert parse_consumer_progress(body(topic_list)).topics == ()


def test_numbers_as_strings_and_state_case() -> None:
    """Numeric strings are numbers; state is matched in any case and spelling."""
    part = {k: str(v) for k, v in PARTITION.items()}
    topic = {**TOPIC, "TotalDiff": "3", "OffsetList": {"OffsetList": part}}
    progress = parse_consumer_progress(body({"TopicList": [topic]}, TotalDiff="5", state="PreparingRebalance"))
    assert progress.total_diff == 5
    assert progress.state == "preparing_rebalance"
    assert progress.topics[0].partitions[0].broker_offset == 10


def test_sentinels_become_absent() -> None:
    """LastTimestamp -1 and a negative (uncommitted) ConsumerOffset are None, never -1."""
    part = {**PARTITION, "ConsumerOffset": -1, "LastTimestamp": -1}
    progress = parse_consumer_progress(body({"TopicList": [{**TOPIC, "LastTimestamp": -1,
                                                           "OffsetList": {"OffsetList": [part]}}]},
                                            LastTimestamp=-1))
    p = progress.topics[0].partitions[0]
    assert (p.consumer_offset, p.last_timestamp_ms, p.lag) == (None, None, None)
    assert progress.last_timestamp_ms is None
    assert progress.topics[0].last_timestamp_ms is None


def test_root_wrapper_and_unknown_fields() -> None:
    """The doc sample's GetConsumerProgressResponse root and unknown keys are accepted."""
    inner = body({"TopicList": [{**TOPIC, "Brand": "new"}]}, Extra={"x": 1})
    assert parse_consumer_progress({"GetConsumerProgressResponse": inner}).topics[0].topic == "orders"


def test_rebalance_records_and_units() -> None:
    """The newest record wins; a timestamp in seconds and one in ms mean the same instant."""
    records = [
        {"Generation": 3, "LastRebalanceTimestamp": 1709199270, "RebalanceTimeConsuming": 1500,
         "RebalanceSuccess": True, "Reason": "join"},
        {"Generation": "4", "LastRebalanceTimestamp": "1709199370000", "RebalanceTimeConsuming": 250,
         "RebalanceSuccess": "false"},
    ]
    progress = parse_consumer_progress(body([], RebalanceInfoList={"RebalanceInfoList": records}))
    newest = progress.newest_rebalance
    assert newest is not None
    assert (newest.generation, newest.timestamp_seconds, newest.duration_seconds, newest.success) == (
        4, 1709199370.0, 0.25, False)
    assert progress.rebalances[0].timestamp_seconds == 1709199270.0


@pytest.mark.parametrize(
    ("bad", "needle"),
    [
        ({"ConsumerProgress": []}, "ConsumerProgress: expected an object"),
        (body({"TopicList": [{"TotalDiff": 1}]}), "no Topic name"),
        (body({"TopicList": [{**TOPIC, "OffsetList": [{"BrokerOffset": 1}]}]}), "no valid Partition"),
        (body({"TopicList": [{**TOPIC, "TotalDiff": "many"}]}), "TotalDiff: expected an integer"),
        (body({"TopicList": "orders"}), "TopicList: expected a list or an object"),
        (body({"TopicList": [{**TOPIC, "TotalDiff": True}]}), "boolean"),
    ],
)
def test_unintelligible_answers_raise_parse_error(bad: Any, needle: str) -> None:
    """What cannot be understood raises ParseError saying what is wrong."""
    with pytest.raises(ParseError, match=needle):
        parse_consumer_progress(bad)


def test_state_normalisation() -> None:
    """Known states in any case map to contract names; anything else is unknown."""
    assert [normalise_state(s) for s in ("EMPTY", "Dead", "completing_rebalance", "Rebalancing", None)] == [
        "empty", "dead", "completing_rebalance", "unknown", "unknown"]


def test_as_list_variants() -> None:
    """The list normaliser: list, object, wrapper, null wrapper."""
    assert as_list({"X": [1, 2]}, "X") == [1, 2]
    assert as_list({"X": {"a": 1}}, "X") == [{"a": 1}]
    assert as_list({"X": None}, "X") == []
    assert as_list({"a": 1}, "X") == [{"a": 1}]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["ConsumerProgress", "TopicList", "OffsetList", "Topic", "Partition", "TotalDiff",
                         "BrokerOffset", "ConsumerOffset", "LastTimestamp", "state", "RebalanceInfoList",
                         "Generation", "LastRebalanceTimestamp", "MemberId", "x"]),
        children, max_size=6),
    max_leaves=30,
)


@settings(max_examples=400, deadline=None)
@given(json_values)
def test_arbitrary_json_never_crashes(value: Any) -> None:
    """Any JSON value either parses or raises ParseError, never another exception."""
    try:
        progress = parse_consumer_progress(value)
    except ParseError as exc:
        assert str(exc)
    else:
        json.dumps([t.topic for t in progress.topics])
        for topic in progress.topics:
            for part in topic.partitions:
                assert part.lag is None or part.lag >= 0
                assert part.last_timestamp_ms is None or part.last_timestamp_ms > 0


@pytest.mark.parametrize(
    "answer",
    [
        {"RequestId": "R1", "Success": True, "Code": 200},
        {"RequestId": "R1", "Success": True, "Code": 200, "ConsumerProgress": None},
        {"RequestId": "R1", "Success": True, "Code": 200, "ConsumerProgress": ""},
        {"RequestId": "R1", "Success": True, "Code": 200, "ConsumerProgress": {}},
        {"RequestId": "R1", "Success": True, "Code": 200, "ConsumerProgress": {"TotalDiff": 0}},
        {"RequestId": "R1", "Success": True, "Code": 200, "ConsumerProgress": {"TopicList": None}},
        {"RequestId": "R1", "Success": True, "Code": 200,
         "ConsumerProgress": {"TotalDiff": 0, "LastTimestamp": -1, "TopicList": {"TopicList": []}}},
        {"GetConsumerProgressResponse": {"RequestId": "R1", "Success": True, "Code": 200}},
    ],
)
def test_group_that_never_committed_is_empty_not_malformed(answer: dict[str, Any]) -> None:
    """A successful answer with ConsumerProgress null, absent or empty is a group with no topics and lag 0."""
    progress = parse_consumer_progress(answer)
    assert progress.topics == ()
    assert progress.total_diff == 0
    assert progress.last_timestamp_ms is None


@pytest.mark.parametrize(
    ("fields", "lag", "accumulate"),
    [
        ({"BrokerOffset": 10, "ConsumerOffset": 7, "Accumulate": 3}, 3, 3),
        ({"BrokerOffset": 10, "ConsumerOffset": 7, "Accumulate": 99}, 3, 99),  # the offsets win: they are exported
        ({"BrokerOffset": 10, "ConsumerOffset": 7}, 3, None),
        ({"BrokerOffset": 10, "ConsumerOffset": -1, "Accumulate": 4}, 4, 4),  # no commit: the service's count
        ({"BrokerOffset": 10, "Accumulate": "4"}, 4, 4),  # as a string
        ({"ConsumerOffset": 7, "Accumulate": 5}, 5, 5),
        ({"BrokerOffset": -1, "ConsumerOffset": -1, "Accumulate": 6}, 6, 6),
        ({"BrokerOffset": 10, "ConsumerOffset": -1}, None, None),
        ({"BrokerOffset": 10, "ConsumerOffset": -1, "Accumulate": -1}, None, None),
        ({"BrokerOffset": 10, "ConsumerOffset": -1, "Accumulate": ""}, None, None),
    ],
)
def test_accumulate_fills_in_where_an_offset_is_missing(fields: dict[str, Any], lag: int | None,
                                                        accumulate: int | None) -> None:
    """Per-partition lag comes from the offsets when both are known, else from Accumulate, else none."""
    answer = body([{"Topic": "orders", "OffsetList": [{"Partition": 0, **fields}]}])
    (partition,) = parse_consumer_progress(answer).topics[0].partitions
    assert (partition.lag, partition.accumulate) == (lag, accumulate)


def test_accumulate_that_is_not_a_number_is_a_parse_error() -> None:
    """Accumulate goes through the same number checks as the offsets."""
    with pytest.raises(ParseError, match="Accumulate"):
        parse_consumer_progress(body([{"Topic": "t", "OffsetList": [{"Partition": 0, "Accumulate": "lots"}]}]))


def instance(**status: Any) -> dict[str, Any]:
    return {"InstanceList": {"InstanceVO": [{"InstanceId": "alikafka_post-cn-1", "Name": "n", "RegionId": "r",
                                             **status}]}}


@pytest.mark.parametrize(
    ("status", "serving", "name"),
    [
        ({"ViewInstanceStatusCode": 2, "ServiceStatus": 5}, True, "running"),
        ({"ViewInstanceStatusCode": 7, "ServiceStatus": 8}, True, "upgrading"),
        ({"ViewInstanceStatusCode": 8, "ServiceStatus": 6}, True, "migrating"),
        ({"ViewInstanceStatusCode": 30, "ServiceStatus": 30}, True, "auto scaling"),
        ({"ViewInstanceStatusCode": 4, "ServiceStatus": 5}, True, "expiring"),
        ({"ViewInstanceStatusCode": 21}, True, "stopping"),
        ({"ViewInstanceStatusCode": 102}, True, "upgrade failed"),
        ({"ViewInstanceStatusCode": "7"}, True, "upgrading"),
        ({"ViewInstanceStatusCode": 7}, True, "upgrading"),  # ServiceStatus absent
        ({"ServiceStatus": 8}, True, "upgrading"),  # only the deprecated field
        ({"ServiceStatus": "30"}, True, "scaling"),
        ({"ServiceStatus": 11}, True, "changing"),
        ({"ViewInstanceStatusCode": 0, "ServiceStatus": 0}, False, "pending"),
        ({"ViewInstanceStatusCode": 1, "ServiceStatus": 1}, False, "deploying"),
        ({"ViewInstanceStatusCode": 3}, False, "stopped"),
        ({"ViewInstanceStatusCode": 5, "ServiceStatus": 15}, False, "expired"),
        ({"ViewInstanceStatusCode": 6, "ServiceStatus": 10}, False, "released"),
        ({"ViewInstanceStatusCode": 23}, False, "releasing"),
        ({"ViewInstanceStatusCode": 101}, False, "deployment failed"),
        ({"ServiceStatus": 2}, False, "initializing"),
        ({"ServiceStatus": "10"}, False, "released"),
        ({"ServiceStatus": 15}, False, "expired"),
        ({}, True, ""),  # neither field: nothing says it cannot serve
        ({"ViewInstanceStatusCode": None, "ServiceStatus": ""}, True, ""),
    ],
)
def test_instance_states(status: dict[str, Any], serving: bool, name: str) -> None:
    """ViewInstanceStatusCode decides, ServiceStatus when it is absent; only states that cannot answer are out."""
    (info,) = parse_instance_list(instance(**status))
    assert (info.serving, info.status, info.unknown_status) == (serving, name, "")


@pytest.mark.parametrize(
    ("status", "serving", "unknown"),
    [
        ({"ViewInstanceStatusCode": 99}, True, "ViewInstanceStatusCode 99"),
        ({"ViewInstanceStatusCode": "Upgrading"}, True, "ViewInstanceStatusCode 'Upgrading'"),
        ({"ServiceStatus": 42}, True, "ServiceStatus 42"),
        ({"ViewInstanceStatusCode": 99, "ServiceStatus": 10}, False, "ViewInstanceStatusCode 99"),
        ({"ViewInstanceStatusCode": 99, "ServiceStatus": 8}, True, "ViewInstanceStatusCode 99"),
        ({"ViewInstanceStatusCode": True}, True, "ViewInstanceStatusCode True"),
    ],
)
def test_undocumented_instance_states_are_kept(status: dict[str, Any], serving: bool, unknown: str) -> None:
    """An undocumented code is reported and keeps the instance, unless a documented one says otherwise."""
    (info,) = parse_instance_list(instance(**status))
    assert (info.serving, info.unknown_status) == (serving, unknown)
