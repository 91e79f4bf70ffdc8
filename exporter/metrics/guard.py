"""The cardinality guard's vocabulary: which step sheds a family, and what the guard did last time.

``metrics.max_series`` sheds a pair's detail one level at a time (partition, then topic, then group
detail), newest pairs first, while a pair's core families always stay. The exposition cache applies
the plan; ``SeriesLimits`` is what it reports to the self-metrics.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from exporter.metrics.families import Family, P

# The cardinality guard (metrics.max_series) sheds a pair's detail in steps: 1 its partition-level
# families, 2 its topic-level ones, 3 its group-level detail. These families, a pair's core, stay.
# The thresholds stay with them: a rule comparing max_lag_seconds to a pair's threshold must find both.
CORE_FAMILIES = frozenset({P + "up", P + "last_success_timestamp_seconds", P + "group_lag", P + "max_lag_seconds",
                           P + "lag_seconds_threshold", P + "lag_threshold"})
SHED_LEVELS = ("partition", "topic", "group")  # what steps 1, 2 and 3 drop


@dataclass(frozen=True, slots=True)
class SeriesLimits:
    """What the cardinality guard did at the last render, for the exporter's own metrics."""

    limit: int = 0  # 0: no limit
    series: int = 0  # pair-derived series served
    dropped: int = 0  # series left out to stay within the limit
    limited: Mapping[str, int] = field(default_factory=lambda: MappingProxyType(dict.fromkeys(SHED_LEVELS, 0)))


def shed_step(family: Family) -> int | None:
    """The guard's step that drops ``family`` (1-3), or None for a family it never drops."""
    if family.name in CORE_FAMILIES or family.level == "health":
        return None
    return SHED_LEVELS.index(family.level) + 1
