"""One poller per account on one board: pairs routed by account, each account paced by its own budget, and the
board's schedule figures combined from every account's."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from exporter.polling.fleet import UNKNOWN_ACCOUNT, Fleet
from exporter.polling.poller import HEADROOM, Poller
from exporter.polling.snapshot import AccountSchedule, Board, PriorityView
from exporter.targets.pair import Pair
from tests.support.fakes import FakePace, FakeSource, progress


def pairs(account: str, count: int) -> list[Pair]:
    return [Pair(f"i-{account}", f"g{n}", "r", account) for n in range(count)]


def source(max_qps: float = 1000.0) -> FakeSource:
    return FakeSource(lambda _i, _g: progress({"t": {0: (5, 5)}}), max_qps=max_qps)


def test_pairs_are_routed_to_their_accounts_poller_on_every_change() -> None:
    """set_pairs (discovery, a reload) gives each account's poller its own pairs: added, removed, moved."""
    prod, staging = pairs("prod", 3), pairs("staging", 2)
    fleet = Fleet({"prod": source(), "staging": source()}, [*prod, *staging], interval=60, stale_after=180)
    assert fleet.pollers["prod"].pairs == tuple(prod) and fleet.pollers["staging"].pairs == tuple(staging)
    moved = Pair("i-prod", "g2", "r", "staging")  # its target now names staging: a pair of staging's
    fleet.set_pairs([*prod[:2], moved, staging[0]])
    assert fleet.pollers["prod"].pairs == tuple(prod[:2])
    assert fleet.pollers["staging"].pairs == (moved, staging[0])
    assert set(fleet.snapshot.pairs) == {*prod[:2], moved, staging[0]}
    assert fleet.pairs == (*prod[:2], moved, staging[0])
    assert list(fleet.jobs()) == ["poller:prod", "poller:staging"]


def test_a_pair_of_an_account_the_process_does_not_have_fails_without_a_call() -> None:
    """An account added by a reload applies at restart: its pairs show unknown_account (never polled with
    another account's keys) and leave the board with their target."""
    calls = source()
    fleet = Fleet({"prod": calls}, pairs("prod", 1), interval=60, stale_after=180)
    dev = Pair("i-dev", "g0", "r", "dev")
    fleet.set_pairs([*pairs("prod", 1), dev])
    state = fleet.snapshot.pairs[dev]
    assert state.status == "stale" and state.error is not None and state.error.code == UNKNOWN_ACCOUNT
    assert "restart" in state.error.message and dev not in fleet.pollers["prod"].pairs
    fleet.set_pairs(pairs("prod", 1))
    assert dev not in fleet.snapshot.pairs and calls.calls == []


def test_without_accounts_the_board_shows_the_one_pollers_figures() -> None:
    """One account: the board's figures are its poller's, as a lone poller's are (no per-account detail)."""
    listed = pairs("default", 300)
    fleet = Fleet({"default": source(3)}, listed, interval=60, stale_after=180, monotonic=lambda: 100.0)
    alone = Poller(source(3), listed, interval=60, stale_after=180, monotonic=lambda: 100.0)
    assert fleet.snapshot.accounts == () and list(fleet.jobs()) == ["poller"]
    assert fleet.snapshot.effective_interval == alone.snapshot.effective_interval == pytest.approx(
        300 / (3 * HEADROOM))
    assert fleet.snapshot.schedule == alone.snapshot.schedule


def test_each_account_plans_on_its_own_budget_and_the_board_combines_them() -> None:
    """prod's 300 pairs at 3 qps are rate-bound; staging's 10 at 3 qps are polled every interval. The label-less
    effective interval is the longest; classes sum their pairs; each account's figures are kept."""
    fleet = Fleet({"prod": source(3), "staging": source(3)}, [*pairs("prod", 300), *pairs("staging", 10)],
                  interval=60, stale_after=180)
    assert fleet.pollers["staging"].effective_interval == 60
    assert fleet.pollers["prod"].effective_interval == pytest.approx(300 / (3 * HEADROOM))
    snapshot = fleet.snapshot
    assert snapshot.effective_interval == pytest.approx(300 / (3 * HEADROOM))
    assert snapshot.accounts == (AccountSchedule("prod", 300, snapshot.effective_interval, None),
                                 AccountSchedule("staging", 10, 60, None))
    assert {v.priority: v.pairs for v in snapshot.schedule} == {"new": 310, "hot": 0, "active": 0, "quiet": 0}


def test_the_board_combines_priority_classes_by_their_longest_interval_and_wait() -> None:
    board = Board()
    board.describe(cycle_duration=5.0, effective_interval=60.0, discovering=False, interval=60.0, account="a",
                   pairs=3, schedule=(PriorityView("hot", 2, 60.0, 10.0), PriorityView("quiet", 0, 300.0, None)))
    board.describe(cycle_duration=None, effective_interval=100.0, discovering=True, interval=60.0, account="b",
                   pairs=5, schedule=(PriorityView("hot", 1, 90.0, 4.0), PriorityView("quiet", 4, 200.0, 150.0)))
    snapshot = board.snapshot
    assert (snapshot.cycle_duration, snapshot.effective_interval, snapshot.discovering) == (5.0, 100.0, True)
    assert snapshot.schedule == (PriorityView("hot", 3, 90.0, 10.0), PriorityView("quiet", 4, 200.0, 150.0))
    assert [a.account for a in snapshot.accounts] == ["a", "b"]


async def test_an_account_is_held_back_only_by_its_own_queue() -> None:
    """prod's limiter has calls queued (rate-bound): prod's poller waits, staging's keeps polling every slot.
    (One schedule held back while any account had calls queued stopped staging too.)"""
    prod, staging = source(), source()
    prod.pace = FakePace(2, 2, waiting=5)
    staging.pace = FakePace(2, 2)
    fleet = Fleet({"prod": prod, "staging": staging}, [*pairs("prod", 4), *pairs("staging", 2)], interval=1,
                  stale_after=10)
    task = asyncio.create_task(fleet.run())
    await asyncio.sleep(3.2)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    staged = [c for c in staging.calls if c[1] == "g0"]
    assert len(staged) >= 3  # every 1 s interval
    assert len(prod.calls) <= 4  # prod's first pass, then held back by its own queue
