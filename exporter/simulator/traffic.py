"""Realistic production for simulated partitions: Poisson arrivals under a bursty, diurnal, skewed rate.

Smooth curves make every time-lag method look exact; real topics are noisier. A topic's rate jumps between
levels (e.g. 2, 20 and 200 messages per second) for drawn dwell times, swings with a daily wave, and is
shared unevenly between partitions. Counts are drawn second by second from seeded generators and kept as
cumulative sums, so ``offset(t)`` and its inverse stay exact lookups and the ground truth stays known. A
consumer with a capacity drains its partition like a queue: it falls behind in a burst and catches up.
"""

from __future__ import annotations

import bisect
import hashlib
import math
import random
from array import array
from collections.abc import Callable
from dataclasses import dataclass, field

_CHUNK = 600  # seconds drawn at a time when a partition's production is extended
_HORIZON = 60 * 86400  # at most this many seconds are drawn per partition (two months)
_NORMAL_FROM = 30.0  # a Poisson mean from which the normal approximation is used
_SLACK = 1e-3  # of the spacing between two messages: rounding room when a time is compared with an arrival


def _rng(seed: str) -> random.Random:
    digest = hashlib.blake2b(seed.encode(), digest_size=8).digest()
    return random.Random(int.from_bytes(digest, "big"))  # noqa: S311 - simulation, not security


def poisson(rng: random.Random, mean: float) -> int:
    """A Poisson-distributed count (Knuth's product method; normal approximation for large means)."""
    if mean <= 0:
        return 0
    if mean >= _NORMAL_FROM:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, product, count = math.exp(-mean), rng.random(), 0
    while product > limit:
        product *= rng.random()
        count += 1
    return count


@dataclass(eq=False)
class Traffic:
    """One topic's rate over time, with its partitions' arrivals drawn and cached on demand.

    ``levels`` are messages per second for an average partition; the rate stays at a level for a whole
    number of seconds drawn from ``dwell`` and then moves to another level. The daily wave multiplies it by
    ``1 + amplitude * cos(2 pi (t - peak) / period)``. Partition ``i`` gets ``(i + 1) ** -skew`` of it,
    normalised so the first ``partitions`` average 1, times its own +-20% (``factor``).
    """

    levels: tuple[float, ...]
    dwell: tuple[float, float]
    seed: str
    partitions: int
    start: float  # when the level sequence begins (epoch seconds)
    amplitude: float = 0.0
    period: float = 86400.0
    peak: float = 0.0  # epoch seconds of a daily maximum
    skew: float = 0.0
    _switches: array[float] = field(default_factory=lambda: array("d"), repr=False)
    _values: array[float] = field(default_factory=lambda: array("d"), repr=False)
    _rng: random.Random | None = field(default=None, repr=False)

    def weight(self, partition: int) -> float:
        """Partition ``partition``'s share of the rate (1 for every partition without skew)."""
        if self.skew == 0:
            return 1.0
        total = sum((i + 1) ** -self.skew for i in range(self.partitions)) / self.partitions
        return float((partition + 1) ** -self.skew / total)

    def level(self, t: float) -> float:
        """The level (messages per second, before the wave and the skew) at ``t``."""
        if len(self.levels) == 1:
            return self.levels[0]
        if self._rng is None:
            self._rng = _rng(f"{self.seed}/levels")
            self._switches.append(math.floor(self.start))
            self._values.append(self._rng.choice(self.levels))
        while self._switches[-1] <= t and self._switches[-1] - self.start < _HORIZON:
            low, high = self.dwell
            after = self._rng.randint(math.ceil(low), max(math.ceil(low), math.floor(high)))
            others = [v for v in self.levels if v != self._values[-1]] or list(self.levels)
            self._switches.append(self._switches[-1] + after)
            self._values.append(self._rng.choice(others))
        return self._values[bisect.bisect_right(self._switches, t) - 1] if t >= self._switches[0] else 0.0

    def rate(self, t: float) -> float:
        """Messages per second for an average partition at ``t``."""
        wave = 1.0
        if self.amplitude:
            wave = max(0.0, 1 + self.amplitude * math.cos(2 * math.pi * (t - self.peak) / self.period))
        return self.level(t) * wave

    @property
    def mean_level(self) -> float:
        """The levels' average (a level is drawn uniformly among the others each time)."""
        return sum(self.levels) / len(self.levels)

    def arrivals(self, partition: int, start: float, factor: float) -> Arrivals:
        """The arrivals of one partition that began producing at ``start``."""
        weight = self.weight(partition) * factor
        return Arrivals(math.floor(start), lambda t: weight * self.rate(t), self.mean_level * weight,
                        f"{self.seed}/{partition}")


