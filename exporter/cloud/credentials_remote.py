"""Credentials fetched over HTTP: RRSA (STS ``AssumeRoleWithOIDC``), the ECS RAM role (metadata service) and
an account's ``role_arn`` (STS ``AssumeRole``, signed with the credentials of that account's chain).

The first two are the last sources of the default chain; all three are short-lived STS credentials, refreshed
ahead of expiry by the one :class:`~exporter.cloud.credentials.RefreshingProvider`. This module holds the protocol
(what to ask, how to read the answers, what to retry, when to refresh), not the HTTP: requests go through the
:class:`~exporter.cloud.transport.PlainTransport` the API client shares, unsigned, outside the alikafka quota
and with their own timeouts (one second for the metadata service, so a host outside ECS does not hang at
start). No error carries a secret: the OIDC token is masked and answer bodies are never quoted.
"""

from __future__ import annotations

import asyncio
import calendar
import logging
import random
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from exporter.cloud import signing
from exporter.cloud.backoff import full_jitter
from exporter.cloud.credentials import (
    CredentialProvider,
    Credentials,
    CredentialsError,
    RefreshingProvider,
    Secret,
    iso_utc,
)
from exporter.cloud.decoding import ParseError, decode_object, kind, lookup, scalar
from exporter.cloud.errors import ApiError
from exporter.cloud.transport import PlainAnswer, PlainRequest, PlainTransport
from exporter.config.settings import METADATA_ENDPOINT, ROLE_SESSION_NAME, STS_REGION, CredentialsSettings, sts_url

ENV_ROLE_ARN = "ALIBABA_CLOUD_ROLE_ARN"
ENV_OIDC_PROVIDER_ARN = "ALIBABA_CLOUD_OIDC_PROVIDER_ARN"
ENV_OIDC_TOKEN_FILE = "ALIBABA_CLOUD_OIDC_TOKEN_FILE"  # noqa: S105 - a variable name, not a secret
ENV_ROLE_SESSION_NAME = "ALIBABA_CLOUD_ROLE_SESSION_NAME"
ENV_STS_ENDPOINT = "ALIBABA_CLOUD_STS_ENDPOINT"
ENV_STS_REGION = "ALIBABA_CLOUD_STS_REGION"
ENV_VPC_ENDPOINT = "ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED"
ENV_ECS_DISABLED = "ALIBABA_CLOUD_ECS_METADATA_DISABLED"
ENV_ECS_ROLE = "ALIBABA_CLOUD_ECS_METADATA"
ENV_IMDSV1_DISABLED = "ALIBABA_CLOUD_IMDSV1_DISABLED"

STS_VERSION = "2015-04-01"
DEFAULT_SESSION_NAME = "alikafka-exporter"
METADATA_TOKEN_TTL = 21600  # seconds, the documented maximum
TOKEN_TTL_HEADER = "X-aliyun-ecs-metadata-token-ttl-seconds"  # noqa: S105 - a header name
TOKEN_HEADER = "X-aliyun-ecs-metadata-token"  # noqa: S105 - a header name
_CREDENTIALS_PATH = "/latest/meta-data/ram/security-credentials/"
_SESSION_NAME = re.compile(ROLE_SESSION_NAME)
# A RAM role name: 1-64 letters, digits, periods, hyphens and underscores (RAM CreateRole, RoleName:
# https://help.aliyun.com/zh/ram/developer-reference/api-ram-2015-05-01-createrole).
_ROLE_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
# What may go into an HTTP header (key id, secret, token, IMDS token): visible ASCII, bounded. An STS
# token is about a kilobyte; a value with a line break or a megabyte is not a credential.
_HEADER_SAFE = re.compile(r"[\x21-\x7e]{1,8192}")
_RETRYABLE_CODES = ("Throttling", "ServiceUnavailable", "InternalError")
# A refusal that quotes the server's string to sign (SignatureDoesNotMatch) quotes the caller's STS token in it.
_STRING_TO_SIGN = re.compile(r"(?:server )?string to sign", re.IGNORECASE)
# The credentials requests' retry waits: 0.5 s doubling, at most 5 s (a refresh has the margin to spare).
_BACKOFF_BASE = 0.5
_BACKOFF_CAP = 5.0

log = logging.getLogger(__name__)


class RemoteCredentialsError(CredentialsError):
    """A failed credentials request; ``transient`` ones (network, 5xx, throttling) are worth retrying."""

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


