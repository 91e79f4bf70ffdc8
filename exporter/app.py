"""Wires the parts together for one run: client, poller, board, exposition, web.

Everything is built here from validated settings and passed in; nothing is global. The data flows
one way: the client answers the poller, the poller writes each result to the board, the exposition
renders what changed on the board, the web layer serves its bytes and the board's snapshots. A stop
signal cancels the poller, closes the HTTP server and the API session, well within the 5 s a container
runtime allows. SIGHUP (or a change of the config file) reloads the configuration in place.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import signal
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TextIO, runtime_checkable

from yarl import URL

from exporter import __version__, logs
from exporter.cloud.accounts import Account, open_client, single_account
from exporter.cloud.client import ApiCaller
from exporter.cloud.credentials import CredentialProvider, Learning
from exporter.cloud.ratelimit import enforced_rate
from exporter.cloud.stats import ApiStats
from exporter.cloud.transport import PlainTransport
from exporter.config.reload import Reloader, ReloadStatus
from exporter.config.settings import METADATA_ENDPOINT, ApiSettings, Settings, Target
from exporter.metrics.exposition import Exposition
from exporter.metrics.self_metrics import TailCollector
from exporter.polling.analysis import Analyzer
from exporter.polling.fleet import Fleet
from exporter.polling.poller import HEADROOM
from exporter.polling.retention import RetentionRefresher, TopicRef
from exporter.polling.schedule import beyond_reach, reach
from exporter.polling.snapshot import Board, Snapshot
from exporter.polling.supervisor import supervise
from exporter.targets.catalog import InstanceCatalog
from exporter.targets.discovery import Discovery
from exporter.targets.live import LiveTargets
from exporter.targets.pair import Pair
from exporter.web import routes as web
from exporter.web.tls import TlsError
from exporter.web.webconfig import WebConfig

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Plan:
    """What to poll and how to reach it: the settings' targets, or the demo simulator's pairs."""

    pairs: tuple[Pair, ...]  # known without listing (explicit instances and groups, this shard)
    api: ApiSettings
    credentials: CredentialProvider
    targets: tuple[Target, ...] = ()  # all configured targets, for discovery
    web: WebConfig | None = None  # the validated --web.config.file (TLS, basic auth)
    # The one transport of the credential providers' requests; the API client lends it its session.
    transport: PlainTransport = field(default_factory=PlainTransport)
    # Every account the targets use, with its credentials and budget; empty: one account, default, of
    # ``credentials`` and ``api`` (the demo, and tests).
    accounts: tuple[Account, ...] = ()

    @property
    def all_accounts(self) -> tuple[Account, ...]:
        """The accounts to poll with: ``accounts``, or the one default account."""
        return self.accounts or single_account(self.api, self.credentials)

    @property
    def discovering(self) -> bool:
        """Whether some targets must be listed through the API."""
        return any(t.discovered for t in self.targets)


def plan_pairs(settings: Settings) -> tuple[Pair, ...]:
    """The pairs of the settings' explicit targets that fall in this process's shard."""
    return Discovery.of(settings).static_pairs()


def polled_topics(snapshot: Snapshot) -> set[TopicRef]:
    """The (region, instance, topic, account) the polled groups read, as their last answers say."""
    return {(pair.region, pair.instance_id, topic.topic, pair.account) for pair, state in snapshot.pairs.items()
            if state.progress is not None for topic in state.progress.topics}


def _listed_regions(settings: Settings) -> frozenset[tuple[str, str]]:
    """The (account, region) scopes discovery lists the instances of, so the catalog takes them from its answers."""
    return Discovery.of(settings).instance_scopes


@runtime_checkable
class _UsesSts(Protocol):
    """A credentials provider that calls STS (RRSA)."""

    @property
    def sts_endpoint(self) -> str: ...


@runtime_checkable
class _UsesMetadata(Protocol):
    """A credentials provider that calls the ECS metadata service."""

    @property
    def endpoint(self) -> str: ...
    @property
    def imdsv1_allowed(self) -> bool: ...


def _in_clear(url: str) -> bool:
    """Whether ``url`` is plain http to a host off this machine (loopback is not a network)."""
    parsed = URL(url)
    host = (parsed.host or "").strip("[]")
    if parsed.scheme != "http" or host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True


def cleartext_endpoints(settings: Settings, plan: Plan) -> list[str]:
    """One line for each endpoint that would carry credentials over plain http off this machine.

    API calls carry signatures and STS tokens, STS calls the OIDC token and the issued keys, metadata
    answers the role's keys. The ECS metadata service on 100.100.100.200 is plain http by design (a
    link-local address only the instance reaches), so it is not listed; elsewhere it is.
    """
    regions = {p.region for p in plan.pairs} | {t.region for t in plan.targets if t.region}
    if settings.api.region:
        regions.add(settings.api.region)
    lines = [f"the API endpoint {url} is plain http: signatures and STS tokens travel in clear"
             for url in sorted({plan.api.endpoint_for(region) for region in regions}) if _in_clear(url)]
    providers = [_unwrapped(a.credentials) for a in plan.all_accounts]
    providers += [_unwrapped(base) for p in providers if (base := getattr(p, "base", None)) is not None]  # role_arn
    for provider in providers:
        if isinstance(provider, _UsesSts) and _in_clear(provider.sts_endpoint):
            lines.append(f"the STS endpoint {provider.sts_endpoint} is plain http: the OIDC token and the issued "
                         "keys travel in clear")
        elif isinstance(provider, _UsesMetadata) and _in_clear(provider.endpoint) \
                and URL(provider.endpoint).host != (link_local := URL(METADATA_ENDPOINT).host):
            lines.append(f"the ECS metadata endpoint {provider.endpoint} is plain http off the link-local "
                         f"{link_local}: the role's keys travel in clear")
    return list(dict.fromkeys(lines))


def _unwrapped(provider: CredentialProvider) -> CredentialProvider:
    """The provider inside the redactor's wrappers."""
    while isinstance(provider, Learning):
        provider = provider.inner
    return provider


