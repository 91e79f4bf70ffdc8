"""Fault rules: the ways the real service (or the network in between) misbehaves, on demand.

A rule matches requests by action, instance and group, fires a fixed number of times or with a seeded
probability (so runs repeat), and spoils the answer: an error, a delay, a dropped connection, a clock off,
an odd but documented shape, or what a hostile network sends (slow pieces, redirects, gzip bombs, deep or
broken JSON). The kinds are listed in docs/simulator.md.
"""

from __future__ import annotations

import functools
import json
import random
import zlib
from dataclasses import dataclass
from typing import Any, Literal

FaultKind = Literal[
    "http_500", "http_503", "throttle", "timeout", "latency", "reset", "html", "truncated", "single_object",
    "numbers_as_strings", "missing_wrappers", "success_false", "root_wrapper", "not_found", "token_expired",
    "clock_skew", "slow_body", "redirect", "gzip_bomb", "deep_nesting", "invalid_utf8", "huge_numbers",
    "wrong_types", "empty_body", "disk_full",
]
FAULT_KINDS: tuple[str, ...] = FaultKind.__args__  # type: ignore[attr-defined]

# Kinds that rewrite a successful body rather than replace the answer.
SHAPE_KINDS = frozenset({"single_object", "numbers_as_strings", "missing_wrappers", "root_wrapper"})
# Kinds that change what the gateway's authentication sees rather than the answer: ``clock_skew``
# moves the gateway's clock by ``delay`` seconds for the matching requests, so a skew beyond the
# signature's 15-minute window is refused as ``InvalidTimeStamp.Expired`` by the real check.
AUTH_KINDS = frozenset({"clock_skew"})
# Kinds that change how the answer travels and let the next rules decide what it says (as ``latency``):
# ``slow_body`` sends it in ``pieces`` writes with ``delay`` seconds between them.
DELIVERY_KINDS = frozenset({"latency", "slow_body"})
# ``disk_full`` is no rule on answers: the instance's disk fills and the oldest messages are deleted until only
# the newest ``delay`` seconds remain, for as long as the fault stands (simulator/retention.py).
REDIRECT_LOCATION = "http://127.0.0.1:9/"  # the discard port: another origin, where nothing should go
BOMB_SIZE = 64 * 1024 * 1024
# Kinds that send hostile bytes instead of the answer: :func:`hostile_body` writes them from the answer
# that would have been sent (HTTP 200; ``deep_nesting`` and ``empty_body`` do not need one).
HOSTILE_KINDS = frozenset({"deep_nesting", "invalid_utf8", "huge_numbers", "wrong_types", "empty_body"})
DEEP_NESTING = 100_000  # levels: Python's decoder gives up (RecursionError) after about a thousand
# What huge_numbers puts in place of each number, in turn: past int64, past a double (read as infinity),
# and the two literals Python's json accepts although JSON has no such numbers.
_HUGE = (b"1" + b"0" * 400, b"1e400", b"NaN", b"-Infinity")
_ENVELOPE = frozenset({"RequestId", "Code", "Success", "Message"})
# List wrappers named like their list whose name does not end in List (GetTopicStatus's OffsetTable).
_SAME_NAMED = frozenset({"OffsetTable"})


@dataclass
class FaultRule:
    """One fault: what it does, which requests it hits, how often."""

    kind: FaultKind
    action: str | None = None
    instance_id: str | None = None
    group: str | None = None
    count: int | None = None  # None: until cleared
    probability: float = 1.0
    delay: float = 1.0  # latency, timeout and slow_body's pauses, seconds; clock_skew: the gateway clock's offset
    pieces: int = 2  # slow_body: writes the answer is split into
    location: str = REDIRECT_LOCATION  # redirect: where the 307 points
    size: int = BOMB_SIZE  # gzip_bomb: bytes the answer expands to

    def __post_init__(self) -> None:
        if not 1 <= self.pieces <= 10_000 or not 0 <= self.size <= 1024**3:
            raise ValueError("pieces must be 1-10000 and size 0-1 GiB")

    def matches(self, action: str, params: dict[str, str], rng: random.Random) -> bool:
        """Whether this rule fires for a request (consuming one of its ``count`` if it does)."""
        if self.count is not None and self.count <= 0:
            return False
        if self.action is not None and self.action != action:
            return False
        if self.instance_id is not None and self.instance_id != params.get("InstanceId"):
            return False
        if self.group is not None and self.group != params.get("ConsumerId"):
            return False
        if self.probability < 1.0 and rng.random() >= self.probability:
            return False
        if self.count is not None:
            self.count -= 1
        return True


def _wrapped_lists(node: Any, transform: str) -> Any:
    """Rewrite every ``{"X": [..]}`` wrapper (X ending in List) for the shape faults."""
    if isinstance(node, list):
        return [_wrapped_lists(v, transform) for v in node]
    if not isinstance(node, dict):
        return node
    out: dict[str, Any] = {}
    for key, value in node.items():
        inner = value.get(key) if isinstance(value, dict) and len(value) == 1 else None
        if (key.endswith("List") or key in _SAME_NAMED) and isinstance(inner, list):
            items = [_wrapped_lists(v, transform) for v in inner]
            if transform == "missing_wrappers":
                out[key] = items
            elif transform == "single_object" and len(items) == 1:
                out[key] = {key: items[0]}
            else:
                out[key] = {key: items}
        else:
            out[key] = _wrapped_lists(value, transform)
    return out


