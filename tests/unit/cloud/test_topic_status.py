"""GetTopicStatus and MsgRetain parse leniently: every shape the API may send, nothing invented."""

from __future__ import annotations

from typing import Any

import pytest

from exporter.cloud.models import ParseError, parse_instance_list, parse_topic_status

ROW = {"Topic": "orders", "Partition": 0, "MinOffset": 100, "MaxOffset": 250, "LastUpdateTimestamp": 1_700_000_000_000}


def body(table: Any) -> dict[str, Any]:
    return {"RequestId": "R", "Code": 200, "Success": True,
            "TopicStatus": {"TotalCount": 150, "LastTimeStamp": 1_700_000_000_000, "OffsetTable": table}}


@pytest.mark.parametrize("table", [
    {"OffsetTable": [ROW]},  # documented
    {"OffsetTable": ROW},  # one row as a single object
    [ROW],  # the wrapper missing
    ROW,  # the wrapper missing and a single object
    {"OffsetTable": [{k: str(v) for k, v in ROW.items()}]},  # numbers as strings
])
def test_every_shape_of_the_table(table: Any) -> None:
    status = parse_topic_status(body(table), "orders")
    assert status.earliest() == {0: 100}
    (row,) = status.partitions
    assert (row.max_offset, row.last_update_ms) == (250, 1_700_000_000_000)
    assert (status.total_count, status.last_timestamp_ms) == (150, 1_700_000_000_000)


def test_root_wrapper_other_topics_and_unusable_values() -> None:
    rows = [ROW, {**ROW, "Topic": "payments", "Partition": 1},  # another topic's row: not ours
            {"Partition": 2, "MinOffset": -1, "MaxOffset": None, "LastUpdateTimestamp": -1}]
    status = parse_topic_status({"GetTopicStatusResponse": body({"OffsetTable": rows})}, "orders")
    assert [p.partition for p in status.partitions] == [0, 2]
    assert status.earliest() == {0: 100}  # -1 is no offset
    assert status.partitions[1].last_update_ms is None


def test_no_status_is_an_empty_topic_and_a_broken_row_is_an_error() -> None:
    assert parse_topic_status({"RequestId": "R", "Success": True}, "orders").partitions == ()
    assert parse_topic_status(body(None), "orders").partitions == ()
    with pytest.raises(ParseError, match="Partition"):
        parse_topic_status(body({"OffsetTable": [{"MinOffset": 1}]}), "orders")
    with pytest.raises(ParseError, match="MinOffset"):
        parse_topic_status(body({"OffsetTable": [{**ROW, "MinOffset": "many"}]}), "orders")
    with pytest.raises(ParseError, match="TopicStatus"):
        parse_topic_status({"TopicStatus": [1, 2]}, "orders")


@pytest.mark.parametrize(("value", "seconds"), [(72, 259_200.0), ("48", 172_800.0), (None, None), (0, None),
                                                (-5, None), ("a day", None), (1.5, None), ([72], None)])
def test_msg_retain_in_seconds_and_a_bad_value_fails_nothing(value: Any, seconds: float | None) -> None:
    vo = {"InstanceId": "i-1", "RegionId": "cn-hangzhou", "ViewInstanceStatusCode": 2}
    if value is not None:
        vo["MsgRetain"] = value
    (info,) = parse_instance_list({"InstanceList": {"InstanceVO": [vo]}})
    assert info.retention_seconds == seconds
