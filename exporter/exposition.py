"""Encoded exposition bytes, cached until the snapshot or the API statistics change.

Scrapes between two poll results get the same bytes without rendering again, and a gzip copy is
made at most once per change, only if a scraper asks for it. Both text formats come from
prometheus_client's encoders, so the output is exactly what Prometheus parses.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS_CONTENT_TYPE
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.registry import Collector

# The body is the classic 0.0.4 text format; newer prometheus_client versions label it 1.0.0,
# which older Prometheus servers do not know, so the header is pinned to what the body is.
TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass
class Rendered:
    """One encoding of one state, with its gzip copy made on first request."""

    body: bytes
    content_type: str
    _gzipped: bytes | None = field(default=None, repr=False)

    def gzipped(self) -> bytes:
        """The body gzip-compressed (level 6: a good ratio at a few ms per MB)."""
        if self._gzipped is None:
            self._gzipped = gzip.compress(self.body, compresslevel=6, mtime=0)
        return self._gzipped


class Exposition:
    """Renders a collector on demand, caching per ``state_key()`` value and format."""

    def __init__(self, collector: Collector, state_key: Callable[[], Hashable]) -> None:
        self._registry = CollectorRegistry(auto_describe=False)
        self._registry.register(collector)
        self._state_key = state_key
        self._cache: dict[bool, tuple[Hashable, Rendered]] = {}

    def render(self, *, openmetrics: bool = False) -> Rendered:
        """The exposition in the 0.0.4 text format, or OpenMetrics 1.0 when asked."""
        key = self._state_key()
        cached = self._cache.get(openmetrics)
        if cached is not None and cached[0] == key:
            return cached[1]
        if openmetrics:
            body = generate_openmetrics(self._registry)  # type: ignore[no-untyped-call]
            rendered = Rendered(body, OPENMETRICS_CONTENT_TYPE)
        else:
            rendered = Rendered(generate_latest(self._registry), TEXT_CONTENT_TYPE)
        self._cache[openmetrics] = (key, rendered)
        return rendered
