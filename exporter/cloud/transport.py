"""HTTP for the cloud: the one place a request is sent and its answer read.

:func:`read_body` reads every answer whole under a cap on the decompressed size and a deadline, so a gzip
bomb stops at the cap and a trickling body at the timeout; redirects are never followed, so nothing signed
and no token reaches another origin. One :class:`PlainTransport` carries the API client's signed calls and
the credential providers' requests (STS, the ECS metadata service), over the client's session while open.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlencode

import aiohttp
from yarl import URL

from exporter import __version__
from exporter.cloud.decoding import ParseError, decode_object, lookup, scalar
from exporter.cloud.errors import ApiError, MalformedResponseError, RequestError, TransportError, sanitise_code
from exporter.cloud.stats import ApiStats
from exporter.config.settings import DEFAULT_ACCOUNT

# aiohttp adds ``Content-Type: application/octet-stream`` to every POST otherwise.
NO_AUTO_TYPE = frozenset({"Content-Type"})


@dataclass(frozen=True, slots=True)
class PlainRequest:
    """One request, described without any HTTP library's types.

    ``action`` names it in ``alikafka_exporter_api_requests_total`` (``AssumeRoleWithOIDC``,
    ``ECSMetadata``, an API action); ``url`` is sent as given (a signed query must not be re-encoded);
    ``form`` is sent as an ``application/x-www-form-urlencoded`` body; ``timeout`` bounds the whole
    exchange, ``connect_timeout`` and ``read_timeout`` (when set) its connection and each read, so an
    unreachable metadata service fails in about a second; ``max_body`` caps the answer (``limit_name``:
    the setting that sets it, named when an answer is over it).
    """

    action: str
    method: str
    url: str | URL
    headers: Mapping[str, str] = field(default_factory=dict)
    form: Mapping[str, str] | None = None
    timeout: float = 10.0
    connect_timeout: float | None = None
    read_timeout: float | None = None
    max_body: int = 1024 * 1024
    limit_name: str = ""


@dataclass(frozen=True, slots=True)
class PlainAnswer:
    """Whatever the service answered: status, headers (case-insensitive names) and body."""

    status: int
    headers: Mapping[str, str]
    body: bytes


def size_text(size: int) -> str:
    """``4 MiB``, ``512 KiB`` or ``1000 bytes``: a cap as people write it."""
    for unit, factor in (("MiB", 1024 * 1024), ("KiB", 1024)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size} bytes"


async def read_body(
    resp: aiohttp.ClientResponse, limit: int, deadline: float, seconds: float, limit_name: str = ""
) -> bytes:
    """The whole body of ``resp``, read until its end, at most ``limit`` bytes, by loop time ``deadline``
    (the end of the exchange's timeout of ``seconds``).

    ``resp.content.read(n)`` returns what has arrived so far, which over a WAN or TLS is often the first
    piece of an answer; this reads until the end of the body. The cap counts bytes as they come out of
    the decompressor (aiohttp decompresses in bounded steps behind flow control), so a small gzip body
    that would expand to hundreds of MB is dropped at ``limit``. Past the cap:
    :class:`~exporter.cloud.errors.MalformedResponseError`; past the deadline:
    :class:`~exporter.cloud.errors.TransportError` ``timeout``. Messages name the cap (and ``limit_name``, the
    setting) or the time, never the URL.
    """
    where = f" ({limit_name})" if limit_name else ""
    message = f"answer larger than the {size_text(limit)} cap{where}"
    if resp.content_length is not None and resp.content_length > limit and not resp.headers.get("Content-Encoding"):
        raise MalformedResponseError("malformed_response", message, http_status=resp.status)
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout_at(deadline):
            async for chunk in resp.content.iter_any():
                size += len(chunk)
                if size > limit:
                    # Drop what was read now: the exception's traceback keeps this frame (and so the list)
                    # alive until it is collected, and a bomb's worth of chunks must not linger with it.
                    chunks.clear()
                    raise MalformedResponseError("malformed_response", message, http_status=resp.status)
                chunks.append(chunk)
    except TimeoutError:
        chunks.clear()
        raise TransportError("timeout", f"answer not complete within the {seconds:g}s timeout "
                                        f"({size} bytes read)") from None
    return b"".join(chunks)


def redirect_refused(status: int) -> RequestError:
    """The error for a 3xx answer: never followed, so nothing signed and no token reaches the ``Location``."""
    return RequestError(str(status), f"HTTP {status} redirect to another location refused", http_status=status)


class PlainTransport:
    """Sends :class:`PlainRequest` s: over the client's session while one is attached, else a one-off one.

    The one-off session serves the start-up credentials check, which runs in its own short event
    loop before any client exists; once :class:`~exporter.cloud.client.AlikafkaClient` opens, it
    attaches its session and its :class:`~exporter.cloud.stats.ApiStats` to the transport it was
    given (:meth:`attach`), and every attempt is counted there by
    ``action`` and code (``200``, the answer's JSON ``Code``, the HTTP status, ``timeout`` or
    ``connection_error``), as the API's are. Failures to get an answer raise
    :class:`~exporter.cloud.errors.TransportError` (``timeout``, ``connection_error``) or
    :class:`~exporter.cloud.errors.MalformedResponseError` (a body over ``max_body``); their messages never
    hold the URL, which may carry a token. Redirects are not followed: a 3xx raises
    :class:`~exporter.cloud.errors.RequestError` under its status (the OIDC token is in the form body, and
    a metadata answer from elsewhere would be trusted as this instance's keys).

    :meth:`for_account` gives each account's credential providers a view of the same transport (same session,
    same counters) that counts their requests under that account's name.
    """

    def __init__(self, account: str = DEFAULT_ACCOUNT, link: PlainTransport | None = None) -> None:
        self.account = account
        self._link: PlainTransport = link._link if link is not None else self  # the one holding the session
        self._session: aiohttp.ClientSession | None = None
        self._stats: ApiStats | None = None

    def for_account(self, account: str) -> PlainTransport:
        """This transport, counting requests under ``account`` (the session and counters stay shared)."""
        return self if account == self.account else PlainTransport(account, self)

    def attach(self, session: aiohttp.ClientSession | None, stats: ApiStats | None = None) -> None:
        """Use ``session`` and count in ``stats`` from now on (None: back to one-off sessions, uncounted)."""
        self._link._session = session
        self._link._stats = stats if session is not None else None

    @property
    def attached(self) -> bool:
        """Whether requests go over a client's session now."""
        session = self._link._session
        return session is not None and not session.closed

    async def exchange(self, request: PlainRequest, sent: Callable[[], None] | None = None) -> PlainAnswer:
        """Send one request over the attached session, uncounted (the API client counts its calls once it
        has read the answer's code), and return the answer whatever its status; ``sent`` is called once the
        server has answered with a status line (it has counted the request by then)."""
        session = self._link._session
        if session is None or not self.attached:
            raise RuntimeError("no session attached: use AlikafkaClient as an async context manager")
        return await self._exchange(session, request, sent)

    async def send(self, request: PlainRequest) -> PlainAnswer:
        """Send one request, counted in the attached stats, and return the answer, whatever its status."""
        started = time.monotonic()
        code = "connection_error"
        stats = self._link._stats
        try:
            session = self._link._session
            if session is not None and self.attached:
                answer = await self._exchange(session, request)
            else:
                async with aiohttp.ClientSession(headers={"User-Agent": f"alikafka-exporter/{__version__}"}) as own:
                    answer = await self._exchange(own, request)
        except ApiError as exc:
            code = exc.code
            raise
        else:
            code = _answer_code(answer)
            return answer
        finally:
            if stats is not None:
                stats.observe(request.action, code, time.monotonic() - started, self.account)

    @staticmethod
    async def _exchange(session: aiohttp.ClientSession, request: PlainRequest,
                        sent: Callable[[], None] | None = None) -> PlainAnswer:
        limits = aiohttp.ClientTimeout(total=request.timeout, sock_connect=request.connect_timeout,
                                       sock_read=request.read_timeout)
        data = urlencode(dict(request.form)).encode() if request.form is not None else None
        headers = dict(request.headers)
        if data is not None:
            headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        deadline = asyncio.get_running_loop().time() + request.timeout
        try:
            async with session.request(request.method, request.url, headers=headers, data=data, timeout=limits,
                                       allow_redirects=False, skip_auto_headers=NO_AUTO_TYPE) as resp:
                if sent is not None:
                    sent()
                if 300 <= resp.status < 400:
                    raise redirect_refused(resp.status)
                body = await read_body(resp, request.max_body, deadline, request.timeout, request.limit_name)
                return PlainAnswer(resp.status, resp.headers, body)
        except TimeoutError:
            raise TransportError("timeout", f"no answer within {request.timeout:g}s") from None
        except aiohttp.ClientError as exc:
            # The exception's text can include the URL (with a token in its query); use its type only.
            raise TransportError("connection_error", type(exc).__name__) from None


def _answer_code(answer: PlainAnswer) -> str:
    """The ``code`` label of an answer: 200, else the Alibaba-style JSON ``Code``, else the HTTP status."""
    if answer.status == 200:
        return "200"
    try:
        code = scalar(lookup(decode_object(answer.body), "Code"))
    except ParseError:
        code = None
    return sanitise_code(code) if code else str(answer.status)
