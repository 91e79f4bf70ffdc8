"""The alikafka OpenAPI client: the only code that sends signed calls to the cloud.

Every call passes its account's rate limiter and concurrency limit (accounts share one HTTP session but
each has its own credentials and budget, as the cloud has), is signed anew on each attempt, and retries
only what may succeed later (throttling, 5xx, timeouts, connection errors) with full-jitter backoff that
never undercuts ``x-acs-retry-after``. Error messages are built from codes and the server's message, never
from URLs or headers (they carry the signature and the STS token). Each answer's ``Date`` is compared with
the local clock, so a drifting clock shows before the gateway's 15-minute window bites.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
import re
import ssl
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from types import TracebackType
from typing import Any, Protocol, TypeVar, runtime_checkable

import aiohttp
from yarl import URL

from exporter import __version__
from exporter.cloud import signing
from exporter.cloud.backoff import full_jitter
from exporter.cloud.credentials import CredentialProvider, Credentials, CredentialsError, iso_utc
from exporter.cloud.decoding import decode_object, lookup, scalar
from exporter.cloud.errors import (
    CLOCK_SKEW_CODES,
    ApiError,
    AuthError,
    MalformedResponseError,
    ServerError,
    clock_skew_message,
    error_class,
    sanitise_code,
)
from exporter.cloud.models import (
    ConsumerProgress,
    ParseError,
    TopicStatus,
    parse_consumer_progress,
    parse_topic_status,
    unwrap_root,
)
from exporter.cloud.ratelimit import RateLimiter
from exporter.cloud.stats import ApiStats
from exporter.cloud.transport import PlainRequest, PlainTransport
from exporter.config.settings import DEFAULT_ACCOUNT, ApiSettings

API_VERSION = "2019-09-16"
# The longest pause an answer's retry-after may impose. Throttling answers name well under a second to a
# few seconds; the backoff cap is 20 s. A minute bounds a broken or hostile header.
MAX_RETRY_AFTER = 60.0
_BACKOFF_BASE = 0.25
_BACKOFF_CAP = 20.0

_STRING_TO_SIGN = re.compile(r"(?:server )?string to sign", re.IGNORECASE)
log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ApiResponse:
    """A successful answer: the JSON body (root wrapper removed) and its RequestId."""

    body: Mapping[str, Any]
    request_id: str | None


class ApiCaller(Protocol):
    """What callers of the API need of the client (:class:`AlikafkaClient` satisfies it)."""

    async def call(self, action: str, region: str, params: Mapping[str, str]) -> ApiResponse: ...


@runtime_checkable
class AccountRouter(Protocol):
    """A caller with a lane per account (:class:`AlikafkaClient`)."""

    def account(self, name: str) -> AccountClient: ...


def caller_for(client: ApiCaller, account: str) -> ApiCaller:
    """The caller for ``account``: the client's lane for it when the client has lanes, else the client itself."""
    return client.account(account) if isinstance(client, AccountRouter) else client


def parsed(response: ApiResponse, parse: Callable[[Mapping[str, Any]], T]) -> T:
    """``parse`` applied to an answer's body; a body of the wrong shape is a :class:`MalformedResponseError`
    that carries the answer's RequestId (it came with HTTP 200)."""
    try:
        return parse(response.body)
    except ParseError as exc:
        raise MalformedResponseError(
            "malformed_response", str(exc), request_id=response.request_id, http_status=200
        ) from None


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


@dataclass(frozen=True, slots=True)
class _Lane:
    """One account's identity and budget inside the shared client."""

    name: str
    credentials: CredentialProvider
    limiter: RateLimiter
    concurrency: asyncio.Semaphore
    max_concurrency: int


class AccountClient:
    """The client bound to one account: what the poller, discovery and the catalog call for that account."""

    def __init__(self, client: AlikafkaClient, account: str) -> None:
        self._client = client
        self.account = account

    async def call(self, action: str, region: str, params: Mapping[str, str]) -> ApiResponse:
        """:meth:`AlikafkaClient.call` with this account's credentials and budget."""
        return await self._client.call(action, region, params, account=self.account)

    async def get_consumer_progress(
        self, region: str, instance_id: str, group: str
    ) -> tuple[ConsumerProgress, str | None]:
        """:meth:`AlikafkaClient.get_consumer_progress` with this account's credentials and budget."""
        return await self._client.get_consumer_progress(region, instance_id, group, account=self.account)

    @property
    def pace(self) -> RateLimiter:
        """How fast this account's calls may go: its lane's rate limiter, read by its poller's schedule (never
        taken a turn from but by the client)."""
        return self._client.limiter(self.account)


