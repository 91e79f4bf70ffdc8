"""Exposition bytes kept ready: a scrape joins prebuilt chunks and never renders or compresses much.

Each pair's lines are rendered once, when its poll result arrives (:func:`exporter.collector.pair_lines`).
Pairs (and, for the end-offset family, partitions) live in small blocks; for every family a block keeps
its text and a gzip member of that text, rebuilt only when one of its items changed. The body of a family
is its header followed by its blocks' texts, so a scrape concatenates a few thousand byte strings; the
gzip body is the concatenation of the members (RFC 1952 allows a file of several members, and
Prometheus' and Python's readers decode them all). The few families of the exporter itself are rendered
per format by prometheus_client and cached until the statistics change.

Items keep their order by key inside a block, and blocks their order of creation, so the output is
stable from scrape to scrape.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS_CONTENT_TYPE
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.registry import Collector

from exporter.collector import (
    END_OFFSET,
    CollectorOptions,
    PartitionKey,
    end_offset_line,
    end_offsets,
    families,
    pair_lines,
)
from exporter.snapshot import Pair, PairState

# The body is the classic 0.0.4 text format; newer prometheus_client versions label it 1.0.0,
# which older Prometheus servers do not know, so the header is pinned to what the body is.
TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
BLOCK_SIZE = 16  # items per block: a poll rebuilds one block (about 16 pairs' lines) per family
_LEVEL = 6


def _member(data: bytes) -> bytes:
    """One gzip member (mtime 0, so the bytes depend on the data only)."""
    return gzip.compress(data, compresslevel=_LEVEL, mtime=0)


Render = Callable[[Any, Any], Mapping[str, str]]


@dataclass
class _Block:
    """Items (states or values, not their text) and, per family, a gzip member of their lines.

    Lines are rendered from the items when the block is rebuilt and not kept: at 100k series the
    text would cost more memory than everything else together.
    """

    items: dict[Hashable, Any] = field(default_factory=dict)
    packed: dict[str, bytes] = field(default_factory=dict)
    dirty: bool = True

    def texts(self, render: Render, names: Iterable[str]) -> dict[str, bytes]:
        lines = [render(key, self.items[key]) for key in sorted(self.items, key=_orderable)]
        return {name: "".join(item.get(name, "") for item in lines).encode() for name in names}

    def build(self, render: Render, names: Iterable[str]) -> None:
        self.packed = {name: _member(data) for name, data in self.texts(render, names).items() if data}
        self.dirty = False


def _orderable(key: Hashable) -> Any:
    """Item keys are pairs or partition tuples: both order naturally."""
    return key


class _BlockStore:
    """Items in blocks of ``BLOCK_SIZE``; ``render(key, item)`` gives an item's lines by family."""

    def __init__(self, names: tuple[str, ...], render: Render) -> None:
        self.names = names
        self.render = render
        self.blocks: list[_Block] = []
        self.where: dict[Hashable, _Block] = {}

    def put(self, key: Hashable, item: Any) -> bool:
        block = self.where.get(key)
        if block is None:
            if not self.blocks or len(self.blocks[-1].items) >= BLOCK_SIZE:
                self.blocks.append(_Block())
            block = self.where[key] = self.blocks[-1]
        elif block.items.get(key) == item:
            return False
        block.items[key] = item
        block.dirty = True
        return True

    def remove(self, key: Hashable) -> bool:
        block = self.where.pop(key, None)
        if block is None:
            return False
        del block.items[key]
        block.dirty = True
        return True

    def parts(self, name: str, packed: bool) -> list[bytes]:
        for block in self.blocks:
            if block.dirty:
                block.build(self.render, self.names)
        if packed:
            return [b.packed[name] for b in self.blocks if name in b.packed]
        return [b.texts(self.render, (name,))[name] for b in self.blocks if name in b.packed]


