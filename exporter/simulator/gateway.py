"""The simulator's HTTP face: the API gateway at ``/`` and its own controls under ``/_sim/``.

``/`` behaves like ``alikafka.<region>.aliyuncs.com``: authentication, then flow control, then the action.
``/_sim/truth``, ``/_sim/faults`` and ``/_sim/clock`` expose the true lag, the fault rules and the
gateway's clock offset, unsigned since no real client calls them. ``build_app(write_pieces=N,
piece_pause=S)`` sends every answer in pieces, as a WAN or TLS records deliver it.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
from collections.abc import Awaitable, Callable, Mapping
from email.utils import formatdate
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from exporter.simulator.auth import GatewayError
from exporter.simulator.faults import (
    AUTH_KINDS,
    DELIVERY_KINDS,
    FAULT_KINDS,
    HOSTILE_KINDS,
    SHAPE_KINDS,
    FaultRule,
    gzip_bomb,
    hostile_body,
    reshape,
)
from exporter.simulator.service import API_VERSION, Simulator, new_request_id

_HTML_502 = (b"<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1>"
             b"</center><hr><center>Tengine</center></body></html>")
_SIM_KEY: web.AppKey[Simulator] = web.AppKey("simulator", Simulator)
_SKEW_KEY: web.RequestKey[float] = web.RequestKey("clock_skew", float)  # the offset a clock_skew fault gave
_PIECES_KEY: web.AppKey[tuple[int, float]] = web.AppKey("pieces", tuple)  # every answer: (writes, pause)
_SLOW_KEY: web.RequestKey[tuple[int, float]] = web.RequestKey("slow_body", tuple)  # this answer (slow_body fault)


def _error(exc: GatewayError, host: str) -> web.Response:
    request_id = new_request_id()
    body = {"RequestId": request_id, "HostId": host, "Code": exc.code, "Message": exc.message,
            "Recommend": f"https://api.aliyun.com/troubleshoot?q={exc.code}&product=alikafka&requestId={request_id}"}
    headers = {"x-acs-request-id": request_id}
    if exc.retry_after_ms is not None:
        headers["x-acs-retry-after"] = str(exc.retry_after_ms)
    return web.json_response(body, status=exc.status, headers=headers)


async def _first_match(
    sim: Simulator, action: str, params: Mapping[str, str], request: web.Request
) -> FaultRule | None:
    """The first matching rule that decides the answer; ``latency`` and ``slow_body`` rules on the way add
    their delay or their pieces and let the next rules match too (a slow answer can still be an error)."""
    for rule in list(sim.faults):
        if rule.kind not in AUTH_KINDS and rule.matches(action, dict(params), sim.rng):
            if rule.kind not in DELIVERY_KINDS:
                return rule
            if rule.kind == "slow_body":
                request[_SLOW_KEY] = (rule.pieces, rule.delay)
            else:
                await asyncio.sleep(rule.delay)
    return None


def _clock_skew(sim: Simulator, action: str, params: Mapping[str, str]) -> float:
    """The gateway clock's offset for this request (a ``clock_skew`` rule), 0 without one."""
    for rule in sim.faults:
        if rule.kind == "clock_skew" and rule.matches(action, dict(params), sim.rng):
            return rule.delay
    return 0.0


def _hostile_answer(rule: FaultRule) -> web.Response | None:
    """A ``redirect`` (307 to another origin: a client that follows it hands that origin a signed request)
    or a ``gzip_bomb`` (a small gzip body expanding to ``size`` bytes) answer, else None."""
    if rule.kind == "redirect":
        return web.Response(status=307, headers={"Location": rule.location})
    if rule.kind == "gzip_bomb":
        return web.Response(body=gzip_bomb(rule.size), status=200, content_type="application/json",
                            headers={"Content-Encoding": "gzip"})
    return None


