"""One hardened step from an answer's bytes to JSON values, shared by every parser of a cloud answer.

An empty body, bytes that are not UTF-8, nesting deeper than any real answer (bounded by a scan of the
bytes before decoding, since Python's decoder recurses), a number too long to read and text that is not
JSON each become a :class:`ParseError` that names the problem and never quotes the body (which may hold
secrets), so a bad answer fails one call and nothing else.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from typing import Any

# The deepest real answer is GetConsumerProgress with the doc sample's root wrapper: about nine levels
# (root, ConsumerProgress, TopicList wrapper and list, topic, OffsetList wrapper and list, partition).
# 64 leaves room for fields not documented yet and stays far below Python's recursion limit.
MAX_DEPTH = 64

# The bytes that decide nesting: brackets, and the quotes that say which brackets are inside strings.
# UTF-8 never uses an ASCII byte inside a multi-byte character, so the scan works on the raw bytes.
_OTHER_BYTES = bytes(b for b in range(256) if b not in b'[]{}"')
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


class ParseError(ValueError):
    """An answer this exporter cannot understand: not JSON, too deep, or not the documented shape."""


def too_deep(raw: bytes, limit: int = MAX_DEPTH) -> bool:
    """Whether brackets outside strings nest deeper than ``limit``: a few passes at C speed, no recursion."""
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    if b"\\" in raw:  # escaped backslashes first (as the decoder pairs them), then escaped quotes
        raw = raw.replace(b"\\\\", b"").replace(b'\\"', b"")
    # Adjacent quotes go first (an empty string, or two strings with nothing between): most strings hold no
    # bracket, so few pieces are left to split, where every other piece is inside a string.
    skeleton = raw.translate(None, _OTHER_BYTES).replace(b'""', b"")
    outside = b"".join(skeleton.split(b'"')[::2]) if b'"' in skeleton else skeleton
    return any(depth > limit for depth in itertools.accumulate(map(_STEP.__getitem__, outside)))


def decode(raw: bytes, *, max_depth: int = MAX_DEPTH) -> Any:
    """The JSON value of ``raw``, or :class:`ParseError` saying briefly why there is none."""
    if not raw or raw.isspace():
        raise ParseError("empty body")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ParseError(f"not UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start})") from None
    if too_deep(raw, max_depth):
        raise ParseError(f"JSON nested deeper than {max_depth} levels")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ParseError(f"not JSON ({exc.msg}; offset {exc.pos})") from None
    except ValueError:  # an integer of more digits than Python converts (4,300)
        raise ParseError("not JSON (a number too long to read)") from None
    except RecursionError:  # the scan above makes this unreachable; kept as the last net
        raise ParseError("JSON nested too deeply") from None


def decode_object(raw: bytes, *, max_depth: int = MAX_DEPTH) -> Mapping[str, Any]:
    """Like :func:`decode`, for answers that must be a JSON object."""
    value = decode(raw, max_depth=max_depth)
    if not isinstance(value, Mapping):
        raise ParseError(f"not a JSON object ({kind(value)})")
    return value


def kind(value: Any) -> str:
    """A JSON value's type in JSON's words with its article ("an array", "null"), for messages that must
    not quote the value."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "an array"
    return "an object" if isinstance(value, Mapping) else f"a {type(value).__name__}"


def lookup(body: Mapping[str, Any], name: str) -> Any:
    """A key as documented (``Code``, ``RequestId``), else in any other letter case (``code``,
    ``requestId``); None when absent."""
    if name in body:
        return body[name]
    lowered = name.lower()
    for key, value in body.items():
        if isinstance(key, str) and key.lower() == lowered:
            return value
    return None


def scalar(value: Any, limit: int | None = 300) -> str | None:
    """An envelope field (``Code``, ``RequestId``, ``Message``) as text: a string or a number, cut to
    ``limit`` (None: whole, for text that secrets are masked in before it is cut); a list, an object, a
    boolean or null is no value (a hostile answer can put anything there)."""
    if isinstance(value, str):
        return value[:limit]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)[:limit]
    return None
