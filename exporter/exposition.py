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

The cardinality guard (``metrics.max_series``) works on the same members: a pair's families are
grouped by the level they live at, so shedding a level of a pair is leaving some of its members out
of the join, with no rendering. Series are counted at poll time (a running total), and only when the
total exceeds the budget is a plan made: the pairs seen last lose their partition level first, then
their topic level, then their group-level detail, until the rest fits; every pair keeps its core
(``up``, last success, group lag, max time lag). A shared series stays while a pair that keeps its
level reads it, and is carried by the lowest such pair. The plan's inputs are kept per pair at poll
time (series per level, and how many shared series it is the oldest reader of: a shared series goes
when its oldest reader is shed, the last of its readers in the order), so a plan is one pass over the
pairs, and it is made again only when a pair, its counts or the shared keys it reads changed: the usual
poll changes values only and keeps the plan.
"""

from __future__ import annotations

import logging
import time
import zlib
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from types import MappingProxyType

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS_CONTENT_TYPE
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.registry import Collector

from exporter.collector import (
    SHED_LEVELS,
    CollectorOptions,
    SeriesLimits,
    SharedKey,
    families,
    pair_lines,
    shared_line,
    shared_values,
    shed_step,
)
from exporter.snapshot import Pair, PairState

# The body is the classic 0.0.4 text format; newer prometheus_client versions label it 1.0.0,
# which older Prometheus servers do not know, so the header is pinned to what the body is.
TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LEVEL = 6
# While the cardinality guard applies, how often a change of its counts may be logged again.
GUARD_LOG_EVERY = 300.0

log = logging.getLogger(__name__)


def member(data: bytes) -> bytes:
    """One gzip member of ``data`` (no timestamp, so equal data gives equal bytes)."""
    packer = zlib.compressobj(_LEVEL, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    return packer.compress(data) + packer.flush()


_CHUNK = 4096


def decompress(data: bytes) -> bytes:
    """Decode a body of one or more gzip members, in time linear in its size.

    The input is fed in small chunks: what follows a member's end comes back as ``unused_data``, a copy,
    so feeding the whole rest each time would copy the body once per member (quadratic: hours for the
    hundreds of thousands of members of a million-series exposition).
    """
    out = []
    view = memoryview(data)
    position = 0
    while position < len(view):
        inflater = zlib.decompressobj(zlib.MAX_WBITS | 16)
        while not inflater.eof and position < len(view):
            chunk = view[position:position + _CHUNK]
            out.append(inflater.decompress(chunk))
            position += len(chunk) - len(inflater.unused_data)
        if not inflater.eof:
            raise zlib.error("truncated gzip member")
    return b"".join(out)


@dataclass
class _PairEntry:
    members: dict[str, bytes] = field(default_factory=dict)  # family -> gzip member of its lines
    offsets: dict[SharedKey, int] = field(default_factory=dict)  # what this pair reports
    owned: set[SharedKey] = field(default_factory=set)  # shared lines this pair carries
    counts: dict[str, int] = field(default_factory=dict)  # family -> series (shared families excluded)
    series: int = 0  # sum of counts
    by_step: tuple[int, ...] = (0, 0, 0, 0)  # series by the guard step that sheds them (0: core)
    oldest_of: list[int] = field(default_factory=lambda: [0, 0, 0, 0])  # shared keys, by step, it reads oldest


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
            self._body = b"".join(zlib.decompress(m, zlib.MAX_WBITS | 16) for m in self._members)
        return self._body

    def gzipped(self) -> bytes:
        """The gzip-compressed exposition: the stored members joined."""
        if self._gzipped is None:
            self._gzipped = b"".join(self._members)
        return self._gzipped


class Exposition:
    """The exposition of every pair plus the exporter's own families, kept ready to serve."""

    def __init__(self, options: CollectorOptions, tail: Collector, tail_key: Callable[[], Hashable],
                 max_series: int = 0, clock: Callable[[], float] = time.monotonic) -> None:
        self._max_series = max_series
        self._clock = clock
        self._guard_since: float | None = None  # when the guard started applying (None: it does not)
        self._guard_logged: float | None = None  # when it was last logged
        self._entries: dict[Pair, _PairEntry] = {}
        self._order: list[Pair] | None = []
        self._by_partition: dict[SharedKey, dict[Pair, int]] = {}
        self._stale_owners: set[Pair] = set()
        self._seen: dict[Pair, int] = {}  # first-seen order, for the guard (kept across reconfigure)
        self._next_seen = 0  # ranks are never reused, so the order has no ties
        self._oldest: dict[SharedKey, Pair] = {}  # shared key -> its reader seen first: the last the guard sheds
        self._youngest: list[tuple[Pair, _PairEntry]] | None = None  # pairs newest first, the guard's order
        self._series = 0  # pair series without shared ones, at full detail
        self._shed: dict[Pair, int] = {}  # pair -> how many levels the guard sheds (1-3)
        self._planned: int | None = None  # version the guard's plan was made at
        self._plan_inputs_changed = True  # a pair, its counts or the shared keys it reads changed since
        self._kept: dict[int, list[tuple[Pair, _PairEntry]]] | None = None  # step -> pairs keeping it, in order
        self.limits = SeriesLimits(max_series)
        self._set_options(options)
        self._tail = CollectorRegistry(auto_describe=False)
        self._tail.register(tail)
        self._tail_key = tail_key
        self.version = 0
        self._cache: dict[bool, tuple[Hashable, Rendered]] = {}

    def _set_options(self, options: CollectorOptions) -> None:
        self._families = families(options)
        self._options = options
        self._shared = tuple(f.name for f in self._families if f.shared)
        self._headers = {f.name: member(f.header().encode()) for f in self._families}
        self._steps = {f.name: shed_step(f) for f in self._families}

    def reconfigure(self, options: CollectorOptions, max_series: int, states: Iterable[PairState]) -> None:
        """Serve under new options (a config reload): every pair is rendered again from its latest state."""
        self._max_series = max_series
        self._plan_inputs_changed = True
        if options != self._options:
            self._set_options(options)
            self._entries, self._by_partition, self._stale_owners, self._order = {}, {}, set(), None
            self._oldest, self._youngest = {}, None
            self._series = 0
            self._shed = {}
            for state in states:
                self.update(state)
        self.version += 1

    def update(self, state: PairState) -> None:
        """Take a pair's new state (called by the poller after each poll)."""
        entry = self._entries.get(state.pair)
        if entry is None:
            entry = self._entries[state.pair] = _PairEntry()
            if state.pair not in self._seen:
                self._seen[state.pair] = self._next_seen
                self._next_seen += 1
            self._order = self._youngest = None
            self._plan_inputs_changed = True
        before = entry.members
        lines = pair_lines(state, self._options)
        entry.members = {name: member(text.encode()) for name, text in lines.items() if text}
        entry.counts = {name: text.count("\n") for name, text in lines.items() if text}
        series = sum(entry.counts.values())
        self._series += series - entry.series
        entry.series = series
        by_step = [0, 0, 0, 0]
        for name, count in entry.counts.items():
            by_step[self._steps.get(name) or 0] += count
        if tuple(by_step) != entry.by_step:
            entry.by_step = tuple(by_step)
            self._plan_inputs_changed = True
        if self._shared:
            offsets = shared_values(state, self._options)
            if offsets.keys() != entry.offsets.keys():
                self._plan_inputs_changed = True
            self._set_offsets(state.pair, entry, offsets)
            self._render_offsets(state.pair, entry)
        if entry.members != before or self._stale_owners:
            self.version += 1

    def remove(self, pair: Pair) -> None:
        """Forget a pair that is no longer polled."""
        entry = self._entries.pop(pair, None)
        if entry is None:
            return
        self._order = self._youngest = None
        self._plan_inputs_changed = True
        self._set_offsets(pair, entry, {})
        self._stale_owners.discard(pair)
        self._series -= entry.series
        self._seen.pop(pair, None)
        self.version += 1

    def _set_offsets(self, pair: Pair, entry: _PairEntry, offsets: dict[SharedKey, int]) -> None:
        seen = self._seen
        for key in entry.offsets.keys() - offsets.keys():
            contributors = self._by_partition[key]
            del contributors[pair]
            if self._oldest[key] == pair:
                entry.oldest_of[self._steps.get(key[0]) or 0] -= 1
                del self._oldest[key]
            if contributors:  # its carrier may be any of them (the lowest keeping the level): all re-render
                self._stale_owners.update(contributors)
                if key not in self._oldest:
                    self._oldest_becomes(key, min(contributors, key=lambda p: seen[p]))
            else:
                del self._by_partition[key]
        for key, value in offsets.items():
            contributors = self._by_partition.setdefault(key, {})
            if pair not in contributors:
                oldest = self._oldest.get(key)
                if oldest is None or seen[pair] < seen[oldest]:
                    if oldest is not None:
                        self._entries[oldest].oldest_of[self._steps.get(key[0]) or 0] -= 1
                    self._oldest_becomes(key, pair, entry)
            if contributors.get(pair) != value:
                # the value or the owner may change: every other contributor re-renders what it carries
                self._stale_owners.update(p for p in contributors if p != pair)
            contributors[pair] = value
        entry.offsets = offsets

    def _oldest_becomes(self, key: SharedKey, pair: Pair, entry: _PairEntry | None = None) -> None:
        self._oldest[key] = pair
        (entry or self._entries[pair]).oldest_of[self._steps.get(key[0]) or 0] += 1

    def _render_offsets(self, pair: Pair, entry: _PairEntry) -> None:
        """Render the shared lines this pair carries: the series where it is the lowest contributor."""
        owned = sorted(k for k in entry.offsets if self._owner(k) == pair)
        entry.owned = set(owned)
        texts: dict[str, list[str]] = {}
        for key in owned:
            texts.setdefault(key[0], []).append(shared_line(key, max(self._by_partition[key].values())))
        for name in self._shared:
            if name in texts:
                entry.members[name] = member("".join(texts[name]).encode())
            else:
                entry.members.pop(name, None)

    def _owner(self, key: SharedKey) -> Pair | None:
        """The pair carrying a shared series: the lowest contributor that keeps the series' level."""
        contributors = self._by_partition[key]
        if not self._shed:
            return min(contributors)
        step = self._steps.get(key[0]) or 4
        return min((p for p in contributors if self._shed.get(p, 0) < step), default=None)

    def _plan(self) -> None:
        """Decide which pairs shed which levels to stay within the budget.

        The plan depends only on the pairs, their first-seen order, their series per level, the shared keys
        they read and the budget: a poll that changes values but none of these (the usual one) keeps it.
        """
        if self._planned == self.version:
            return
        self._planned = self.version
        if not self._plan_inputs_changed:
            return
        self._plan_inputs_changed = False
        wanted = self._series + len(self._by_partition)
        shed, total = self._shedding(wanted) if self._max_series and wanted > self._max_series else ({}, wanted)
        for pair in {p for p in shed.keys() | self._shed.keys() if shed.get(p) != self._shed.get(p)}:
            entry = self._entries.get(pair)  # the shared series it read may change carrier
            for key in entry.offsets if entry is not None else ():
                self._stale_owners.update(self._by_partition.get(key, ()))
        if shed != self._shed:
            self._kept = None
        self._shed = shed
        limited = dict.fromkeys(SHED_LEVELS, 0)
        for step in shed.values():
            limited[SHED_LEVELS[step - 1]] += 1
        limits = SeriesLimits(self._max_series, total, wanted - total, MappingProxyType(limited))
        self._report(bool(shed), limited != dict(self.limits.limited), limits)
        self.limits = limits

    def _report(self, applies: bool, changed: bool, limits: SeriesLimits) -> None:
        """Log when the guard starts and stops applying; while it applies, a change at most every GUARD_LOG_EVERY.

        Ephemeral groups coming and going change the counts at nearly every poll: the metrics follow
        them, the log must not.
        """
        fields = {"max_series": self._max_series, "series_wanted": limits.series + limits.dropped,
                  "series": limits.series,
                  **{f"pairs_without_{level}_level": n for level, n in limits.limited.items()}}
        now = self._clock()
        if applies and self._guard_since is None:
            log.warning("series limit applies: the newest pairs' detail is left out", extra=fields)
            self._guard_since = self._guard_logged = now
        elif applies and changed and now - (self._guard_logged or now) >= GUARD_LOG_EVERY:
            log.warning("series limit still applies, its counts changed",
                        extra={**fields, "applies_for_s": round(now - (self._guard_since or now))})
            self._guard_logged = now
        elif not applies and self._guard_since is not None:
            log.info("series limit no longer applies", extra={"max_series": self._max_series, "series": limits.series})
            self._guard_since = self._guard_logged = None

    def _shedding(self, total: int) -> tuple[dict[Pair, int], int]:
        """Newest pairs first, one level at a time, until ``total`` fits: (pair -> levels shed, new total)."""
        if self._youngest is None:
            self._youngest = sorted(self._entries.items(), key=lambda item: -self._seen[item[0]])
        shed: dict[Pair, int] = {}
        for step in (1, 2, 3):
            for pair, entry in self._youngest:
                if total <= self._max_series:
                    return shed, total
                # a shared series of this level goes with the last of its readers to lose the level: the oldest
                total -= entry.by_step[step] + entry.oldest_of[step]
                shed[pair] = step
        return shed, total

    def _chunks(self) -> list[bytes]:
        self._plan()
        for owner in self._stale_owners:
            entry = self._entries.get(owner)
            if entry is not None:
                self._render_offsets(owner, entry)
        self._stale_owners.clear()
        if self._order is None:
            self._order = sorted(self._entries)
            self._kept = None
        if self._kept is None:  # per step, the pairs that keep it: made again only when the plan or pairs change
            order = [(p, self._entries[p]) for p in self._order]
            self._kept = {0: order}
            for level in (1, 2, 3):
                self._kept[level] = [(p, e) for p, e in order if self._shed.get(p, 0) < level] if self._shed else order
        chunks: list[bytes] = []
        for family in self._families:
            name = family.name
            chunks.append(self._headers[name])
            step = None if family.shared else self._steps.get(name)  # shared ones: by their carrier
            chunks.extend(e.members[name] for _, e in self._kept[step or 0] if name in e.members)
        return chunks

    def render(self, *, openmetrics: bool = False) -> Rendered:
        """The exposition in the 0.0.4 text format, or OpenMetrics 1.0 when asked."""
        key = (self.version, self._tail_key())
        cached = self._cache.get(openmetrics)
        if cached is not None and cached[0] == key:
            return cached[1]
        chunks = self._chunks()  # first: the guard's plan feeds the tail's series metrics
        if openmetrics:
            tail = generate_openmetrics(self._tail)  # type: ignore[no-untyped-call]
            content_type = OPENMETRICS_CONTENT_TYPE
        else:
            tail = generate_latest(self._tail)
            content_type = TEXT_CONTENT_TYPE
        rendered = Rendered(content_type, [*chunks, member(tail)])
        self._cache[openmetrics] = (key, rendered)
        return rendered


def render_states(states: Iterable[PairState], options: CollectorOptions, tail: Collector,
                  *, openmetrics: bool = False) -> bytes:
    """The whole exposition of some pair states at once (``--once``, tests)."""
    exposition = Exposition(options, tail, lambda: 0)
    for state in states:
        exposition.update(state)
    return exposition.render(openmetrics=openmetrics).body
