"""The HTTP side: routes and content negotiation. The only module that knows routes.

Handlers read the latest snapshot and cached exposition bytes; none of them waits on the cloud
API. ``/healthz`` is cheap and only says the process serves; ``/readyz`` turns 200 once every pair
has been polled once, so a rollout does not route scrapes to an exporter with nothing to say.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from exporter import page
from exporter.exposition import Exposition
from exporter.snapshot import Snapshot


@dataclass(frozen=True, slots=True)
class WebOptions:
    """What the web layer needs from the settings."""

    telemetry_path: str = "/metrics"
    version: str = "0"
    demo: bool = False
    poll_interval: float | None = None  # shown on the status page
    started: float | None = None  # process start (epoch seconds); None: when the app is built


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


def make_app(exposition: Exposition, snapshot: Callable[[], Snapshot], options: WebOptions) -> web.Application:
    """Build the aiohttp application; the caller runs it (see :func:`start`)."""

    async def metrics(request: web.Request) -> web.Response:
        openmetrics = _accepts(request.headers.get("Accept", ""), "application/openmetrics-text")
        rendered = exposition.render(openmetrics=openmetrics)
        headers = {"Content-Type": rendered.content_type, "Vary": "Accept, Accept-Encoding"}
        if _accepts(request.headers.get("Accept-Encoding", ""), "gzip"):
            headers["Content-Encoding"] = "gzip"
            return web.Response(body=rendered.gzipped(), headers=headers)
        return web.Response(body=rendered.body, headers=headers)

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(_: web.Request) -> web.Response:
        snap = snapshot()
        if snap.ready:
            return web.Response(text="ready\n")
        if snap.discovering:
            return web.Response(status=503, text="not ready: listing instances and consumer groups\n")
        pending = sum(1 for s in snap.pairs.values() if s.polls == 0)
        return web.Response(status=503, text=f"not ready: {pending} of {len(snap.pairs)} targets not polled yet\n")

    page_options = page.PageOptions(options.version, options.demo, options.telemetry_path, options.poll_interval,
                                    time.time() if options.started is None else options.started)

    async def index(request: web.Request) -> web.Response:
        fmt = request.query.get("format", "html")
        if fmt == "json":
            return web.json_response(page.as_json(snapshot(), page_options), headers={"Cache-Control": "no-store"})
        if fmt != "html":
            return web.Response(status=400, text="format must be html or json\n")
        return web.Response(text=page.render(snapshot(), page_options), content_type="text/html",
                            headers={"Cache-Control": "no-store"})

    app = web.Application(client_max_size=64 * 1024)
    app.router.add_get(options.telemetry_path, metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/", index)
    return app


async def start(app: web.Application, host: str, port: int) -> web.AppRunner:
    """Start serving ``app``; returns the runner to clean up on shutdown."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, host or None, port, reuse_address=True)
    await site.start()
    return runner