def _stringify_numbers(node: Any) -> Any:
    if isinstance(node, bool):
        return node
    if isinstance(node, int | float):
        return str(node)
    if isinstance(node, list):
        return [_stringify_numbers(v) for v in node]
    if isinstance(node, dict):
        return {k: (v if k == "Code" else _stringify_numbers(v)) for k, v in node.items()}
    return node


def reshape(body: dict[str, Any], kind: str, action: str) -> dict[str, Any]:
    """Apply a shape fault to a successful body."""
    if kind in ("single_object", "missing_wrappers"):
        return dict(_wrapped_lists(body, kind))
    if kind == "numbers_as_strings":
        return dict(_stringify_numbers(body))
    if kind == "root_wrapper":
        return {f"{action}Response": body}
    return body


@functools.lru_cache(maxsize=4)
def gzip_bomb(size: int) -> bytes:
    """A gzip body that expands to ``size`` bytes of JSON whitespace and then a valid success body.

    Compressed about 1000 to 1, so a 64 MiB expansion travels as some 64 KiB: only a cap on the
    decompressed size stops a client from holding all of it. Built once per size, in 1 MiB steps.
    """
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)  # 16+: the gzip container
    block = b" " * (1024 * 1024)
    parts = []
    for start in range(0, size, len(block)):
        parts.append(packer.compress(block[: min(len(block), size - start)]))
    parts.append(packer.compress(b'{"RequestId":"BOMB","Success":true,"Code":200}'))
    parts.append(packer.flush())
    return b"".join(parts)


def hostile_rule(faults: list[FaultRule], action: str, rng: random.Random) -> FaultRule | None:
    """The first hostile rule whose ``action`` names ``action`` (``AssumeRoleWithOIDC``, ``ECSMetadata``).

    STS and the metadata service obey only rules that name them, so the rules meant for every API call
    (a soak's standing faults) leave the credentials services alone."""
    for rule in list(faults):
        if rule.kind in HOSTILE_KINDS and rule.action == action and rule.matches(action, {}, rng):
            return rule
    return None


def hostile_body(kind: str, body: dict[str, Any], rng: random.Random) -> bytes:
    """The bytes a hostile kind sends in place of ``body`` (the answer that would have been sent)."""
    if kind == "empty_body":
        return b""
    request_id = str(body.get("RequestId", "")).encode()
    if kind == "deep_nesting":  # a valid envelope around a value nested far deeper than any answer
        return (b'{"RequestId":"' + request_id + b'","Success":true,"Code":200,"Data":'
                + b"[" * DEEP_NESTING + b"]" * DEEP_NESTING + b"}")
    if kind == "invalid_utf8":  # a lone continuation byte and an overlong encoding inside the first string
        text = json.dumps(body, separators=(",", ":")).encode()
        cut = text.find(b'"', text.find(b":") + 1) + 1 or len(text) // 2
        return text[:cut] + b"\x80\xc0\xaf" + text[cut:]
    if kind == "huge_numbers":
        return _huge_numbers(body)
    if kind == "wrong_types":
        return json.dumps(_wrong_type_at_random(body, rng), separators=(",", ":")).encode()
    raise ValueError(f"not a hostile kind: {kind}")


def _huge_numbers(body: dict[str, Any]) -> bytes:
    """Every number but the envelope's ``Code`` replaced by the huge ones in turn (written as raw JSON)."""
    marks: list[bytes] = []

    def swap(node: Any, key: str = "") -> Any:
        if isinstance(node, bool) or key in _ENVELOPE:
            return node
        if isinstance(node, int | float):
            marks.append(_HUGE[len(marks) % len(_HUGE)])
            return f"\x00{len(marks) - 1}\x00"
        if isinstance(node, list):
            return [swap(v) for v in node]
        if isinstance(node, dict):
            return {k: swap(v, k) for k, v in node.items()}
        return node

    text = json.dumps(swap(body), separators=(",", ":")).encode()
    for index, mark in enumerate(marks):
        text = text.replace(b'"\\u0000' + str(index).encode() + b'\\u0000"', mark, 1)
    return text


def _wrong_type_at_random(body: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """The answer with one value (below the envelope, any level) swapped for one of another type."""
    places: list[tuple[dict[str, Any] | list[Any], str | int]] = []

    def collect(node: Any) -> None:
        items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        for key, value in items:
            if node is body and key in _ENVELOPE:
                continue
            places.append((node, key))
            collect(value)

    collect(body)
    if places:
        parent, key = places[rng.randrange(len(places))]
        parent[key] = _another_type(parent[key], rng)  # type: ignore[index]
    return body


def _another_type(value: Any, rng: random.Random) -> Any:
    """A value of a type the field does not have: a list for an object, text for a list, a boolean for a
    number, null or a number for text."""
    if isinstance(value, dict):
        return rng.choice([[value], "object", None, 7])
    if isinstance(value, list):
        return rng.choice(["list", {"item": value}, None, True])
    if isinstance(value, bool):
        return rng.choice(["yes", 1, None])
    if isinstance(value, int | float):
        return rng.choice([True, False, "many", None, [value], {"value": value}])
    if isinstance(value, str):
        return rng.choice([None, 12345, False, [value], {"text": value}])
    return rng.choice(["null", 0, [], {}])
