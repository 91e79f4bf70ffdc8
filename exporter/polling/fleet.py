"""One poller per account, all writing to one board: each account's API budget schedules its own pairs.

The cloud's rate limit is per account, so the schedule is too: each account's :class:`Poller` plans its
round on its own account's budget and holds back only on its own account's queue. A small account next to a
big one is polled every interval while the big one is rate-bound, instead of both waiting for the round the
account with the least budget per pair needs. The pollers share the :class:`Board` (the one owner of pair
state), which combines their schedule figures. Pairs are routed by ``pair.account``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence

from exporter.config.settings import DEFAULT_ACCOUNT
from exporter.polling.analysis import Analyzer
from exporter.polling.poller import Poller, ProgressSource
from exporter.polling.schedule import Mode, Threshold
from exporter.polling.snapshot import Board, PairState, PollError, Snapshot
from exporter.targets.pair import Pair

log = logging.getLogger(__name__)

UNKNOWN_ACCOUNT = "unknown_account"


class Fleet:
    """The pollers of every account, seen as one: pairs in, results on the one board."""

    def __init__(
        self,
        sources: Mapping[str, ProgressSource],
        pairs: Sequence[Pair],
        *,
        interval: float,
        stale_after: float,
        board: Board | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        analyzer: Analyzer | None = None,
        discovering: bool = False,
        schedule: Mode = "uniform",
        max_interval: float = 600.0,
        threshold: Threshold | None = None,
    ) -> None:
        """``sources``: each account's caller (its pace is that account's budget), in the order shown."""
        if not sources:
            raise ValueError("at least one account")
        self._board = board or Board()
        self._clock = clock
        analyzer = analyzer or Analyzer()  # shared: pairs of different accounts never share a key
        routed = self._route(pairs)
        self._pollers = {
            name: Poller(source, routed.get(name, []), interval=interval, stale_after=stale_after, board=self._board,
                         clock=clock, monotonic=monotonic, analyzer=analyzer, discovering=discovering,
                         schedule=schedule, max_interval=max_interval, threshold=threshold, account=name)
            for name, source in sources.items()}
        self._orphans: set[Pair] = set()  # pairs of an account this process does not have
        self._strays(routed)

    @property
    def board(self) -> Board:
        """Where every poller's results go."""
        return self._board

    @property
    def snapshot(self) -> Snapshot:
        """The board's latest snapshot."""
        return self._board.snapshot

    @property
    def pollers(self) -> Mapping[str, Poller]:
        """Each account's poller."""
        return self._pollers

    @property
    def pairs(self) -> tuple[Pair, ...]:
        """Every account's pairs, account by account in schedule order."""
        return tuple(p for poller in self._pollers.values() for p in poller.pairs)

    def jobs(self, name: str = "poller") -> dict[str, Callable[[], Awaitable[None]]]:
        """One long-running job per account: ``name`` for the default account, ``name:ACCOUNT`` for the others."""
        return {name if account == DEFAULT_ACCOUNT else f"{name}:{account}": poller.run
                for account, poller in self._pollers.items()}

    @staticmethod
    def _route(pairs: Iterable[Pair]) -> dict[str, list[Pair]]:
        routed: dict[str, list[Pair]] = {}
        for pair in dict.fromkeys(pairs):
            routed.setdefault(pair.account, []).append(pair)
        return routed

    def set_pairs(self, pairs: Iterable[Pair]) -> None:
        """Replace the set of pairs (discovery, a reload): each account's poller gets its own."""
        routed = self._route(pairs)
        for account, poller in self._pollers.items():
            poller.set_pairs(routed.get(account, []))
        self._strays(routed)

    def _strays(self, routed: Mapping[str, list[Pair]]) -> None:
        """Pairs of an account without a poller (added to ``accounts`` by a reload, which applies at restart):
        shown failing with ``unknown_account``, never polled with another account's keys."""
        strays = [pair for account, group in routed.items() if account not in self._pollers for pair in group]
        for pair in self._orphans - set(strays):
            self._board.remove(pair)
        for pair in strays:
            if pair not in self._orphans:
                now = self._clock()
                error = PollError(UNKNOWN_ACCOUNT, f"account {pair.account!r} is not configured (accounts apply at "
                                  "start: restart after adding one)", "auth", None)
                self._board.put(PairState(pair, None, False, now, None, error, 1))
                log.warning("target names an account this process does not have; restart to add it",
                            extra={"account": pair.account, "instance_id": pair.instance_id, "group": pair.group})
        self._orphans = set(strays)

    def reconfigure(self, *, interval: float, stale_after: float, schedule: Mode | None = None,
                    max_interval: float | None = None) -> None:
        """Change every account's schedule (a config reload)."""
        for poller in self._pollers.values():
            poller.reconfigure(interval=interval, stale_after=stale_after, schedule=schedule,
                               max_interval=max_interval)

    async def run(self) -> None:
        """Run every account's poller until cancelled (one task; the app supervises them one by one instead)."""
        async with asyncio.TaskGroup() as tasks:
            for name, poller in self._pollers.items():
                tasks.create_task(poller.run(), name=f"poller {name}")

    async def poll_once(self) -> Snapshot:
        """Poll every pair once, every account at once (each paced by its own budget); for ``--once``."""
        await asyncio.gather(*(poller.poll_once() for poller in self._pollers.values()))
        return self.snapshot
