"""The alikafka OpenAPI client, and the only code that speaks HTTP to the cloud (API, STS, ECS metadata).

It owns the process's one aiohttp session. Besides the signed alikafka calls it carries the two
unsigned requests credentials need, STS ``AssumeRoleWithOIDC`` (RRSA) and the ECS metadata service,
through :class:`PlainTransport`: :mod:`exporter.cloud.credentials_remote` decides what to ask and how to
read the answer, this module sends it. So every byte to the cloud leaves from here, with the same
session, error typing, secret-free messages and ``ApiStats`` accounting; those requests only skip what
belongs to the alikafka API (signing, its rate limit and concurrency limit, retries: the providers
retry by their own policy).

One aiohttp session (keep-alive) per process; every call passes one shared rate limiter and one
concurrency limit, so the account's quota is respected however many pairs are polled. Each
attempt is signed anew (fresh nonce and timestamp) and counted in :class:`~exporter.cloud.stats.ApiStats`.
Only retryable errors (throttling, 5xx, timeouts, connection errors) are retried, with full-jitter
exponential backoff that never undercuts the server's ``x-acs-retry-after``.

Error messages are built from codes and the server's message only: never from URLs or headers,
which carry the signature and, with STS, the security token.

Every answer is read whole, however the network delivers it (in many pieces, slowly, over TLS
records), by one helper (:func:`read_body`) with a running cap on the decompressed size and a
deadline, so a gzip bomb stops at the cap and a trickling body at the timeout. Redirects are never
followed: a 3xx fails the call with its status, so nothing signed (and no token) reaches another
origin. Signed requests carry only headers the signature covers (no automatic ``Content-Type``;
the official SDK sends none on these body-less calls either).

Every answer's ``Date`` header is compared with the local clock when it arrived (the midpoint of
the attempt), so a drifting clock shows in ``alikafka_exporter_clock_skew_seconds`` before the
gateway's 15-minute window refuses it; when it does (``InvalidTimeStamp.Expired``), the error says
"clock skew" and by how much, instead of looking like a key problem.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import ssl
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlencode

import aiohttp
from yarl import URL

from exporter import __version__
from exporter.cloud import signing
from exporter.cloud.credentials import CredentialProvider, Credentials, CredentialsError, iso_utc
from exporter.cloud.decoding import decode_object
from exporter.cloud.errors import (
    CLOCK_SKEW_CODES,
    ApiError,
    AuthError,
    MalformedResponseError,
    RequestError,
    ServerError,
    TransportError,
    clock_skew_message,
    error_class,
    sanitise_code,
)
from exporter.cloud.models import ConsumerProgress, ParseError, parse_consumer_progress, unwrap_root
from exporter.cloud.ratelimit import RateLimiter
from exporter.cloud.stats import ApiStats

API_VERSION = "2019-09-16"
_NO_AUTO_TYPE = frozenset({"Content-Type"})  # aiohttp adds application/octet-stream to every POST otherwise
# The longest pause an answer's retry-after may impose. Throttling answers name well under a second to a
# few seconds; the backoff cap is 20 s. A minute bounds a broken or hostile header.
MAX_RETRY_AFTER = 60.0
_BACKOFF_BASE = 0.25
_BACKOFF_CAP = 20.0

log = logging.getLogger(__name__)


class ApiOptions(Protocol):
    """The client's slice of the settings (``exporter.config.settings.ApiSettings`` satisfies it)."""

    @property
    def signature(self) -> str: ...
    @property
    def timeout(self) -> float: ...
    @property
    def max_retries(self) -> int: ...
    @property
    def max_concurrency(self) -> int: ...
    @property
    def hide_last_timestamp(self) -> bool: ...
    @property
    def max_response_size(self) -> int: ...

    def endpoint_for(self, region: str) -> str: ...


@dataclass(frozen=True, slots=True)
class ApiResponse:
    """A successful answer: the JSON body (root wrapper removed) and its RequestId."""

    body: Mapping[str, Any]
    request_id: str | None


