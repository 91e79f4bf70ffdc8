"""The supervisor: a worker that dies is logged on one line and restarted with a bounded backoff.

Directly, with tasks that raise and a fake clock and sleep; and in ``serve``, where a worker that dies
(the config watcher, whose loader raises something no reload expects) no longer ends the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from exporter import app
from exporter.cloud.credentials import Credentials, Secret, StaticProvider
from exporter.config.settings import Settings, load_settings
from exporter.logs import JsonFormatter, LogfmtFormatter
from exporter.polling.supervisor import Backoff, supervise
from exporter.simulator import Scenario, Simulator, build_app
from tests.support.procs import free_port
from tests.support.samples import value


class Timeline:
    """A fake monotonic clock that sleeping advances, and the sleeps asked for."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


class Dying:
    """A task body that raises ``failures`` times (each run lasting ``runs[i]`` s of fake time), then waits."""

    def __init__(self, timeline: Timeline, runs: list[float]) -> None:
        self.timeline = timeline
        self.runs = list(runs)
        self.started = 0
        self.forever = asyncio.Event()

    async def __call__(self) -> None:
        self.started += 1
        if not self.runs:
            await self.forever.wait()
            return
        self.timeline.now += self.runs.pop(0)
        raise RuntimeError(f"boom {self.started}")


async def run_until_settled(timeline: Timeline, dying: Dying, restarts: list[str]) -> asyncio.Task[None]:
    task = asyncio.create_task(supervise("catalog", dying, on_restart=restarts.append, sleep=timeline.sleep,
                                         clock=timeline.clock, backoff=Backoff(first=1, cap=8, healthy=60)))
    for _ in range(200):
        await asyncio.sleep(0)
        if not dying.runs and dying.started:
            break
    await asyncio.sleep(0)
    return task


async def test_a_task_that_raises_is_restarted_with_a_doubling_bounded_backoff(
        caplog: pytest.LogCaptureFixture) -> None:
    """Five deaths in quick succession: waits 1, 2, 4, 8, 8 s (capped), five restarts counted, one error line
    each naming the task and the exception, no traceback at info level; then it runs on."""
    timeline, restarts = Timeline(), []
    dying = Dying(timeline, [0.1] * 5)
    with caplog.at_level(logging.INFO):
        task = await run_until_settled(timeline, dying, restarts)
    assert timeline.sleeps == [1, 2, 4, 8, 8]
    assert restarts == ["catalog"] * 5 and dying.started == 6
    assert not task.done()
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 5
    assert [getattr(r, "task", None) for r in errors] == ["catalog"] * 5
    assert getattr(errors[0], "error", None) == "RuntimeError: boom 1"
    for record in errors:
        assert record.exc_info is None
        for formatter in (LogfmtFormatter(), JsonFormatter()):
            line = formatter.format(record)
            assert "\n" not in line and "Traceback" not in line, line
    assert 'task=catalog' in LogfmtFormatter().format(errors[0])
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert dying.started == 6  # cancelled: not started again


async def test_the_backoff_starts_again_after_a_run_that_lasted(caplog: pytest.LogCaptureFixture) -> None:
    """Deaths after 0.1, 0.1 s, then after a 61 s run, then 0.1 s: waits 1, 2, then 1 again, then 2."""
    timeline, restarts = Timeline(), []
    dying = Dying(timeline, [0.1, 0.1, 61, 0.1])
    task = await run_until_settled(timeline, dying, restarts)
    assert timeline.sleeps == [1, 2, 1, 2]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_a_debug_log_carries_the_traceback_and_a_return_counts_as_a_death(
        caplog: pytest.LogCaptureFixture) -> None:
    """At debug level the error line carries the traceback; a task that returns is restarted like one that
    raised (these loops never end on their own)."""
    timeline, restarts = Timeline(), []
    calls = 0

    async def flaky() -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise KeyError("missing")
        if calls == 2:
            return
        await asyncio.Event().wait()

    with caplog.at_level(logging.DEBUG, logger="exporter.polling.supervisor"):
        task = asyncio.create_task(supervise("targets", flaky, on_restart=restarts.append, sleep=timeline.sleep,
                                             clock=timeline.clock))
        for _ in range(50):
            await asyncio.sleep(0)
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [getattr(r, "error", None) for r in errors] == ["KeyError: 'missing'", "RuntimeError: the task returned"]
    assert errors[0].exc_info is not None and "Traceback" in LogfmtFormatter().format(errors[0])
    assert restarts == ["targets", "targets"] and calls == 3
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


# --- in serve --------------------------------------------------------------------------------------


@pytest.fixture
async def endpoint() -> AsyncIterator[str]:
    sim = Simulator(Scenario.builtin("demo"), {"AK": "SK"})
    sim.set_qps_limit("GetConsumerProgress", 1000)
    server = TestServer(build_app(sim), host="127.0.0.1")
    await server.start_server()
    yield str(server.make_url("/"))
    await server.close()


async def test_serve_restarts_a_dying_worker_and_keeps_serving(endpoint: str,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    """The config watcher dies (its loader raises what no reload expects) on SIGHUP: serve logs it, restarts it
    (alikafka_exporter_task_restarts_total{task="reload"} 1), keeps serving, and stops cleanly with 0."""
    port = free_port()
    settings = load_settings({"targets": [{"instance_id": "alikafka_post-cn-demo0001", "region": "cn-hangzhou",
                                           "groups": ["email-sender"]}],
                              "api": {"endpoint": endpoint, "max_qps": 1000},
                              "web": {"listen_address": f"127.0.0.1:{port}"}}, {}, None)

    def broken_loader() -> Settings:
        raise OSError("the disk went away")

    plan = app.Plan(app.plan_pairs(settings), settings.api, StaticProvider(Credentials("AK", Secret("SK")), "t"),
                    tuple(settings.targets))
    stop = asyncio.Event()
    with caplog.at_level(logging.INFO):
        served = asyncio.create_task(app.serve(settings, plan, stop, reload=broken_loader))
        try:
            await asyncio.sleep(0.5)
            os.kill(os.getpid(), signal.SIGHUP)
            await asyncio.sleep(1.6)  # the 1 s restart wait
            assert not served.done()
            async with aiohttp.ClientSession() as session, \
                    session.get(f"http://127.0.0.1:{port}/metrics") as response:
                text = await response.text()
            assert value(text, "alikafka_exporter_task_restarts_total", task="reload") == 1
            assert value(text, "alikafka_exporter_task_restarts_total", task="poller") == 0
            assert value(text, "alikafka_consumergroup_up", group="email-sender",
                         instance_id="alikafka_post-cn-demo0001") == 1
        finally:
            stop.set()
            with contextlib.suppress(asyncio.CancelledError):
                assert await asyncio.wait_for(served, 5) == 0
    died = [r for r in caplog.records if r.getMessage().startswith("task died unexpectedly")]
    assert [(getattr(r, "task", None), getattr(r, "error", None)) for r in died] == [
        ("reload", "OSError: the disk went away")]
    assert all(r.exc_info is None for r in caplog.records)