async def _fault_answer(rule: FaultRule, request: web.Request) -> web.StreamResponse | None:
    """The answer a non-shape fault gives, or None to carry on (a timeout that the client gave up on)."""
    kind = rule.kind
    if kind == "timeout":
        await asyncio.sleep(rule.delay)
        return None
    if kind == "reset":
        if request.transport is not None:
            request.transport.abort()
        raise asyncio.CancelledError  # the connection is gone; nothing to answer
    if kind == "html":
        return web.Response(body=_HTML_502, status=502, content_type="text/html")
    if kind == "truncated":
        return web.Response(body=b'{"RequestId":"' + new_request_id().encode() + b'","Success":true,"Code":200,"Consu',
                            status=200, content_type="application/json")
    errors = {
        "http_500": GatewayError(500, "InternalError", "The request processing has failed due to some unknown error."),
        "http_503": GatewayError(503, "ServiceUnavailable", "The request has failed due to a temporary failure."),
        "throttle": GatewayError(400, "Throttling.User", "Request was denied due to user flow control.", 200),
        "not_found": GatewayError(400, "BIZ_SUBSCRIPTION_NOT_FOUND", "The consumer group does not exist."),
        # An STS token past its expiry: the credentials were valid when issued, the client must refresh.
        "token_expired": GatewayError(400, "InvalidSecurityToken.Expired", "Specified SecurityToken is expired."),
    }
    if kind in errors:
        return _error(errors[kind], request.host)
    if kind == "success_false":
        return web.json_response({"RequestId": new_request_id(), "Success": False, "Code": "ONS_SYSTEM_ERROR",
                                  "Message": "system error, please try again later."})
    return None


def hostile_response(kind: str, body: dict[str, Any], rng: random.Random) -> web.Response:
    """HTTP 200 with the bytes of a hostile fault kind in place of ``body`` (also used by STS and metadata)."""
    return web.Response(body=hostile_body(kind, body, rng), status=200, content_type="application/json")


async def _gateway(request: web.Request) -> web.StreamResponse:
    sim = request.app[_SIM_KEY]
    raw = await request.read()
    query = dict(request.query.items())
    form: dict[str, str] = {}
    if request.content_type == "application/x-www-form-urlencoded" and raw:
        form = dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
    params = {**query, **form}
    action = params.get("Action") or request.headers.get("x-acs-action") or ""
    signature = key_id = ""
    try:
        skew = _clock_skew(sim, action, params)
        request[_SKEW_KEY] = skew  # the answer's Date header comes from the same skewed clock
        now = sim.server_time() + skew
        identity = sim.auth.verify(request.method, request.path, query, form, request.headers, raw, now)
        signature, key_id = identity.signature_version, identity.access_key_id
        version = params.get("Version") or request.headers.get("x-acs-version", "")
        if version != API_VERSION:
            raise GatewayError(400, "InvalidVersion", f"Specified parameter Version is not valid: {version!r}.")
        if not action:
            raise GatewayError(400, "MissingAction", "Action is mandatory for this request.")
        sim.admit(action, sim.clock(), sim.account_of(identity.access_key_id))
        rule = await _first_match(sim, action, params, request)
        if rule is not None and rule.kind not in SHAPE_KINDS:
            answer = _hostile_answer(rule) or await _fault_answer(rule, request)
            if answer is not None:
                status = answer.status if isinstance(answer, web.Response) else 200
                sim.record(action, params, status, f"fault:{rule.kind}", signature, key_id)
                return answer
        body: dict[str, Any] = sim.handle(action, params, identity.access_key_id)
        if rule is not None and rule.kind in SHAPE_KINDS:
            body = reshape(body, rule.kind, action)
        if rule is not None and rule.kind in HOSTILE_KINDS:
            sim.record(action, params, 200, f"fault:{rule.kind}", signature, key_id)
            return hostile_response(rule.kind, body, sim.rng)
    except GatewayError as exc:
        sim.record(action, params, exc.status, exc.code, signature, key_id)
        return _error(exc, request.host)
    sim.record(action, params, 200, "200", signature, key_id)
    return web.json_response(body, dumps=lambda o: json.dumps(o, separators=(",", ":")))