async def _send(transport: PlainTransport, request: PlainRequest) -> PlainAnswer:
    """Send through the client's transport; failing to get an answer is a transient credentials error."""
    try:
        return await transport.send(request)
    except ApiError as exc:
        what = "no answer in time" if exc.code == "timeout" else (
            f"connection failed ({exc.message})" if exc.code == "connection_error" else exc.message)
        raise RemoteCredentialsError(what, transient=True) from None


def parse_expiration(text: Any) -> float:
    """Epoch seconds from the ISO 8601 UTC ``Expiration`` of an STS answer."""
    if isinstance(text, str):
        for fmt in ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S.%fZ"):
            try:
                return float(calendar.timegm(time.strptime(text.strip(), fmt)))
            except ValueError:
                continue
    raise ValueError(f"Expiration is not an ISO 8601 UTC time: {str(text)[:40]!r}")


def _credentials_from(fields: Mapping[str, Any], what: str) -> Credentials:
    """Credentials from an answer's fields; every one must be a string fit for an HTTP header (never quoted)."""
    names = ("AccessKeyId", "AccessKeySecret", "SecurityToken", "Expiration")
    missing = [k for k in names if not isinstance(fields.get(k), str) or not fields[k]]
    if missing:
        raise RemoteCredentialsError(f"{what} answer lacks {', '.join(missing)}")
    unusable = [k for k in names[:3] if not _HEADER_SAFE.fullmatch(fields[k])]
    if unusable:
        raise RemoteCredentialsError(f"{what} answer: {', '.join(unusable)} is not a usable credential "
                                     "(characters outside visible ASCII, or too long)")
    try:
        expiration = parse_expiration(fields["Expiration"])
    except ValueError as exc:
        raise RemoteCredentialsError(f"{what} answer: {exc}") from None
    return Credentials(fields["AccessKeyId"], Secret(fields["AccessKeySecret"]), Secret(fields["SecurityToken"]),
                       expiration=expiration)


def _json_object(body: bytes) -> tuple[Mapping[str, Any] | None, str]:
    """The answer's JSON object, or None and why not (the shared decoding step: depth, UTF-8, syntax)."""
    try:
        return decode_object(body), ""
    except ParseError as exc:
        return None, str(exc)


def sts_credentials(status: int, body: bytes, what: str, token: str) -> tuple[Credentials, str | None]:
    """Read an ``AssumeRoleWithOIDC`` or ``AssumeRole`` answer: the credentials and the assumed role's ARN, or
    :class:`RemoteCredentialsError` (``transient`` for 5xx and throttling) that quotes no secret."""
    parsed, why = _json_object(body)
    credentials = parsed.get("Credentials") if parsed is not None else None
    if status != 200 or parsed is None or not isinstance(credentials, Mapping):
        raise _sts_failure(what, status, parsed, why, token)
    creds = _credentials_from(credentials, what)
    user = parsed.get("AssumedRoleUser")
    arn = scalar(user.get("Arn"), 300) if isinstance(user, Mapping) else None
    return creds, arn or None


def _sts_failure(what: str, status: int, parsed: Mapping[str, Any] | None, why: str,
                 token: str) -> RemoteCredentialsError:
    if parsed is None:
        return RemoteCredentialsError(f"{what} failed: HTTP {status} without a JSON body ({why})",
                                      transient=status >= 500)
    code = scalar(lookup(parsed, "Code"), 100) or f"HTTP {status}"
    message = _STRING_TO_SIGN.split(scalar(lookup(parsed, "Message"), None) or "", maxsplit=1)[0].rstrip(" :.")
    message = (message.replace(token, "***") if token else message)[:300]
    # a RequestId is an id: only its printable characters go into the one-line error (a hostile answer's may not be)
    request_id = "".join(c for c in scalar(lookup(parsed, "RequestId"), 100) or "" if c.isprintable()) or None
    transient = status >= 500 or code.startswith(_RETRYABLE_CODES)
    tail = f" (RequestId {request_id})" if request_id else ""
    if status == 200:
        return RemoteCredentialsError(f"{what}: HTTP 200 without Credentials{tail}")
    return RemoteCredentialsError(f"{what} failed: {code} (HTTP {status}): {message}{tail}", transient=transient)


