"""Exposition bytes kept ready: each poll compresses its own lines, a scrape only joins them.

The exposition follows the board: after each write it takes the pairs that changed (never the whole set).

A pair's lines of each family are stored as one gzip member; a gzip stream may hold several members (RFC
1952), so a scrape's body is the stored members joined, with no rendering or compression at scrape time.
A series shared by pairs (a partition's end offset) is rendered once, by the lowest pair that reads it. The
cardinality guard (``metrics.max_series``) sheds by leaving members out of the join, the pairs seen last
losing their finest levels first. Details in docs/internals.md and docs/performance.md.
"""

from __future__ import annotations

import bisect
import logging
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from types import MappingProxyType

from prometheus_client.exposition import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.openmetrics.exposition import CONTENT_TYPE_LATEST as OPENMETRICS_CONTENT_TYPE
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.registry import Collector

from exporter.config.settings import MetricsSettings
from exporter.metrics.families import families
from exporter.metrics.guard import SHED_LEVELS, SeriesLimits, shed_step
from exporter.metrics.render import pair_lines
from exporter.metrics.self_metrics import TailCollector
from exporter.metrics.shared import SharedValues, TopicKey, shared_line, shared_values
from exporter.polling.snapshot import Board, PairState
from exporter.targets.pair import Pair

