"""The parser accepts every documented and observed shape of GetConsumerProgress, and fails cleanly."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.models import ParseError, as_list, normalise_state, parse_consumer_progress


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
        ({"RequestId": "x"}, "no ConsumerProgress"),
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