class Rendered:
    """One encoding of the current state; plain and gzip bodies are joined on first request.

    Prometheus asks for gzip, so the plain body of a large exposition is usually never built. The plain
    body is joined from the blocks as they are when first asked for, so use a Rendered right away (the
    web handler does, without awaiting in between) rather than keeping it across updates.
    """

    def __init__(self, content_type: str, plain: Callable[[], list[bytes]], members: list[bytes]) -> None:
        self.content_type = content_type
        self._plain = plain
        self._members = members
        self._body: bytes | None = None
        self._gzipped: bytes | None = None

    @property
    def body(self) -> bytes:
        """The uncompressed exposition."""
        if self._body is None:
            self._body = b"".join(self._plain())
        return self._body

    def gzipped(self) -> bytes:
        """The gzip-compressed exposition: the prebuilt members joined."""
        if self._gzipped is None:
            self._gzipped = b"".join(self._members)
        return self._gzipped


class Exposition:
    """The exposition of every pair plus the exporter's own families, kept ready to serve."""

    def __init__(self, options: CollectorOptions, tail: Collector, tail_key: Callable[[], Hashable]) -> None:
        self._families = families(options)
        self._options = options
        names = tuple(f.name for f in self._families)
        self._pairs = _BlockStore(names, lambda _key, state: pair_lines(state, options))
        self._offsets = _BlockStore((END_OFFSET,), lambda key, value: {END_OFFSET: end_offset_line(key, value)})
        self._contributions: dict[Pair, dict[PartitionKey, int]] = {}
        self._by_partition: dict[PartitionKey, dict[Pair, int]] = {}
        self._headers = {f.name: f.header().encode() for f in self._families}
        self._packed_headers = {name: _member(header) for name, header in self._headers.items()}
        self._tail = CollectorRegistry(auto_describe=False)
        self._tail.register(tail)
        self._tail_key = tail_key
        self.version = 0
        self._cache: dict[bool, tuple[Hashable, Rendered]] = {}

    def update(self, state: PairState) -> None:
        """Take a pair's new state (called by the poller after each poll)."""
        changed = self._pairs.put(state.pair, state)
        if END_OFFSET in self._headers:
            changed = self._set_offsets(state.pair, end_offsets(state)) or changed
        if changed:
            self.version += 1

    def remove(self, pair: Pair) -> None:
        """Forget a pair that is no longer polled."""
        changed = self._pairs.remove(pair)
        changed = self._set_offsets(pair, {}) or changed
        if changed:
            self.version += 1

    def _set_offsets(self, pair: Pair, offsets: dict[PartitionKey, int]) -> bool:
        before = self._contributions.get(pair, {})
        if before == offsets:
            return False
        self._contributions[pair] = offsets
        changed = False
        for key in before.keys() | offsets.keys():
            contributors = self._by_partition.setdefault(key, {})
            if key in offsets:
                contributors[pair] = offsets[key]
            else:
                contributors.pop(pair, None)
            if contributors:
                changed = self._offsets.put(key, max(contributors.values())) or changed
            else:
                del self._by_partition[key]
                changed = self._offsets.remove(key) or changed
        return changed

    def _chunks(self, packed: bool) -> list[bytes]:
        chunks: list[bytes] = []
        for family in self._families:
            chunks.append(self._packed_headers[family.name] if packed else self._headers[family.name])
            store = self._offsets if family.name == END_OFFSET else self._pairs
            chunks.extend(store.parts(family.name, packed))
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
        members = [*self._chunks(packed=True), _member(tail)]
        rendered = Rendered(content_type, lambda: [*self._chunks(packed=False), tail], members)
        self._cache[openmetrics] = (key, rendered)
        return rendered


def decompress(data: bytes) -> bytes:
    """Decode a multi-member gzip body (for tests and tools)."""
    out = []
    while data:
        inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
        out.append(inflater.decompress(data))
        data = inflater.unused_data
    return b"".join(out)


def render_states(states: Iterable[PairState], options: CollectorOptions, tail: Collector,
                  *, openmetrics: bool = False) -> bytes:
    """The whole exposition of some pair states at once (``--once``, tests)."""
    exposition = Exposition(options, tail, lambda: 0)
    for state in states:
        exposition.update(state)
    return exposition.render(openmetrics=openmetrics).body