# The body is the classic 0.0.4 text format; newer prometheus_client versions label it 1.0.0,
# which older Prometheus servers do not know, so the header is pinned to what the body is.
TEXT_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LEVEL = 6
# A scrape may be served a render up to this many times its cost old (see Exposition.render), when it
# cost at least COALESCE_MIN seconds: at tier L (100k series, ~20 ms) a render is reused for ~0.2 s.
COALESCE_FACTOR = 10.0
COALESCE_MIN = 0.002
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
    offsets: SharedValues = field(default_factory=dict)  # the shared series' values this pair reports
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

    def __init__(self, options: MetricsSettings, board: Board, tail: TailCollector,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """Follows ``board`` from now on; ``options.max_series`` is the cardinality guard's limit (0: none)."""
        self._max_series = options.max_series
        self._clock = clock
        self._guard_since: float | None = None  # when the guard started applying (None: it does not)
        self._guard_logged: float | None = None  # when it was last logged
        self._entries: dict[Pair, _PairEntry] = {}
        self._order: list[Pair] | None = []
        self._readers: dict[TopicKey, list[Pair]] = {}  # pairs reporting a topic's shared series, sorted
        self._topic_series: dict[TopicKey, int] = {}  # distinct shared series of the topic key
        self._shared_series = 0  # their sum
        self._oldest_counts: dict[TopicKey, dict[Pair, int]] = {}  # reader -> the topic's series it reads oldest
        self._stale_owners: set[Pair] = set()
        self._seen: dict[Pair, int] = {}  # first-seen order, for the guard (kept across reconfigure)
        self._next_seen = 0  # ranks are never reused, so the order has no ties
        self._youngest: list[tuple[Pair, _PairEntry]] | None = None  # pairs newest first, the guard's order
        self._series = 0  # pair series without shared ones, at full detail
        self._shed: dict[Pair, int] = {}  # pair -> how many levels the guard sheds (1-3)
        self._planned: int | None = None  # version the guard's plan was made at
        self._plan_inputs_changed = True  # a pair, its counts or the shared keys it reads changed since
        self._kept: dict[int, list[tuple[Pair, _PairEntry]]] | None = None  # step -> pairs keeping it, in order
        self.limits = SeriesLimits(options.max_series)
        self._set_options(options)
        self._tail = tail
        self.version = 0
        self._cache: dict[bool, tuple[tuple[int, ...], Rendered, float, float]] = {}  # key, render, made, took
        self._board = board
        self._synced = 0  # the board's version this exposition has taken every change up to
        self.sync()
        board.listen(self.sync)

    def _set_options(self, options: MetricsSettings) -> None:
        self._families = families(options)
        self._options = options
        self._shared = tuple(f.name for f in self._families if f.shared)
        self._headers = {f.name: member(f.header().encode()) for f in self._families}
        self._steps = {f.name: shed_step(f) for f in self._families}

    def sync(self) -> None:
        """Take the board's changes since the last call: each changed pair is rendered and compressed now,
        so a scrape only joins (the board calls this after every write)."""
        changes = self._board.changes(self._synced)
        self._synced = changes.version
        for pair in changes.removed:
            self._remove(pair)
        for state in changes.states:
            if state.polls:  # a pair not polled yet has no series
                self._update(state)

    def reconfigure(self, options: MetricsSettings) -> None:
        """Serve under new options (a config reload): when what a pair renders to changed (all but the
        series limit), every pair is rendered again from its latest state on the board."""
        self._max_series = options.max_series
        self._plan_inputs_changed = True
        if options.model_copy(update={"max_series": 0}) != self._options.model_copy(update={"max_series": 0}):
            self._set_options(options)
            self._entries, self._stale_owners, self._order, self._youngest = {}, set(), None, None
            self._readers, self._topic_series, self._oldest_counts = {}, {}, {}
            self._series = self._shared_series = 0
            self._shed = {}
            for state in self._board.snapshot.pairs.values():
                if state.polls:
                    self._update(state)
        else:
            self._options = options
        self.version += 1

    def _update(self, state: PairState) -> None:
        """Render a pair's new state."""
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
            if self._set_offsets(state.pair, entry, shared_values(state, self._options)):
                self._plan_inputs_changed = True
            self._render_offsets(state.pair, entry)
            self._stale_owners.discard(state.pair)
        if entry.members != before or self._stale_owners:
            self.version += 1

    def _remove(self, pair: Pair) -> None:
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

    def _set_offsets(self, pair: Pair, entry: _PairEntry, offsets: SharedValues) -> bool:
        """Record what a pair reports; True when the readers of a topic or their partitions changed."""
        before = entry.offsets
        moved: list[TopicKey] = []  # topics whose carriers and oldest readers are made again
        for key in before.keys() - offsets.keys():
            self._readers[key].remove(pair)
            moved.append(key)
        for key, values in offsets.items():
            old = before.get(key)
            if old is None:
                bisect.insort(self._readers.setdefault(key, []), pair)
                moved.append(key)
            elif old.keys() != values.keys():
                moved.append(key)
            elif old != values and len(self._readers[key]) > 1:
                for partition, value in values.items():
                    if old[partition] != value:  # the carrier renders the highest value: it must see this one
                        carrier = self._carrier(key, partition)
                        if carrier is not None and carrier != pair:
                            self._stale_owners.add(carrier)
        entry.offsets = offsets
        for key in moved:
            self._recount(key)
        return bool(moved)

    def _recount(self, key: TopicKey) -> None:
        """After a topic's readers or their partitions changed: its series, and who reads each oldest.

        A shared series goes when its oldest reader (first seen) loses the level, so each reader counts
        the topic's series it is the oldest reader of; every reader renders again (a carrier may move).
        """
        step = self._steps.get(key[0]) or 0
        for reader, count in self._oldest_counts.pop(key, {}).items():
            former = self._entries.get(reader)  # None: the pair was removed
            if former is not None:
                former.oldest_of[step] -= count
        readers = self._readers[key]
        self._stale_owners.update(readers)
        covered: set[int | None] = set()
        counts: dict[Pair, int] = {}
        for reader in sorted(readers, key=self._seen.__getitem__):
            entry = self._entries[reader]
            new = entry.offsets[key].keys() - covered
            if new:
                counts[reader] = len(new)
                entry.oldest_of[step] += len(new)
                covered |= new
        self._shared_series += len(covered) - self._topic_series.pop(key, 0)
        if readers:
            self._oldest_counts[key] = counts
            self._topic_series[key] = len(covered)
        else:
            del self._readers[key]

    def _keeps(self, pair: Pair, family: str) -> bool:
        """Whether the guard leaves a pair the level of a shared family."""
        return not self._shed or self._shed.get(pair, 0) < (self._steps.get(family) or 4)

    def _carrier(self, key: TopicKey, partition: int | None) -> Pair | None:
        """The pair carrying a shared series: the lowest reader reporting it that keeps its level."""
        for reader in self._readers[key]:
            if partition in self._entries[reader].offsets[key] and self._keeps(reader, key[0]):
                return reader
        return None

    def _render_offsets(self, pair: Pair, entry: _PairEntry) -> None:
        """Render the shared lines this pair carries, with the highest value its topic's readers report."""
        texts: dict[str, list[str]] = {}
        for key in sorted(entry.offsets):
            values = entry.offsets[key]
            readers = self._readers[key]
            if len(readers) == 1:  # the usual topic, read by one group: it carries all, if it keeps the level
                if self._keeps(pair, key[0]):
                    texts.setdefault(key[0], []).extend(shared_line(key, p, v) for p, v in sorted(values.items()))
                continue
            others = [self._entries[r].offsets[key] for r in readers if r != pair]
            for partition, value in sorted(values.items()):
                if self._carrier(key, partition) == pair:
                    highest = max((o[partition] for o in others if partition in o), default=value)
                    texts.setdefault(key[0], []).append(shared_line(key, partition, max(value, highest)))
        for name in self._shared:
            if name in texts:
                entry.members[name] = member("".join(texts[name]).encode())
            else:
                entry.members.pop(name, None)

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
        wanted = self._series + self._shared_series
        shed, total = self._shedding(wanted) if self._max_series and wanted > self._max_series else ({}, wanted)
        for pair in {p for p in shed.keys() | self._shed.keys() if shed.get(p) != self._shed.get(p)}:
            entry = self._entries.get(pair)  # the shared series it read may change carrier
            for key in entry.offsets if entry is not None else ():
                self._stale_owners.update(self._readers.get(key, ()))
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

    def _chunks(self) -> tuple[list[bytes], SeriesLimits]:
        """The stored members to join, and the guard's report that goes with them."""
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
        return chunks, self.limits

    def render(self, *, openmetrics: bool = False, coalesce: bool = False) -> Rendered:
        """The exposition in the 0.0.4 text format, or OpenMetrics 1.0 when asked.

        ``coalesce`` (scrapes): a render that took ``d`` (at least COALESCE_MIN) is served for up to
        COALESCE_FACTOR x ``d`` after it was made, changed or not, so however fast scrapes and polls
        arrive, rendering takes at most about 1 / COALESCE_FACTOR of the event loop and few distinct
        bodies are alive at once. A small exposition renders in well under COALESCE_MIN: always fresh.
        """
        key = (self.version, *self._tail.version)
        cached = self._cache.get(openmetrics)
        if cached is not None:
            made, cost = cached[2], cached[3]
            if cached[0] == key or (coalesce and cost >= COALESCE_MIN
                                    and self._clock() - made < COALESCE_FACTOR * cost):
                return cached[1]
        started = self._clock()
        chunks, limits = self._chunks()
        families = _Families(self._tail, limits)
        if openmetrics:
            tail = generate_openmetrics(families)  # type: ignore[no-untyped-call]
            content_type = OPENMETRICS_CONTENT_TYPE
        else:
            tail = generate_latest(families)
            content_type = TEXT_CONTENT_TYPE
        rendered = Rendered(content_type, [*chunks, member(tail)])
        rendered.gzipped()  # the join is part of the cost, and every scraper of this render shares it
        done = self._clock()
        self._cache[openmetrics] = (key, rendered, done, done - started)
        return rendered


class _Families(Collector):
    """The tail's families for one render, with that render's guard report."""

    def __init__(self, tail: TailCollector, limits: SeriesLimits) -> None:
        self._tail = tail
        self._limits = limits

    def collect(self) -> Iterator[Metric]:
        return self._tail.families(self._limits)


def render_states(states: Iterable[PairState], options: MetricsSettings, tail: TailCollector,
                  *, openmetrics: bool = False) -> bytes:
    """The whole exposition of some pair states at once (tests, benchmarks)."""
    return Exposition(options, Board.holding(states), tail).render(openmetrics=openmetrics).body
