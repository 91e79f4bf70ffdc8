"""Incremental exposition: what is served after any sequence of updates equals a fresh render."""

from __future__ import annotations

import random
import time
import zlib
from types import MappingProxyType

import pytest

from exporter.cloud.stats import ApiStats
from exporter.config.settings import MetricsSettings
from exporter.metrics.exposition import Exposition, decompress, member, render_states
from exporter.metrics.self_metrics import TailCollector
from exporter.polling.analysis import Insight
from exporter.polling.snapshot import Board, PairState
from exporter.targets.pair import Pair
from tests.support.fakes import progress
from tests.support.samples import find, has, value

OPTS = MetricsSettings(member_labels=True, max_series=0)
END = "alikafka_topic_partition_end_offset"
P0 = {"instance_id": "i", "partition": "0", "topic": "t"}  # the series of partition 0 of topic t


def tail() -> TailCollector:
    return TailCollector(Board(), ApiStats(), "t", "3")


def state(pair: Pair, seed: int) -> PairState:
    rng = random.Random(seed)
    parts = {p: (1000 + rng.randrange(100), 900 + rng.randrange(100)) for p in range(rng.randrange(1, 4))}
    data = progress({"shared": parts, f"own-{pair.group}": {0: (5, rng.randrange(6))}})
    insight = Insight(MappingProxyType({("shared", 0): float(rng.randrange(50))}), "ok")
    return PairState(pair, data, True, 1.0, 1.0, None, 1, insight)


def test_incremental_updates_equal_a_fresh_render() -> None:
    """Random updates and removals: the served body equals rendering the final states."""
    rng = random.Random(1)
    pairs = [Pair("i", f"g{n:03d}", "r") for n in range(80)]
    board = Board()
    exposition = Exposition(OPTS, board, tail())
    final: dict[Pair, PairState] = {}
    for step in range(600):
        pair = rng.choice(pairs)
        if rng.random() < 0.1:
            board.remove(pair)
            final.pop(pair, None)
        else:
            final[pair] = state(pair, step)
            board.put(final[pair])
        if step % 97 == 0:
            exposition.render()  # interleaved scrapes
    rendered = exposition.render()
    fresh = render_states(sorted(final.values(), key=lambda s: s.pair), OPTS, tail())
    served = rendered.body.decode().splitlines()
    assert sorted(served) == sorted(fresh.decode().splitlines())
    assert decompress(rendered.gzipped()) == rendered.body


def test_end_offset_is_the_max_over_contributors_and_goes_with_the_last() -> None:
    """The end offset of a shared partition is the highest value any group reports; it leaves with the last one."""
    a, b = Pair("i", "a", "r"), Pair("i", "b", "r")
    board = Board()
    exposition = Exposition(OPTS, board, tail())
    board.put(PairState(a, progress({"t": {0: (100, 90)}}), True, 1.0, 1.0, None, 1))
    board.put(PairState(b, progress({"t": {0: (120, 90)}}), True, 1.0, 1.0, None, 1))
    assert value(exposition.render().body, END, **P0) == 120
    board.remove(b)
    assert value(exposition.render().body, END, **P0) == 100
    board.remove(a)
    assert not has(exposition.render().body, END, **P0)


def test_a_readers_new_value_reaches_the_carriers_line() -> None:
    """Values only (same partitions): a reader that is not the carrier raising or lowering its end offset
    changes the carrier's stored line, and a value change by one reader leaves a third reader's members as
    they were (only the carrier renders again)."""
    a, b, c = Pair("i", "a", "r"), Pair("i", "b", "r"), Pair("i", "c", "r")
    board = Board()
    exposition = Exposition(OPTS, board, tail())
    for pair, end in ((a, 100), (b, 110), (c, 105)):  # c alone reads partition 2: it carries that line
        parts = {0: (end, 90), 1: (50, 40), **({2: (7, 7)} if pair == c else {})}
        board.put(PairState(pair, progress({"t": parts}), True, 1.0, 1.0, None, 1))
    assert value(exposition.render().body, END, **P0) == 110
    c_members = dict(exposition._entries[c].members)
    for end, served in ((130, 130), (95, 105)):  # b is not the carrier (a is: the lowest)
        board.put(PairState(b, progress({"t": {0: (end, 90), 1: (50, 40)}}), True, 1.0, 1.0, None, 2))
        body = exposition.render().body
        assert len(find(body, END, **P0)) == 1 and value(body, END, **P0) == served
    assert all(exposition._entries[c].members[name] is data for name, data in c_members.items())  # not rendered


def test_unchanged_update_keeps_the_cache() -> None:
    """Re-sending identical lines does not invalidate anything."""
    pair = Pair("i", "a", "r")
    board = Board()
    exposition = Exposition(OPTS, board, tail())
    board.put(state(pair, 1))
    first = exposition.render()
    board.put(state(pair, 1))
    assert exposition.render() is first


def test_openmetrics_shares_the_blocks() -> None:
    """OpenMetrics output has the same data lines and ends with # EOF."""
    pair = Pair("i", "a", "r")
    board = Board()
    exposition = Exposition(OPTS, board, tail())
    board.put(state(pair, 3))
    text = exposition.render().body.decode()
    om = exposition.render(openmetrics=True).body.decode()
    assert om.endswith("# EOF\n")
    data = [line for line in text.splitlines() if line.startswith("alikafka_consumergroup")]
    assert data == [line for line in om.splitlines() if line.startswith("alikafka_consumergroup")]


def test_decompress_is_linear_in_the_members() -> None:
    """Tens of thousands of members (a large exposition has hundreds of thousands) decode quickly and
    exactly; feeding each member the whole rest of the body would copy it once per member."""
    lines = [f"m{{i=\"{n}\"}} {n}\n".encode() for n in range(30_000)]
    body = b"".join(member(line) for line in lines)
    started = time.perf_counter()
    assert decompress(body) == b"".join(lines)
    assert time.perf_counter() - started < 3.0
    with pytest.raises(zlib.error):
        decompress(body[:-3])