@dataclass(frozen=True, slots=True)
class PlainRequest:
    """One unsigned request to a credentials service, described without any HTTP library's types.

    ``action`` names it in ``alikafka_exporter_api_requests_total`` (``AssumeRoleWithOIDC``,
    ``ECSMetadata``); ``form`` is sent as an ``application/x-www-form-urlencoded`` body;
    ``timeout`` bounds the whole exchange, ``connect_timeout`` and ``read_timeout`` (when set) its
    connection and each read, so an unreachable metadata service fails in about a second.
    """

    action: str
    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    form: Mapping[str, str] | None = None
    timeout: float = 10.0
    connect_timeout: float | None = None
    read_timeout: float | None = None
    max_body: int = 1024 * 1024


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
    loop before any client exists; once :class:`AlikafkaClient` opens, it attaches its session and
    its :class:`~exporter.cloud.stats.ApiStats` (:meth:`attach`), and every attempt is counted there by
    ``action`` and code (``200``, the answer's JSON ``Code``, the HTTP status, ``timeout`` or
    ``connection_error``), as the API's are. Failures to get an answer raise
    :class:`~exporter.cloud.errors.TransportError` (``timeout``, ``connection_error``) or
    :class:`~exporter.cloud.errors.MalformedResponseError` (a body over ``max_body``); their messages never
    hold the URL, which may carry a token. Redirects are not followed: a 3xx raises
    :class:`~exporter.cloud.errors.RequestError` under its status (the OIDC token is in the form body, and
    a metadata answer from elsewhere would be trusted as this instance's keys).
    """

    def __init__(self) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._stats: ApiStats | None = None

    def attach(self, session: aiohttp.ClientSession | None, stats: ApiStats | None = None) -> None:
        """Use ``session`` and count in ``stats`` from now on (None: back to one-off sessions, uncounted)."""
        self._session = session
        self._stats = stats if session is not None else None

    @property
    def attached(self) -> bool:
        """Whether requests go over a client's session now."""
        return self._session is not None and not self._session.closed

    async def send(self, request: PlainRequest) -> PlainAnswer:
        """Send one request and return the answer, whatever its status."""
        started = time.monotonic()
        code = "connection_error"
        stats = self._stats
        try:
            session = self._session
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
                stats.observe(request.action, code, time.monotonic() - started)

    @staticmethod
    async def _exchange(session: aiohttp.ClientSession, request: PlainRequest) -> PlainAnswer:
        limits = aiohttp.ClientTimeout(total=request.timeout, sock_connect=request.connect_timeout,
                                       sock_read=request.read_timeout)
        data = urlencode(dict(request.form)).encode() if request.form is not None else None
        headers = dict(request.headers)
        if data is not None:
            headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        deadline = asyncio.get_running_loop().time() + request.timeout
        try:
            async with session.request(request.method, request.url, headers=headers, data=data, timeout=limits,
                                       allow_redirects=False, skip_auto_headers=_NO_AUTO_TYPE) as resp:
                if 300 <= resp.status < 400:
                    raise redirect_refused(resp.status)
                body = await read_body(resp, request.max_body, deadline, request.timeout)
                return PlainAnswer(resp.status, resp.headers, body)
        except TimeoutError:
            raise TransportError("timeout", "no answer in time") from None
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


@runtime_checkable
class UsesPlainTransport(Protocol):
    """A credentials provider that sends through a :class:`PlainTransport` (the client attaches to it)."""

    @property
    def transport(self) -> PlainTransport:
        """The transport its requests go through."""
        ...


def lookup(body: Mapping[str, Any], name: str) -> Any:
    """Read ``Code``/``code``, ``RequestId``/``requestId`` and the like."""
    if name in body:
        return body[name]
    return body.get(name[0].lower() + name[1:])


def scalar(value: Any, limit: int | None = 300) -> str | None:
    """An envelope field (``Code``, ``RequestId``, ``Message``) as text: a string or a number, cut to
    ``limit`` (None: whole, for text that secrets are masked in before it is cut); a list, an object, a
    boolean or null is no value (a hostile answer can put anything there)."""
    if isinstance(value, str):
        return value[:limit]
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)[:limit]
    return None


def retry_after_seconds(header: str | None) -> float | None:
    """``x-acs-retry-after`` (milliseconds) in seconds: a finite number, at most :data:`MAX_RETRY_AFTER`
    (a huge or infinite value must not pause every call for good), else None."""
    if header is None:
        return None
    try:
        millis = float(header)
    except ValueError:
        return None
    return min(max(0.0, millis / 1000), MAX_RETRY_AFTER) if math.isfinite(millis) else None


