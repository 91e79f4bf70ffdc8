"""``--demo``: the exporter against the built-in simulator, so anyone can see it work in one command.

The simulator runs on loopback in a thread of its own, with its own event loop, so it stands apart
from the exporter the way the cloud does: the exporter reaches it only through signed HTTP calls
with a freshly generated key pair, exactly as it would reach alikafka. The log and the status page
say the data is simulated.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading

from aiohttp import web

from exporter.app import Plan
from exporter.cloud.credentials import Credentials, Secret, StaticProvider
from exporter.config.settings import Settings
from exporter.simulator import Scenario, Simulator, build_app
from exporter.targets.pair import Pair

log = logging.getLogger(__name__)

DEMO_INTERVAL = 20.0  # unless configured: the demo's numbers should move while someone watches
DEMO_RETENTION_REFRESH = 60.0  # unless configured: earliest offsets within a minute, not five
DEMO_SEED = 42


class SimulatorThread:
    """The simulator served on 127.0.0.1 (a free port) from a daemon thread."""

    def __init__(self, simulator: Simulator) -> None:
        self.simulator = simulator
        self.url = ""
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="alikafka-simulator", daemon=True)

    def start(self, timeout: float = 10.0) -> str:
        """Start serving; returns the base URL."""
        self._thread.start()
        if not self._ready.wait(timeout) or self._error is not None:
            raise RuntimeError(f"the demo simulator did not start: {self._error!r}")
        return self.url

    def _run(self) -> None:
        asyncio.run(self._serve())

    async def _serve(self) -> None:
        try:
            runner = web.AppRunner(build_app(self.simulator), access_log=None, handle_signals=False)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            host, port = runner.addresses[0][:2]
            self.url = f"http://{host}:{port}/"
        except BaseException as exc:
            self._error = exc
            raise
        finally:
            self._ready.set()
        await asyncio.Event().wait()  # serve until the process exits


def plan(settings: Settings) -> tuple[Settings, Plan]:
    """Start the simulator and plan to poll every group of the demo scenario through it."""
    key_id = "LTAI5tDemo" + secrets.token_hex(6)
    secret = secrets.token_urlsafe(24)
    simulator = Simulator(Scenario.builtin("demo"), access_keys={key_id: secret}, seed=DEMO_SEED)
    url = SimulatorThread(simulator).start()
    poll = settings.poll
    if "interval" not in poll.model_fields_set:
        poll = poll.model_copy(update={"interval": DEMO_INTERVAL,
                                       "stale_after": max(poll.stale_after, 3 * DEMO_INTERVAL)})
    retention = settings.retention
    if "refresh" not in retention.model_fields_set:
        retention = retention.model_copy(update={"refresh": DEMO_RETENTION_REFRESH})
    demo_settings = settings.model_copy(update={"poll": poll, "retention": retention,
                                                "api": settings.api.model_copy(update={"endpoint": url})})
    # the configured default thresholds apply to the demo's groups, so the boards and rules can be tried out
    pairs = tuple(Pair(instance_id, group, region, thresholds=settings.thresholds)
                  for instance_id, region, group in simulator.pairs())
    log.warning(
        "DEMO MODE: polling the built-in simulated alikafka API; all data is simulated",
        extra={"simulator": url, "targets": len(pairs), "access_key_id": key_id},
    )
    creds = StaticProvider(Credentials(key_id, Secret(secret)), "demo simulator (generated key pair)")
    return demo_settings, Plan(pairs, demo_settings.api, creds)
