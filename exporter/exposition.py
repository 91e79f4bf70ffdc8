"""Exposition bytes kept ready: each poll compresses its own lines, a scrape only joins them.

When a poll result arrives, the pair's lines are rendered once (:func:`exporter.collector.pair_lines`)
and each family's lines are stored as one gzip member, and nothing else. A gzip stream may consist of
several members (RFC 1952) and Prometheus' and Python's readers decode them all, so the gzip body of
a scrape is the family headers' members and the pairs' members joined in order: no rendering and no
compression at scrape time, however many series there are, and the stored form is the compressed one
(about a tenth of the text). The plain body, for a scraper that does not accept gzip, is decompressed
from the same members when asked for.

The end offset of a partition (and, with the kafka_exporter compat families, a topic's partition count)
is one series however many groups read it, with the highest value they report; its line is rendered as
part of one contributing pair (the lowest), re-rendered when another contributor changes the value.
The few families of the exporter itself are rendered per format by prometheus_client and cached until
the state changes.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS_CONTENT_TYPE
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.registry import Collector

from exporter.collector import (
    CollectorOptions,
    SharedKey,
    families,
    pair_lines,
    shared_line,
    shared_values,
)
from exporter.snapshot import Pair, PairState

# The body is the classic 0.0.4 text format; newer prometheus_client versions label it 1.0.0,
# which older Prometheus servers do not know, so the header is pinned to what the body is.
TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LEVEL = 6


def member(data: bytes) -> bytes:
    """One gzip member of ``data`` (no timestamp, so equal data gives equal bytes)."""
    packer = zlib.compressobj(_LEVEL, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    return packer.compress(data) + packer.flush()


def decompress(data: bytes) -> bytes:
    """Decode a body of one or more gzip members."""
    out = []
    while data:
        inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
        out.append(inflater.decompress(data))
        data = inflater.unused_data
    return b"".join(out)


@dataclass
class _PairEntry:
    members: dict[str, bytes] = field(default_factory=dict)  # family -> gzip member of its lines
    offsets: dict[SharedKey, int] = field(default_factory=dict)  # what this pair reports
    owned: set[SharedKey] = field(default_factory=set)  # shared lines this pair carries


class Rendered:
    """One encoding of the current state; both bodies are joined on first request.

    Prometheus asks for gzip, so the plain body of a large exposition is usually never built.
    """

    def __init__(self, content_type: str, members: list[bytes]) -> None:
        self.content_type = content_type
        self._members = members
        self._body: bytes | None = None
        self._gzipped: bytes | None = None

    @property
    def body(self) -> bytes:
        """The uncompressed exposition."""
        if self._body is None:
            self._body = decompress(self.gzipped())
        return self._body

    def gzipped(self) -> bytes:
        """The gzip-compressed exposition: the stored members joined."""
        if self._gzipped is None:
            self._gzipped = b"".join(self._members)
        return self._gzipped


class Exposition:
    """The exposition of every pair plus the exporter's own families, kept ready to serve."""

    def __init__(self, options: CollectorOptions, tail: Collector, tail_key: Callable[[], Hashable]) -> None:
        self._families = families(options)
        self._options = options
        self._shared = tuple(f.name for f in self._families if f.shared)
        self._headers = {f.name: member(f.header().encode()) for f in self._families}
        self._entries: dict[Pair, _PairEntry] = {}
        self._order: list[Pair] | None = []
        self._by_partition: dict[SharedKey, dict[Pair, int]] = {}
        self._stale_owners: set[Pair] = set()
        self._tail = CollectorRegistry(auto_describe=False)
        self._tail.register(tail)
        self._tail_key = tail_key
        self.version = 0
        self._cache: dict[bool, tuple[Hashable, Rendered]] = {}

    def update(self, state: PairState) -> None:
        """Take a pair's new state (called by the poller after each poll)."""
        entry = self._entries.get(state.pair)
        if entry is None:
            entry = self._entries[state.pair] = _PairEntry()
            self._order = None
        before = entry.members
        lines = pair_lines(state, self._options)
        entry.members = {name: member(text.encode()) for name, text in lines.items() if text}
        if self._shared:
            self._set_offsets(state.pair, entry, shared_values(state, self._options))
            self._render_offsets(state.pair, entry)
        if entry.members != before or self._stale_owners:
            self.version += 1

    def remove(self, pair: Pair) -> None:
        """Forget a pair that is no longer polled."""
        entry = self._entries.pop(pair, None)
        if entry is None:
            return
        self._order = None
        self._set_offsets(pair, entry, {})
        self._stale_owners.discard(pair)
        self.version += 1

    def _set_offsets(self, pair: Pair, entry: _PairEntry, offsets: dict[SharedKey, int]) -> None:
        for key in entry.offsets.keys() - offsets.keys():
            contributors = self._by_partition[key]
            del contributors[pair]
            if contributors:
                self._stale_owners.add(min(contributors))
            else:
                del self._by_partition[key]
        for key, value in offsets.items():
            contributors = self._by_partition.setdefault(key, {})
            if contributors.get(pair) != value:
                # the value or the owner may change: every other contributor re-renders what it carries
                self._stale_owners.update(p for p in contributors if p != pair)
            contributors[pair] = value
        entry.offsets = offsets

    def _render_offsets(self, pair: Pair, entry: _PairEntry) -> None:
        """Render the shared lines this pair carries: the series where it is the lowest contributor."""
        owned = sorted(k for k in entry.offsets if min(self._by_partition[k]) == pair)
        entry.owned = set(owned)
        texts: dict[str, list[str]] = {}
        for key in owned:
            texts.setdefault(key[0], []).append(shared_line(key, max(self._by_partition[key].values())))
        for name in self._shared:
            if name in texts:
                entry.members[name] = member("".join(texts[name]).encode())
            else:
                entry.members.pop(name, None)

    def _chunks(self) -> list[bytes]:
        for owner in self._stale_owners:
            entry = self._entries.get(owner)
            if entry is not None:
                self._render_offsets(owner, entry)
        self._stale_owners.clear()
        if self._order is None:
            self._order = sorted(self._entries)
        order = [self._entries[p] for p in self._order]
        chunks: list[bytes] = []
        for family in self._families:
            chunks.append(self._headers[family.name])
            chunks.extend(e.members[family.name] for e in order if family.name in e.members)
        return chunks

    def render(self, *, openmetrics: bool = False) -> Rendered:
        """The exposition in the 0.0.4 text format, or OpenMetrics 1.0 when asked."""
        key = (self.version, self._tail_key())
        cached = self._cache.get(openmetrics)
        if cached is not None and cached[0] == key:
            return cached[1]
        if openmetrics:
            tail = generate_openmetrics(self._tail)  # type: ignore[no-untyped-call]
            content_type = OPENMETRICS_CONTENT_TYPE
        else:
            tail = generate_latest(self._tail)
            content_type = TEXT_CONTENT_TYPE
        rendered = Rendered(content_type, [*self._chunks(), member(tail)])
        self._cache[openmetrics] = (key, rendered)
        return rendered


def render_states(states: Iterable[PairState], options: CollectorOptions, tail: Collector,
                  *, openmetrics: bool = False) -> bytes:
    """The whole exposition of some pair states at once (``--once``, tests)."""
    exposition = Exposition(options, tail, lambda: 0)
    for state in states:
        exposition.update(state)
    return exposition.render(openmetrics=openmetrics).body