class AlikafkaClient:
    """Async client for the alikafka RPC API. Use as ``async with AlikafkaClient(...) as c``."""

    def __init__(
        self,
        options: ApiOptions,
        credentials: CredentialProvider,
        limiter: RateLimiter,
        stats: ApiStats,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
        trust: ssl.SSLContext | None = None,
    ) -> None:
        """``trust`` replaces the system's certificate authorities for HTTPS endpoints (tests: a test CA)."""
        self._options = options
        self._trust = trust
        self._credentials = credentials
        self._limiter = limiter
        self._stats = stats
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._concurrency = asyncio.Semaphore(options.max_concurrency)
        self._session: aiohttp.ClientSession | None = None
        self._secrets: tuple[str, ...] = ()
        self.clock_offset: float | None = None  # local minus server, seconds, from the last Date header
        self._skew_logged: float | None = None  # the offset the last clock-skew warning gave

    async def __aenter__(self) -> AlikafkaClient:
        connector = aiohttp.TCPConnector(limit=self._options.max_concurrency, keepalive_timeout=60,
                                         ssl=self._trust if self._trust is not None else True)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self._options.timeout),
            headers={"User-Agent": f"alikafka-exporter/{__version__}"},
            auto_decompress=True,
        )
        if isinstance(self._credentials, UsesPlainTransport):  # RRSA and ECS fetch over this same session
            self._credentials.transport.attach(self._session, self._stats)
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if isinstance(self._credentials, UsesPlainTransport):
            self._credentials.transport.attach(None)
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def get_consumer_progress(
        self, region: str, instance_id: str, group: str
    ) -> tuple[ConsumerProgress, str | None]:
        """Poll one pair; returns the parsed progress and the answer's RequestId."""
        params = {"RegionId": region, "InstanceId": instance_id, "ConsumerId": group}
        if self._options.hide_last_timestamp:
            params["HideLastTimestamp"] = "true"
        response = await self.call("GetConsumerProgress", region, params)
        try:
            return parse_consumer_progress(response.body), response.request_id
        except ParseError as exc:
            raise MalformedResponseError(
                "malformed_response", str(exc), request_id=response.request_id, http_status=200
            ) from None

    async def call(self, action: str, region: str, params: Mapping[str, str]) -> ApiResponse:
        """Call ``action`` with retries; raises an :class:`~exporter.cloud.errors.ApiError` subclass."""
        attempts = 1 + self._options.max_retries
        for attempt in range(attempts):
            try:
                return await self._attempt(action, region, params)
            except ApiError as exc:
                retry_nonce = exc.code == "SignatureNonceUsed" and attempt == 0
                if attempt + 1 >= attempts or not (exc.retryable or retry_nonce):
                    raise
                delay = self._rng.uniform(0, min(_BACKOFF_CAP, _BACKOFF_BASE * 2**attempt))
                if exc.retry_after is not None:
                    delay = max(delay, exc.retry_after)
                log.debug(
                    "retrying API call",
                    extra={"action": action, "code": exc.code, "attempt": attempt + 1, "delay_s": round(delay, 3)},
                )
                await self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _attempt(self, action: str, region: str, params: Mapping[str, str]) -> ApiResponse:
        try:
            creds = await self._credentials.get()
        except CredentialsError as exc:
            raise AuthError("credentials_unavailable", str(exc)) from None
        self._secrets = tuple(
            s.reveal() for s in (creds.access_key_secret, creds.security_token) if s is not None
        )
        async with self._concurrency:
            code = "connection_error"
            started = time.monotonic()
            try:
                async with self._limiter.request() as ticket:
                    sent = self._clock()
                    url, headers = self._sign(action, region, params, creds)
                    started = time.monotonic()
                    status, body, retry_after, date = await self._send(url, headers, ticket.answered)
                self._measure_clock(date, sent)
                result = self._interpret(action, status, body, retry_after)
            except ApiError as exc:
                code = exc.code
                if exc.kind == "throttled":
                    self._limiter.throttled(exc.retry_after)
                if exc.code in CLOCK_SKEW_CODES:
                    self._report_skew(exc)
                raise
            else:
                code = "200"
                self._limiter.succeeded()
                self._skew_logged = None
                return result
            finally:
                self._stats.observe(action, code, time.monotonic() - started)

    def _sign(
        self, action: str, region: str, params: Mapping[str, str], creds: Credentials
    ) -> tuple[URL, dict[str, str]]:
        endpoint = URL(self._options.endpoint_for(region))
        path = endpoint.path or "/"
        now = self._clock()
        nonce = uuid.uuid4().hex
        secret = creds.access_key_secret.reveal()
        if self._options.signature == "v1":
            query = dict(params)
            query.update(
                Action=action,
                Version=API_VERSION,
                Format="JSON",
                AccessKeyId=creds.access_key_id,
                SignatureMethod="HMAC-SHA1",
                SignatureVersion="1.0",
                SignatureNonce=nonce,
                Timestamp=iso_utc(now),
            )
            if creds.security_token is not None:
                query["SecurityToken"] = creds.security_token.reveal()
            query["Signature"] = signing.v1_signature(secret, "POST", query)
            headers = {"Accept": "application/json"}
        else:
            query = dict(params)
            headers = {
                "host": endpoint.raw_authority,
                "x-acs-action": action,
                "x-acs-version": API_VERSION,
                "x-acs-date": iso_utc(now),
                "x-acs-signature-nonce": nonce,
                "x-acs-content-sha256": signing.EMPTY_SHA256,
            }
            if creds.security_token is not None:
                headers["x-acs-security-token"] = creds.security_token.reveal()
                headers["x-acs-accesskey-id"] = creds.access_key_id
            names = signing.v3_signed_header_names(headers)
            canonical = signing.v3_canonical_request("POST", path, query, headers, names, signing.EMPTY_SHA256)
            headers["Authorization"] = signing.v3_authorization(
                creds.access_key_id, names, signing.v3_signature(secret, canonical)
            )
            headers["Accept"] = "application/json"
        url = endpoint.with_query(None).with_fragment(None)
        return URL(f"{url}?{signing.canonical_query(query)}", encoded=True), headers

    def _measure_clock(self, date: str | None, sent: float) -> None:
        if not date:
            return
        try:
            server = parsedate_to_datetime(date).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            return
        # Date has whole seconds: the server's time was somewhere in [server, server + 1).
        offset = (sent + self._clock()) / 2 - (server + 0.5)
        self.clock_offset = offset
        self._stats.observe_clock(round(abs(offset), 1))

    def _report_skew(self, exc: ApiError) -> None:
        original = exc.message
        exc.message = clock_skew_message(self.clock_offset)
        offset = self.clock_offset
        if self._skew_logged is None or (offset is not None and abs(offset - self._skew_logged) > 60):
            self._skew_logged = offset if offset is not None else 0.0
            log.warning(exc.message, extra={"code": exc.code, "request_id": exc.request_id or "",
                                            "offset_s": None if offset is None else round(offset, 1)})
        exc.message += f" ({original})" if original else ""
        exc.args = (f"{exc.code}: {exc.message}",)

    async def _send(
        self, url: URL, headers: Mapping[str, str], answered: Callable[[], None]
    ) -> tuple[int, bytes, str | None, str | None]:
        assert self._session is not None, "use AlikafkaClient as an async context manager"
        deadline = asyncio.get_running_loop().time() + self._options.timeout
        try:
            # No body and no Content-Type: an unsigned header would be refused by a gateway enforcing the
            # V3 rule that host, content-type and x-acs-* headers that are sent are signed. The official
            # SDK (alibabacloud_tea_openapi client.py, do_request) sets content-type only with a body.
            async with self._session.post(url, headers=headers, allow_redirects=False,
                                          skip_auto_headers=_NO_AUTO_TYPE) as resp:
                answered()  # the server has counted this request by now: the limiter's window may move
                if 300 <= resp.status < 400:
                    raise redirect_refused(resp.status)
                body = await read_body(resp, self._options.max_response_size, deadline, self._options.timeout,
                                       "api.max_response_size")
                return resp.status, body, resp.headers.get("x-acs-retry-after"), resp.headers.get("Date")
        except TimeoutError:
            raise TransportError("timeout", f"no answer within {self._options.timeout:g}s") from None
        except aiohttp.ClientError as exc:
            # The exception's text can include the URL (and so the signature); use its type only.
            raise TransportError("connection_error", type(exc).__name__) from None

    def _redact(self, text: str) -> str:
        # SignatureDoesNotMatch echoes the server's string to sign, which holds the STS token.
        text = text.split("server string to sign is", 1)[0].strip()
        for secret in self._secrets:
            if secret:
                text = text.replace(secret, "***")
        return text[:300]

    def _interpret(self, action: str, status: int, raw: bytes, retry_after: str | None) -> ApiResponse:
        try:
            parsed = decode_object(raw)
        except ParseError as exc:
            if status >= 500:
                raise ServerError(str(status), f"HTTP {status} with a non-JSON body", http_status=status) from None
            if status != 200:
                cls = error_class(str(status), status)
                raise cls(str(status), f"HTTP {status} with a non-JSON body", http_status=status) from None
            raise MalformedResponseError("malformed_response", f"HTTP 200 with a body that is not a JSON object: "
                                         f"{exc}", http_status=status) from None
        body = unwrap_root(parsed, action)
        request_id = scalar(lookup(body, "RequestId"), 100)
        code_value = lookup(body, "Code")
        success = lookup(body, "Success")
        if status == 200 and success is None and code_value is None:
            raise MalformedResponseError("malformed_response", "HTTP 200 without Success or Code",
                                         request_id=request_id, http_status=status)
        if (
            status == 200
            and success in (None, True, "true", "True")
            and (code_value is None or scalar(code_value) == "200")
        ):
            return ApiResponse(body, request_id)
        code_text = scalar(code_value)
        code = sanitise_code(code_text) if code_text not in (None, "", "200") else str(status)
        message = self._redact(scalar(lookup(body, "Message"), None) or "")
        cls = error_class(code, status)
        delay = retry_after_seconds(retry_after)
        raise cls(code, message, request_id=request_id, http_status=status, retry_after=delay)