class AlikafkaClient:
    """Async client for the alikafka RPC API. Use as ``async with AlikafkaClient(...) as c``.

    ``credentials`` and ``limiter`` are those of ``account`` (``default``: the top-level credentials); more
    accounts join with :meth:`add_account` before the client opens.
    """

    def __init__(
        self,
        options: ApiSettings,
        credentials: CredentialProvider,
        limiter: RateLimiter,
        stats: ApiStats,
        *,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
        trust: ssl.SSLContext | None = None,
        transport: PlainTransport | None = None,
        account: str = DEFAULT_ACCOUNT,
        max_concurrency: int | None = None,
    ) -> None:
        """``trust`` replaces the system's certificate authorities for HTTPS endpoints (tests: a test CA).

        ``transport`` is the one the credential providers were given: the client attaches its session and
        ``stats`` to it while open, so their requests share both (None: a transport of its own, unused).
        """
        self._transport = transport if transport is not None else PlainTransport()
        self._options = options
        self._trust = trust
        concurrency = max_concurrency or options.max_concurrency  # the account's, else api.max_concurrency
        self._lanes = {account: _Lane(account, credentials, limiter, asyncio.Semaphore(concurrency), concurrency)}
        self._main = account
        self._stats = stats
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._session: aiohttp.ClientSession | None = None
        self.clock_offset: float | None = None  # local minus server, seconds, from the last Date header
        self._skew_logged: float | None = None  # the offset the last clock-skew warning gave

    def add_account(self, name: str, credentials: CredentialProvider, limiter: RateLimiter,
                    max_concurrency: int) -> None:
        """Another account: its own credentials, rate limiter and concurrency limit (before the client opens)."""
        if self._session is not None:
            raise RuntimeError("accounts are added before the client opens")
        if name in self._lanes:
            raise ValueError(f"account {name!r} is already known")
        self._lanes[name] = _Lane(name, credentials, limiter, asyncio.Semaphore(max_concurrency), max_concurrency)

    @property
    def accounts(self) -> tuple[str, ...]:
        """The accounts this client calls for, the first (the constructor's) first."""
        return tuple(self._lanes)

    def account(self, name: str) -> AccountClient:
        """The caller bound to account ``name``."""
        return AccountClient(self, name)

    def limiter(self, account: str | None = None) -> RateLimiter:
        """The rate limiter of ``account`` (None: the constructor's)."""
        return self._lanes[account or self._main].limiter

    @property
    def pace(self) -> RateLimiter:
        """How fast the constructor's account's calls may go (the scheduler reads it, never takes a turn itself).
        Each account has its own budget and its own schedule: ``account(name).pace`` is that account's."""
        return self._lanes[self._main].limiter

    async def __aenter__(self) -> AlikafkaClient:
        total = sum(lane.max_concurrency for lane in self._lanes.values())
        connector = aiohttp.TCPConnector(limit=total, keepalive_timeout=60,
                                         ssl=self._trust if self._trust is not None else True)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self._options.timeout),
            headers={"User-Agent": f"alikafka-exporter/{__version__}"},
            auto_decompress=True,
        )
        self._transport.attach(self._session, self._stats)  # RRSA and ECS fetch over this same session
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._transport.attach(None)
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def get_consumer_progress(
        self, region: str, instance_id: str, group: str, *, account: str | None = None
    ) -> tuple[ConsumerProgress, str | None]:
        """Poll one pair; returns the parsed progress and the answer's RequestId."""
        params = {"RegionId": region, "InstanceId": instance_id, "ConsumerId": group}
        if self._options.hide_last_timestamp:
            params["HideLastTimestamp"] = "true"
        response = await self.call("GetConsumerProgress", region, params, account=account)
        return parsed(response, parse_consumer_progress), response.request_id

    async def get_topic_status(self, region: str, instance_id: str, topic: str, *,
                               account: str | None = None) -> tuple[TopicStatus, str | None]:
        """One topic's per-partition earliest and latest offsets (GetTopicStatus, RAM action
        ``alikafka:ListTopic``); returns the parsed status and the answer's RequestId."""
        params = {"RegionId": region, "InstanceId": instance_id, "Topic": topic}
        response = await self.call("GetTopicStatus", region, params, account=account)
        return parsed(response, lambda body: parse_topic_status(body, topic)), response.request_id

    async def call(self, action: str, region: str, params: Mapping[str, str], *,
                   account: str | None = None) -> ApiResponse:
        """Call ``action`` for ``account`` (None: the constructor's) with retries; raises an
        :class:`~exporter.cloud.errors.ApiError` subclass."""
        lane = self._lanes.get(account or self._main)
        if lane is None:
            raise AuthError("unknown_account", f"account {account!r} is not configured (accounts apply at start: "
                                               "restart after adding one)")
        attempts = 1 + self._options.max_retries
        for attempt in range(attempts):
            try:
                return await self._attempt(action, region, params, lane)
            except ApiError as exc:
                retry_nonce = exc.code == "SignatureNonceUsed" and attempt == 0
                if attempt + 1 >= attempts or not (exc.retryable or retry_nonce):
                    raise
                delay = full_jitter(self._rng, attempt, _BACKOFF_BASE, _BACKOFF_CAP, exc.retry_after)
                log.debug(
                    "retrying API call",
                    extra={"action": action, "code": exc.code, "attempt": attempt + 1, "delay_s": round(delay, 3)},
                )
                await self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _attempt(self, action: str, region: str, params: Mapping[str, str], lane: _Lane) -> ApiResponse:
        try:
            creds = await lane.credentials.get()
        except CredentialsError as exc:
            raise AuthError("credentials_unavailable", str(exc)) from None
        secrets = tuple(s.reveal() for s in (creds.access_key_secret, creds.security_token) if s is not None)
        async with lane.concurrency:
            code = "connection_error"
            started = time.monotonic()
            try:
                async with lane.limiter.request() as ticket:
                    sent = self._clock()
                    url, headers = self._sign(action, region, params, creds)
                    started = time.monotonic()
                    status, body, retry_after, date = await self._send(action, url, headers, ticket.answered)
                self._measure_clock(date, sent)
                result = self._interpret(action, status, body, retry_after, secrets)
            except ApiError as exc:
                code = exc.code
                if exc.kind == "throttled":
                    lane.limiter.throttled(exc.retry_after)
                if exc.code in CLOCK_SKEW_CODES:
                    self._report_skew(exc)
                raise
            else:
                code = "200"
                lane.limiter.succeeded()
                self._skew_logged = None
                return result
            finally:
                self._stats.observe(action, code, time.monotonic() - started, lane.name)

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
        self, action: str, url: URL, headers: Mapping[str, str], answered: Callable[[], None]
    ) -> tuple[int, bytes, str | None, str | None]:
        # No body and no Content-Type: an unsigned header would be refused by a gateway enforcing the V3
        # rule that host, content-type and x-acs-* headers that are sent are signed. The official SDK
        # (alibabacloud_tea_openapi client.py, do_request) sets content-type only with a body.
        answer = await self._transport.exchange(PlainRequest(
            action, "POST", url, headers, timeout=self._options.timeout, max_body=self._options.max_response_size,
            limit_name="api.max_response_size"), answered)
        return answer.status, answer.body, answer.headers.get("x-acs-retry-after"), answer.headers.get("Date")

    @staticmethod
    def _redact(text: str, secrets: tuple[str, ...]) -> str:
        # SignatureDoesNotMatch echoes the server's string to sign, which holds the STS token (cut however
        # it is worded or cased, so no caller has to cut it again).
        text = _STRING_TO_SIGN.split(text, maxsplit=1)[0].rstrip(" :.")
        for secret in secrets:
            if secret:
                text = text.replace(secret, "***")
        return text[:300]

    def _interpret(self, action: str, status: int, raw: bytes, retry_after: str | None,
                   secrets: tuple[str, ...] = ()) -> ApiResponse:
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
        message = self._redact(scalar(lookup(body, "Message"), None) or "", secrets)
        cls = error_class(code, status)
        delay = retry_after_seconds(retry_after)
        raise cls(code, message, request_id=request_id, http_status=status, retry_after=delay)
