"""The board: one owner of pair state, the journal of changes the exposition follows, snapshots on read."""

from __future__ import annotations

import random
from types import MappingProxyType

from exporter.cloud.stats import ApiStats
from exporter.config.settings import MetricsSettings
from exporter.metrics.exposition import Exposition, render_states
from exporter.metrics.self_metrics import TailCollector
from exporter.polling.analysis import Insight
from exporter.polling.snapshot import Board, PairState
from exporter.targets.pair import Pair
from tests.support.fakes import progress
from tests.support.samples import samples

PAIRS = [Pair("i", f"g{n:02d}", "r") for n in range(30)]


def polled(pair: Pair, end: int, polls: int = 1) -> PairState:
    return PairState(pair, progress({"t": {0: (end, end - 3)}}), True, 1.0, 1.0, None, polls,
                     Insight(MappingProxyType({("t", 0): 2.0}), "ok"))


def test_changes_name_each_pair_once_in_write_order_and_the_removed() -> None:
    """After version v: each pair written since, once, with its latest state, in the order of their last
    writes; the pairs removed since; and the version they bring the reader to."""
    board = Board(PAIRS[:3])
    seen = board.version
    board.put(polled(PAIRS[0], 10))
    board.put(polled(PAIRS[1], 10))
    board.put(polled(PAIRS[0], 11, 2))
    board.remove(PAIRS[2])
    changes = board.changes(seen)
    assert [s.pair for s in changes.states] == [PAIRS[1], PAIRS[0]]
    assert changes.states[1].polls == 2
    assert changes.removed == (PAIRS[2],)
    assert changes.version == board.version
    assert board.changes(board.version).states == () and board.changes(board.version).removed == ()


def test_a_pair_removed_then_written_again_is_a_change_not_a_removal() -> None:
    board = Board(PAIRS[:2])
    seen = board.version
    board.remove(PAIRS[0])
    board.put(polled(PAIRS[0], 5))
    changes = board.changes(seen)
    assert [s.pair for s in changes.states] == [PAIRS[0]] and changes.removed == ()


def test_snapshots_are_made_on_read_immutable_and_shared_until_a_write() -> None:
    """Reading twice without a write gives the same snapshot; a write leaves the older snapshot as it was."""
    board = Board(PAIRS[:2], interval=30.0)
    first = board.snapshot
    assert board.snapshot is first and first.interval == 30.0 and not first.ready
    board.put(polled(PAIRS[0], 10))
    board.put(polled(PAIRS[1], 10))
    second = board.snapshot
    assert second is not first and second.ready and second.version == board.version
    assert first.pairs[PAIRS[0]].polls == 0  # the older snapshot is untouched
    board.describe(cycle_duration=2.0, effective_interval=30.0, discovering=False, interval=30.0)
    assert board.snapshot.cycle_duration == 2.0
    version = board.version
    board.describe(cycle_duration=2.0, effective_interval=30.0, discovering=False, interval=30.0)
    assert board.version == version  # the same figures are not a write


def test_exposition_following_a_board_equals_a_fresh_render() -> None:
    """Random writes and removals with scrapes in between: the exposition that follows the board serves what
    an exposition made from the final states serves (no change is missed, none is applied twice)."""
    rng = random.Random(7)
    options = MetricsSettings(member_labels=True, max_series=0)
    board = Board()
    exposition = Exposition(options, board, TailCollector(Board(), ApiStats(), "t", "3"))
    final: dict[Pair, PairState] = {}
    for step in range(500):
        pair = rng.choice(PAIRS)
        if rng.random() < 0.15:
            board.remove(pair)
            final.pop(pair, None)
        else:
            final[pair] = polled(pair, 10 + step, step + 1)
            board.put(final[pair])
        if step % 41 == 0:
            exposition.render()
    fresh = render_states(final.values(), options, TailCollector(Board(), ApiStats(), "t", "3"))
    assert sorted(exposition.render().body.decode().splitlines()) == sorted(fresh.decode().splitlines())


def test_a_pair_not_polled_yet_has_no_series() -> None:
    board = Board(PAIRS[:1])
    exposition = Exposition(MetricsSettings(max_series=0), board, TailCollector(board, ApiStats()))
    assert not [s for s in samples(exposition.render().body.decode()) if s.name.startswith("alikafka_consumergroup")]
    board.put(polled(PAIRS[0], 9))
    assert [s for s in samples(exposition.render().body.decode()) if s.name == "alikafka_consumergroup_up"]
