"""Keeps the exporter's long-running tasks alive: a task that dies is logged and started again.

The poller, catalog, discovery and config watcher handle the failures they know; what escapes them is a
bug, and it must not end the process (on Kubernetes: a CrashLoopBackOff, and every series gone). So
:func:`supervise` logs one line and runs the task again, waiting from one second, doubling up to a minute
while it keeps dying. Only cancellation ends it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from exporter.logs import log_unexpected

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Backoff:
    """Waits between restarts: ``first`` doubling to ``cap``; back to ``first`` after a run of ``healthy`` s."""

    first: float = 1.0
    cap: float = 60.0
    healthy: float = 60.0


async def supervise(
    name: str,
    run: Callable[[], Awaitable[None]],
    *,
    backoff: Backoff = Backoff(),
    on_restart: Callable[[str], None] | None = None,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Run ``run()`` again whenever it raises or returns, until cancelled; ``on_restart(name)`` counts restarts."""
    delay = backoff.first
    while True:
        started = clock()
        try:
            await run()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - anything a task lets out is logged and the task restarted
            failure: BaseException = exc
        else:
            failure = RuntimeError("the task returned")
        if clock() - started >= backoff.healthy:
            delay = backoff.first
        log_unexpected(log, "task died unexpectedly; restarting it", failure,
                       {"task": name, "restart_in_s": round(delay, 3)})
        await sleep(delay)
        delay = min(delay * 2, backoff.cap)
        if on_restart is not None:
            on_restart(name)