def metadata_credentials(body: bytes, what: str) -> Credentials:
    """Read the metadata service's credentials document (HTTP 200), or :class:`RemoteCredentialsError`."""
    parsed, why = _json_object(body)
    if parsed is None:
        raise RemoteCredentialsError(f"{what}: answer is not a JSON object ({why})")
    code = parsed.get("Code")
    if code != "Success":
        shown = repr(code[:40]) if isinstance(code, str) else kind(code)
        raise RemoteCredentialsError(f"{what}: Code is {shown}, not 'Success'", transient=True)
    return _credentials_from(parsed, what)


def metadata_role_name(body: bytes) -> str | None:
    """The first role the metadata service names, None for none; :class:`RemoteCredentialsError` for text
    that is no RAM role name (it would go into the next request's path, and into logs)."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise RemoteCredentialsError("the ECS metadata service named a role in bytes that are not UTF-8") from None
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        return None
    if not _ROLE_NAME.fullmatch(lines[0]):
        raise RemoteCredentialsError("the ECS metadata service answered something that is not a RAM role name "
                                     "(1-64 letters, digits, '.', '-' or '_')")
    return lines[0]


class _Retrying(RefreshingProvider):
    """Shared retry loop: transient failures are retried with full-jitter exponential backoff."""

    def __init__(
        self, *, attempts: int, refresh_margin: float, clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]], rng: random.Random | None, transport: PlainTransport | None,
    ) -> None:
        super().__init__(refresh_margin=refresh_margin, clock=clock)
        self._attempts = attempts
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._transport = transport if transport is not None else PlainTransport()

    @property
    def transport(self) -> PlainTransport:
        """Where this provider's requests go out (the one the API client attaches its session to)."""
        return self._transport

    async def _with_retries(self, once: Callable[[], Awaitable[Credentials]], attempts: int) -> Credentials:
        for attempt in range(attempts):
            try:
                return await once()
            except RemoteCredentialsError as exc:
                if not exc.transient or attempt + 1 >= attempts:
                    raise
                delay = full_jitter(self._rng, attempt, _BACKOFF_BASE, _BACKOFF_CAP)
                log.debug("retrying credentials request", extra={"source": self.source, "attempt": attempt + 1,
                                                                 "delay_s": round(delay, 3), "error": str(exc)})
                await self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover


class _StsRole(_Retrying):
    """A role's credentials from STS: the request's form is the subclass's, sending and reading it are shared."""

    def __init__(
        self,
        role_arn: str,
        *,
        sts_endpoint: str,
        session_name: str,
        duration_seconds: int,
        timeout: float,
        attempts: int,
        refresh_margin: float,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
        rng: random.Random | None,
        transport: PlainTransport | None,
    ) -> None:
        super().__init__(attempts=attempts, refresh_margin=refresh_margin, clock=clock, sleep=sleep, rng=rng,
                         transport=transport)
        self.role_arn = role_arn
        self.sts_endpoint = sts_endpoint
        self.session_name = session_name
        self.duration_seconds = duration_seconds
        self._timeout = timeout
        self.assumed_role_arn: str | None = None

    async def fetch(self) -> Credentials:
        """Assume the role, retrying transient failures."""
        return await self._with_retries(self._assume, self._attempts)

    async def _assume(self) -> Credentials:
        raise NotImplementedError

    async def _exchange(self, action: str, form: Mapping[str, str], token: str, source: str) -> Credentials:
        """Send ``form`` to STS as ``action`` and read the credentials; ``token`` is cut from any error."""
        # A form body, not the query string: the token then stays out of URLs that proxies log.
        answer = await _send(self._transport, PlainRequest(
            action, "POST", self.sts_endpoint, headers={"Accept": "application/json"}, form=form,
            timeout=self._timeout))
        creds, self.assumed_role_arn = sts_credentials(answer.status, answer.body, f"STS {action} for {self.role_arn}",
                                                       token)
        log.info("credentials obtained", extra={"source": source, "role": self.role_arn,
                                                "assumed_role": self.assumed_role_arn,
                                                "expires_in_s": round(creds.expiration - self._clock(), 1)
                                                if creds.expiration else None})
        return creds


