"""The parser accepts every documented and observed shape of GetConsumerProgress, and fails cleanly."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.cloud.decoding import MAX_DEPTH, decode, too_deep
from exporter.cloud.models import (
    ParseError,
    as_list,
    normalise_state,
    parse_consumer_list,
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


# --- the decoding step every answer passes, and what a huge number means for each field --------------


@pytest.mark.parametrize(("raw", "needle"), [
    (b"", "empty body"),
    (b" \r\n", "empty body"),
    (b'{"RequestId":"\xc0\xaf"}', "not UTF-8 (byte 0xc0 at offset 14)"),
    (b"[" * 100_000 + b"]" * 100_000, f"JSON nested deeper than {MAX_DEPTH} levels"),
    (b'{"a":' * 100_000 + b"1" + b"}" * 100_000, f"JSON nested deeper than {MAX_DEPTH} levels"),
    (b"<html><body>502 Bad Gateway</body></html>", "not JSON (Expecting value; offset 0)"),
    (b'{"RequestId":"R","Success":true,"Consu', "not JSON"),
    (b'{"TotalDiff":' + b"9" * 5000 + b"}", "not JSON (a number too long to read)"),
])
def test_decode_refuses_what_is_not_an_answer(raw: bytes, needle: str) -> None:
    """Each refusal is a ParseError whose one-line message says what was wrong and quotes nothing."""
    with pytest.raises(ParseError) as caught:
        decode(raw)
    message = str(caught.value)
    assert needle in message and "\n" not in message and len(message) < 120


def test_decode_depth_limit_and_what_stays_lenient() -> None:
    """64 levels decode, 65 do not; brackets inside strings (escaped quotes too) do not count; a UTF-8
    byte-order mark and NaN/Infinity (which Python's decoder accepts) pass to the field parsers."""
    assert decode(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH) is not None
    with pytest.raises(ParseError, match="nested deeper"):
        decode(b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1))
    inside = b'["' + b"[" * 200 + b'\\"' + b"{" * 200 + b'", "\\\\", "]]]"]'
    assert decode(inside)[0].startswith("[[[")
    escaped = b'["\\\\"' + b", [" * MAX_DEPTH + b"]" * MAX_DEPTH + b"]"  # "\\" closes the string: these count
    assert too_deep(escaped)
    assert decode(b'\xef\xbb\xbf{"a": 1}') == {"a": 1}
    assert str(decode(b'{"a": NaN, "b": -Infinity}')) == "{'a': nan, 'b': -inf}"


def test_deep_document_costs_little() -> None:
    """100,000 levels are refused by the scan in milliseconds, without recursion."""
    started = time.perf_counter()
    for _ in range(10):
        with pytest.raises(ParseError):
            decode(b"[{" * 100_000)
    assert time.perf_counter() - started < 1.0


def progress_with(field: str, literal: str) -> bytes:
    """A GetConsumerProgress answer, as bytes, with ``literal`` (raw JSON) as one partition's ``field``."""
    part = {"Partition": 0, "BrokerOffset": 10, "ConsumerOffset": 7, "LastTimestamp": 1700000000000}
    text = json.dumps(body({"TopicList": [{"Topic": "t", "OffsetList": [{**part, field: "@"}]}]}))
    return text.replace('"@"', literal).encode()


HUGE = ["1" + "0" * 400, "-" + "1" + "0" * 400, "1e400", "NaN", "Infinity", "-Infinity", str(2**63), "1.5"]


@pytest.mark.parametrize("field", ["Partition", "BrokerOffset", "ConsumerOffset", "LastTimestamp"])
@pytest.mark.parametrize("literal", HUGE)
def test_a_number_no_int64_holds_fails_the_answer_naming_the_field(field: str, literal: str) -> None:
    """Offsets, partitions and timestamps are int64 in the API: a number past it (10**400, 2**63), one no
    double holds (1e400 reads as infinity), NaN, Infinity and fractions are malformed for that field, and so
    fail the pair with the field named; never an overflow, never a NaN in the exposition."""
    with pytest.raises(ParseError, match=field):
        parse_consumer_progress(decode(progress_with(field, literal)))


def test_int64_edges_are_numbers() -> None:
    """The int64 maximum is an offset; a negative int64 is "no commit" (absent), not an error."""
    (topic,) = parse_consumer_progress(decode(progress_with("BrokerOffset", str(2**63 - 1)))).topics
    assert topic.partitions[0].broker_offset == 2**63 - 1
    (topic,) = parse_consumer_progress(decode(progress_with("ConsumerOffset", str(-(2**63))))).topics
    assert topic.partitions[0].consumer_offset is None


@pytest.mark.parametrize("literal", ["1" + "0" * 400, "1e400", "NaN", "-Infinity"])
def test_huge_numbers_in_listings_and_group_fields(literal: str) -> None:
    """GetConsumerList's Total and the group's TotalDiff: the same rule. A status code is not a count: one
    that is no documented code (a huge one included) is an unknown state, which keeps the instance."""
    with pytest.raises(ParseError, match="Total"):
        parse_consumer_list(decode(b'{"ConsumerList":{"ConsumerVO":[{"ConsumerId":"g"}]},"Total":'
                                   + literal.encode() + b"}"))
    (instance,) = parse_instance_list(decode(b'{"InstanceList":{"InstanceVO":[{"InstanceId":"i","ServiceStatus":'
                                             + literal.encode() + b"}]}}"))
    assert instance.serving and instance.unknown_status.startswith("ServiceStatus ")  # no code: an unknown state
    assert len(instance.unknown_status) < 60
    with pytest.raises(ParseError, match="TotalDiff"):
        parse_consumer_progress(decode(json.dumps(body([])).replace('"TotalDiff": 5', f'"TotalDiff": {literal}')
                                       .encode()))


@pytest.mark.parametrize("value", [[], {}, None, True, "x" * 10_000, [[["deep"]]]])
def test_wrong_types_in_text_fields_and_messages(value: Any) -> None:
    """A list, object, null or boolean where a text is expected is no text; a message never quotes a
    container or a long value."""
    partition = {"Partition": 0, "BrokerOffset": 1, "ConsumerOffset": 1, "MemberId": value, "ClientIp": value}
    if isinstance(value, str):
        (topic,) = parse_consumer_progress(body([{"Topic": "t", "OffsetList": [partition]}])).topics
        assert topic.partitions[0].member_id == value
    else:
        (topic,) = parse_consumer_progress(body([{"Topic": "t", "OffsetList": [partition]}])).topics
        assert topic.partitions[0].member_id == "" and topic.partitions[0].client_ip == ""
    if value is None:
        return  # an absent offset: no commit, not an error
    with pytest.raises(ParseError) as caught:
        parse_consumer_progress(body([{"Topic": "t", "OffsetList": [{**partition, "BrokerOffset": value}]}]))
    assert len(str(caught.value)) < 120
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


@pytest.mark.parametrize("entry", [{"Partition": "x"}, {"Partition": 0, "BrokerOffset": "1e400"}, "not an object"])
def test_a_long_topic_name_is_cut_in_messages(entry: Any) -> None:
    """A hostile 400-character topic name is shortened in the error, as every other quoted value is."""
    body = {"Success": True, "ConsumerProgress": {"TopicList": {"TopicList": [
        {"Topic": "9" * 400, "OffsetList": {"OffsetList": [entry]}}]}}}
    with pytest.raises(ParseError) as caught:
        parse_consumer_progress(body)
    assert len(str(caught.value)) < 120 and "9" * 50 not in str(caught.value)
