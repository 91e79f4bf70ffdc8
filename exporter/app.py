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
from exporter.discovery import ApiCaller, Discovery, parse_shard
from exporter.exposition import Exposition
from exporter.lag import LagOptions
from exporter.poller import Poller
from exporter.ratelimit import RateLimiter
from exporter.settings import Settings, Target
from exporter.snapshot import Pair
from exporter.stats import ApiStats
from exporter.status import StatusOptions
from exporter.webconfig import TlsError, WebConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Plan:
    """What to poll and how to reach it: the settings' targets, or the demo simulator's pairs."""

    pairs: tuple[Pair, ...]  # known without listing (explicit instances and groups, this shard)
    api: ApiOptions
    credentials: CredentialProvider
    targets: tuple[Target, ...] = ()  # all configured targets, for discovery
    web: WebConfig | None = None  # the validated --web.config.file (TLS, basic auth)

    @property
    def discovering(self) -> bool:
        """Whether some targets must be listed through the API."""
        return any(t.discovered for t in self.targets)


def plan_pairs(settings: Settings) -> tuple[Pair, ...]:
    """The pairs of the settings' explicit targets that fall in this process's shard."""
    return _discovery(None, settings).static_pairs()


def _discovery(client: ApiCaller | None, settings: Settings) -> Discovery:
    return Discovery(client, settings.targets, settings.api.region, parse_shard(settings.shard),
                     settings.discovery.page_size)


@contextlib.asynccontextmanager
async def _pipeline(settings: Settings, plan: Plan) -> AsyncIterator[Pipeline]:
    stats = ApiStats()
    limiter = RateLimiter(settings.api.max_qps)
    async with AlikafkaClient(plan.api, plan.credentials, limiter, stats) as client:
        options = CollectorOptions(settings.metrics.granularity, settings.metrics.member_labels, __version__,
                                   compat=settings.metrics.compat)
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
            discovering=plan.discovering,
        )
        catalog = InstanceCatalog(client, {p.region for p in plan.pairs}, {p.instance_id for p in plan.pairs})
        discovery = _discovery(client, settings) if plan.discovering else None
        yield Pipeline(poller, catalog, exposition, discovery)


@dataclass(frozen=True, slots=True)
class Pipeline:
    """The running parts of one exporter."""

    poller: Poller
    catalog: InstanceCatalog
    exposition: Exposition
    discovery: Discovery | None

    def apply(self, pairs: tuple[Pair, ...]) -> None:
        """Poll these pairs from now on (discovery's answer)."""
        self.poller.set_pairs(pairs)
        self.catalog.track(pairs)


async def run_once(settings: Settings, plan: Plan, out: TextIO = sys.stdout) -> int:
    """Poll every pair once and print the exposition: exit 0 if every poll succeeded, else 1."""
    async with _pipeline(settings, plan) as parts:
        if parts.discovery is not None:
            parts.apply(await parts.discovery.resolve())
        snapshot, _ = await asyncio.gather(parts.poller.poll_once(), parts.catalog.refresh_once())
        out.write(parts.exposition.render().body.decode())
        out.flush()
    return 0 if all(s.up for s in snapshot.pairs.values()) else 1


async def serve(settings: Settings, plan: Plan, stop: asyncio.Event | None = None) -> int:
    """Serve until SIGTERM/SIGINT (or ``stop``): 0 on a clean stop, 1 on a runtime failure."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    async with _pipeline(settings, plan) as parts:
        poller = parts.poller
        app = web.make_app(
            parts.exposition,
            lambda: poller.snapshot,
            web.WebOptions(settings.web.telemetry_path, __version__, settings.demo, settings.poll.interval),
            web.Access.of(plan.web) if plan.web is not None else None,
        )
        try:
            runner = await web.start(app, settings.web.host, settings.web.port, web.tls_context(plan.web))
        except TlsError as exc:
            log.error("cannot load the TLS certificate", extra={"key": f"tls_server_config.{exc.key}",  # noqa: TRY400
                                                                 "error": str(exc)})
            return 1
        except OSError as exc:
            log.error("cannot listen", extra={"address": settings.web.listen_address, "error": exc.strerror})  # noqa: TRY400
            return 1
        log.info(
            "listening",
            extra={"address": settings.web.listen_address, "path": settings.web.telemetry_path,
                   "tls": bool(plan.web and plan.web.tls_server_config.enabled),
                   "basic_auth": bool(plan.web and plan.web.basic_auth_users),
                   "targets": len(plan.pairs), "discovery": plan.discovering, "interval_s": settings.poll.interval,
                   "shard": settings.shard},
        )
        workers = [asyncio.create_task(poller.run(), name="poller"),
                   asyncio.create_task(parts.catalog.run(), name="catalog")]
        if parts.discovery is not None:
            workers.append(asyncio.create_task(parts.discovery.run(parts.apply, settings.discovery.refresh),
                                               name="discovery"))
        stopped = asyncio.create_task(stop.wait(), name="stop")
        try:
            await asyncio.wait({*workers, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (*workers, stopped):
                task.cancel()
            for task in workers:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await runner.cleanup()
        if not stop.is_set():
            failures = [t.exception() for t in workers if t.done() and not t.cancelled()]
            log.error("a worker stopped unexpectedly", extra={"error": repr(failures)})
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
    for target in plan.targets:
        if target.discovered:
            where = target.instance_id or f"every running instance of {target.region or settings.api.region}"
            which = "all groups" if target.groups == "all" else f"groups {', '.join(target.groups)}"
            filters = "".join(f", {k} {v!r}" for k, v in (("allow", target.group_allow),
                                                            ("deny", target.group_deny)) if v)
            lines.append(f"discovery: {which} of {where}{filters}, listed every {settings.discovery.refresh:g}s")
    lines.append(f"shard: {settings.shard}")
    lines += [f"endpoint {region}: {plan.api.endpoint_for(region)}" for region in regions]
    lines += [
        f"signature: {settings.api.signature}",
        f"credentials: {plan.credentials.source}",
        f"poll interval: {settings.poll.interval:g}s, stale after {settings.poll.stale_after:g}s, "
        f"max_qps {settings.api.max_qps:g}",
        f"listen: {settings.web.listen_address}{settings.web.telemetry_path}",
        f"web config: {web_summary(plan.web)}",
    ]
    return lines


def web_summary(config: WebConfig | None) -> str:
    """One line on TLS and auth, for ``--check-config``."""
    if config is None:
        return "none (plain HTTP, no auth)"
    tls = config.tls_server_config
    parts = [f"TLS {tls.min_version}-{tls.max_version}, client certificates {tls.auth}" if tls.enabled
             else "plain HTTP"]
    users = len(config.basic_auth_users)
    parts.append(f"basic auth for {users} user{'s' if users != 1 else ''}" if users else "no basic auth")
    if config.rate_limit.interval > 0:
        parts.append(f"rate limit {config.rate_limit.burst} per {config.rate_limit.interval:g}s")
    return ", ".join(parts)
