"""A simulated STS: ``AssumeRoleWithOIDC`` and the OIDC provider whose tokens it trusts (RRSA on ACK), and
``AssumeRole`` for the roles an account's ``role_arn`` names.

Tests issue a service-account token with :meth:`StsService.issue_oidc_token`; issued keys are registered with
the gateway with their token and expiry. ``AssumeRole`` is checked by the gateway's own authenticator
(signature, time, nonce, token), then the role must trust the caller's key; its keys reach only the role's
account's instances. Refusals use the codes and statuses of the STS error table
(https://help.aliyun.com/zh/ram/developer-reference/api-sts-2015-04-01-errorcodes). ``session_lifetime``
is a test knob with no cloud counterpart: it shortens issued credentials so refresh is tested in seconds.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from exporter.simulator.auth import GatewayError, KeyPair
from exporter.simulator.faults import hostile_rule
from exporter.simulator.gateway import hostile_response
from exporter.simulator.service import Simulator, new_request_id

STS_VERSION = "2015-04-01"
_SESSION_NAME = re.compile(r"[A-Za-z0-9.@_-]{2,64}")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def iso(epoch: float) -> str:
    """ISO 8601 UTC at second resolution, as STS writes times."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


@dataclass(frozen=True, slots=True)
class OidcRole:
    """A RAM role whose trust policy names an OIDC provider."""

    role_arn: str
    provider_arn: str
    audience: str = "sts.aliyuncs.com"
    max_session_duration: int = 3600  # the role's MaxSessionDuration


@dataclass(frozen=True, slots=True)
class AssumableRole:
    """A RAM role of ``account`` whose trust policy names the keys that may assume it (``AssumeRole``)."""

    role_arn: str
    account: str
    trusted_keys: frozenset[str]
    max_session_duration: int = 3600


@dataclass(frozen=True, slots=True)
class StsRecord:
    """One AssumeRoleWithOIDC request: who asked, with which token (by its jti), and the outcome."""

    at: float
    role_arn: str
    session_name: str
    token_id: str | None
    status: int
    code: str


