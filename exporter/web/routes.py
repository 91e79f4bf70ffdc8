"""The HTTP side: routes and content negotiation. The only module that knows routes.

Handlers read the latest snapshot and cached exposition bytes: scrapes never wait on the cloud API.
``/readyz`` turns 200 once every pair has been polled once. Access control from the web config wraps every
route, ``/healthz`` included, as the exporter-toolkit does, so an unauthenticated client learns nothing.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field

from aiohttp import hdrs, web
from aiohttp.http import HttpVersion11
from aiohttp.typedefs import Middleware

from exporter.config.settings import HEALTH_PATH, INDEX_PATH, READY_PATH, WebSettings
from exporter.metrics.exposition import Exposition
from exporter.polling.snapshot import SnapshotSource
from exporter.web import page
from exporter.web.auth import BasicAuth
from exporter.web.server import DEFAULT_HEADERS, HttpLimits, serve
from exporter.web.throttle import TokenBucket
from exporter.web.tls import ReloadingContext, SanPolicy
from exporter.web.webconfig import WebConfig


@dataclass(frozen=True)
class Access:
    """Who may ask and what every answer carries, from the web config."""

    basic_auth: BasicAuth | None = None
    allowed_sans: SanPolicy | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    rate_limit: TokenBucket | None = None

    @classmethod
    def of(cls, config: WebConfig) -> Access:
        """Build the checks once from the validated config."""
        tls, limit = config.tls_server_config, config.rate_limit
        return cls(
            BasicAuth(config.basic_auth_users) if config.basic_auth_users else None,
            SanPolicy.of(tls.client_allowed_sans) if tls.client_allowed_sans else None,
            dict(config.http_server_config.headers),
            TokenBucket(limit.interval, limit.burst) if limit.interval > 0 else None,
        )


_Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_REALM = 'Basic realm="alikafka-exporter", charset="UTF-8"'


def _middlewares(access: Access) -> list[Middleware]:
    """Request checks, cheapest first; they run before routing, so unknown paths are guarded too."""

    @web.middleware
    async def guard(request: web.Request, handler: _Handler) -> web.StreamResponse:
        if request.version >= HttpVersion11 and hdrs.HOST not in request.headers:
            return web.Response(status=400, text="missing Host header\n")
        if access.rate_limit is not None and not access.rate_limit.allow():
            return web.Response(status=429, text="too many requests\n")
        if access.allowed_sans is not None and not access.allowed_sans.allows(
                request.transport.get_extra_info("peercert") if request.transport else None):
            return web.Response(status=403, text="client certificate not allowed\n")
        if access.basic_auth is not None and not await access.basic_auth.check(
                request.headers.get(hdrs.AUTHORIZATION)):
            return web.Response(status=401, text="unauthorized\n", headers={hdrs.WWW_AUTHENTICATE: _REALM})
        return await handler(request)

    return [guard]


def _accepts(header: str, token: str) -> bool:
    """True when a comma-separated Accept/Accept-Encoding header lists ``token`` with q > 0."""
    for part in header.split(","):
        name, *params = (p.strip() for p in part.split(";"))
        if name.lower() != token:
            continue
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    return float(value) > 0
                except ValueError:
                    return False
        return True
    return False


# Bodies larger than this are written a slice at a time, each after the previous one drained.
WRITE_CHUNK = 256 * 1024


async def _write_in_chunks(request: web.Request, body: bytes, headers: Mapping[str, str]) -> web.StreamResponse:
    """Send a large body without copying it per connection.

    Handed to the transport whole, whatever the socket does not take at once is copied into that
    connection's buffer: ten scrapers of a 5 MB exposition would hold ten copies. Slices of a
    memoryview are sent from the one shared body instead, at most one slice buffered per connection.
    """
    response = web.StreamResponse(headers=headers)
    response.content_length = len(body)
    try:
        await response.prepare(request)
        view = memoryview(body) if request.method != hdrs.METH_HEAD else memoryview(b"")  # HEAD: headers only
        for start in range(0, len(view), WRITE_CHUNK):
            await response.write(view[start:start + WRITE_CHUNK])
        await response.write_eof()
    except ConnectionError:  # the scraper went away mid-body (a timeout, a restart): nothing to report
        pass
    return response


def make_app(exposition: Exposition, board: SnapshotSource, settings: WebSettings,
             access: Access | None = None, *, version: str = "0", demo: bool = False,
             started: float | None = None, accounts: Sequence[tuple[str, str]] = ()) -> web.Application:
    """Build the aiohttp application over the exposition's bytes and the board's snapshots; the caller runs
    it (see :func:`start`).

    ``version``, ``demo`` and ``accounts`` (each account's name and credential source) are shown on the
    status page; ``started`` is the process start (epoch seconds) its uptime counts from (None: when the
    app is built).
    """
    access = access or Access()

    async def metrics(request: web.Request) -> web.StreamResponse:
        openmetrics = _accepts(request.headers.get("Accept", ""), "application/openmetrics-text")
        rendered = exposition.render(openmetrics=openmetrics, coalesce=True)
        headers = {"Content-Type": rendered.content_type, "Vary": "Accept, Accept-Encoding"}
        if _accepts(request.headers.get("Accept-Encoding", ""), "gzip"):
            headers["Content-Encoding"] = "gzip"
            body = rendered.gzipped()
        else:
            body = rendered.body
        if len(body) <= WRITE_CHUNK:
            return web.Response(body=body, headers=headers)
        return await _write_in_chunks(request, body, headers)

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(_: web.Request) -> web.Response:
        snap = board.snapshot
        if snap.ready:
            return web.Response(text="ready\n")
        if snap.discovering:
            return web.Response(status=503, text="not ready: listing instances and consumer groups\n")
        pending = sum(1 for s in snap.pairs.values() if s.polls == 0)
        return web.Response(status=503, text=f"not ready: {pending} of {len(snap.pairs)} targets not polled yet\n")

    links = (("metrics", settings.telemetry_path), (HEALTH_PATH, HEALTH_PATH), (READY_PATH, READY_PATH),
             ("JSON", f"{INDEX_PATH}?format=json"))
    page_context = page.PageContext(version=version, demo=demo, links=links,
                                    started=time.time() if started is None else started, accounts=tuple(accounts))

    # A page over tens of thousands of pairs takes 0.1 s or more to build: it is built in a worker thread
    # from the immutable snapshot, two at a time, so scrapes of /metrics are not held up behind it.
    page_slots = asyncio.Semaphore(2)

    async def index(request: web.Request) -> web.Response:
        fmt = request.query.get("format", "html")
        if fmt not in ("html", "json"):
            return web.Response(status=400, text="format must be html or json\n")
        snap = board.snapshot
        async with page_slots:
            if fmt == "json":
                body = await asyncio.to_thread(lambda: json.dumps(page.as_json(snap, page_context)))
                return web.Response(text=body, content_type="application/json", headers={"Cache-Control": "no-store"})
            html = await asyncio.to_thread(page.render, snap, page_context)
        return web.Response(text=html, content_type="text/html", headers={
            "Cache-Control": "no-store", "Content-Security-Policy": page.content_security_policy()})

    async def add_headers(_: web.Request, response: web.StreamResponse) -> None:
        response.headers.update(DEFAULT_HEADERS)  # replaces aiohttp's "Server: Python/3.x aiohttp/3.x"
        response.headers.update(access.headers)

    app = web.Application(client_max_size=64 * 1024, middlewares=_middlewares(access))
    app.on_response_prepare.append(add_headers)
    app.router.add_get(settings.telemetry_path, metrics)
    app.router.add_get(HEALTH_PATH, healthz)
    app.router.add_get(READY_PATH, readyz)
    app.router.add_get(INDEX_PATH, index)
    return app


async def start(app: web.Application, host: str, port: int, ssl_context: ssl.SSLContext | None = None,
                limits: HttpLimits | None = None) -> web.AppRunner:
    """Start serving ``app`` (over TLS with ``ssl_context``); returns the runner to clean up on shutdown."""
    return await serve(app, host, port, ssl_context, limits)


def tls_context(config: WebConfig | None) -> ssl.SSLContext | None:
    """The serving context for the web config (reloading its certificates), or None for plain HTTP.

    Starts from the certificates :func:`exporter.web.webconfig.load` read; for a config not loaded that
    way, reads them now and raises :class:`exporter.web.tls.TlsError` when they do not load.
    """
    if config is None or not config.tls_server_config.enabled:
        return None
    return ReloadingContext(config.tls_server_config.certificates)