class RrsaProvider(_StsRole):
    """RRSA on ACK: the pod's OIDC token (re-read at every refresh) exchanged at STS for a role's credentials."""

    def __init__(
        self,
        role_arn: str,
        oidc_provider_arn: str,
        token_file: Path,
        *,
        sts_endpoint: str,
        session_name: str = DEFAULT_SESSION_NAME,
        duration_seconds: int = 3600,
        timeout: float = 10.0,
        attempts: int = 3,
        refresh_margin: float = 300.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
        transport: PlainTransport | None = None,
    ) -> None:
        super().__init__(role_arn, sts_endpoint=sts_endpoint, session_name=session_name,
                         duration_seconds=duration_seconds, timeout=timeout, attempts=attempts,
                         refresh_margin=refresh_margin, clock=clock, sleep=sleep, rng=rng, transport=transport)
        self.oidc_provider_arn = oidc_provider_arn
        self.token_file = token_file

    @property
    def source(self) -> str:
        """Role, OIDC provider, token file and STS endpoint (none of them secret)."""
        return (f"rrsa (role {self.role_arn}, OIDC provider {self.oidc_provider_arn}, token file {self.token_file}, "
                f"STS {self.sts_endpoint})")

    def _read_token(self) -> str:
        try:
            token = self.token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise RemoteCredentialsError(
                f"cannot read the OIDC token file {self.token_file} ({ENV_OIDC_TOKEN_FILE}): "
                f"{exc.strerror or type(exc).__name__}") from None
        except UnicodeDecodeError:
            raise RemoteCredentialsError(f"OIDC token file {self.token_file} is not UTF-8 text") from None
        if not token:
            raise RemoteCredentialsError(f"OIDC token file {self.token_file} is empty")
        return token

    async def _assume(self) -> Credentials:
        """Assume the role with the token the file holds now."""
        token = self._read_token()
        form = {
            "Action": "AssumeRoleWithOIDC", "Version": STS_VERSION, "Format": "JSON",
            "Timestamp": iso_utc(self._clock()),
            "RoleArn": self.role_arn, "OIDCProviderArn": self.oidc_provider_arn, "OIDCToken": token,
            "RoleSessionName": self.session_name, "DurationSeconds": str(self.duration_seconds),
        }
        return await self._exchange("AssumeRoleWithOIDC", form, token, "rrsa")


class EcsRoleProvider(_Retrying):
    """The ECS instance's RAM role, read from the instance metadata service (IMDSv2 first)."""

    def __init__(
        self,
        endpoint: str = METADATA_ENDPOINT,
        *,
        role_name: str | None = None,
        imdsv1_allowed: bool = True,
        connect_timeout: float = 1.0,
        read_timeout: float = 1.0,
        attempts: int = 3,
        hint: str = "",
        refresh_margin: float = 300.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
        transport: PlainTransport | None = None,
    ) -> None:
        super().__init__(attempts=attempts, refresh_margin=refresh_margin, clock=clock, sleep=sleep, rng=rng,
                         transport=transport)
        self.endpoint = endpoint.rstrip("/")
        self.role_name = role_name
        self.imdsv1_allowed = imdsv1_allowed
        self._hint = hint
        self._timeouts = (connect_timeout + read_timeout + 1, connect_timeout, read_timeout)  # total, connect, read
        self._answered = False
        self._discovered: str | None = None
        self.used_v1 = False

    @property
    def source(self) -> str:
        """Role (configured or discovered), metadata endpoint and IMDS mode."""
        role = self.role_name or self._discovered or "named by the metadata service"
        mode = "IMDSv2, v1 fallback allowed" if self.imdsv1_allowed else "IMDSv2 only"
        return f"ecs ram role ({role}, metadata service {self.endpoint}, {mode})"

    async def fetch(self) -> Credentials:
        """Fetch the role's current credentials; retried only once the service has answered before."""
        return await self._with_retries(self._fetch_once, self._attempts if self._answered else 1)

    async def _call(self, method: str, path: str, headers: Mapping[str, str]) -> tuple[int, bytes]:
        total, connect, read = self._timeouts
        request = PlainRequest("ECSMetadata", method, self.endpoint + path, headers=headers, timeout=total,
                               connect_timeout=connect, read_timeout=read)
        try:
            answer = await _send(self._transport, request)
        except RemoteCredentialsError as exc:
            if self._answered:
                raise RemoteCredentialsError(f"the ECS metadata service at {self.endpoint} did not answer: {exc}",
                                             transient=True) from None
            hint = f" {self._hint}" if self._hint else ""
            raise RemoteCredentialsError(f"no credentials found: the ECS metadata service at {self.endpoint} did not "
                                         f"answer ({exc}); not an ECS instance?{hint}", transient=True) from None
        self._answered = True
        return answer.status, answer.body

    async def _token(self) -> str | None:
        status, body = await self._call("PUT", "/latest/api/token", {TOKEN_TTL_HEADER: str(METADATA_TOKEN_TTL)})
        token = body.decode("utf-8", "replace").strip() if status == 200 else ""
        if token and not _HEADER_SAFE.fullmatch(token):
            raise RemoteCredentialsError("the ECS metadata service answered an IMDSv2 token that cannot be sent "
                                         "(characters outside visible ASCII, or too long)")
        if token:
            self.used_v1 = False
            return token
        if not self.imdsv1_allowed:
            raise RemoteCredentialsError(
                f"the ECS metadata service refused an IMDSv2 token (HTTP {status}) and IMDSv1 is disabled "
                f"({ENV_IMDSV1_DISABLED}=true)", transient=status >= 500)
        if not self.used_v1:
            log.warning("IMDSv2 token refused; falling back to IMDSv1", extra={"http_status": status})
        self.used_v1 = True
        return None

    async def _fetch_once(self) -> Credentials:
        token = await self._token()
        headers = {TOKEN_HEADER: token} if token else {}
        role = self.role_name
        if not role:
            status, body = await self._call("GET", _CREDENTIALS_PATH, headers)
            if status == 404:
                raise RemoteCredentialsError("no RAM role is attached to this ECS instance")
            if status != 200:
                raise RemoteCredentialsError(f"the ECS metadata service answered HTTP {status} for the role name",
                                             transient=status >= 500)
            named = metadata_role_name(body)
            if named is None:
                raise RemoteCredentialsError("no RAM role is attached to this ECS instance")
            role = self._discovered = named
        status, body = await self._call("GET", _CREDENTIALS_PATH + quote(role, safe=""), headers)
        what = f"ECS metadata credentials of role {role}"
        if status == 404:
            raise RemoteCredentialsError(f"{what}: role not found on this instance (HTTP 404)")
        if status != 200:
            raise RemoteCredentialsError(f"{what}: HTTP {status}", transient=status >= 500)
        creds = metadata_credentials(body, what)
        log.info("credentials obtained", extra={"source": "ecs", "role": role, "imds": "v1" if self.used_v1 else "v2",
                                                "expires_in_s": round(creds.expiration - self._clock(), 1)
                                                if creds.expiration else None})
        return creds