async def _truth(request: web.Request) -> web.Response:
    sim = request.app[_SIM_KEY]
    want_instance = request.query.get("instance_id")
    want_group = request.query.get("group")
    now = sim.clock()
    rows = []
    for instance_id, _region, group in sim.pairs():
        if (want_instance and instance_id != want_instance) or (want_group and group != want_group):
            continue
        for t in sim.truth(instance_id, group, now):
            earliest = sim.earliest(instance_id, t.topic, t.partition, now)
            rows.append({"instance_id": instance_id, "group": group, "topic": t.topic, "partition": t.partition,
                         "broker_offset": t.broker_offset, "consumer_offset": t.consumer_offset, "lag": t.lag,
                         "time_lag_seconds": round(t.time_lag_seconds, 3), "earliest_offset": earliest,
                         "lost_messages": None if earliest is None else max(0, earliest - t.consumer_offset)})
    return web.json_response({"at": now, "partitions": rows})


async def _faults(request: web.Request) -> web.Response:
    sim = request.app[_SIM_KEY]
    if request.method == "DELETE":
        sim.clear_faults()
        return web.json_response({"faults": 0})
    try:
        data = await request.json()
        if not isinstance(data, dict) or data.get("kind") not in FAULT_KINDS:
            raise ValueError(f"kind must be one of {', '.join(FAULT_KINDS)}")
        sim.add_fault(FaultRule(**data))
    except (ValueError, TypeError) as exc:
        return web.json_response({"error": str(exc)}, status=400)
    return web.json_response({"faults": len(sim.faults)})


async def _clock(request: web.Request) -> web.Response:
    sim = request.app[_SIM_KEY]
    try:
        data = await request.json()
        offset = data.get("offset") if isinstance(data, dict) else None
        if isinstance(offset, bool) or not isinstance(offset, int | float) or not math.isfinite(offset):
            raise ValueError("offset must be a number of seconds")
    except ValueError as exc:
        return web.json_response({"error": str(exc)}, status=400)
    sim.clock_offset = float(offset)
    return web.json_response({"offset": sim.clock_offset})


async def _server_date(request: web.Request, response: web.StreamResponse) -> None:
    """``Date`` from the gateway's (possibly skewed) clock, as the real one reports its own."""
    skew = request.get(_SKEW_KEY, 0.0)
    response.headers["Date"] = formatdate(request.app[_SIM_KEY].server_time() + skew, usegmt=True)


@web.middleware
async def _delivery(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Send a finished answer in pieces with pauses, when the app (``write_pieces``) or a ``slow_body``
    fault asks for it; the body is the same bytes, with its ``Content-Length``, only slower and split."""
    response = await handler(request)
    pieces, pause = request.get(_SLOW_KEY) or request.app[_PIECES_KEY]
    body = response.body if isinstance(response, web.Response) else None
    if pieces <= 1 or not isinstance(body, bytes) or not body or request.path.startswith("/_sim/"):
        return response
    stream = web.StreamResponse(status=response.status, reason=response.reason, headers=response.headers)
    stream.content_length = len(body)
    await stream.prepare(request)
    step = -(-len(body) // pieces)
    for start in range(0, len(body), step):
        if start:
            await asyncio.sleep(pause)
        await stream.write(body[start:start + step])
    await stream.write_eof()
    return stream


def build_app(sim: Simulator, *, write_pieces: int = 1, piece_pause: float = 0.0) -> web.Application:
    """The simulator's aiohttp application; ``write_pieces`` > 1 sends every answer in that many writes,
    ``piece_pause`` seconds apart."""
    if not 1 <= write_pieces <= 10_000 or not 0 <= piece_pause <= 600:
        raise ValueError("write_pieces must be 1-10000 and piece_pause 0-600 seconds")
    app = web.Application(client_max_size=1024 * 1024, middlewares=[_delivery])
    app[_SIM_KEY] = sim
    app[_PIECES_KEY] = (write_pieces, piece_pause)
    app.on_response_prepare.append(_server_date)
    app.router.add_route("POST", "/_sim/clock", _clock)
    app.router.add_route("POST", "/", _gateway)
    app.router.add_route("GET", "/", _gateway)
    app.router.add_get("/_sim/truth", _truth)
    app.router.add_route("POST", "/_sim/faults", _faults)
    app.router.add_route("DELETE", "/_sim/faults", _faults)
    return app
