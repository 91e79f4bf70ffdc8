"""RRSA (STS AssumeRoleWithOIDC) and the ECS RAM role, end to end against the simulator over real HTTP.

One in-process aiohttp server plays the alikafka gateway at ``/``, STS at ``/sts/`` and the ECS
metadata service under ``/imds``. The exporter's own chain, providers and signed client talk to it;
a shared settable clock drives expiry where waiting would be slow.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import trustme
from aiohttp import web
from aiohttp.test_utils import TestServer

from exporter.cloud.client import AlikafkaClient
from exporter.cloud.credential_chain import default_chain
from exporter.cloud.credentials import (
    CredentialProvider,
    Credentials,
    CredentialsError,
    FileProvider,
    Learning,
    Secret,
    StaticProvider,
)
from exporter.cloud.credentials_remote import EcsRoleProvider, RrsaProvider
from exporter.cloud.errors import AuthError, MalformedResponseError, RequestError, TransportError
from exporter.cloud.ratelimit import RateLimiter
from exporter.cloud.stats import ApiStats
from exporter.cloud.transport import PlainRequest, PlainTransport
from exporter.config.errors import ConfigError
from exporter.config.settings import CredentialsSettings, load_settings
from exporter.logs import Redactor
from exporter.simulator import Scenario, Simulator, build_app
from exporter.simulator.faults import FaultRule
from exporter.simulator.imds import MetadataService, add_metadata_routes
from exporter.simulator.sts import StsService, add_sts_controls, add_sts_routes, build_sts_app
from tests.support import samples
from tests.support.fakes import Clock, api_settings
from tests.support.procs import clean_env, free_port, http_get, process, python_module, wait_for

INSTANCE, GROUP, REGION = "alikafka_post-cn-test0001", "orders-consumer", "cn-hangzhou"
ROLE = "acs:ram::1234567890123456:role/alikafka-exporter"
PROVIDER = "acs:ram::1234567890123456:oidc-provider/ack-rrsa-c1234"
NO_ECS = {"ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true"}


@dataclass
class World:
    sim: Simulator
    sts: StsService
    imds: MetadataService
    base: str
    clock: Clock

    @property
    def sts_url(self) -> str:
        return self.base + "sts/"

    @property
    def imds_url(self) -> str:
        return self.base + "imds"

    def rrsa_env(self, token_file: Path) -> dict[str, str]:
        return {"ALIBABA_CLOUD_ROLE_ARN": ROLE, "ALIBABA_CLOUD_OIDC_PROVIDER_ARN": PROVIDER,
                "ALIBABA_CLOUD_OIDC_TOKEN_FILE": str(token_file), **NO_ECS}


async def _world(clock: Clock | None, **imds: object) -> AsyncIterator[World]:
    now = clock or time.time
    sim = Simulator(Scenario.builtin("minimal"), access_keys={}, seed=3, clock=now)
    sim.set_qps_limit("GetConsumerProgress", 1000)
    sts = StsService(sim)
    sts.add_role(ROLE, PROVIDER, max_session_duration=3600)
    metadata = MetadataService(sim, **imds)  # type: ignore[arg-type]
    app = build_app(sim)
    add_sts_routes(app, sts, "/sts/")
    add_sts_controls(app, sts)
    add_metadata_routes(app, metadata, "/imds")
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield World(sim, sts, metadata, str(server.make_url("/")), clock or Clock(time.time()))
    finally:
        await server.close()


@pytest.fixture
async def world() -> AsyncIterator[World]:
    """The simulator on a settable clock."""
    async for w in _world(Clock(1_800_000_000.0)):
        yield w


async def _sleep(_: float) -> None:
    await asyncio.sleep(0)


async def poll(world: World, provider: CredentialProvider) -> None:
    """One signed GetConsumerProgress through the exporter's client, credentials from ``provider``."""
    async with AlikafkaClient(api_settings(world.base, max_retries=0), provider, RateLimiter(1000), ApiStats(),
                              clock=world.clock) as client:
        progress, _ = await client.get_consumer_progress(REGION, INSTANCE, GROUP)
    assert progress.topics


def rrsa(world: World, token_file: Path, **kwargs: object) -> RrsaProvider:
    return RrsaProvider(ROLE, PROVIDER, token_file, sts_endpoint=world.sts_url, clock=world.clock, sleep=_sleep,
                        **kwargs)  # type: ignore[arg-type]


