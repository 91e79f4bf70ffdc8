"""Time lag: how old the oldest unconsumed message of a partition is, estimated from offset history.

Every successful poll adds a point (end offset, time) to its partition's history, shared by all groups
that read it. The first unconsumed message ``c`` was produced when the end offset reached ``c + 1``, so the
estimate interpolates the history around ``c + 1``. Below the history it never guesses: ``now -
LastTimestamp`` is a measurement and is used when known; without it the age of the history's first point
is what the history proves (message ``c`` already existed then), a lower bound, never an extrapolation that
could overstate. Never above ``now - LastTimestamp`` or ``max_age``. Memory is bounded per partition. The
rules are in docs/lag.md.
"""

from __future__ import annotations

import bisect
import math
from array import array

from exporter.config.settings import LagSettings

PartitionKey = tuple[str, str, int]  # instance id, topic, partition
_GAP_WEIGHT = 0.25  # how much a removed point's gap counts against the error its removal causes


class PartitionHistory:
    """(offset, time) points of one partition, time-ordered with non-decreasing offsets.

    Two typed arrays (8 bytes a value) rather than lists or deques of Python numbers: with a hundred
    thousand partitions the difference is hundreds of megabytes. ``seen`` (the last reading's time,
    for forgetting partitions no longer polled) lives here rather than in a second dictionary.
    """

    __slots__ = ("offsets", "seen", "times")

    def __init__(self) -> None:
        self.offsets: array[int] = array("q")
        self.times: array[float] = array("d")
        self.seen = -math.inf

    def add(self, offset: int, at: float, options: LagSettings) -> None:
        """Record that the end offset was ``offset`` at ``at``."""
        if self.times and at <= self.times[-1]:
            return  # out of order (two groups' answers crossing): the newer point is already in
        if self.offsets and offset < self.offsets[-1]:
            if offset < self.offsets[0]:
                del self.offsets[:]  # the partition was recreated: the old history means nothing
                del self.times[:]
            else:
                return  # a stale read racing a newer one
        if len(self.offsets) >= 2 and self.offsets[-1] == offset == self.offsets[-2]:
            self.times[-1] = at  # flat run: keep its first and latest sighting only
        else:
            self.offsets.append(offset)
            self.times.append(at)
        drop, cutoff = 0, at - options.history
        while len(self.offsets) - drop > 2 and self.times[drop + 1] < cutoff:
            drop += 1
        if drop:
            del self.offsets[:drop]
            del self.times[:drop]
        if len(self.offsets) > options.max_points:
            self._thin(at)

    def _thin(self, now: float) -> None:
        """Drop the inner point that costs the least precision, relative to its age, once it is gone.

        Removing point ``i`` costs two things: the gap it leaves (``times[i + 1] - times[i - 1]``), and how
        far from its true time interpolation between its neighbours would put its offset (zero on steady
        traffic, up to the whole gap when a burst started or ended there). Both are measured against the
        point's age, as the precision a time lag needs is: a minute matters for a message a minute old, not
        for one an hour old. The history keeps its span, its newest points and the edges of bursts;
        on steady traffic spacing grows with age (about in proportion). Times are strictly increasing, so
        no age is zero.
        """
        times, offsets = self.times.tolist(), self.offsets.tolist()
        best, least = 1, math.inf
        t0, t1, o0, o1 = times[0], times[1], offsets[0], offsets[1]
        for i in range(2, len(times)):  # costs compared as cost * age, divided only for a new best
            t2, o2 = times[i], offsets[i]
            gap = _GAP_WEIGHT * (t2 - t0)
            bound = least * (now - t0)
            if gap < bound:  # else the gap alone costs too much: skip the misdating (most young points)
                misdated = t1 - t0 - (o1 - o0) * (t2 - t0) / (o2 - o0) if o2 > o0 else 0.0
                cost = gap + (misdated if misdated >= 0.0 else -misdated)
                if cost < bound:
                    best, least = i - 1, cost / (now - t0)
            t0, t1, o0, o1 = t1, t2, o1, o2
        del self.offsets[best]
        del self.times[best]

    def estimate(self, committed: int, broker: int, now: float, last_consumed: float | None,
                 options: LagSettings) -> float | None:
        """Seconds since message ``committed`` was produced, or None when it cannot be estimated."""
        if committed >= broker:
            return 0.0
        upper = options.max_age
        if last_consumed is not None:
            upper = min(upper, max(0.0, now - last_consumed))
        offsets, times = self.offsets, self.times
        if not offsets:
            return upper if last_consumed is not None else None
        target = committed + 1
        index = bisect.bisect_left(offsets, target)  # first point whose offset reached committed + 1
        if index < len(offsets) and index > 0:
            o0, o1, t0, t1 = offsets[index - 1], offsets[index], times[index - 1], times[index]
            produced = t0 + (target - o0) / (o1 - o0) * (t1 - t0)  # o1 >= target > o0: no division by 0
            age = now - produced
        elif index == 0:
            before = self._before_history(now, last_consumed)
            if before is None:
                return None
            age = before
        else:  # beyond the newest point: produced after it, so younger than it
            age = max(0.0, now - times[-1]) / 2
        return min(max(0.0, age), upper)

    def _before_history(self, now: float, last_consumed: float | None) -> float | None:
        """Message ``c`` was produced before the first point: at least that old, and no rate says by how much.

        A rate extrapolated backwards from a young history is a guess with no upper bound (a quiet stretch seen
        after a restart makes a ten-minute lag look like hours). ``now - LastTimestamp`` measures it (to
        the gap between two messages); without it the first point's age is reported: proven, and low.
        LastTimestamp is "the time the last consumed message was generated" (GetConsumerProgress, as the
        official SDKs document it: aliyun/alibabacloud-typescript-sdk alikafka-20190916
        src/models/GetConsumerProgressResponseBody.ts), so message ``c`` is no older than it.
        """
        oldest = now - self.times[0]
        if last_consumed is not None:
            return max(now - last_consumed, oldest)
        return oldest if len(self.offsets) > 1 else None


