"""A simulated ECS instance metadata service: the RAM role's credentials, IMDSv2 tokens, hardened mode.

Paths and headers follow the documented ``100.100.100.200`` service; ``require_token`` plays the
instance's security hardening mode and ``v2_supported=False`` an old service without a token endpoint.
Alibaba Cloud does not publish the statuses of refusals, so these follow the usual IMDSv2 convention
(docs/simulator.md). Credentials rotate like the real ones and are registered with the simulated gateway.
"""

from __future__ import annotations

import json
import math
import secrets
from dataclasses import dataclass

from aiohttp import web

from exporter.simulator.auth import KeyPair
from exporter.simulator.faults import hostile_rule
from exporter.simulator.gateway import hostile_response
from exporter.simulator.service import Simulator
from exporter.simulator.sts import iso

TTL_HEADER = "X-aliyun-ecs-metadata-token-ttl-seconds"
TOKEN_HEADER = "X-aliyun-ecs-metadata-token"  # noqa: S105 - a header name
_CREDENTIALS = "/latest/meta-data/ram/security-credentials/"


@dataclass(frozen=True, slots=True)
class MetadataRecord:
    """One request the metadata service saw."""

    at: float
    method: str
    path: str
    mode: str  # "v2" (with a token header) or "v1"
    status: int


@dataclass(frozen=True, slots=True)
class _Issued:
    key_id: str
    issued: float
    expires: float


class MetadataService:
    """The metadata service of one simulated ECS instance with (or without) a RAM role."""

    def __init__(self, sim: Simulator, role_name: str | None = "AlikafkaExporterRole", *, require_token: bool = False,
                 v2_supported: bool = True, lifetime: float = 21600.0) -> None:
        self.sim = sim
        self.role_name = role_name
        self.require_token = require_token
        self.v2_supported = v2_supported
        self.lifetime = lifetime
        self.records: list[MetadataRecord] = []
        self._tokens: dict[str, float] = {}
        self._current: _Issued | None = None

    def _credentials(self) -> dict[str, str]:
        now = self.sim.clock()
        current = self._current
        if current is None or current.expires - now < 0.6 * self.lifetime:
            expires = float(math.floor(now + self.lifetime))
            current = self._current = _Issued("STS.NV" + secrets.token_hex(12), now, expires)
            self.sim.auth.keys[current.key_id] = KeyPair(secrets.token_urlsafe(30), "CAIS" + secrets.token_urlsafe(180),
                                                         expires=expires)
        key = self.sim.auth.keys[current.key_id]
        assert key.security_token is not None
        return {"AccessKeyId": current.key_id, "AccessKeySecret": key.secret, "SecurityToken": key.security_token,
                "Expiration": iso(current.expires), "LastUpdated": iso(current.issued), "Code": "Success"}

    def _token_state(self, request: web.Request) -> tuple[str, int | None]:
        """("v1"|"v2", refusal status or None)."""
        token = request.headers.get(TOKEN_HEADER)
        if token is None:
            return "v1", (401 if self.require_token else None)
        expires = self._tokens.get(token)
        if expires is None or expires <= self.sim.clock():
            return "v2", 401
        return "v2", None

    def _answer(self, request: web.Request, mode: str, status: int, body: str = "",
                content_type: str = "text/plain") -> web.Response:
        self.records.append(MetadataRecord(self.sim.clock(), request.method, request.path, mode, status))
        if status != 200:
            reasons = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found"}
            return web.Response(status=status, text=reasons.get(status, ""), content_type="text/plain")
        return web.Response(status=200, text=body, content_type=content_type)

    async def token(self, request: web.Request) -> web.Response:
        """PUT /latest/api/token."""
        if not self.v2_supported:
            return self._answer(request, "v2", 404)
        if "X-Forwarded-For" in request.headers:
            return self._answer(request, "v2", 403)
        try:
            ttl = int(request.headers.get(TTL_HEADER, ""))
        except ValueError:
            ttl = 0
        if not 1 <= ttl <= 21600:
            return self._answer(request, "v2", 400)
        now = self.sim.clock()
        for old in [t for t, exp in self._tokens.items() if exp <= now]:
            del self._tokens[old]
        token = secrets.token_urlsafe(40)
        self._tokens[token] = now + ttl
        return self._answer(request, "v2", 200, token)

    async def role(self, request: web.Request) -> web.Response:
        """GET /latest/meta-data/ram/security-credentials/."""
        mode, refused = self._token_state(request)
        if refused is not None:
            return self._answer(request, mode, refused)
        if self.role_name is None:
            return self._answer(request, mode, 404)
        return self._answer(request, mode, 200, self.role_name)

    async def role_credentials(self, request: web.Request) -> web.Response:
        """GET /latest/meta-data/ram/security-credentials/<role>."""
        mode, refused = self._token_state(request)
        if refused is not None:
            return self._answer(request, mode, refused)
        if self.role_name is None or request.match_info["role"] != self.role_name:
            return self._answer(request, mode, 404)
        rule = hostile_rule(self.sim.faults, "ECSMetadata", self.sim.rng)
        if rule is not None:
            self.records.append(MetadataRecord(self.sim.clock(), request.method, request.path, mode, 200))
            return hostile_response(rule.kind, dict(self._credentials()), self.sim.rng)
        return self._answer(request, mode, 200, json.dumps(self._credentials(), indent=2), "text/plain")


def add_metadata_routes(app: web.Application, service: MetadataService, prefix: str = "") -> None:
    """Serve the metadata paths under ``prefix`` ("" for the real layout)."""
    base = prefix.rstrip("/")
    app.router.add_route("PUT", f"{base}/latest/api/token", service.token)
    app.router.add_get(f"{base}{_CREDENTIALS}", service.role)
    app.router.add_get(f"{base}{_CREDENTIALS}{{role}}", service.role_credentials)


def build_metadata_app(service: MetadataService) -> web.Application:
    """The metadata service alone, with the real paths."""
    app = web.Application()
    add_metadata_routes(app, service)
    return app
