"""Hostile and broken answers, from every action, against the simulator's hostile faults over real HTTP.

A bad answer fails the one call it answers: the pair (GetConsumerProgress), the listing (GetConsumerList,
GetInstanceList: the last good list stays and is asked for again at the next refresh), or the credentials
refresh (STS, ECS metadata: the current credentials stay while valid). Never the process, never a
traceback in the log. A worker task that dies anyway is restarted by its supervisor.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from exporter import app
from exporter.cloud.client import AlikafkaClient
from exporter.cloud.credentials import Credentials, Secret, StaticProvider
from exporter.cloud.credentials_remote import EcsRoleProvider, RemoteCredentialsError, RrsaProvider
from exporter.cloud.errors import ThrottledError
from exporter.cloud.ratelimit import RateLimiter
from exporter.cloud.stats import ApiStats
from exporter.config.settings import Settings, load_settings
from exporter.simulator import FaultRule, Scenario, Simulator, build_app
from exporter.simulator.faults import hostile_body
from exporter.simulator.imds import MetadataService, add_metadata_routes
from exporter.simulator.sts import StsService, add_sts_routes
from exporter.targets.catalog import InstanceCatalog
from exporter.targets.discovery import Discovery
from exporter.targets.live import LiveTargets
from exporter.targets.pair import Pair
from tests.support.fakes import Clock, api_settings
from tests.support.procs import clean_env, free_port, http_get, process, python_module, wait_for
from tests.support.samples import get, value

HZ, SH = "alikafka_post-cn-demo0001", "alikafka_pre-cn-demo0002"
KEY = StaticProvider(Credentials("AK", Secret("SK")), "t")
HOSTILE = ["deep_nesting", "invalid_utf8", "huge_numbers", "empty_body", "html", "truncated"]


def no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    """No record carries a traceback, and no message holds one."""
    for record in caplog.records:
        assert record.exc_info is None and record.stack_info is None, (record.getMessage(), record.exc_info)
        assert "Traceback" not in record.getMessage()


@pytest.fixture
async def simulator() -> AsyncIterator[tuple[Simulator, str]]:
    sim = Simulator(Scenario.builtin("demo"), {"AK": "SK"}, seed=11)
    for action in ("GetConsumerProgress", "GetConsumerList", "GetInstanceList"):
        sim.set_qps_limit(action, 1000)
    server = TestServer(build_app(sim), host="127.0.0.1")
    await server.start_server()
    yield sim, str(server.make_url("/"))
    await server.close()


def settings_for(endpoint: str, targets: list[dict[str, Any]], refresh: float, port: int) -> Settings:
    settings = load_settings({"targets": targets, "api": {"endpoint": endpoint, "max_qps": 1000, "max_retries": 0},
                              "poll": {"interval": "1s"}, "web": {"listen_address": f"127.0.0.1:{port}"}}, {}, None)
    return settings.model_copy(update={"discovery": settings.discovery.model_copy(update={"refresh": refresh})})


@contextlib.asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[None]:
    stop = asyncio.Event()
    plan = app.Plan(app.plan_pairs(settings), settings.api, KEY, tuple(settings.targets))
    task = asyncio.create_task(app.serve(settings, plan, stop))
    try:
        yield
    finally:
        stop.set()
        assert await asyncio.wait_for(task, 5) == 0


async def metrics(port: int) -> str:
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}/metrics") as response:
        assert response.status == 200
        return await response.text()


# --- GetConsumerProgress: the pair fails, nothing else ----------------------------------------------


@pytest.mark.parametrize("kind", [*HOSTILE, "wrong_types"])
async def test_hostile_progress_fails_that_pair_only(simulator: tuple[Simulator, str], kind: str,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    """A hostile GetConsumerProgress answer for one group: that pair is down with a one-line reason, the other
    pair stays up, the exporter keeps serving, and no log line holds a traceback."""
    sim, endpoint = simulator
    sim.add_fault(FaultRule(kind=kind, action="GetConsumerProgress", group="email-sender"))  # type: ignore[arg-type]
    port = free_port()
    settings = settings_for(endpoint, [{"instance_id": HZ, "region": "cn-hangzhou",
                                        "groups": ["email-sender", "orders-consumer"]}], 300, port)
    with caplog.at_level(logging.INFO):
        async with serving(settings):
            await asyncio.sleep(2.5)
            text = await metrics(port)
    assert value(text, "alikafka_consumergroup_up", group="orders-consumer", instance_id=HZ) == 1
    if kind != "wrong_types":  # one value of another type somewhere: understood or not, never a crash
        assert value(text, "alikafka_consumergroup_up", group="email-sender", instance_id=HZ) == 0
        failed = [r for r in caplog.records if getattr(r, "group", None) == "email-sender" and r.levelno >= 30]
        assert failed, caplog.text
    no_traceback(caplog)


def test_hostile_kinds_are_what_they_claim() -> None:
    """The simulator's hostile answers are what they claim: checked on the raw bytes of one answer each."""
    body = {"RequestId": "R", "Success": True, "Code": 200, "Total": 3,
            "ConsumerList": {"ConsumerVO": [{"ConsumerId": "g", "Offset": 1.5}]}}
    deep = hostile_body("deep_nesting", dict(body), random.Random(1))
    assert deep.count(b"[") == 100_000
    broken = hostile_body("invalid_utf8", dict(body), random.Random(1))
    with pytest.raises(UnicodeDecodeError):
        broken.decode("utf-8")
    huge = hostile_body("huge_numbers", json.loads(json.dumps(body)), random.Random(1))
    assert b'"Total":1' + b"0" * 400 in huge and b'"Offset":1e400' in huge and b'"Code":200' in huge
    assert hostile_body("empty_body", body, random.Random(1)) == b""


