"""The listening socket and its limits: what a slow, hostile or broken client can cost the exporter.

aiohttp parses requests; this module bounds everything around that: request line and header
sizes, how long a connection may take to send its request (slowloris), the TLS handshake time and
the number of open connections. It also replaces aiohttp's per-request error traceback (logger
``aiohttp.server``, one per malformed request) with one warning line per interval that counts
what happened, so a port scanner or a client sending junk cannot flood the log.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

log = logging.getLogger("exporter.http")


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """Bounds on what one client can hold; the defaults suit Prometheus scrapers and browsers."""

    request_timeout: float = 15.0  # from connect (or the previous response) to a complete request head
    handshake_timeout: float = 10.0  # TLS handshake
    max_line_size: int = 8190  # request line, bytes
    max_field_size: int = 8190  # one header, bytes
    max_headers: int = 64
    max_connections: int = 512  # beyond this, new connections get a 503 and are closed
    error_log_interval: float = 60.0  # at most one warning line per interval about bad requests


class RequestErrorLog:
    """Stands in for aiohttp's server logger: counts errors and logs one line per interval.

    Client errors (bad syntax, oversized headers, disconnects) are logged without a traceback;
    anything else, a bug in a handler, keeps its traceback in the line that is logged.
    """

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = interval
        self._clock = clock
        self._last = -float("inf")
        self._suppressed = 0
        self.total = 0

    def exception(self, msg: str, *args: Any, exc_info: Any = None, **_: Any) -> None:
        """Record one failed request; log when the interval has passed."""
        self.total += 1
        now = self._clock()
        if now - self._last < self._interval:
            self._suppressed += 1
            return
        count, self._suppressed, self._last = self._suppressed + 1, 0, now
        exc = exc_info if isinstance(exc_info, BaseException) else None
        fields = {"count": count, "interval_s": self._interval,
                  "error": _describe(exc) if exc is not None else (msg % args if args else msg)}
        if exc is None or isinstance(exc, HttpProcessingError | ConnectionError):
            log.warning("bad HTTP requests (more in this interval are counted, not logged)", extra=fields)
        else:
            log.error("HTTP request failed", extra=fields, exc_info=exc)

    error = exception

    def debug(self, msg: str, *args: Any, **kwargs: Any) -> None:
        """aiohttp's debug messages (e.g. a non-HTTP first request), without traceback."""
        kwargs.pop("exc_info", None)
        log.debug(msg, *args, **kwargs)

    def warning(self, msg: str, *args: Any, **kwargs: Any) -> None:
        """Passed through."""
        log.warning(msg, *args, **kwargs)

    def info(self, msg: str, *args: Any, **kwargs: Any) -> None:
        """Passed through."""
        log.info(msg, *args, **kwargs)

    def isEnabledFor(self, level: int) -> bool:  # noqa: N802 - the logging.Logger method name
        """As logging.Logger."""
        return log.isEnabledFor(level)


def _describe(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"[:200]


_BUSY = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


class _Busy(asyncio.Protocol):
    """Answers 503 and closes: the connection limit is reached."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        transport.write(_BUSY)
        transport.close()


class GuardedSite(web.TCPSite):
    """A TCP site with a TLS handshake timeout and a cap on open connections."""

    __slots__ = ("_limits",)

    def __init__(self, runner: web.BaseRunner, host: str | None, port: int, ssl_context: ssl.SSLContext | None,
                 limits: HttpLimits) -> None:
        super().__init__(runner, host, port, ssl_context=ssl_context, reuse_address=True)
        self._limits = limits

    async def start(self) -> None:
        """Listen; each accepted connection gets aiohttp's handler, or a 503 when over the cap."""
        self._runner._reg_site(self)  # what BaseSite.start does
        server = self._runner.server
        assert server is not None

        def protocol() -> asyncio.Protocol:
            if len(server.connections) >= self._limits.max_connections:
                return _Busy()
            return server()

        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            protocol, self._host, self._port, ssl=self._ssl_context, backlog=self._backlog,
            reuse_address=self._reuse_address,
            ssl_handshake_timeout=self._limits.handshake_timeout if self._ssl_context else None,
        )
        self._bound_port = self._server.sockets[0].getsockname()[1] if self._server.sockets else self._port


async def serve(app: web.Application, host: str, port: int, ssl_context: ssl.SSLContext | None = None,
                limits: HttpLimits | None = None) -> web.AppRunner:
    """Start serving ``app``; returns the runner to clean up on shutdown (``addresses`` has the port)."""
    limits = limits or HttpLimits()
    runner = web.AppRunner(
        app, access_log=None, handle_signals=False, shutdown_timeout=2.0,
        keepalive_timeout=limits.request_timeout, max_line_size=limits.max_line_size,
        max_field_size=limits.max_field_size, max_headers=limits.max_headers,
        logger=RequestErrorLog(limits.error_log_interval),
    )
    await runner.setup()
    site = GuardedSite(runner, host or None, port, ssl_context, limits)
    try:
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner
