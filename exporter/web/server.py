"""The listening socket and its limits: what a slow, hostile or broken client can cost the exporter.

aiohttp parses requests; this module bounds the header sizes, the time to send a request (slowloris), the
TLS handshake and the number of open connections, counted from accept (the handshake runs here, so a
half-open TLS connection holds a counted slot). aiohttp's per-request error tracebacks become one counting
warning per interval, so junk traffic cannot flood the log.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import hdrs, web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

log = logging.getLogger("exporter.http")

# Sent instead of aiohttp's "Python/3.x aiohttp/3.x": the product, never the versions of what runs it.
SERVER_HEADER = "alikafka-exporter"
# Headers on every response, before the web config's own (which may override them).
DEFAULT_HEADERS = {hdrs.SERVER: SERVER_HEADER, "X-Content-Type-Options": "nosniff"}


@dataclass(frozen=True, slots=True)
class HttpLimits:
    """Bounds on what one client can hold; the defaults suit Prometheus scrapers and browsers."""

    request_timeout: float = 15.0  # from connect (or the previous response) to a complete request head
    handshake_timeout: float = 10.0  # TLS handshake
    max_line_size: int = 8190  # request line, bytes
    max_field_size: int = 8190  # one header, bytes
    max_headers: int = 64
    max_connections: int = 512  # open connections, TLS handshakes included; beyond, new ones are closed
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


_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nServer: " + SERVER_HEADER.encode()
         + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")


class _Busy(asyncio.Protocol):
    """Answers 503 (plain HTTP) or nothing (TLS: no handshake is spent on it) and closes: the cap is reached."""

    def __init__(self, answer: bytes) -> None:
        self._answer = answer

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.WriteTransport)
        if self._answer:
            transport.write(self._answer)
        transport.close()


class _Handler(RequestHandler):
    """aiohttp's connection handler, whose own error answers (a malformed request's 400) carry our headers.

    Those answers are built below the application, where ``on_response_prepare`` does not run.
    """

    __slots__ = ()

    def handle_error(self, request: BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        """aiohttp's error response, with the default headers instead of its version banner."""
        response = super().handle_error(request, status, exc, message)
        response.headers.update(DEFAULT_HEADERS)
        return response


class _Handshake(asyncio.Protocol):
    """An accepted TLS connection until its handshake is over: holds what arrives meanwhile.

    Once the handshake finishes, the client's first bytes (often in the same segment as its last
    handshake message) may already have been decrypted; they are kept here and handed to the
    HTTP handler with the connection.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.made: asyncio.Future[asyncio.Transport] = loop.create_future()
        self.received: list[bytes] = []
        self.eof = False
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.pause_reading()  # nothing is read before loop.start_tls takes the connection over
        if self.made.cancelled():  # the wait for it timed out, or the site stopped
            transport.abort()
        elif not self.made.done():
            self.made.set_result(transport)

    def data_received(self, data: bytes) -> None:
        self.received.append(data)

    def eof_received(self) -> bool:
        self.eof = True
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if not self.made.done():
            self.made.set_exception(ConnectionResetError("closed before the handshake"))


class GuardedSite(web.TCPSite):
    """A TCP site with a TLS handshake timeout and a cap on open connections, handshakes included."""

    __slots__ = ("_handshakes", "_limits")

    def __init__(self, runner: web.BaseRunner, host: str | None, port: int, ssl_context: ssl.SSLContext | None,
                 limits: HttpLimits) -> None:
        super().__init__(runner, host, port, ssl_context=ssl_context, reuse_address=True)
        self._limits = limits
        self._handshakes: set[asyncio.Task[None]] = set()  # TLS connections accepted, handshake not over

    @property
    def open_connections(self) -> int:
        """Connections holding a slot: handshakes in progress and connections aiohttp serves."""
        server = self._runner.server
        return len(self._handshakes) + (len(server.connections) if server is not None else 0)

    def _handler(self) -> _Handler:
        server = self._runner.server
        assert server is not None
        # As web.Server() builds one, with the runner's handler settings (limits, logger). aiohttp has no
        # public way to choose the handler class (server() always builds a plain RequestHandler, whose
        # __slots__ rule out patching one instance), and its settings are kept only in server._kwargs,
        # filled by AppRunner and Application._make_handler: read there rather than repeated here.
        return _Handler(server, loop=asyncio.get_running_loop(), **server._kwargs)

    async def start(self) -> None:
        """Listen; each accepted connection gets a handler (after the TLS handshake), or is refused over the cap."""
        await super(web.TCPSite, self).start()  # BaseSite.start registers the site; TCPSite.start would listen uncapped
        tls = self._ssl_context

        def protocol() -> asyncio.Protocol:
            if self.open_connections >= self._limits.max_connections:
                return _Busy(b"" if tls is not None else _BUSY)
            if tls is None:
                return self._handler()
            loop = asyncio.get_running_loop()
            gate = _Handshake(loop)
            task = loop.create_task(self._handshake(gate, tls))
            self._handshakes.add(task)
            task.add_done_callback(self._handshakes.discard)
            return gate

        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            protocol, self._host, self._port, backlog=self._backlog, reuse_address=self._reuse_address)
        self._bound_port = self._server.sockets[0].getsockname()[1] if self._server.sockets else self._port

    async def _handshake(self, gate: _Handshake, context: ssl.SSLContext) -> None:
        """TLS on an accepted connection, within handshake_timeout; then hand it to aiohttp."""
        timeout = self._limits.handshake_timeout
        try:
            transport = await asyncio.wait_for(gate.made, timeout)
        except OSError:  # gone before asyncio finished setting it up, or never set up
            return
        try:
            secured = await asyncio.get_running_loop().start_tls(
                transport, gate, context, server_side=True, ssl_handshake_timeout=timeout)
        except (OSError, RuntimeError):  # a failed or timed-out handshake, a client gone (SSLError is an OSError)
            transport.abort()  # start_tls has closed it on most failures; make sure
            return
        if secured is None or gate.lost or secured.is_closing():
            return
        handler = self._handler()
        secured.set_protocol(handler)
        handler.connection_made(secured)
        for data in gate.received:
            handler.data_received(data)
        if gate.eof:
            handler.eof_received()

    async def stop(self) -> None:
        """Stop listening; handshakes still in progress are dropped."""
        for task in list(self._handshakes):
            task.cancel()
        await asyncio.gather(*self._handshakes, return_exceptions=True)
        await super().stop()


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