async def test_rrsa_wrapped_for_the_redactor_still_uses_the_clients_session(world: World, tmp_path: Path) -> None:
    """As the exporter runs it (the provider wrapped so the log redactor learns every new key, one transport
    given to the provider and the client): STS is still called over the client's session and counted, and
    the STS secret and token are learnt."""
    token_file = tmp_path / "token"
    token_file.write_text(world.sts.issue_oidc_token())
    transport = PlainTransport()
    inner = rrsa(world, token_file, transport=transport)
    redactor = Redactor()
    provider = Learning(inner, redactor.add)
    stats = ApiStats()
    async with AlikafkaClient(api_settings(world.base), provider, RateLimiter(1000), stats,
                              clock=world.clock, transport=transport) as client:
        assert inner.transport is transport and transport._session is client._session
        await client.get_consumer_progress(REGION, INSTANCE, GROUP)
    assert stats.requests == {("AssumeRoleWithOIDC", "200"): 1, ("GetConsumerProgress", "200"): 1}
    creds = await provider.get()
    assert creds.security_token is not None
    line = redactor(f"{creds.access_key_secret.reveal()} {creds.security_token.reveal()}")
    assert line == "*** ***"


def test_the_exporters_plan_gives_the_providers_and_the_client_one_transport(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """As the exporter wires it: the credential chain's RRSA provider sends through the plan's transport,
    the one the client is given, so STS calls share the client's session and are counted with the API's."""
    from exporter import __main__ as entry  # noqa: PLC0415 - the entry point's wiring, as a user runs it

    token_file = tmp_path / "token"
    token_file.write_text("a-token")
    for name in ("ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET", "ALIBABA_CLOUD_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in {"ALIBABA_CLOUD_ROLE_ARN": ROLE, "ALIBABA_CLOUD_OIDC_PROVIDER_ARN": PROVIDER,
                        "ALIBABA_CLOUD_OIDC_TOKEN_FILE": str(token_file)}.items():
        monkeypatch.setenv(name, value)
    settings = load_settings({"targets": [{"instance_id": INSTANCE, "region": REGION, "groups": [GROUP]}]}, {}, None)
    plan = entry._plan(settings)
    assert isinstance(plan.credentials, RrsaProvider)
    assert plan.credentials.transport is plan.transport


# --- RRSA -------------------------------------------------------------------------------------------


async def test_rrsa_chain_polls_with_sts_credentials(world: World, tmp_path: Path) -> None:
    """The RRSA variables select STS; its credentials (key, secret, token) pass the gateway."""
    token_file = tmp_path / "token"
    token_file.write_text(world.sts.issue_oidc_token())
    options = CredentialsSettings(sts_endpoint=world.sts_url, role_session_name="exporter-pod-1")
    transport = PlainTransport()
    provider = default_chain(None, None, None, world.rrsa_env(token_file), options, transport)
    assert isinstance(provider, RrsaProvider)
    assert provider.source.startswith(f"rrsa (role {ROLE}")
    stats = ApiStats()
    async with AlikafkaClient(api_settings(world.base), provider, RateLimiter(1000), stats,
                              clock=world.clock, transport=transport) as client:
        assert provider.transport._session is client._session  # STS is called over the client's one session
        await client.get_consumer_progress(REGION, INSTANCE, GROUP)
    assert not provider.transport.attached
    # The client's transport counted the STS exchange next to the API call, by its own action name.
    assert stats.requests == {("AssumeRoleWithOIDC", "200"): 1, ("GetConsumerProgress", "200"): 1}
    assert stats.durations["AssumeRoleWithOIDC"].total == 1
    await poll(world, provider)  # cached: one STS call for both
    assert [(r.status, r.session_name) for r in world.sts.records] == [(200, "exporter-pod-1")]
    assert provider.assumed_role_arn == f"{ROLE}/exporter-pod-1"
    assert [r.code for r in world.sim.requests] == ["200", "200"]


async def test_credentials_refreshed_before_expiry(world: World, tmp_path: Path) -> None:
    """900 s credentials with a 300 s margin: refreshed at 600 s, so no poll ever uses an expired key."""
    token_file = tmp_path / "token"
    token_file.write_text(world.sts.issue_oidc_token(lifetime=86400))
    provider = rrsa(world, token_file, duration_seconds=900, refresh_margin=300)
    first = await provider.get()
    for _ in range(12):
        world.clock.now += 100
        await poll(world, provider)
    assert sum(r.status == 200 for r in world.sts.records) == 3  # at 0, ~600 and ~1200 s
    assert (await provider.get()).access_key_id != first.access_key_id
    assert {r.code for r in world.sim.requests} == {"200"}


async def test_short_lived_credentials_refresh_at_half_life(tmp_path: Path) -> None:
    """Credentials shorter than twice the margin (simulator's 4 s lifetime) refresh half-way, on a real clock."""
    async for w in _world(None):
        w.sts.session_lifetime = 4
        token_file = tmp_path / "token"
        token_file.write_text(w.sts.issue_oidc_token())
        provider = RrsaProvider(ROLE, PROVIDER, token_file, sts_endpoint=w.sts_url, refresh_margin=300)
        deadline = time.monotonic() + 5.5
        while time.monotonic() < deadline:
            async with AlikafkaClient(api_settings(w.base, max_retries=0), provider, RateLimiter(1000),
                                      ApiStats()) as client:
                await client.get_consumer_progress(REGION, INSTANCE, GROUP)
            await asyncio.sleep(0.25)
        refreshes = sum(r.status == 200 for r in w.sts.records)
        assert 3 <= refreshes <= 6, refreshes  # one every ~1.5-2 s, not one per poll
        assert {r.code for r in w.sim.requests} == {"200"}


async def test_rotated_token_file_is_read_at_each_refresh(world: World, tmp_path: Path) -> None:
    """Kubernetes rotates the projected token; the next refresh sends the new one (the old has expired)."""
    token_file = tmp_path / "token"
    old = world.sts.issue_oidc_token(lifetime=1000)
    token_file.write_text(old)
    provider = rrsa(world, token_file, duration_seconds=900)
    await poll(world, provider)
    new = world.sts.issue_oidc_token(lifetime=86400)
    replacement = tmp_path / "token.new"
    replacement.write_text(new + "\n")
    os.replace(replacement, token_file)
    world.clock.now += 1200  # the old token and the first credentials have both expired
    await poll(world, provider)
    assert [(r.status, r.token_id) for r in world.sts.records] == [
        (200, StsService.token_id(old)), (200, StsService.token_id(new))]


async def test_sts_outage_rides_on_valid_credentials_then_fails_clearly(world: World, tmp_path: Path) -> None:
    """While STS is down, unexpired credentials keep working; once expired, a clear error without secrets."""
    token_file = tmp_path / "token"
    token = world.sts.issue_oidc_token(lifetime=86400)
    token_file.write_text(token)
    transport = PlainTransport()
    provider = rrsa(world, token_file, duration_seconds=900, refresh_margin=300, transport=transport)
    creds = await provider.get()
    world.sts.unavailable = 1000
    world.clock.now += 700  # inside the margin: a refresh is due and fails
    stats = ApiStats()
    async with AlikafkaClient(api_settings(world.base, max_retries=0), provider, RateLimiter(1000), stats,
                              clock=world.clock, transport=transport) as client:
        await client.get_consumer_progress(REGION, INSTANCE, GROUP)
    assert [r.code for r in world.sts.records[1:]] == ["ServiceUnavailable"] * 3  # retried with backoff
    assert stats.requests[("AssumeRoleWithOIDC", "ServiceUnavailable")] == 3  # each attempt, by STS's code
    world.clock.now += 2  # within the retry pause: no new STS request on this poll
    await poll(world, provider)
    assert len(world.sts.records) == 4
    world.clock.now += 300  # expired now
    with pytest.raises(CredentialsError) as info:
        await provider.get()
    message = str(info.value)
    assert "expired at" in message and "ServiceUnavailable (HTTP 503)" in message and ROLE in message
    secrets = (creds.access_key_secret.reveal(), creds.security_token.reveal() if creds.security_token else "", token)
    assert not any(s in message for s in secrets)
    with pytest.raises(AuthError, match="credentials_unavailable"):
        await poll(world, provider)
    world.sts.unavailable = 0
    await poll(world, provider)  # STS is back: recovers on its own


@pytest.mark.parametrize(("content", "arn", "code"), [
    ("not-a-jwt", PROVIDER, "AuthenticationFail.OIDCToken.Invalid (HTTP 401)"),
    ("forged.eyJleHAiOjF9.sig", PROVIDER, "AuthenticationFail.OIDCToken.InvalidSignature (HTTP 401)"),
    (None, "acs:ram::1234567890123456:oidc-provider/other", "AuthenticationFail.NoPermission (HTTP 401)"),
])
async def test_sts_refusals_are_clear_and_not_retried(
    world: World, tmp_path: Path, content: str | None, arn: str, code: str,
) -> None:
    """Token and trust problems name the STS code, are not retried, and never echo the token."""
    token_file = tmp_path / "token"
    token = content or world.sts.issue_oidc_token()
    token_file.write_text(token)
    provider = RrsaProvider(ROLE, arn, token_file, sts_endpoint=world.sts_url, clock=world.clock, sleep=_sleep)
    with pytest.raises(CredentialsError, match=code.replace("(", r"\(").replace(")", r"\)")) as info:
        await provider.get()
    assert token not in str(info.value)
    assert len(world.sts.records) == 1


async def test_expired_oidc_token_and_missing_file(world: World, tmp_path: Path) -> None:
    """An expired projected token and an unreadable token file are clear errors."""
    token_file = tmp_path / "token"
    token_file.write_text(world.sts.issue_oidc_token(lifetime=10))
    world.clock.now += 11
    with pytest.raises(CredentialsError, match=r"AuthenticationFail\.OIDCToken\.Expired"):
        await rrsa(world, token_file).get()
    with pytest.raises(CredentialsError, match=r"cannot read the OIDC token file .*ALIBABA_CLOUD_OIDC_TOKEN_FILE"):
        await rrsa(world, tmp_path / "absent").get()


async def test_expired_sts_key_is_refused_by_the_gateway(world: World, tmp_path: Path) -> None:
    """The simulator's gateway checks an issued key's expiry (so a late refresh would show)."""
    token_file = tmp_path / "token"
    token_file.write_text(world.sts.issue_oidc_token(lifetime=86400))
    creds = await rrsa(world, token_file, duration_seconds=900).get()
    world.sim.add_fault(FaultRule(kind="token_expired", count=1))
    with pytest.raises(AuthError, match=r"InvalidSecurityToken\.Expired"):
        await poll(world, StaticProvider(creds, "valid, refused by a fault rule"))
    world.clock.now += 901
    with pytest.raises(AuthError, match=r"InvalidSecurityToken\.Expired"):
        await poll(world, StaticProvider(creds, "stale"))
    # /_sim/sts (the soak's source) tells the real expiry from the fault, and outages are set there.
    async with aiohttp.ClientSession() as http:
        async with http.post(world.base + "_sim/sts", json={"unavailable": 2}) as resp:
            assert resp.status == 200 and world.sts.unavailable == 2
        async with http.post(world.base + "_sim/sts", json={"unavailable": -1}) as resp:
            assert resp.status == 400
        async with http.get(world.base + "_sim/sts?secrets=1") as resp:
            state = await resp.json()
    assert (state["issued"], state["codes"], state["expired_key_refusals"]) == (1, {"200": 1}, 1)
    assert creds.security_token is not None
    assert set(state["secrets"]) == {creds.access_key_secret.reveal(), creds.security_token.reveal()}


async def test_sts_parameter_checks(world: World) -> None:
    """DurationSeconds and RoleSessionName are validated as STS does."""
    token = world.sts.issue_oidc_token()
    base = {"Action": "AssumeRoleWithOIDC", "Version": "2015-04-01", "RoleArn": ROLE, "OIDCProviderArn": PROVIDER,
            "OIDCToken": token, "RoleSessionName": "ok-name"}
    async with aiohttp.ClientSession() as http:
        for extra, status, code in [({"DurationSeconds": "600"}, 400, "InvalidParameter.DurationSeconds"),
                                    ({"DurationSeconds": "7200"}, 400, "InvalidParameter.DurationSeconds"),
                                    ({"RoleSessionName": "a"}, 400, "InvalidParameter.RoleSessionName"),
                                    ({"RoleArn": ROLE + "-x"}, 404, "EntityNotExist.Role"),
                                    ({"Version": "2019-09-16"}, 400, "InvalidVersion")]:
            async with http.post(world.sts_url, data={**base, **extra}) as resp:
                assert (resp.status, (await resp.json())["Code"]) == (status, code)
        async with http.get(world.sts_url, params=base) as resp:  # the SDK's GET with a query string works too
            body = await resp.json()
    assert resp.status == 200 and body["Credentials"]["AccessKeyId"].startswith("STS.")
    assert body["AssumedRoleUser"]["Arn"] == f"{ROLE}/ok-name" and body["OIDCTokenInfo"]["VerificationInfo"]


async def test_plain_transport_types_failures_and_counts_them() -> None:
    """The client's plain transport: form bodies, no redirects, typed errors without the URL, per-action counts."""
    seen: list[tuple[str, str]] = []

    async def echo(request: web.Request) -> web.Response:
        seen.append((request.content_type, (await request.read()).decode()))
        return web.json_response({"Code": "Throttling.User", "Message": "slow down"}, status=400)

    async def slow(_: web.Request) -> web.Response:
        await asyncio.sleep(2)
        return web.Response(text="late")

    async def big(_: web.Request) -> web.Response:
        return web.Response(body=b"x" * 2048)

    async def moved(_: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": "/echo"})

    app = web.Application()
    app.router.add_post("/echo", echo)
    app.router.add_get("/slow", slow)
    app.router.add_get("/big", big)
    app.router.add_get("/moved", moved)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    transport, stats = PlainTransport(), ApiStats()
    base = str(server.make_url("/"))
    try:
        async with aiohttp.ClientSession() as session:
            transport.attach(session, stats)
            answer = await transport.send(PlainRequest("X", "POST", base + "echo", form={"OIDCToken": "a b&c"}))
            assert (answer.status, seen) == (400, [("application/x-www-form-urlencoded", "OIDCToken=a+b%26c")])
            with pytest.raises(RequestError, match="HTTP 302 redirect to another location refused") as moved:
                await transport.send(PlainRequest("X", "GET", base + "moved"))
            assert moved.value.code == "302" and len(seen) == 1  # the Location was not asked
            with pytest.raises(TransportError, match="timeout: no answer within"):
                await transport.send(PlainRequest("X", "GET", base + "slow?token=SECRET", timeout=0.3))
            with pytest.raises(MalformedResponseError, match="larger than the 1 KiB cap"):
                await transport.send(PlainRequest("X", "GET", base + "big", max_body=1024))
            with pytest.raises(TransportError) as info:
                await transport.send(PlainRequest("X", "GET", f"http://127.0.0.1:{free_port()}/?token=SECRET"))
            assert info.value.code == "connection_error" and "SECRET" not in str(info.value)
            transport.attach(None)
            with pytest.raises(RequestError):  # one-off session, uncounted, no redirect either
                await transport.send(PlainRequest("X", "GET", base + "moved"))
    finally:
        await server.close()
    assert stats.requests == {("X", "Throttling.User"): 1, ("X", "302"): 1, ("X", "timeout"): 1,
                              ("X", "malformed_response"): 1, ("X", "connection_error"): 1}


# --- ECS RAM role -----------------------------------------------------------------------------------


@pytest.fixture
async def hardened() -> AsyncIterator[World]:
    """An instance in security hardening mode (IMDSv2 required)."""
    async for w in _world(Clock(1_800_000_000.0), require_token=True):
        yield w


async def test_ecs_imdsv2_path(hardened: World) -> None:
    """Nothing else configured: the metadata service's role credentials, via an IMDSv2 token."""
    transport = PlainTransport()
    provider = default_chain(None, None, None, {}, CredentialsSettings(metadata_endpoint=hardened.imds_url),
                             transport)
    assert isinstance(provider, EcsRoleProvider)
    stats = ApiStats()
    async with AlikafkaClient(api_settings(hardened.base), provider, RateLimiter(1000), stats,
                              clock=hardened.clock, transport=transport) as client:
        await client.get_consumer_progress(REGION, INSTANCE, GROUP)
    assert [(r.method, r.mode, r.status) for r in hardened.imds.records] == [
        ("PUT", "v2", 200), ("GET", "v2", 200), ("GET", "v2", 200)]
    assert stats.requests[("ECSMetadata", "200")] == 3  # token, role name, credentials
    assert "AlikafkaExporterRole" in provider.source and "IMDSv2" in provider.source


async def test_ecs_role_from_env_and_refresh(hardened: World) -> None:
    """ALIBABA_CLOUD_ECS_METADATA names the role (no lookup); credentials are refreshed before expiry."""
    env = {"ALIBABA_CLOUD_ECS_METADATA": "AlikafkaExporterRole"}
    chosen = default_chain(None, None, None, env, CredentialsSettings(metadata_endpoint=hardened.imds_url))
    assert isinstance(chosen, EcsRoleProvider) and chosen.role_name == "AlikafkaExporterRole"
    provider = EcsRoleProvider(hardened.imds_url, role_name=chosen.role_name, imdsv1_allowed=False,
                               clock=hardened.clock, sleep=_sleep)
    first = await provider.get()
    assert [r.path for r in hardened.imds.records] == ["/imds/latest/api/token",
                                                       "/imds/latest/meta-data/ram/security-credentials/"
                                                       "AlikafkaExporterRole"]
    hardened.clock.now += 21600 - 200  # inside the 300 s margin
    await poll(hardened, provider)
    assert (await provider.get()).access_key_id != first.access_key_id
    assert {r.code for r in hardened.sim.requests} == {"200"}


async def test_hardened_mode_refuses_imdsv1(hardened: World) -> None:
    """The simulated service refuses token-less requests in hardening mode, and bad TTL headers."""
    async with aiohttp.ClientSession() as http:
        async with http.get(hardened.imds_url + "/latest/meta-data/ram/security-credentials/") as resp:
            assert resp.status == 401
        async with http.put(hardened.imds_url + "/latest/api/token",
                            headers={"X-aliyun-ecs-metadata-token-ttl-seconds": "99999"}) as resp:
            assert resp.status == 400
        async with http.get(hardened.imds_url + "/latest/meta-data/ram/security-credentials/",
                            headers={"X-aliyun-ecs-metadata-token": "made-up"}) as resp:
            assert resp.status == 401


async def test_ecs_v1_fallback_when_allowed_and_refused_when_disabled(tmp_path: Path) -> None:
    """A service without IMDSv2: v1 is used unless ALIBABA_CLOUD_IMDSV1_DISABLED=true."""
    async for w in _world(Clock(1_800_000_000.0), v2_supported=False):
        options = CredentialsSettings(metadata_endpoint=w.imds_url)
        await poll(w, default_chain(None, None, None, {}, options))
        assert [(r.method, r.mode, r.status) for r in w.imds.records] == [
            ("PUT", "v2", 404), ("GET", "v1", 200), ("GET", "v1", 200)]
        w.imds.records.clear()
        strict = default_chain(None, None, None, {"ALIBABA_CLOUD_IMDSV1_DISABLED": "true"}, options)
        assert "IMDSv2 only" in strict.source
        with pytest.raises(CredentialsError, match="IMDSv1 is disabled"):
            await strict.get()
        assert [r.mode for r in w.imds.records] == ["v2"]  # no token-less request was sent


async def test_ecs_disabled_env_skips_it() -> None:
    """ALIBABA_CLOUD_ECS_METADATA_DISABLED=true: no metadata step, the error lists the other sources."""
    with pytest.raises(CredentialsError, match=r"no credentials found.*RRSA.*ECS_METADATA_DISABLED=true"):
        default_chain(None, None, None, NO_ECS, CredentialsSettings())


async def test_ecs_unreachable_fails_fast_naming_the_other_sources() -> None:
    """Off ECS (nothing listening): one quick attempt, and the error says what else to configure."""
    port = free_port()  # bound, then closed: nothing listens there
    provider = default_chain(None, None, None, {}, CredentialsSettings(metadata_endpoint=f"http://127.0.0.1:{port}"))
    started = time.monotonic()
    with pytest.raises(CredentialsError) as info:
        await provider.get()  # no client open: the transport's one-off session, not counted anywhere
    assert time.monotonic() - started < 2.5
    message = str(info.value)
    assert "did not answer" in message and "not an ECS instance?" in message
    assert "ALIBABA_CLOUD_ECS_METADATA_DISABLED=true" in message and "ALIBABA_CLOUD_ACCESS_KEY_ID" in message


# --- chain order and configuration ------------------------------------------------------------------


def test_chain_order_files_env_rrsa_ecs(tmp_path: Path) -> None:
    """Each step wins over the later ones; a partial RRSA set is an error naming what is missing."""
    (tmp_path / "id").write_text("AK")
    (tmp_path / "s").write_text("SK")
    env = {"ALIBABA_CLOUD_ACCESS_KEY_ID": "AK2", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "SK2",
           "ALIBABA_CLOUD_ROLE_ARN": ROLE, "ALIBABA_CLOUD_OIDC_PROVIDER_ARN": PROVIDER,
           "ALIBABA_CLOUD_OIDC_TOKEN_FILE": str(tmp_path / "t")}
    assert isinstance(default_chain(tmp_path / "id", tmp_path / "s", None, env), FileProvider)
    assert isinstance(default_chain(None, None, None, env), StaticProvider)
    rrsa_only = {k: v for k, v in env.items() if "ACCESS_KEY" not in k}
    assert isinstance(default_chain(None, None, None, rrsa_only), RrsaProvider)
    assert isinstance(default_chain(None, None, None, {}), EcsRoleProvider)
    partial = {"ALIBABA_CLOUD_ROLE_ARN": ROLE}
    with pytest.raises(CredentialsError, match="ALIBABA_CLOUD_OIDC_PROVIDER_ARN, ALIBABA_CLOUD_OIDC_TOKEN_FILE are "
                                               "not set"):
        default_chain(None, None, None, partial)


def test_sts_endpoint_resolution(tmp_path: Path) -> None:
    """Config key, then ALIBABA_CLOUD_STS_ENDPOINT, then a regional (VPC) host, then sts.aliyuncs.com."""
    env = {"ALIBABA_CLOUD_ROLE_ARN": ROLE, "ALIBABA_CLOUD_OIDC_PROVIDER_ARN": PROVIDER,
           "ALIBABA_CLOUD_OIDC_TOKEN_FILE": str(tmp_path / "t")}

    def endpoint(options: CredentialsSettings, **extra: str) -> str:
        provider = default_chain(None, None, None, {**env, **extra}, options)
        assert isinstance(provider, RrsaProvider)
        return provider.sts_endpoint

    assert endpoint(CredentialsSettings()) == "https://sts.aliyuncs.com/"
    assert endpoint(CredentialsSettings(sts_region="cn-shanghai")) == "https://sts.cn-shanghai.aliyuncs.com/"
    assert endpoint(CredentialsSettings(sts_region="cn-shanghai", sts_network="vpc")) == \
        "https://sts-vpc.cn-shanghai.aliyuncs.com/"
    assert endpoint(CredentialsSettings(), ALIBABA_CLOUD_STS_REGION="cn-beijing", ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED="true") \
        == "https://sts-vpc.cn-beijing.aliyuncs.com/"
    assert endpoint(CredentialsSettings(), ALIBABA_CLOUD_STS_ENDPOINT="sts.example.internal") == \
        "https://sts.example.internal/"
    assert endpoint(CredentialsSettings(sts_endpoint="http://127.0.0.1:1/sts/"),
                    ALIBABA_CLOUD_STS_ENDPOINT="ignored.example") == "http://127.0.0.1:1/sts/"
    with pytest.raises(CredentialsError, match="ALIBABA_CLOUD_ROLE_SESSION_NAME must be"):
        default_chain(None, None, None, {**env, "ALIBABA_CLOUD_ROLE_SESSION_NAME": "no spaces allowed"})


@pytest.mark.parametrize(("key", "value", "expect"), [
    ("duration_seconds", 600, "credentials.duration_seconds (file"),
    ("metadata_endpoint", "100.100.100.200", "credentials.metadata_endpoint (file"),
    ("sts_endpoint", "https://sts.example/?x=1", "credentials.sts_endpoint (file"),
    ("role_session_name", "x", "credentials.role_session_name (file"),
    ("sts_network", "internal", "credentials.sts_network (file"),
])
def test_credentials_settings_are_validated(tmp_path: Path, key: str, value: object, expect: str) -> None:
    """Bad credentials keys are configuration errors naming the key and the file."""
    config = tmp_path / "c.yaml"
    config.write_text(f"credentials:\n  {key}: {value!r}\n")
    with pytest.raises(ConfigError) as info:
        load_settings({}, {}, config)
    assert any(line.startswith(expect) for line in info.value.problems), info.value.problems


# --- the command line -------------------------------------------------------------------------------


async def run_exporter(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("ALIBABA_CLOUD_", "ALIKAFKA_EXPORTER_"))}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "exporter", *args, env={**base, **env},
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_command_line_with_rrsa(tmp_path: Path) -> None:
    """--check-config names the RRSA source (never a secret); --once polls with STS credentials; exit 0."""
    async for w in _world(None):
        token_file = tmp_path / "token"
        token = w.sts.issue_oidc_token()
        token_file.write_text(token)
        config = tmp_path / "c.yaml"
        config.write_text(f"api: {{endpoint: '{w.base}', region: {REGION}}}\n"
                          f"credentials: {{sts_endpoint: '{w.sts_url}', role_session_name: cli-test}}\n"
                          f"targets: [{{instance_id: {INSTANCE}, groups: [{GROUP}]}}]\n")
        env = w.rrsa_env(token_file)
        code, out, err = await run_exporter("--config.file", str(config), "--check-config", "--log.level", "debug",
                                            env=env)
        assert code == 0, err
        assert f"credentials: rrsa (role {ROLE}" in out
        code, out, err = await run_exporter("--config.file", str(config), "--once", "--log.level", "debug", env=env)
        assert code == 0, err
        assert samples.value(out, "alikafka_consumergroup_up", group=GROUP, instance_id=INSTANCE) == 1
        issued = [k for k in w.sim.auth.keys if k.startswith("STS.")]
        secrets = [token] + [w.sim.auth.keys[k].secret for k in issued] + \
                  [w.sim.auth.keys[k].security_token or "" for k in issued]
        assert issued and not any(s in out or s in err for s in secrets)
        # A failing STS at start is a clear configuration error, without the token.
        w.sts.unavailable = 100
        code, _, err = await run_exporter("--config.file", str(config), "--once", env=env)
        assert code == 2 and "ServiceUnavailable" in err and token not in err


def test_simulator_process_serves_sts_and_metadata(tmp_path: Path) -> None:
    """alikafka-simulator --sts/--ecs-role as its own process; the exporter's --once works through each."""
    port = free_port()
    token_file = tmp_path / "token"
    args = python_module("exporter.simulator", "--listen", f"127.0.0.1:{port}", "--scenario", "builtin:minimal",
                         "--access-key", "unused:unused", "--sts", f"{ROLE}={PROVIDER}", "--oidc-token-file",
                         str(token_file), "--ecs-role", "AlikafkaExporterRole", "--imds-token-required")
    base = f"http://127.0.0.1:{port}"
    config = tmp_path / "c.yaml"
    config.write_text(f"api: {{endpoint: '{base}/', region: {REGION}}}\n"
                      f"credentials: {{sts_endpoint: '{base}/sts/', metadata_endpoint: '{base}/ecs-metadata'}}\n"
                      f"targets: [{{instance_id: {INSTANCE}, groups: [{GROUP}]}}]\n")
    with process(args, clean_env(), tmp_path / "sim.log"):
        wait_for(lambda: True if http_get(f"{base}/_sim/truth")[0] == 200 else None, 20, "simulator")
        rrsa_env = {"ALIBABA_CLOUD_ROLE_ARN": ROLE, "ALIBABA_CLOUD_OIDC_PROVIDER_ARN": PROVIDER,
                    "ALIBABA_CLOUD_OIDC_TOKEN_FILE": str(token_file)}
        ecs_env = {"ALIBABA_CLOUD_IMDSV1_DISABLED": "true"}
        for env, source in ((rrsa_env, "rrsa (role"), (ecs_env, "ecs ram role (AlikafkaExporterRole")):
            check = subprocess.run(python_module("exporter", "--config.file", str(config), "--check-config"),
                                   env=clean_env(**env), capture_output=True, text=True, timeout=60, check=False)
            assert check.returncode == 0 and source in check.stdout, check.stderr
            once = subprocess.run(python_module("exporter", "--config.file", str(config), "--once"),
                                  env=clean_env(**env), capture_output=True, text=True, timeout=60, check=False)
            assert once.returncode == 0, once.stderr
            assert samples.value(once.stdout, "alikafka_consumergroup_up", group=GROUP, instance_id=INSTANCE) == 1
    assert token_file.read_text().strip() not in (tmp_path / "sim.log").read_text()


async def test_official_sdk_oidc_provider_accepts_the_simulated_sts(tmp_path: Path) -> None:
    """The official alibabacloud_credentials OIDC provider (HTTPS, GET with a query) gets keys the gateway takes."""
    from alibabacloud_credentials.provider.oidc import OIDCRoleArnCredentialsProvider  # noqa: PLC0415
    from Tea.core import TeaCore  # noqa: PLC0415

    ca = trustme.CA()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    async for w in _world(None):
        runner = web.AppRunner(build_sts_app(w.sts))
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port, ssl_context=context).start()
        try:
            token_file = tmp_path / "token"
            token_file.write_text(w.sts.issue_oidc_token())
            sdk = OIDCRoleArnCredentialsProvider(role_arn=ROLE, oidc_provider_arn=PROVIDER,
                                                 oidc_token_file_path=str(token_file), role_session_name="sdk-test",
                                                 sts_endpoint=f"127.0.0.1:{port}")
            sdk._runtime_options["ca"] = str(ca_file)  # no public option for a CA bundle; TeaCore reads this one
            got = await asyncio.to_thread(sdk.get_credentials)
        finally:
            for key in [k for k in TeaCore._sessions if f"127.0.0.1:{port}" in k]:
                TeaCore._sessions.pop(key).close()  # the SDK's cached keep-alive connection
            await asyncio.sleep(0.05)  # let the server see the close before it shuts down
            await runner.cleanup()
        assert [(r.status, r.session_name) for r in w.sts.records] == [(200, "sdk-test")]
        creds = Credentials(got.get_access_key_id(), Secret(got.get_access_key_secret()),
                            Secret(got.get_security_token()))
        await poll(w, StaticProvider(creds, "official SDK"))