class AssumeRoleProvider(_StsRole):
    """An account's ``role_arn``: STS ``AssumeRole`` signed with the credentials ``base`` (its chain) yields.

    The request is the RPC style of the public reference
    (https://www.alibabacloud.com/help/en/ram/developer-reference/api-sts-2015-04-01-assumerole): common
    parameters, ``RoleArn``, ``RoleSessionName`` and ``DurationSeconds``, signed HMAC-SHA1
    (``SignatureVersion=1.0``) as the official ``alibabacloud_credentials`` ``ram_role_arn`` provider signs it.
    That provider sends a GET with everything in the query; this one POSTs the same parameters as a form
    body and signs them with ``POST``, so the base credentials' STS token stays out of URLs that proxies log.
    """

    def __init__(
        self,
        base: CredentialProvider,
        role_arn: str,
        *,
        sts_endpoint: str,
        session_name: str = DEFAULT_SESSION_NAME,
        duration_seconds: int = 3600,
        timeout: float = 10.0,
        attempts: int = 3,
        refresh_margin: float = 300.0,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
        transport: PlainTransport | None = None,
    ) -> None:
        super().__init__(role_arn, sts_endpoint=sts_endpoint, session_name=session_name,
                         duration_seconds=duration_seconds, timeout=timeout, attempts=attempts,
                         refresh_margin=refresh_margin, clock=clock, sleep=sleep, rng=rng, transport=transport)
        self.base = base

    @property
    def source(self) -> str:
        """The role, the STS endpoint and the base chain's source (none of them secret)."""
        return f"assume role {self.role_arn} (STS {self.sts_endpoint}) with {self.base.source}"

    async def _assume(self) -> Credentials:
        """Assume the role with the base chain's current credentials."""
        try:
            base = await self.base.get()
        except CredentialsError as exc:
            raise RemoteCredentialsError(f"the credentials to assume {self.role_arn} with: {exc}") from None
        form = {
            "Action": "AssumeRole", "Version": STS_VERSION, "Format": "JSON", "Timestamp": iso_utc(self._clock()),
            "AccessKeyId": base.access_key_id, "SignatureMethod": "HMAC-SHA1", "SignatureVersion": "1.0",
            "SignatureNonce": uuid.uuid4().hex,
            "RoleArn": self.role_arn, "RoleSessionName": self.session_name,
            "DurationSeconds": str(self.duration_seconds),
        }
        token = base.security_token.reveal() if base.security_token is not None else ""
        if token:
            form["SecurityToken"] = token
        form["Signature"] = signing.v1_signature(base.access_key_secret.reveal(), "POST", form)
        return await self._exchange("AssumeRole", form, token, "assume_role")