class StsService:
    """The simulated STS endpoint; keys it issues are added to ``sim``'s gateway."""

    def __init__(self, sim: Simulator, *, issuer: str = "https://oidc-ack-cn-hangzhou.oss-cn-hangzhou.aliyuncs.com/sim",
                 session_lifetime: float | None = None) -> None:
        self.sim = sim
        self.issuer = issuer
        self.session_lifetime = session_lifetime
        self.roles: dict[str, OidcRole] = {}
        self.assumable: dict[str, AssumableRole] = {}
        self.records: list[StsRecord] = []
        self.unavailable = 0  # answer this many next requests with 503 ServiceUnavailable
        self._key = secrets.token_bytes(32)
        self._account = "".join(secrets.choice("0123456789") for _ in range(16))

    def add_role(self, role_arn: str, provider_arn: str, *, audience: str = "sts.aliyuncs.com",
                 max_session_duration: int = 3600) -> OidcRole:
        """Trust tokens of ``provider_arn`` for ``role_arn``."""
        role = OidcRole(role_arn, provider_arn, audience, max_session_duration)
        self.roles[role_arn] = role
        return role

    def add_assumable_role(self, role_arn: str, account: str, trusted_keys: frozenset[str] | set[str], *,
                           max_session_duration: int = 3600) -> AssumableRole:
        """Let the keys ``trusted_keys`` assume ``role_arn``, whose credentials act for ``account``."""
        role = AssumableRole(role_arn, account, frozenset(trusted_keys), max_session_duration)
        self.assumable[role_arn] = role
        return role

    def issue_oidc_token(self, subject: str = "system:serviceaccount:monitoring:alikafka-exporter", *,
                         lifetime: float = 3600.0, audience: str = "sts.aliyuncs.com") -> str:
        """A service-account token as the cluster's OIDC provider would sign it (only we can verify it)."""
        now = self.sim.clock()
        header = _b64(json.dumps({"alg": "RS256", "kid": "sim", "typ": "JWT"}).encode())
        claims = {"iss": self.issuer, "sub": subject, "aud": [audience], "iat": int(now),
                  "exp": int(now + lifetime), "jti": secrets.token_hex(8)}
        payload = _b64(json.dumps(claims).encode())
        signature = _b64(hmac.new(self._key, f"{header}.{payload}".encode(), hashlib.sha256).digest())
        return f"{header}.{payload}.{signature}"

    @staticmethod
    def token_id(token: str) -> str | None:
        """The jti claim of a token this service issued (None if unreadable)."""
        try:
            claims = json.loads(_unb64(token.split(".")[1]))
        except (ValueError, IndexError):
            return None
        return str(claims.get("jti")) if isinstance(claims, dict) else None

    # --- the action --------------------------------------------------------------------------------
    def _verify_token(self, token: str, role: OidcRole, now: float) -> dict[str, Any]:
        if not token:
            raise GatewayError(401, "AuthenticationFail.OIDCToken.Invalid", "The OIDCToken can not empty.")
        parts = token.split(".")
        if len(parts) != 3:
            raise GatewayError(401, "AuthenticationFail.OIDCToken.Invalid",
                               "The number of Jwt field should be divided into 3 parts with '.' .")
        try:
            claims = json.loads(_unb64(parts[1]))
        except (ValueError, UnicodeDecodeError):
            claims = None
        if not isinstance(claims, dict):
            raise GatewayError(401, "AuthenticationFail.OIDCToken.Invalid",
                               "Cannot decode base64 encoded response(format invalided).")
        expected = _b64(hmac.new(self._key, f"{parts[0]}.{parts[1]}".encode(), hashlib.sha256).digest())
        if not hmac.compare_digest(expected, parts[2]) or claims.get("iss") != self.issuer:
            raise GatewayError(401, "AuthenticationFail.OIDCToken.InvalidSignature",
                               "OIDC token validate failed: invalid signature.")
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or exp <= now:
            raise GatewayError(401, "AuthenticationFail.OIDCToken.Expired", "This JsonWebToken is expired.")
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if role.audience not in audiences:
            raise GatewayError(401, "AuthenticationFail.OIDCToken.AudienceNotMatch", "Invalid audience.")
        return claims

    def assume_role_with_oidc(self, params: Mapping[str, str]) -> dict[str, Any]:
        """Answer one request (a success body) or raise GatewayError."""
        now = self.sim.clock()
        for name in ("RoleArn", "OIDCProviderArn", "OIDCToken", "RoleSessionName"):
            if name not in params:
                raise GatewayError(400, "MissingParameter", f'The input parameter "{name}" that is mandatory for '
                                                            "processing this request is not supplied.")
        session = _session_name(params)
        role = self.roles.get(params["RoleArn"])
        if role is None:
            raise GatewayError(404, "EntityNotExist.Role", f"The role not exists: {params['RoleArn'][:200]}.")
        if params["OIDCProviderArn"] != role.provider_arn:
            raise GatewayError(401, "AuthenticationFail.NoPermission", "No such OIDC Provider registered.")
        duration = _duration(params, role.max_session_duration)
        claims = self._verify_token(params["OIDCToken"], role, now)
        credentials = self._issue(now, duration)
        aud = claims.get("aud")
        return {
            "RequestId": new_request_id(),
            "OIDCTokenInfo": {"Subject": claims.get("sub"), "Issuer": claims.get("iss"),
                              "ClientIds": ",".join(str(a) for a in aud) if isinstance(aud, list) else str(aud),
                              "IssuanceTime": iso(float(claims.get("iat", now))),
                              "ExpirationTime": iso(float(claims["exp"])), "VerificationInfo": "Success"},
            "AssumedRoleUser": {"Arn": f"{role.role_arn}/{session}",
                                "AssumedRoleId": f"{self._account}:{session}"},
            "Credentials": credentials,
        }

    def assume_role(self, method: str, path: str, query: Mapping[str, str], form: Mapping[str, str],
                    headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
        """Answer one signed ``AssumeRole`` (a success body) or raise GatewayError.

        Refusals as the public reference and STS's error pages name them
        (https://www.alibabacloud.com/help/en/ram/developer-reference/api-sts-2015-04-01-assumerole, common
        errors: https://www.alibabacloud.com/help/doc-detail/42775.htm): a caller the role does not trust gets
        ``NoPermission`` (HTTP 403), an unknown role ``EntityNotExist.Role`` (404).
        """
        now = self.sim.clock()
        identity = self.sim.auth.verify(method, path, query, form, headers, body, self.sim.server_time())
        params = {**query, **form}
        for name in ("RoleArn", "RoleSessionName"):
            if not params.get(name):
                raise GatewayError(400, "MissingParameter", f'The input parameter "{name}" that is mandatory for '
                                                            "processing this request is not supplied.")
        session = _session_name(params)
        role = self.assumable.get(params["RoleArn"])
        if role is None:
            raise GatewayError(404, "EntityNotExist.Role", f"The role not exists: {params['RoleArn'][:200]}.")
        if identity.access_key_id not in role.trusted_keys:
            raise GatewayError(403, "NoPermission",
                               "You are not authorized to do this action. You should be authorized by RAM.")
        duration = _duration(params, role.max_session_duration)
        return {
            "RequestId": new_request_id(),
            "AssumedRoleUser": {"Arn": f"{role.role_arn}/{session}", "AssumedRoleId": f"{self._account}:{session}"},
            "Credentials": self._issue(now, duration, role.account),
        }

    def _issue(self, now: float, duration: int, account: str = "") -> dict[str, str]:
        """New temporary keys the gateway accepts until they expire (``account``: whose instances they reach)."""
        lifetime = float(duration) if self.session_lifetime is None else min(float(duration), self.session_lifetime)
        expires = math.floor(now + lifetime)
        key_id = "STS.NU" + secrets.token_hex(12)
        secret = secrets.token_urlsafe(30)
        token = "CAIS" + secrets.token_urlsafe(180)
        self.sim.auth.keys[key_id] = KeyPair(secret, token, expires=float(expires), account=account)
        self._forget_old_keys(now)
        return {"AccessKeyId": key_id, "AccessKeySecret": secret, "SecurityToken": token, "Expiration": iso(expires)}

    def _forget_old_keys(self, now: float) -> None:
        keys = self.sim.auth.keys
        for key_id in [k for k, v in keys.items() if v.expires is not None and v.expires < now - 3600]:
            del keys[key_id]


def _error(exc: GatewayError) -> web.Response:
    request_id = new_request_id()
    return web.json_response({"RequestId": request_id, "HostId": "sts.aliyuncs.com", "Code": exc.code,
                              "Message": exc.message,
                              "Recommend": f"https://api.aliyun.com/troubleshoot?q={exc.code}&product=Sts"},
                             status=exc.status)


def add_sts_routes(app: web.Application, sts: StsService, path: str = "/") -> None:
    """Serve STS at ``path`` (GET or POST; parameters in the query string or a form body)."""

    async def handle(request: web.Request) -> web.Response:
        raw = await request.read()
        query = dict(request.query.items())
        form: dict[str, str] = {}
        if request.content_type == "application/x-www-form-urlencoded" and raw:
            form = dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
        params = {**query, **form}
        token_id = StsService.token_id(params.get("OIDCToken", ""))
        role_arn, session = params.get("RoleArn", ""), params.get("RoleSessionName", "")
        try:
            if sts.unavailable > 0:
                sts.unavailable -= 1
                raise GatewayError(503, "ServiceUnavailable", "The request has failed due to a temporary failure "
                                                              "of the server.")
            if params.get("Version") != STS_VERSION:
                raise GatewayError(400, "InvalidVersion", "Specified parameter Version is not valid.")
            action = params.get("Action")
            if action == "AssumeRole":
                body = sts.assume_role(request.method, request.path, query, form, request.headers, raw)
            elif action == "AssumeRoleWithOIDC":
                body = sts.assume_role_with_oidc(params)
            else:
                raise GatewayError(404, "InvalidAction.NotFound", "Specified api is not found, please check your url "
                                                                   "and method.")
        except GatewayError as exc:
            sts.records.append(StsRecord(sts.sim.clock(), role_arn, session, token_id, exc.status, exc.code))
            return _error(exc)
        rule = hostile_rule(sts.sim.faults, str(params.get("Action")), sts.sim.rng)
        if rule is not None:  # the credentials were issued, the answer that carries them is spoilt
            sts.records.append(StsRecord(sts.sim.clock(), role_arn, session, token_id, 200, f"fault:{rule.kind}"))
            return hostile_response(rule.kind, body, sts.sim.rng)
        sts.records.append(StsRecord(sts.sim.clock(), role_arn, session, token_id, 200, "200"))
        return web.json_response(body)

    app.router.add_route("POST", path, handle)
    app.router.add_route("GET", path, handle)


def add_sts_controls(app: web.Application, sts: StsService, path: str = "/_sim/sts") -> None:
    """Test controls at ``path``, unsigned like the other ``/_sim/`` ones (no real client calls them).

    GET: what STS has served (requests, issued credentials, codes) and how many gateway requests were
    refused because an issued key had really expired (``InvalidSecurityToken.Expired`` from the
    expiry check, not from a ``token_expired`` fault rule, which records ``fault:token_expired``);
    with ``?secrets=1`` also the issued secrets and tokens, so a test can check that none of them
    reached a log. POST ``{"unavailable": n}``: answer the next ``n`` requests with 503.
    """

    async def control(request: web.Request) -> web.Response:
        if request.method == "POST":
            try:
                data = await request.json()
                count = data.get("unavailable") if isinstance(data, dict) else None
                if isinstance(count, bool) or not isinstance(count, int) or count < 0:
                    raise ValueError("unavailable must be a whole number of requests")
            except ValueError as exc:
                return web.json_response({"error": str(exc)}, status=400)
            sts.unavailable = count
            return web.json_response({"unavailable": sts.unavailable})
        codes: dict[str, int] = {}
        for record in sts.records:
            codes[record.code] = codes.get(record.code, 0) + 1
        body: dict[str, Any] = {"requests": len(sts.records), "issued": codes.get("200", 0), "codes": codes,
                                "expired_key_refusals": sts.sim.code_counts.get("InvalidSecurityToken.Expired", 0)}
        if request.query.get("secrets") == "1":
            body["secrets"] = [s for k, v in sts.sim.auth.keys.items() if k.startswith("STS.")
                               for s in (v.secret, v.security_token) if s]
        return web.json_response(body)

    app.router.add_route("GET", path, control)
    app.router.add_route("POST", path, control)


def build_sts_app(sts: StsService) -> web.Application:
    """STS alone, at ``/``, as ``sts.aliyuncs.com`` serves it."""
    app = web.Application(client_max_size=1024 * 1024)
    add_sts_routes(app, sts, "/")
    return app


def _session_name(params: Mapping[str, str]) -> str:
    """The request's RoleSessionName, refused as STS refuses a malformed one."""
    session = params["RoleSessionName"]
    if not _SESSION_NAME.fullmatch(session):
        raise GatewayError(400, "InvalidParameter.RoleSessionName", "The parameter RoleSessionName is wrongly formed.")
    return session


def _duration(params: Mapping[str, str], longest: int) -> int:
    """The request's DurationSeconds (default 3600), refused outside 15 minutes to the role's ``longest``."""
    try:
        duration = int(params.get("DurationSeconds", "3600"))
    except ValueError:
        duration = -1
    if not 900 <= duration <= longest:
        raise GatewayError(400, "InvalidParameter.DurationSeconds",
                           f"The Min/Max value of DurationSeconds is 15min/{longest // 60}min.")
    return duration
