"""The wait before retrying a cloud request: full-jitter exponential backoff.

A uniform draw between zero and ``base * 2**attempt`` (at most ``cap``) spreads the retries of many
callers that failed together, so they do not return in step (the "full jitter" of
https://aws.amazon.com/blogs/architecture/exponential-backoff-and-jitter/). A server that names its
own wait (``x-acs-retry-after``) is never undercut. Each caller keeps its own base and cap.
"""

from __future__ import annotations

import random


def full_jitter(rng: random.Random, attempt: int, base: float, cap: float, at_least: float | None = None) -> float:
    """Seconds to wait before retry number ``attempt + 1`` (``attempt`` counts from 0), never below ``at_least``."""
    delay = rng.uniform(0, min(cap, base * 2**attempt))
    return delay if at_least is None else max(delay, at_least)
