"""The HTTP side: routes, content negotiation and the status page. The only module that knows routes.

Handlers read the latest snapshot and cached exposition bytes; none of them waits on the cloud
API. ``/healthz`` is cheap and only says the process serves; ``/readyz`` turns 200 once every pair
has been polled once, so a rollout does not route scrapes to an exporter with nothing to say.
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web

from exporter.exposition import Exposition
from exporter.snapshot import PairState, Snapshot

_LIMIT_TOP = 15


@dataclass(frozen=True, slots=True)
class WebOptions:
    """What the web layer needs from the settings."""

    telemetry_path: str = "/metrics"
    version: str = "0"
    demo: bool = False


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

    async def index(_: web.Request) -> web.Response:
        return web.Response(text=render_status_page(snapshot(), options), content_type="text/html")

    app = web.Application(client_max_size=64 * 1024)
    app.router.add_get(options.telemetry_path, metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/", index)
    return app


def _ago(stamp: float | None, now: float) -> str:
    if stamp is None:
        return "never"
    return f"{max(0.0, now - stamp):.0f}s ago"


def render_status_page(snapshot: Snapshot, options: WebOptions, now: float | None = None) -> str:
    """A plain HTML page: every target, its last poll and error, and the groups lagging most."""
    now = time.time() if now is None else now
    esc = html.escape
    states = sorted(snapshot.pairs.values(), key=lambda s: (s.pair.instance_id, s.pair.group))
    rows = []
    for s in states:
        error = f"{s.error.code}: {s.error.message}" if s.error else ""
        rid = f" (RequestId {s.error.request_id})" if s.error and s.error.request_id else ""
        rows.append(
            f"<tr class='{esc(s.status)}'><td>{esc(s.pair.instance_id)}</td><td>{esc(s.pair.group)}</td>"
            f"<td>{esc(s.pair.region)}</td><td>{esc(s.status)}</td><td>{_ago(s.last_poll, now)}</td>"
            f"<td>{_ago(s.last_success, now)}</td><td>{esc(error + rid)}</td></tr>"
        )
    lagging = sorted(
        (s for s in states if s.progress is not None and s.progress.total_diff),
        key=lambda s: (_seconds_of(s) or 0.0, _lag_of(s)),
        reverse=True,
    )[:_LIMIT_TOP]
    top = [
        f"<tr><td>{esc(s.pair.instance_id)}</td><td>{esc(s.pair.group)}</td><td>{_lag_of(s)}</td>"
        f"<td>{_duration(_seconds_of(s))}</td><td>{esc(s.insight.status if s.insight else '')}</td>"
        f"<td>{esc(s.progress.state if s.progress else '')}</td></tr>"
        for s in lagging
    ]
    counts = snapshot.count_by_status()
    banner = "<p class='demo'><strong>Demo mode: all data is simulated.</strong></p>" if options.demo else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>alikafka-exporter</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:.25em .6em;text-align:left}}tr.failing,tr.stale{{background:#fde2e2}}
.demo{{color:#8a5300}}</style></head>
<body><h1>alikafka-exporter {esc(options.version)}</h1>{banner}
<p><a href="{esc(options.telemetry_path)}">Metrics</a> · <a href="/healthz">/healthz</a> ·
<a href="/readyz">/readyz</a></p>
<p>Targets: {len(states)} · ok {counts["ok"]} · failing {counts["failing"]} · stale {counts["stale"]}</p>
<h2>Groups with the most lag</h2>
<table id="top"><tr><th>Instance</th><th>Group</th><th>Lag (messages)</th><th>Time lag</th><th>Status</th>
<th>State</th></tr>
{"".join(top) or "<tr><td colspan='6'>none</td></tr>"}</table>
<h2>Targets</h2>
<table id="targets"><tr><th>Instance</th><th>Group</th><th>Region</th><th>Status</th><th>Last poll</th>
<th>Last success</th><th>Last error</th></tr>
{"".join(rows)}</table>
</body></html>
"""


def _seconds_of(state: PairState) -> float | None:
    return state.insight.max_time_lag if state.insight else None


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.1f}s"
    if seconds < 7200:
        return f"{seconds / 60:.1f}m"
    return f"{seconds / 3600:.1f}h"


def _lag_of(state: PairState) -> int:
    return state.progress.total_diff or 0 if state.progress else 0


async def start(app: web.Application, host: str, port: int) -> web.AppRunner:
    """Start serving ``app``; returns the runner to clean up on shutdown."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, host or None, port, reuse_address=True)
    await site.start()
    return runner
