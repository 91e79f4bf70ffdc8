"""Value types of the settings: durations, sizes and optional paths, each with the parser pydantic runs first.

A duration is a number of seconds or a Go-style string (``1m30s``, ``500ms``); a size is a number of bytes
or a string such as ``4MiB``; an empty path means none. The section models and the web config file
use these types, so a value is spelled and checked the same way everywhere.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator

_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_HELP = "use a number of seconds or a duration such as 500ms, 30s, 5m, 1h30m"


def parse_duration(value: Any) -> float:
    """Seconds from a number or a Go-style duration string (``1m30s``, ``500ms``)."""
    if isinstance(value, bool):  # pydantic reports ValueError, not TypeError, as a validation error
        raise ValueError(f"invalid duration: {_DURATION_HELP}")  # noqa: TRY004
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        try:
            seconds = float(text)
        except ValueError:
            if not text or _PART.sub("", text):
                raise ValueError(f"invalid duration {text!r}: {_DURATION_HELP}") from None
            seconds = sum(float(num) * _UNITS[unit] for num, unit in _PART.findall(text))
    else:
        raise ValueError(f"invalid duration: {_DURATION_HELP}")  # noqa: TRY004
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"invalid duration {value!r}: must be a finite, non-negative time")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]

_SIZE_UNITS = {"": 1, "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "kib": 1024, "mib": 1024**2, "gib": 1024**3}
_SIZE_HELP = "use a number of bytes or a size such as 512KiB, 4MiB, 8MB"


def parse_size(value: Any) -> int:
    """Bytes from a whole number or a size string (``4MiB``, ``512KiB``, ``8MB``; ``Ki``/``Mi`` are 1024-based)."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"invalid size: {_SIZE_HELP}")  # noqa: TRY004 - pydantic reports ValueError
    if isinstance(value, int):
        return value
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*", value)
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _SIZE_UNITS:
        raise ValueError(f"invalid size {value!r}: {_SIZE_HELP}")
    return int(float(match.group(1)) * _SIZE_UNITS[unit])


Size = Annotated[int, BeforeValidator(parse_size)]


def _empty_to_none(value: Any) -> Any:
    return None if value == "" else value


OptionalPath = Annotated[Path | None, BeforeValidator(_empty_to_none)]