class Arrivals:
    """When each message of one partition was produced: Poisson counts per second, cumulated.

    ``cum[k]`` is how many messages arrived in the first ``k`` seconds; the ``n`` messages of second ``k``
    arrive at ``start + k + (j + 0.5) / n``. ``drains`` caches queue consumers (see :meth:`drain`).
    """

    __slots__ = ("_rng", "cum", "drains", "mean_rate", "rate", "start")

    def __init__(self, start: int, rate: Callable[[float], float], mean_rate: float, seed: str) -> None:
        self.start = start
        self.rate = rate
        self.mean_rate = mean_rate
        self.cum: array[int] = array("q", [0])
        self.drains: dict[tuple[object, ...], array[float]] = {}
        self._rng = _rng(seed)

    def _extend(self, seconds: int) -> None:
        """Draw production until at least ``seconds`` seconds are known (bounded by the horizon)."""
        seconds = min(seconds, _HORIZON)
        cum, rng = self.cum, self._rng
        while len(cum) - 1 < seconds:
            base = len(cum) - 1
            for k in range(base, min(seconds, base + _CHUNK) + 1):
                cum.append(cum[-1] + poisson(rng, self.rate(self.start + k + 0.5)))

    def count(self, t: float) -> int:
        """Messages produced by ``t`` (those produced at exactly ``t`` included)."""
        elapsed = t - self.start
        if elapsed <= 0:
            return 0
        k = math.floor(elapsed)
        self._extend(k + 1)
        if k + 1 >= len(self.cum):
            return self.cum[-1]
        n = self.cum[k + 1] - self.cum[k]
        # a message produced at t counts at t, whatever the rounding of epoch seconds (~2e-7 s at 2027)
        return self.cum[k] + min(n, max(0, math.floor((elapsed - k) * n + 0.5 + _SLACK)))

    def time_of(self, index: int) -> float:
        """When message ``index`` (0-based) was produced; infinity if it is not produced within one more chunk
        of what is drawn (callers ask for messages that exist: their offset was read first) or the horizon."""
        if index < 0:
            return float(self.start)
        if self.cum[-1] <= index:
            self._extend(len(self.cum) - 1 + _CHUNK)
            if self.cum[-1] <= index:
                return math.inf
        k = bisect.bisect_right(self.cum, index) - 1
        n = self.cum[k + 1] - self.cum[k]
        return self.start + k + (index - self.cum[k] + 0.5) / n

    def drain(self, key: tuple[object, ...], first: int, begin: float, end: float, capacity: float,
              head: Callable[[float], int]) -> int:
        """The offset a queue consumer reached at ``end``: from ``first`` at ``begin``, at most ``capacity``
        messages a second, never past ``head(t)`` (the end offset it can see), never backwards.

        Solved second by second from ``begin`` and cached under ``key`` (the phase and its start), so a
        consumer that fell behind in a burst catches up exactly as a real one would.
        """
        if end <= begin:
            return first
        steps = self.drains.get(key)
        if steps is None:
            steps = self.drains[key] = array("d", [float(first)])
        k = math.floor(end - begin)
        while len(steps) <= k:
            i = len(steps)
            steps.append(max(steps[-1], min(steps[-1] + capacity, head(begin + i))))
        reached = max(steps[k], min(steps[k] + capacity * (end - begin - k), head(end)))
        return math.floor(reached)
