"""Fuzzing with hypothesis: the response parsers and the configuration loader never crash.

The parsers get arbitrary JSON, and JSON shaped like the real answers with garbage at any node (lists
for objects, strings for numbers, nulls, huge numbers, wrong types, nesting): they either return
values the collector can render, or raise their own :class:`ParseError` with a short message. Every
parser also gets bytes: arbitrary ones, and real answers cut, spliced with stray bytes, wrapped in deep
nesting or given huge numbers, through the one decoding step, the client's envelope and the credentials
answers' readers; each returns a value or raises its documented error, never anything else. The
configuration loader gets arbitrary YAML documents, values in the known sections and environment
variables: it returns settings or raises :class:`ConfigError`, and every problem names a key.
Runs are bounded (a few hundred examples each, no deadline) so the module takes seconds.
"""

from __future__ import annotations

import json
import math
import re
import string
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.cloud.client import AlikafkaClient
from exporter.cloud.credentials import Credentials, Secret, StaticProvider
from exporter.cloud.credentials_remote import (
    RemoteCredentialsError,
    metadata_credentials,
    metadata_role_name,
    sts_credentials,
)
from exporter.cloud.decoding import MAX_DEPTH, decode, too_deep
from exporter.cloud.errors import ApiError
from exporter.cloud.models import ParseError, parse_consumer_list, parse_consumer_progress, parse_instance_list
from exporter.cloud.ratelimit import RateLimiter
from exporter.cloud.stats import ApiStats
from exporter.cloud.transport import PlainAnswer, _answer_code
from exporter.config.errors import ConfigError
from exporter.config.settings import MetricsSettings, Settings, load_settings
from exporter.metrics.exposition import render_states
from exporter.metrics.self_metrics import TailCollector
from exporter.polling.snapshot import Board, PairState
from exporter.targets.pair import Pair
from tests.support.fakes import api_settings
from tests.support.samples import samples

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- the response parsers -------------------------------------------------------------------------

KEYS = ["ConsumerProgress", "TopicList", "OffsetList", "Topic", "Partition", "BrokerOffset", "ConsumerOffset",
        "LastTimestamp", "TotalDiff", "state", "MemberId", "ClientId", "ClientIp", "RebalanceInfoList",
        "Generation", "LastRebalanceTimestamp", "RebalanceTimeConsuming", "RebalanceSuccess", "Reason",
        "GetConsumerProgressResponse", "InstanceList", "InstanceVO", "InstanceId", "ServiceStatus", "Name",
        "ConsumerList", "ConsumerVO", "ConsumerId", "Total", "RequestId", "Success", "Code", "Message"]

leaves = st.one_of(
    st.none(), st.booleans(),
    st.integers(), st.integers(min_value=-(10**40), max_value=10**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12), st.sampled_from(["", "-1", "12", "1e400", "NaN", " 7 ", "0x10", "9" * 50, "9" * 400, "1e30", "STABLE"]),
)


def _json_containers(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    # Named, not a lambda over several lines: hypothesis reads ``extend``'s source to check that it recurses.
    return st.one_of(st.lists(inner, max_size=4),
                     st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=6)), inner, max_size=5))


json_values = st.recursive(leaves, _json_containers, max_leaves=40)


NUMBERS = st.one_of(st.integers(-5, 10**6), st.integers(-5, 10**19).map(str),
                    st.sampled_from(["9" * 400, 1e300, 2**63, "9223372036854775807", -1, None, "", 3.0]))


