"""Each group's max time lag over the last hour, kept small: what the status page draws as a sparkline.

A poll adds its group's max time lag as a point only when the last kept point is at least :data:`SPACING`
seconds older, so a group keeps at most one point per 30 s and at most :data:`MAX_POINTS`; points older than
:data:`WINDOW` go. The newest poll is always carried as the series' last point, kept or not. Each poll gets an
immutable :class:`LagSeries` that shares the group's append-only arrays (it only reads the indices it was given),
so a poll costs O(1) amortised and nothing is copied until the arrays are compacted, once every :data:`SLACK`
kept points. Bounds in bytes: docs/scaling.md.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterator

WINDOW = 3600.0  # seconds of history kept
SPACING = 30.0  # at most one kept point per this many seconds
MAX_POINTS = 120  # kept points per group: WINDOW / SPACING
SLACK = 32  # dropped points the arrays carry before they are compacted


class LagSeries:
    """One group's (time, max time lag) points at one poll, oldest first, read-only.

    The arrays it reads are only ever appended to while it lives (a compaction makes new ones), so the
    points between ``start`` and ``stop`` never change under it.
    """

    __slots__ = ("_last", "_start", "_stop", "_times", "_values")

    def __init__(self, times: array[float], values: array[float], start: int, stop: int,
                 last: tuple[float, float] | None = None) -> None:
        """Points ``start:stop`` of the arrays, then ``last`` (the newest poll, when it was not kept)."""
        self._times = times
        self._values = values
        self._start = start
        self._stop = stop
        self._last = last

    def points(self) -> tuple[tuple[float, float], ...]:
        """The points as (epoch seconds, max time lag in seconds), oldest first."""
        return tuple(iter(self))

    def __iter__(self) -> Iterator[tuple[float, float]]:
        for i in range(self._start, self._stop):
            yield self._times[i], self._values[i]
        if self._last is not None:
            yield self._last

    def __len__(self) -> int:
        return self._stop - self._start + (self._last is not None)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LagSeries) and self.points() == other.points()

    def __hash__(self) -> int:
        return hash(self.points())

    def __repr__(self) -> str:
        return f"LagSeries({self.points()!r})"


EMPTY = LagSeries(array("d"), array("d"), 0, 0)


class _Track:
    """The kept points of one group: append-only arrays, live from ``start``."""

    __slots__ = ("start", "times", "values")

    def __init__(self) -> None:
        self.times: array[float] = array("d")
        self.values: array[float] = array("d")
        self.start = 0


class LagHistory:
    """The bounded max-time-lag series of every group, by (instance, group)."""

    def __init__(self) -> None:
        self._tracks: dict[tuple[str, str], _Track] = {}

    def observe(self, key: tuple[str, str], at: float, seconds: float | None) -> LagSeries:
        """Add a poll's max time lag at ``at`` (epoch seconds; None: no estimate, nothing added) and return the
        group's series ending with it."""
        track = self._tracks.get(key)
        if track is None:
            if seconds is None:
                return EMPTY
            track = self._tracks[key] = _Track()
        times, values = track.times, track.values
        if seconds is None or (len(times) > track.start and at <= times[-1]):  # none, or out of order
            return LagSeries(times, values, track.start, len(times))
        if len(times) > track.start and at - times[-1] < SPACING:
            return LagSeries(times, values, track.start, len(times), (at, seconds))
        times.append(at)
        values.append(seconds)
        start = track.start
        while start < len(times) and (times[start] < at - WINDOW or len(times) - start > MAX_POINTS):
            start += 1
        if start >= SLACK:  # compact: the old arrays stay with the series already handed out
            track.times, track.values = times[start:], values[start:]
            start = 0
        track.start = start
        return LagSeries(track.times, track.values, start, len(track.times))

    def forget(self, key: tuple[str, str]) -> None:
        """Drop a group's series (its data went stale, or it is no longer polled)."""
        self._tracks.pop(key, None)

    def __len__(self) -> int:
        return len(self._tracks)