def sts_endpoint(options: CredentialsSettings, environ: Mapping[str, str]) -> str:
    """The STS URL: credentials.sts_endpoint, ALIBABA_CLOUD_STS_ENDPOINT, a regional host, or sts.aliyuncs.com."""
    explicit = options.sts_endpoint or environ.get(ENV_STS_ENDPOINT, "").strip()
    if explicit:
        url = sts_url(explicit)
        if url is None:
            raise CredentialsError(f"{ENV_STS_ENDPOINT} must be a host name or an http(s) URL, got {explicit!r}")
        return url if url.count("/") > 2 else url + "/"
    region = options.sts_region or environ.get(ENV_STS_REGION, "").strip()
    vpc = options.sts_network == "vpc" or environ.get(ENV_VPC_ENDPOINT, "").strip().lower() == "true"
    if vpc and not region:
        raise CredentialsError(f"the VPC STS endpoint needs a region: set credentials.sts_region or {ENV_STS_REGION}")
    if region:
        if not re.fullmatch(STS_REGION, region):
            raise CredentialsError(f"{ENV_STS_REGION} must be a region ID such as cn-hangzhou, got {region!r}")
        return f"https://{'sts-vpc' if vpc else 'sts'}.{region}.aliyuncs.com/"
    return "https://sts.aliyuncs.com/"


def remote_provider(environ: Mapping[str, str], options: CredentialsSettings,
                    transport: PlainTransport | None = None) -> RrsaProvider | EcsRoleProvider | None:
    """Step 3 (RRSA) when its variables are set, else step 4 (ECS) unless disabled; None when neither applies.

    ``transport`` is where their requests go out: the one the API client is given (None: one of their own).
    """
    names = (ENV_ROLE_ARN, ENV_OIDC_PROVIDER_ARN, ENV_OIDC_TOKEN_FILE)
    values = {name: environ.get(name, "").strip() for name in names}
    present = [n for n in names if values[n]]
    if present:
        missing = [n for n in names if not values[n]]
        if missing:
            raise CredentialsError(f"RRSA needs {', '.join(names)}; {', '.join(missing)} "
                                   f"{'is' if len(missing) == 1 else 'are'} not set")
        session = options.role_session_name or environ.get(ENV_ROLE_SESSION_NAME, "").strip() or DEFAULT_SESSION_NAME
        if not _SESSION_NAME.fullmatch(session):
            raise CredentialsError(f"{ENV_ROLE_SESSION_NAME} must be 2-64 characters of letters, digits and . @ _ -, "
                                   f"got {session!r}")
        return RrsaProvider(values[ENV_ROLE_ARN], values[ENV_OIDC_PROVIDER_ARN], Path(values[ENV_OIDC_TOKEN_FILE]),
                            sts_endpoint=sts_endpoint(options, environ), session_name=session,
                            duration_seconds=options.duration_seconds, refresh_margin=options.refresh_margin,
                            transport=transport)
    if environ.get(ENV_ECS_DISABLED, "").strip().lower() == "true":
        return None
    return EcsRoleProvider(
        options.metadata_endpoint or METADATA_ENDPOINT,
        role_name=environ.get(ENV_ECS_ROLE, "").strip() or None,
        imdsv1_allowed=environ.get(ENV_IMDSV1_DISABLED, "").strip().lower() != "true",
        refresh_margin=options.refresh_margin,
        transport=transport,
        hint="Configure credentials.access_key_id_file and credentials.access_key_secret_file, or "
             "ALIBABA_CLOUD_ACCESS_KEY_ID and ALIBABA_CLOUD_ACCESS_KEY_SECRET, or RRSA "
             f"({ENV_ROLE_ARN}, {ENV_OIDC_PROVIDER_ARN}, {ENV_OIDC_TOKEN_FILE}); "
             f"set {ENV_ECS_DISABLED}=true to skip the metadata service",
    )