def partition(garbage: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    numbers = st.one_of(NUMBERS, NUMBERS, NUMBERS, garbage)  # mostly numbers: whole answers must get through
    fields = ("Partition", "BrokerOffset", "ConsumerOffset", "LastTimestamp", "MemberId", "ClientId")
    return st.fixed_dictionaries({}, optional=dict.fromkeys(fields, numbers))


def shaped(garbage: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Documented shapes (and their known variants) with garbage mixed in at every level."""
    offsets = st.one_of(st.lists(st.one_of(partition(garbage), garbage), max_size=4),
                        st.builds(lambda x: {"OffsetList": x}, st.lists(partition(garbage), max_size=3)),
                        partition(garbage), garbage)
    topic = st.fixed_dictionaries({"Topic": st.one_of(st.text(max_size=5), garbage)},
                                  optional={"OffsetList": offsets, "TotalDiff": garbage, "LastTimestamp": garbage})
    topics = st.one_of(st.builds(lambda x: {"TopicList": x}, st.lists(st.one_of(topic, garbage), max_size=3)),
                       st.lists(topic, max_size=3), topic, garbage)
    rebalance = st.dictionaries(st.sampled_from(["Generation", "LastRebalanceTimestamp", "RebalanceTimeConsuming",
                                                 "RebalanceSuccess", "Reason"]), garbage, max_size=5)
    progress = st.fixed_dictionaries({}, optional={
        "TopicList": topics, "TotalDiff": garbage, "LastTimestamp": garbage, "state": garbage,
        "RebalanceInfoList": st.one_of(st.builds(lambda x: {"RebalanceInfoList": x}, st.lists(rebalance, max_size=2)),
                                       rebalance, garbage)})
    body = st.fixed_dictionaries({"ConsumerProgress": st.one_of(progress, garbage)},
                                 optional={"RequestId": garbage, "Success": garbage})
    return st.one_of(body, st.builds(lambda b: {"GetConsumerProgressResponse": b}, body))


def check_message(exc: ParseError) -> None:
    text = str(exc)
    assert text and len(text) < 300 and "\n" not in text, text


@FAST
@given(st.one_of(json_values, shaped(json_values), shaped(NUMBERS)))
def test_progress_parser_raises_only_parse_error_and_renders(body: Any) -> None:
    """Any JSON: a ParseError with a one-line message, or progress the collector renders without NaN or Inf."""
    try:
        progress = parse_consumer_progress(body)
    except ParseError as exc:
        check_message(exc)
        return
    state = PairState(Pair("i", "g", "r"), progress, True, 1.0, 1.0, None, 1)
    text = render_states([state], MetricsSettings(member_labels=True, max_series=0), TailCollector(Board(), ApiStats())).decode()
    for sample in samples(text):
        assert math.isfinite(sample.value) and sample.value >= 0, sample


def test_huge_numbers_are_a_parse_error_not_an_overflow() -> None:
    """Offsets past int64 (the API's type) are refused with a message; the int64 maximum itself renders."""
    for huge in ("9" * 400, 1e300, 2**63):
        body = {"ConsumerProgress": {"TopicList": [{"Topic": "t", "OffsetList": [
            {"Partition": 0, "BrokerOffset": huge, "ConsumerOffset": 1}]}]}}
        with pytest.raises(ParseError, match=r"BrokerOffset.*64-bit"):
            parse_consumer_progress(body)
    body = {"ConsumerProgress": {"TopicList": [{"Topic": "t", "OffsetList": [
        {"Partition": 0, "BrokerOffset": str(2**63 - 1), "ConsumerOffset": 0}]}]}}
    state = PairState(Pair("i", "g", "r"), parse_consumer_progress(body), True, 1.0, 1.0, None, 1)
    assert "9.223372036854776e+18" in render_states([state], MetricsSettings(max_series=0), TailCollector(Board(), ApiStats())).decode()


@FAST
@given(json_values)
def test_listing_parsers_raise_only_parse_error(body: Any) -> None:
    """GetInstanceList and GetConsumerList bodies: values or ParseError."""
    for parse, wrap in ((parse_instance_list, "InstanceList"), (parse_consumer_list, "ConsumerList")):
        for candidate in (body, {wrap: body}, {wrap: {wrap[:-4] + "VO": body}}):
            try:
                parse(candidate)
            except ParseError as exc:
                check_message(exc)


def _client() -> AlikafkaClient:
    creds = StaticProvider(Credentials("AK", Secret("fuzz-secret-value")), "test")
    return AlikafkaClient(api_settings("http://127.0.0.1:1/"), creds, RateLimiter(10), ApiStats())


@FAST
@given(st.one_of(json_values.map(lambda v: json.dumps(v).encode()), st.binary(max_size=64)),
       st.sampled_from([200, 400, 403, 404, 500, 502, 503]), st.one_of(st.none(), st.text(max_size=8)))
def test_client_envelope_raises_only_api_errors(raw: bytes, status: int, retry_after: str | None) -> None:
    """Whatever bytes come back with any status: a successful response or one of the typed API errors."""
    client = _client()
    try:
        response = client._interpret("GetConsumerProgress", status, raw, retry_after)
    except ApiError as exc:
        assert exc.code and len(exc.code) <= 64 and "\n" not in exc.code
        assert exc.retry_after is None or (math.isfinite(exc.retry_after) and exc.retry_after >= 0)
        return
    assert status == 200 and isinstance(response.body, dict)


# --- bytes into every parser ---------------------------------------------------------------------

ANSWERS = [
    {"RequestId": "R", "Success": True, "Code": 200, "ConsumerProgress": {"TotalDiff": 3, "state": "Stable",
     "TopicList": {"TopicList": [{"Topic": "t", "OffsetList": {"OffsetList": [
         {"Partition": 0, "BrokerOffset": 9, "ConsumerOffset": 6, "LastTimestamp": 1700000000000}]}}]}}},
    {"RequestId": "R", "Success": True, "Code": 200, "Total": 1, "ConsumerList": {"ConsumerVO": [
        {"ConsumerId": "g", "InstanceId": "i"}]}},
    {"RequestId": "R", "Success": True, "Code": 200, "InstanceList": {"InstanceVO": [
        {"InstanceId": "i", "ServiceStatus": 5, "Name": "n", "RegionId": "r"}]}},
    {"RequestId": "R", "Credentials": {"AccessKeyId": "STS.k", "AccessKeySecret": "fuzz-secret-value",
                                       "SecurityToken": "CAIStoken", "Expiration": "2030-01-01T00:00:00Z"},
     "AssumedRoleUser": {"Arn": "acs:ram::1:role/r/s"}, "Code": "Success"},
]


@st.composite
def hostile_bytes(draw: st.DrawFn) -> bytes:
    """A real answer spoilt the ways a network, a proxy or a hostile server spoils one; or any bytes."""
    answer = json.dumps(draw(st.sampled_from(ANSWERS))).encode()
    how = draw(st.sampled_from(["any", "cut", "splice", "nest", "huge", "replace", "whole"]))
    if how == "any":
        return draw(st.binary(max_size=200))
    if how == "cut":
        return answer[: draw(st.integers(0, len(answer)))]
    at = draw(st.integers(0, len(answer)))
    if how == "splice":
        return answer[:at] + draw(st.binary(min_size=1, max_size=8)) + answer[at:]
    if how == "nest":
        depth = draw(st.sampled_from([MAX_DEPTH - 8, MAX_DEPTH, MAX_DEPTH + 1, 5000, 100_000]))
        opener = draw(st.sampled_from([b"[", b'{"a":', b'["\\\\", ']))
        closer = {b"[": b"]", b'{"a":': b"}", b'["\\\\", ': b"]"}[opener]
        return opener * depth + answer + closer * depth
    if how == "huge":
        return re.sub(rb"(?<=[:\[,])\s*-?\d+", lambda _: draw(st.sampled_from(
            [b"1" + b"0" * 400, b"1e400", b"NaN", b"-Infinity", b"9" * 5000, b"1.5"])), answer, count=3)
    if how == "replace":  # a value swapped for JSON of another kind
        junk = json.dumps(draw(json_values)).encode()
        return re.sub(rb'(?<=:)\s*("[^"]*"|-?\d+|true|false|null)', lambda _: junk, answer, count=1)
    return answer


def _check(exc: Exception) -> None:
    text = str(exc)
    assert text and len(text) < 400 and "\n" not in text and "fuzz-secret-value" not in text, text


@FAST
@given(hostile_bytes())
def test_bytes_into_every_parser_raise_only_documented_errors(raw: bytes) -> None:
    """Decode, then every API parser; the client's envelope at each status; the STS and metadata readers."""
    try:
        value = decode(raw)
    except ParseError as exc:
        _check(exc)
    else:
        for parse in (parse_consumer_progress, parse_instance_list, parse_consumer_list):
            try:
                parse(value)
            except ParseError as exc:
                _check(exc)
    client = _client()
    for status in (200, 400, 503):
        try:
            client._interpret("GetConsumerProgress", status, raw, None)
        except ApiError as exc:
            assert exc.code and len(exc.code) <= 64 and "\n" not in exc.code
        assert _answer_code(PlainAnswer(status, {}, raw))
    for status in (200, 400):
        try:
            sts_credentials(status, raw, "STS", "oidc-token")
        except RemoteCredentialsError as exc:
            _check(exc)
    for read in (lambda: metadata_credentials(raw, "metadata"), lambda: metadata_role_name(raw)):
        try:
            read()
        except RemoteCredentialsError as exc:
            _check(exc)


def _depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    return 0


tricky_text = st.text(alphabet='[]{}"\\ab\n', max_size=8)


def _containers(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    # A named function, not a multi-line lambda: hypothesis checks that ``extend`` uses its argument by reading
    # its source, which for a lambda split over lines it cannot always do.
    return st.one_of(st.lists(inner, max_size=3), st.dictionaries(tricky_text, inner, max_size=3))


nested = st.recursive(st.one_of(st.none(), st.integers(), tricky_text), _containers, max_leaves=30)


@FAST
@given(nested, st.integers(1, 8))
def test_depth_scan_agrees_with_the_structure(value: Any, limit: int) -> None:
    """Brackets, quotes and backslashes in strings and keys never fool the scan: it says too deep exactly
    when the decoded structure nests deeper than the limit."""
    raw = json.dumps(value).encode()
    assert too_deep(raw, limit) == (_depth(value) > limit)


@FAST
@given(st.binary(max_size=300))
def test_depth_scan_never_fails_on_any_bytes(raw: bytes) -> None:
    """Whatever the bytes, the scan answers (no exception, no recursion)."""
    assert too_deep(raw, 3) in (True, False)


# --- the configuration loader ---------------------------------------------------------------------

ALL_KEYS: list[str] = []
SECTIONS: dict[str, list[str]] = {
    name: list(model.model_fields) if hasattr(model, "model_fields") else []
    for name, model in ((n, f.annotation) for n, f in Settings.model_fields.items())
}
ALL_KEYS += [k for keys in SECTIONS.values() for k in keys]
# A problem line starts with the key (dotted, with [index] for list items) and its source in parentheses.
PROBLEM = re.compile(r"^\S.*? \((file |env |flag|default|/|ALIKAFKA_EXPORTER_)")

yaml_leaves = st.one_of(st.none(), st.booleans(), st.integers(-(10**20), 10**20), st.floats(),
                        st.text(alphabet=string.printable, max_size=10),
                        st.sampled_from(["all", "30s", "-1s", "1h30m", ":9897", "0/1", "9/3", "(", "v3", "debug"]))


def _yaml_containers(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.lists(inner, max_size=3),
                     st.dictionaries(st.one_of(st.sampled_from([*ALL_KEYS, "instance_id", "groups"]),
                                               st.text(max_size=5)), inner, max_size=4))


yaml_values = st.recursive(yaml_leaves, _yaml_containers, max_leaves=25)


def sectioned() -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(
        st.sampled_from([*SECTIONS, "bogus"]),
        st.one_of(yaml_values, st.dictionaries(st.sampled_from(ALL_KEYS), yaml_values, max_size=4)),
        max_size=5)


@pytest.fixture(scope="module")
def path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz") / "c.yaml"


def load(path: Path, text: str, environ: dict[str, str] | None = None) -> None:
    path.write_text(text, encoding="utf-8")
    try:
        load_settings({}, environ or {}, path)
    except ConfigError as exc:
        assert exc.problems
        for problem in exc.problems:
            assert PROBLEM.match(problem), problem
            assert problem.isprintable() and "Traceback (most recent call last)" not in problem, problem


@FAST
@given(st.one_of(sectioned(), yaml_values))
def test_config_documents_load_or_name_every_problem(path: Path, document: Any) -> None:
    """Any YAML document built of known sections, keys and junk values: settings, or problems naming keys."""
    load(path, yaml.safe_dump(document))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=80))
def test_config_text_never_crashes(path: Path, text: str) -> None:
    """Arbitrary text as the config file: YAML errors and shape errors are problems, never a traceback."""
    load(path, text)


env_names = st.one_of(
    st.sampled_from([f"ALIKAFKA_EXPORTER_{s.upper()}__{k.upper()}" for s, ks in SECTIONS.items() for k in ks]
                    + [f"ALIKAFKA_EXPORTER_{s.upper()}" for s in SECTIONS]),
    st.text(alphabet=string.ascii_uppercase + "_", max_size=12).map(lambda t: "ALIKAFKA_EXPORTER_" + t))


@FAST
@given(st.dictionaries(env_names, st.one_of(st.text(alphabet=string.printable, max_size=12),
                                            yaml_values.map(json.dumps)), max_size=4))
def test_environment_values_load_or_name_every_problem(path: Path, environ: dict[str, str]) -> None:
    """Any ALIKAFKA_EXPORTER_* variables (JSON for sections and lists, plain text for the rest)."""
    load(path, "", environ)


def test_blank_and_padded_keys_are_shown_quoted(path: Path) -> None:
    """A key that is only spaces (found by hypothesis) or has spaces around it is quoted in the problem."""
    path.write_text("' ': 1\nmetrics:\n  ' granularity': topic\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings({}, {}, path)
    assert any(p.startswith("' ' (file ") for p in caught.value.problems), caught.value.problems
    assert any(p.startswith("metrics.' granularity' (file ") for p in caught.value.problems), caught.value.problems