# --- GetConsumerList and GetInstanceList: the last good list stays, asked again next refresh ----------


@pytest.mark.parametrize("kind", [*HOSTILE, "wrong_types"])
async def test_hostile_consumer_list_keeps_the_last_good_list(simulator: tuple[Simulator, str], kind: str,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    """groups: all: a hostile GetConsumerList answer keeps the groups listed before, logged once, no traceback."""
    sim, endpoint = simulator
    async with AlikafkaClient(api_settings(endpoint, max_retries=0), KEY, RateLimiter(1000), ApiStats()) as client:
        settings = settings_for(endpoint, [{"instance_id": SH, "region": "cn-shanghai", "groups": "all"}], 300,
                                free_port())
        discovery = Discovery.of(settings, client)
        before = await discovery.resolve()
        assert len(before) == 10
        sim.add_fault(FaultRule(kind=kind, action="GetConsumerList"))  # type: ignore[arg-type]
        with caplog.at_level(logging.INFO):
            for _ in range(3):
                assert await discovery.resolve() == before
        if kind != "wrong_types":
            warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
            assert len(warnings) == 1 and "keeping what it found last time" in warnings[0].getMessage()
        no_traceback(caplog)
        sim.clear_faults()
        assert await discovery.resolve() == before


async def test_live_targets_retry_a_hostile_listing_at_the_next_refresh(simulator: tuple[Simulator, str],
                                                                         caplog: pytest.LogCaptureFixture) -> None:
    """The targets loop (as served, refreshing every 0.2 s): deep nesting in both listings applies the last good
    pairs again at each refresh, asks again each time, and picks the answer up once it is good."""
    sim, endpoint = simulator
    applied: list[tuple[Pair, ...]] = []
    async with AlikafkaClient(api_settings(endpoint, max_retries=0), KEY, RateLimiter(1000), ApiStats()) as client:
        settings = settings_for(endpoint, [{"instances": "all", "region": "cn-shanghai", "groups": "all"}], 0.2,
                                free_port())
        targets = LiveTargets(client, settings, applied.append)
        task = asyncio.create_task(targets.run())
        try:
            await asyncio.sleep(0.3)
            good = applied[-1]
            assert len(good) == 10
            sim.add_fault(FaultRule(kind="deep_nesting", action="GetInstanceList"))
            sim.add_fault(FaultRule(kind="deep_nesting", action="GetConsumerList"))
            asked = len([r for r in sim.requests if r.action == "GetInstanceList"])
            with caplog.at_level(logging.INFO):
                await asyncio.sleep(1.0)
            assert not task.done()
            assert all(pairs == good for pairs in applied[-3:])
            assert len([r for r in sim.requests if r.action == "GetInstanceList"]) >= asked + 3  # retried
            no_traceback(caplog)
            sim.clear_faults()
            with caplog.at_level(logging.INFO):
                await asyncio.sleep(0.5)
            assert "discovery listing recovered" in caplog.text
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


# huge_numbers spoils only GetInstanceList's status codes, and a status that is no documented code is an
# unknown state that keeps the instance (it is not malformed): that answer is read, so it is not here.
@pytest.mark.parametrize("kind", [k for k in HOSTILE if k != "huge_numbers"])
async def test_hostile_instance_list_keeps_the_catalog(simulator: tuple[Simulator, str], kind: str,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    """The catalog's own GetInstanceList: a hostile answer keeps alikafka_instance_info's last values."""
    sim, endpoint = simulator
    async with AlikafkaClient(api_settings(endpoint, max_retries=0), KEY, RateLimiter(1000), ApiStats()) as client:
        catalog = InstanceCatalog(client, ["cn-hangzhou"], [HZ], refresh=600)
        await catalog.refresh_once()
        assert list(catalog.instances) == [HZ]
        sim.add_fault(FaultRule(kind=kind, action="GetInstanceList"))  # type: ignore[arg-type]
        with caplog.at_level(logging.INFO):
            await catalog.refresh_once()
            await catalog.refresh_once()
        assert list(catalog.instances) == [HZ]
        assert len([r for r in caplog.records if r.levelno == logging.WARNING]) == 1
        no_traceback(caplog)


async def test_deep_nesting_in_every_listing_while_serving(simulator: tuple[Simulator, str],
                                                            caplog: pytest.LogCaptureFixture) -> None:
    """Served in-process: deep nesting from GetInstanceList (catalog and discovery) and GetConsumerList; serve
    keeps running, the explicit pair stays up, no task restarts, and a clean stop returns 0."""
    sim, endpoint = simulator
    for action in ("GetInstanceList", "GetConsumerList"):
        sim.add_fault(FaultRule(kind="deep_nesting", action=action))
    port = free_port()
    settings = settings_for(endpoint, [{"instance_id": HZ, "region": "cn-hangzhou", "groups": ["email-sender"]},
                                       {"instances": "all", "region": "cn-shanghai", "groups": "all"}], 0.3, port)
    with caplog.at_level(logging.INFO):
        async with serving(settings):
            await asyncio.sleep(2.0)
            text = await metrics(port)
    assert value(text, "alikafka_consumergroup_up", group="email-sender", instance_id=HZ) == 1
    assert value(text, "alikafka_exporter_api_requests_total", action="GetInstanceList", code="malformed_response") > 0
    assert value(text, "alikafka_exporter_task_restarts_total", task="catalog") == 0
    no_traceback(caplog)


# --- STS and the ECS metadata service: the current credentials stay --------------------------------

ROLE = "acs:ram::1234567890123456:role/alikafka-exporter"
PROVIDER = "acs:ram::1234567890123456:oidc-provider/ack-rrsa-c1234"


@contextlib.asynccontextmanager
async def credential_services(clock: Clock) -> AsyncIterator[tuple[Simulator, StsService, str]]:
    sim = Simulator(Scenario.builtin("minimal"), access_keys={}, seed=3, clock=clock)
    sts = StsService(sim)
    sts.add_role(ROLE, PROVIDER)
    application = build_app(sim)
    add_sts_routes(application, sts, "/sts/")
    add_metadata_routes(application, MetadataService(sim), "/imds")
    server = TestServer(application, host="127.0.0.1")
    await server.start_server()
    try:
        yield sim, sts, str(server.make_url("/"))
    finally:
        await server.close()


async def _no_sleep(_: float) -> None:
    await asyncio.sleep(0)


@pytest.mark.parametrize("kind", ["deep_nesting", "invalid_utf8", "empty_body"])
async def test_hostile_sts_answer_keeps_the_current_credentials(tmp_path: Path, kind: str,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    """A refresh answered with a hostile STS document: the current credentials stay in use, one warning
    says why, no traceback; the next good answer refreshes them."""
    clock = Clock(1_800_000_000.0)
    async with credential_services(clock) as (sim, sts, base):
        token_file = tmp_path / "token"
        token_file.write_text(sts.issue_oidc_token(lifetime=86400))
        provider = RrsaProvider(ROLE, PROVIDER, token_file, sts_endpoint=base + "sts/", clock=clock,
                                sleep=_no_sleep)
        first = await provider.get()
        sim.add_fault(FaultRule(kind=kind, action="AssumeRoleWithOIDC"))  # type: ignore[arg-type]
        clock.now += 3400  # inside the refresh margin, before expiry
        with caplog.at_level(logging.INFO):
            assert await provider.get() is first
        assert [r.code for r in sts.records][-1] == f"fault:{kind}"
        warning = next(r for r in caplog.records if r.levelno == logging.WARNING)
        assert "current ones stay in use" in warning.getMessage()
        error = getattr(warning, "error", "")
        assert error.startswith(f"STS AssumeRoleWithOIDC for {ROLE} failed: HTTP 200 without a JSON body ("), error
        no_traceback(caplog)
        sim.clear_faults()
        clock.now += provider.retry_pause + 1
        assert (await provider.get()).access_key_id != first.access_key_id


async def test_wrong_types_in_sts_answers_never_raise_anything_else(tmp_path: Path) -> None:
    """Forty STS answers, each with one value of another type somewhere: credentials or a credentials error."""
    clock = Clock(1_800_000_000.0)
    async with credential_services(clock) as (sim, sts, base):
        token_file = tmp_path / "token"
        token_file.write_text(sts.issue_oidc_token(lifetime=86400))
        provider = RrsaProvider(ROLE, PROVIDER, token_file, sts_endpoint=base + "sts/", clock=clock,
                                sleep=_no_sleep, attempts=1)
        sim.add_fault(FaultRule(kind="wrong_types", action="AssumeRoleWithOIDC"))
        outcomes = set()
        for _ in range(40):
            try:
                creds = await provider.fetch()
            except Exception as exc:  # what is raised is the point
                outcomes.add(type(exc).__name__)
            else:
                assert creds.security_token is not None and creds.expiration
                outcomes.add("ok")
        assert outcomes <= {"ok", "RemoteCredentialsError"}, outcomes
        assert "RemoteCredentialsError" in outcomes


@pytest.mark.parametrize("kind", ["deep_nesting", "invalid_utf8", "huge_numbers", "empty_body", "wrong_types"])
async def test_hostile_metadata_answer_is_a_credentials_error(kind: str) -> None:
    """The ECS metadata document spoilt: a credentials error (never another exception), no secret in it."""
    clock = Clock(1_800_000_000.0)
    async with credential_services(clock) as (sim, _sts, base):
        provider = EcsRoleProvider(base + "imds", attempts=1, clock=clock, sleep=_no_sleep)
        sim.add_fault(FaultRule(kind=kind, action="ECSMetadata"))  # type: ignore[arg-type]
        for _ in range(10 if kind == "wrong_types" else 1):
            try:
                await provider.fetch()
            except Exception as exc:  # what is raised is the point
                assert type(exc).__name__ == "RemoteCredentialsError", repr(exc)
                assert "\n" not in str(exc) and len(str(exc)) < 400
                assert not any(key.secret in str(exc) for key in sim.auth.keys.values())


# --- the whole process: deep nesting from GetInstanceList -----------------------------------------


def _post(url: str, data: dict[str, Any]) -> None:
    request = urllib.request.Request(url, data=json.dumps(data).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200


@pytest.mark.e2e
def test_deep_nesting_from_get_instance_list_does_not_kill_the_process(tmp_path: Path) -> None:
    """The exporter process, the simulator process answering every GetInstanceList with JSON nested 100,000
    deep (the catalog's call for an explicit instance, discovery's for instances: all): the exporter stays up,
    keeps serving /metrics with the explicit pair up, and its log holds no traceback."""
    sim_port, exp_port = free_port(), free_port()
    key = ("LTAI-hostile", "hostile-secret-value-31")
    config = tmp_path / "config.yaml"
    config.write_text(f"targets:\n  - {{instance_id: {HZ}, region: cn-hangzhou, groups: [email-sender]}}\n"
                      "  - {instances: all, region: cn-shanghai, groups: all}\n"
                      "poll: {interval: 1s}\napi: {max_retries: 0}\n")
    sim_cmd = python_module("exporter.simulator", "--listen", f"127.0.0.1:{sim_port}",
                            "--access-key", f"{key[0]}:{key[1]}", "--qps-limit", "GetConsumerProgress=100")
    exp_cmd = python_module("exporter", "--config.file", str(config), "--web.listen-address",
                            f"127.0.0.1:{exp_port}")
    exp_env = clean_env(ALIBABA_CLOUD_ACCESS_KEY_ID=key[0], ALIBABA_CLOUD_ACCESS_KEY_SECRET=key[1],
                        ALIKAFKA_EXPORTER_API__ENDPOINT=f"http://127.0.0.1:{sim_port}/")
    log = tmp_path / "exporter.log"
    with process(sim_cmd, clean_env(), tmp_path / "sim.log"):
        wait_for(lambda: True if http_get(f"http://127.0.0.1:{sim_port}/_sim/truth")[0] == 200 else None, 30,
                 "the simulator")
        _post(f"http://127.0.0.1:{sim_port}/_sim/faults", {"kind": "deep_nesting", "action": "GetInstanceList"})
        with process(exp_cmd, exp_env, log) as exporter:
            metrics_url = f"http://127.0.0.1:{exp_port}/metrics"

            def served() -> str | None:
                assert exporter.poll() is None, log.read_text()
                status, body = http_get(metrics_url)
                up = status == 200 and get(body, "alikafka_consumergroup_up", group="email-sender", instance_id=HZ) == 1
                return body.decode() if up else None

            wait_for(served, 30, "the pair to be up")
            time.sleep(3)  # several catalog and discovery attempts, each answered 100,000 deep
            assert exporter.poll() is None, log.read_text()
            text = wait_for(served, 10, "metrics after the hostile answers")
    assert value(text, "alikafka_exporter_api_requests_total", action="GetInstanceList", code="malformed_response") > 0
    output = log.read_text()
    assert "Traceback" not in output and "RecursionError" not in output, output
    assert "instance list failed" in output and "discovery listing failed" in output, output
    assert key[1] not in output


@pytest.mark.parametrize(("token", "role", "needle"), [
    (b"tok\nX-Injected: 1", b"AlikafkaRole", "IMDSv2 token that cannot be sent"),
    (b"t" * 10_000, b"AlikafkaRole", "IMDSv2 token that cannot be sent"),
    (b"good-token", b"../../latest/user-data", "not a RAM role name"),
    (b"good-token", b"<html>502</html>", "not a RAM role name"),
    (b"good-token", b"\xc0\xaf-role", "not UTF-8"),
])
async def test_metadata_text_answers_are_checked_before_use(token: bytes, role: bytes, needle: str) -> None:
    """The metadata service's text answers go into the next request (a header, a path): a token that is
    not one header value and a role that is no RAM role name are refused, quoting neither (a server written
    here, answering what the simulator never would)."""
    async def token_answer(_: web.Request) -> web.Response:
        return web.Response(body=token)

    async def role_answer(_: web.Request) -> web.Response:
        return web.Response(body=role)

    application = web.Application()
    application.router.add_put("/latest/api/token", token_answer)
    application.router.add_get("/latest/meta-data/ram/security-credentials/", role_answer)
    server = TestServer(application, host="127.0.0.1")
    await server.start_server()
    try:
        provider = EcsRoleProvider(str(server.make_url("")), attempts=1, sleep=_no_sleep)
        with pytest.raises(RemoteCredentialsError, match=needle) as caught:
            await provider.fetch()
    finally:
        await server.close()
    assert "X-Injected" not in str(caught.value) and "user-data" not in str(caught.value)


@pytest.mark.parametrize(("header", "seconds"), [
    ("200", 0.2), ("-5", 0.0), ("inf", None), ("nan", None), ("1e308", 60.0), ("soon", None), (None, None)])
def test_a_hostile_retry_after_cannot_pause_the_client_for_good(header: str | None, seconds: float | None) -> None:
    """``x-acs-retry-after`` on a throttling answer: milliseconds, finite, at most a minute (the limiter pauses
    every call for it)."""
    client = AlikafkaClient(api_settings("http://127.0.0.1:1/"), KEY, RateLimiter(10), ApiStats())
    answer = json.dumps({"RequestId": "R", "Code": "Throttling.User", "Message": "flow control"}).encode()
    with pytest.raises(ThrottledError) as caught:
        client._interpret("GetConsumerProgress", 400, answer, header)
    assert caught.value.retry_after == seconds
