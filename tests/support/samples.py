"""The samples of a Prometheus exposition, read with prometheus_client's own parser, for tests and benchmarks.

The exporter writes its text format by hand; tests and benchmarks that check a value read it back through this
one parser instead of matching substrings, so a check names the metric, its labels and the number, and a
malformed line fails the parse instead of silently not matching. Text ending in ``# EOF`` is read as OpenMetrics.
Golden-file comparisons stay byte comparisons: they check the bytes, this checks the values.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import NamedTuple

from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families
from prometheus_client.parser import text_string_to_metric_families as text_families


class Sample(NamedTuple):
    """One sample: its name (with any ``_total``/``_sum``/``_bucket`` suffix), labels, value and family type."""

    name: str
    labels: Mapping[str, str]
    value: float
    type: str

    @property
    def key(self) -> tuple[str, tuple[tuple[str, str], ...]]:
        """Name and sorted labels: a hashable identity of the series."""
        return self.name, tuple(sorted(self.labels.items()))


def samples(text: str | bytes) -> list[Sample]:
    """Every sample of an exposition, in order."""
    return list(_parse(text.decode() if isinstance(text, bytes) else text))


@functools.lru_cache(maxsize=8)
def _parse(text: str) -> tuple[Sample, ...]:
    families = openmetrics_families if text.rstrip().endswith("# EOF") else text_families
    return tuple(Sample(s.name, dict(s.labels), float(s.value), family.type)
                 for family in families(text) for s in family.samples)


def find(text: str | bytes, name: str, /, **labels: str) -> list[Sample]:
    """The samples called ``name`` whose labels include ``labels`` (values compared as strings)."""
    return [s for s in samples(text) if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]


def get(text: str | bytes, name: str, /, **labels: str) -> float | None:
    """The value of the one sample ``name`` with ``labels``; None when there is none; an error when several match."""
    found = find(text, name, **labels)
    if len(found) > 1:
        raise AssertionError(f"{len(found)} samples match {name}{labels}: {[dict(s.labels) for s in found]}")
    return found[0].value if found else None


def value(text: str | bytes, name: str, /, **labels: str) -> float:
    """The value of the one sample ``name`` with ``labels``; an error naming what there is when not exactly one."""
    found = get(text, name, **labels)
    if found is None:
        present = [dict(s.labels) for s in samples(text) if s.name == name]
        raise AssertionError(f"no sample {name}{labels}; samples of that name: {present}")
    return found


def has(text: str | bytes, name: str, /, **labels: str) -> bool:
    """Whether any sample ``name`` with ``labels`` exists."""
    return bool(find(text, name, **labels))


def series(text: str | bytes, name: str) -> dict[frozenset[tuple[str, str]], float]:
    """{labels: value} of every sample called ``name``, labels as a frozenset of pairs (for comparing families)."""
    return {frozenset(s.labels.items()): s.value for s in samples(text) if s.name == name}