class LagEstimator:
    """Partition histories of every polled partition, shared by the groups reading them."""

    def __init__(self, options: LagSettings | None = None) -> None:
        self.options = options or LagSettings()
        self._histories: dict[PartitionKey, PartitionHistory] = {}
        self._last_sweep = -math.inf

    def __len__(self) -> int:
        return len(self._histories)

    def observe(self, key: PartitionKey, broker: int, at: float) -> None:
        """Add a BrokerOffset reading of a partition."""
        history = self._histories.get(key)
        if history is None:
            history = self._histories[key] = PartitionHistory()
        history.add(broker, at, self.options)
        history.seen = at
        if at - self._last_sweep > self.options.history / 4:
            self._forget_before(at - self.options.history)
            self._last_sweep = at

    def estimate(self, key: PartitionKey, committed: int, broker: int, now: float,
                 last_consumed: float | None) -> float | None:
        """The time lag of ``committed`` on the partition (see the module rules)."""
        history = self._histories.get(key) or PartitionHistory()
        return history.estimate(committed, broker, now, last_consumed, self.options)

    def below_history(self, key: PartitionKey, committed: int) -> bool:
        """Whether message ``committed`` is older than the partition's whole history: without LastTimestamp
        its estimate is then the history's age, a lower bound that grows with time whatever the truth does."""
        history = self._histories.get(key)
        return bool(history and history.offsets and committed + 1 <= history.offsets[0])

    def points(self, key: PartitionKey) -> int:
        """How many points the partition's history holds (for tests and the memory bound)."""
        history = self._histories.get(key)
        return len(history.offsets) if history else 0

    def _forget_before(self, cutoff: float) -> None:
        for key in [k for k, history in self._histories.items() if history.seen < cutoff]:
            del self._histories[key]
