"""Keeps the exporter's long-running tasks alive: a task that dies is logged and started again.

The poller, the instance catalog, target discovery and the config watcher each run for the life of
the process. Each already turns the failures it knows (API errors, unreadable answers) into logged
failures that keep the last good data; what escapes them is a bug or something nobody foresaw. That
must not end the process (on Kubernetes a crash becomes a CrashLoopBackOff, and every series goes with
it), so :func:`supervise` runs a task, and when it raises (or returns, which these loops never should)
logs one line naming the task and the exception, waits, and runs it again. The wait doubles from one
second to a minute while the task keeps dying, and starts again from one second once a run has lasted
a while. Only cancellation (a stop signal) ends it.

Log lines carry the exception's type and message only; the traceback is added when the log level is
debug, so logfmt and JSON logs stay one line per event.
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
