"""Wires the parts together for one run: client, poller, snapshot, exposition, web.

Everything is built here from validated settings and passed in; nothing is global. The data flows
one way: the client answers the poller, the poller publishes snapshots, the collector renders the
latest snapshot, the web layer serves the bytes. A stop signal cancels the poller, closes the HTTP
server and the API session, well within the 5 s a container runtime allows.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import TextIO

from exporter import __version__, web
from exporter.analysis import Analyzer
from exporter.catalog import InstanceCatalog
from exporter.client import AlikafkaClient, ApiOptions
from exporter.collector import CollectorOptions, TailCollector
from exporter.credentials import CredentialProvider
from exporter.exposition import Exposition
from exporter.lag import LagOptions
from exporter.poller import Poller
from exporter.ratelimit import RateLimiter
from exporter.settings import Settings
from exporter.snapshot import Pair
from exporter.stats import ApiStats
from exporter.status import StatusOptions

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Plan:
    """What to poll and how to reach it: the settings' pairs, or the demo simulator's."""

    pairs: tuple[Pair, ...]
    api: ApiOptions
    credentials: CredentialProvider


def pairs_from_settings(settings: Settings) -> tuple[Pair, ...]:
    """Expand targets into pairs; the settings guarantee a region for every target."""
    pairs: list[Pair] = []
    for target in settings.targets:
        region = target.region or settings.api.region
        assert region is not None  # validated by Settings
        pairs.extend(Pair(target.instance_id, group, region) for group in target.groups)
    return tuple(pairs)


@contextlib.asynccontextmanager
async def _pipeline(settings: Settings, plan: Plan) -> AsyncIterator[tuple[Poller, InstanceCatalog, Exposition]]:
    stats = ApiStats()
    limiter = RateLimiter(settings.api.max_qps)
    async with AlikafkaClient(plan.api, plan.credentials, limiter, stats) as client:
        options = CollectorOptions(settings.metrics.granularity, settings.metrics.member_labels, __version__)
        # The tail reads the poller and the catalog, built just below (the lambdas bind late).
        tail = TailCollector(lambda: poller.snapshot, stats, options, instances=lambda: catalog.instances)
        exposition = Exposition(options, tail, lambda: (poller.snapshot.version, stats.version, catalog.version))
        poller = Poller(
            client,
            plan.pairs,
            interval=settings.poll.interval,
            stale_after=settings.poll.stale_after,
            max_qps=settings.api.max_qps,
            analyzer=Analyzer(
                LagOptions(settings.lag.history, settings.lag.max_points, settings.lag.max_age),
                StatusOptions(settings.lag.status_window, settings.lag.status_min_polls,
                              settings.lag.lagging_min_rise, settings.lag.status_min_span),
            ),
            on_update=exposition.update,
            on_remove=exposition.remove,
            current_qps=lambda: limiter.current_qps,
        )
        catalog = InstanceCatalog(client, {p.region for p in plan.pairs}, {p.instance_id for p in plan.pairs})
        yield poller, catalog, exposition


async def run_once(settings: Settings, plan: Plan, out: TextIO = sys.stdout) -> int:
    """Poll every pair once and print the exposition: exit 0 if every poll succeeded, else 1."""
    async with _pipeline(settings, plan) as (poller, catalog, exposition):
        snapshot, _ = await asyncio.gather(poller.poll_once(), catalog.refresh_once())
        out.write(exposition.render().body.decode())
        out.flush()
    return 0 if all(s.up for s in snapshot.pairs.values()) else 1


async def serve(settings: Settings, plan: Plan, stop: asyncio.Event | None = None) -> int:
    """Serve until SIGTERM/SIGINT (or ``stop``): 0 on a clean stop, 1 on a runtime failure."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    async with _pipeline(settings, plan) as (poller, catalog, exposition):
        app = web.make_app(
            exposition,
            lambda: poller.snapshot,
            web.WebOptions(settings.web.telemetry_path, __version__, settings.demo),
        )
        try:
            runner = await web.start(app, settings.web.host, settings.web.port)
        except OSError as exc:
            log.error("cannot listen", extra={"address": settings.web.listen_address, "error": exc.strerror})  # noqa: TRY400
            return 1
        log.info(
            "listening",
            extra={"address": settings.web.listen_address, "path": settings.web.telemetry_path,
                   "targets": len(plan.pairs), "interval_s": settings.poll.interval},
        )
        polling = asyncio.create_task(poller.run(), name="poller")
        cataloguing = asyncio.create_task(catalog.run(), name="catalog")
        stopped = asyncio.create_task(stop.wait(), name="stop")
        try:
            await asyncio.wait({polling, cataloguing, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (polling, cataloguing, stopped):
                task.cancel()
            for task in (polling, cataloguing):
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await runner.cleanup()
        if not stop.is_set():
            ended = polling if polling.done() and not polling.cancelled() else cataloguing
            failure = ended.exception() if ended.done() and not ended.cancelled() else None
            log.error("poller stopped unexpectedly", extra={"error": repr(failure)})
            return 1
    log.info("stopped")
    return 0


def summary_lines(settings: Settings, plan: Plan) -> Sequence[str]:
    """The ``--check-config`` report: what would be polled, where, and with which credentials source."""
    regions = sorted({p.region for p in plan.pairs})
    lines = [
        "configuration OK",
        f"targets: {len(plan.pairs)} instance/group pairs on {len({p.instance_id for p in plan.pairs})} instances",
    ]
    lines += [f"  {p.instance_id} {p.group} (region {p.region})" for p in plan.pairs[:50]]
    if len(plan.pairs) > 50:
        lines.append(f"  ... and {len(plan.pairs) - 50} more")
    lines += [f"endpoint {region}: {plan.api.endpoint_for(region)}" for region in regions]
    lines += [
        f"signature: {settings.api.signature}",
        f"credentials: {plan.credentials.source}",
        f"poll interval: {settings.poll.interval:g}s, stale after {settings.poll.stale_after:g}s, "
        f"max_qps {settings.api.max_qps:g}",
        f"listen: {settings.web.listen_address}{settings.web.telemetry_path}",
    ]
    return lines