@contextlib.asynccontextmanager
async def _pipeline(settings: Settings, plan: Plan, reload: ReloadStatus | None = None) -> AsyncIterator[Pipeline]:
    stats = ApiStats()
    for line in cleartext_endpoints(settings, plan):
        log.warning(line)
    accounts = plan.all_accounts
    status = reload or ReloadStatus()
    # One client, a lane per account: each account's calls spend its own budget, and its own poller schedules
    # its pairs on that budget (all of them writing to the one board).
    async with open_client(plan.api, accounts, stats, plan.transport) as client:
        board = Board()
        catalog = InstanceCatalog(client, {(p.account, p.region) for p in plan.pairs},
                                  {p.instance_id for p in plan.pairs},
                                  settings.discovery.refresh, _listed_regions(settings) if plan.discovering else ())
        tail = TailCollector(board, stats, __version__, catalog=catalog, reload=status, guard=True)
        exposition = Exposition(settings.metrics, board, tail)
        retention = RetentionRefresher(client, settings.retention, lambda: polled_topics(board.snapshot),
                                       lambda instance_id: _retention_of(catalog, instance_id))
        poller = Fleet({a.name: client.account(a.name) for a in accounts}, plan.pairs, board=board,
                       interval=settings.poll.interval, stale_after=settings.poll.stale_after,
                       analyzer=Analyzer(settings.lag, retention), discovering=plan.discovering,
                       schedule=settings.poll.schedule, max_interval=settings.poll.longest_wait)
        discovery = Discovery.of(settings, client, catalog.observe) if plan.discovering else None
        yield Pipeline(poller, catalog, exposition, discovery, client, stats, retention)


def _retention_of(catalog: InstanceCatalog, instance_id: str) -> float | None:
    info = catalog.instances.get(instance_id)
    return info.retention_seconds if info is not None else None


@dataclass(frozen=True, slots=True)
class Pipeline:
    """The running parts of one exporter."""

    poller: Fleet  # one poller per account
    catalog: InstanceCatalog
    exposition: Exposition
    discovery: Discovery | None
    client: ApiCaller
    stats: ApiStats
    retention: RetentionRefresher

    def apply(self, pairs: tuple[Pair, ...]) -> None:
        """Poll these pairs from now on (discovery's answer)."""
        self.poller.set_pairs(pairs)
        self.catalog.track(pairs)

    def reconfigure(self, old: Settings, new: Settings, targets: LiveTargets) -> None:
        """Apply a reloaded configuration's live keys (see exporter.config.reload for which are live)."""
        if (new.log.level, new.log.format) != (old.log.level, old.log.format):
            logs.reconfigure(new.log.level, new.log.format)
        self.poller.reconfigure(interval=new.poll.interval, stale_after=new.poll.stale_after,
                                schedule=new.poll.schedule, max_interval=new.poll.longest_wait)
        self.exposition.reconfigure(new.metrics)
        self.retention.configure(new.retention)
        if (new.targets, new.thresholds, new.api.region, new.shard, new.discovery) != (
                old.targets, old.thresholds, old.api.region, old.shard, old.discovery):  # thresholds: on the pairs
            self.catalog.configure(new.discovery.refresh, _listed_regions(new))
            targets.configure(new)


async def run_once(settings: Settings, plan: Plan, out: TextIO = sys.stdout) -> int:
    """Poll every pair once and print the exposition: exit 0 if every poll succeeded, else 1."""
    async with _pipeline(settings, plan) as parts:
        if parts.discovery is not None:
            parts.apply(await parts.discovery.resolve())
        snapshot, _ = await asyncio.gather(parts.poller.poll_once(), parts.catalog.refresh_once())
        out.write(parts.exposition.render().body.decode())
        out.flush()
    return 0 if all(s.up for s in snapshot.pairs.values()) else 1


async def serve(settings: Settings, plan: Plan, stop: asyncio.Event | None = None,
                reload: Callable[[], Settings] | None = None, config_file: Path | None = None) -> int:
    """Serve until SIGTERM/SIGINT (or ``stop``): 0 on a clean stop, 1 when it cannot listen.

A worker that dies is restarted by its supervisor (:func:`exporter.polling.supervisor.supervise`), so a bug or
an unforeseen answer costs a log line and a restart, never the process.

    ``reload`` loads the configuration again (SIGHUP, or a change of ``config_file``'s content); without
    it (demo mode) SIGHUP only logs that there is nothing to reload.
    """
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    status = ReloadStatus()
    async with _pipeline(settings, plan, status) as parts:
        targets = LiveTargets(parts.client, settings, parts.apply, parts.catalog.observe)
        reloader = Reloader(reload or (lambda: settings), settings,
                            lambda old, new: parts.reconfigure(old, new, targets), config_file, status=status)
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGHUP, reloader.request if reload is not None else _no_reload)
        poller = parts.poller
        app = web.make_app(
            parts.exposition,
            poller.board,
            settings.web,
            web.Access.of(plan.web) if plan.web is not None else None,
            version=__version__,
            demo=settings.demo,
            accounts=[(a.name, a.credentials.source) for a in plan.all_accounts],
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
        # Each worker runs under a supervisor: one that dies is logged and restarted, the process stays up.
        # One poller per account ("poller" for the default one, "poller:NAME"), each on its own budget.
        jobs: dict[str, Callable[[], Awaitable[None]]] = {**poller.jobs("poller"), "catalog": parts.catalog.run,
                                                          "targets": targets.run, "retention": parts.retention.run}
        if reload is not None:
            jobs["reload"] = reloader.run
        for name in jobs:
            parts.stats.task_started(name)
        workers = [asyncio.create_task(supervise(name, job, on_restart=parts.stats.task_restarted), name=name)
                   for name, job in jobs.items()]
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
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(signal.SIGHUP)
        if not stop.is_set():  # only an exception a supervisor does not catch (SystemExit and the like)
            failures = [t.exception() for t in workers if t.done() and not t.cancelled()]
            log.error("a worker stopped unexpectedly", extra={"error": repr(failures)})
            return 1
    log.info("stopped")
    return 0


def _no_reload() -> None:
    log.warning("SIGHUP ignored: the demo's configuration cannot be reloaded")


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
    lines.append(f"signature: {settings.api.signature}")
    if settings.accounts:
        lines.append("accounts:")
        for account in plan.all_accounts:
            pairs = sum(1 for p in plan.pairs if p.account == account.name)
            lines.append(f"  {account.name}: {account.credentials.source}; max_qps {account.max_qps:g}"
                         f"{_enforced_note(account.max_qps)}, max_concurrency {account.max_concurrency}, "
                         f"{pairs} listed pair{'s' if pairs != 1 else ''}{_round_note(settings, plan, account)}")
    else:
        lines.append(f"credentials: {plan.credentials.source}")
    lines += [
        f"poll interval: {settings.poll.interval:g}s, stale after {settings.poll.stale_after:g}s, "
        f"max_qps {settings.api.max_qps:g}{_enforced_note(settings.api.max_qps)}",
        _schedule_line(settings, plan),
        f"listen: {settings.web.listen_address}{settings.web.telemetry_path}",
        f"web config: {web_summary(plan.web)}",
    ]
    lines += [f"warning: {line}" for line in cleartext_endpoints(settings, plan)]
    return lines


def _schedule_line(settings: Settings, plan: Plan) -> str:
    poll = settings.poll
    if poll.schedule == "uniform":
        return "schedule: uniform (round robin)"
    line = f"schedule: adaptive, no pair waits longer than {poll.longest_wait:g}s"
    if plan.discovering:
        return line
    for account in plan.all_accounts:  # each account's budget schedules its own pairs
        pairs = sum(1 for p in plan.pairs if p.account == account.name)
        rate = enforced_rate(account.max_qps) * HEADROOM
        if beyond_reach(pairs, rate, poll.interval, poll.longest_wait):
            who = f"account {account.name} " if settings.accounts else ""
            stretched = reach(pairs, rate, poll.interval, poll.longest_wait)
            line += (f" (warning: {who}at max_qps {account.max_qps:g}, {pairs} pairs take {pairs / rate:.0f}s a "
                     f"round, too long for that: quiet pairs will wait up to {stretched:.0f}s so that busy pairs "
                     f"are polled more often; set poll.max_interval to {stretched:.0f}s or more to make that the "
                     "bound)")
    return line


def _round_note(settings: Settings, plan: Plan, account: Account) -> str:
    """How often the account's own schedule polls its listed pairs on its own budget (``--check-config``)."""
    pairs = sum(1 for p in plan.pairs if p.account == account.name)
    if plan.discovering or not pairs:
        return ""
    round_s = max(settings.poll.interval, pairs / (enforced_rate(account.max_qps) * HEADROOM))
    if round_s <= settings.poll.interval:
        return f", each polled every {round_s:g}s"
    return f", a round takes {round_s:.0f}s on its budget"


def _enforced_note(max_qps: float) -> str:
    enforced = enforced_rate(max_qps)
    return f" (enforced as {enforced:g}: whole requests per second above 1)" if enforced != max_qps else ""


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
