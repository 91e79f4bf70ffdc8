"""The web server's request rate limit: a token bucket, ``burst`` requests at once, refilled one per
``interval`` seconds. It holds no knowledge of routes; the request filter asks it before serving."""

from __future__ import annotations

import time
from collections.abc import Callable


class TokenBucket:
    """The web config's ``rate_limit``: ``burst`` requests at once, refilled one per ``interval``."""

    def __init__(self, interval: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval, self._burst, self._clock = interval, burst, clock
        self._tokens, self._stamp = float(burst), clock()

    def allow(self) -> bool:
        """Take one token if there is one."""
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._stamp) / self._interval)
        self._stamp = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        return False
