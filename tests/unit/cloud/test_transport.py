"""The client on a hostile network: answers in pieces, slow bodies, gzip bombs, redirects, TLS, plain http.

Every test runs the exporter's real client against the real simulator (or a real recording server) on
127.0.0.1; the simulator sends answers in pieces with pauses (``write_pieces``, ``slow_body``), serves
TLS with a test CA, and its gateway refuses unsigned headers (strict signing, the default).
"""

from __future__ import annotations

import asyncio
import gc
import ssl
import subprocess
import tracemalloc
from pathlib import Path

import pytest
import trustme
from aiohttp import web
from aiohttp.test_utils import TestServer

from exporter.app import Plan, cleartext_endpoints, summary_lines
from exporter.cloud.client import AlikafkaClient
from exporter.cloud.credentials import Credentials, Secret, StaticProvider
from exporter.cloud.credentials_remote import EcsRoleProvider, RrsaProvider
from exporter.cloud.errors import MalformedResponseError, RequestError, TransportError
from exporter.cloud.ratelimit import RateLimiter
from exporter.cloud.stats import ApiStats
from exporter.config.errors import ConfigError
from exporter.config.settings import load_settings
from exporter.simulator import FaultRule, Scenario, Simulator, build_app
from exporter.simulator.faults import gzip_bomb
from exporter.simulator.imds import MetadataService, add_metadata_routes
from exporter.simulator.sts import StsService, add_sts_routes
from tests.support.fakes import api_settings
from tests.support.procs import clean_env, free_port, process, python_module

INSTANCE, GROUP, REGION = "alikafka_post-cn-test0001", "orders-consumer", "cn-hangzhou"
KEY_ID, SECRET, TOKEN = "STS.transport", "transport-secret", "transport-sts-token"
ROLE = "acs:ram::1234567890123456:role/alikafka-exporter"
PROVIDER = "acs:ram::1234567890123456:oidc-provider/ack-rrsa-c1234"


def simulator() -> Simulator:
    sim = Simulator(Scenario.builtin("minimal"), access_keys={KEY_ID: SECRET}, seed=5,
                    security_tokens={KEY_ID: TOKEN})
    sim.set_qps_limit("GetConsumerProgress", 1000)
    return sim


async def serve(app: web.Application, context: ssl.SSLContext | None = None) -> TestServer:
    server = TestServer(app, host="127.0.0.1")
    await server.start_server(ssl=context)
    return server


def client(base: str, trust: ssl.SSLContext | None = None, **options: object) -> AlikafkaClient:
    opts = api_settings(base, **{"max_retries": 0, **options})
    creds = StaticProvider(Credentials(KEY_ID, Secret(SECRET), Secret(TOKEN)), "test")
    if trust is None:  # the plain call, as the exporter makes it
        return AlikafkaClient(opts, creds, RateLimiter(1000), ApiStats())
    return AlikafkaClient(opts, creds, RateLimiter(1000), ApiStats(), trust=trust)


class Recorder:
    """Another origin: records every request that reaches it (nothing should)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, str]]] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append((str(request.rel_url), dict(request.headers)))
        return web.json_response({"RequestId": "EVIL", "Success": True, "Code": 200,
                                  "ConsumerProgress": {"TotalDiff": 0, "TopicList": {"TopicList": []}}})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app


@pytest.mark.parametrize("signature", ["v3", "v1"])
async def test_answer_in_two_writes_200ms_apart_is_read_whole(signature: str) -> None:
    """A valid GetConsumerProgress answer sent in two writes 200 ms apart is parsed (it used to be read in part)."""
    sim = simulator()
    server = await serve(build_app(sim, write_pieces=2, piece_pause=0.2))
    try:
        async with client(str(server.make_url("/")), signature=signature) as api:
            progress, request_id = await api.get_consumer_progress(REGION, INSTANCE, GROUP)
        assert request_id and [t.topic for t in progress.topics] == ["orders"]
        assert sim.requests[-1].signature == signature
    finally:
        await server.close()


async def test_sts_and_metadata_answers_in_pieces_are_read_whole(tmp_path: Path) -> None:
    """AssumeRoleWithOIDC and the ECS metadata answers, each in three writes 200 ms apart, give credentials."""
    sim = simulator()
    sts = StsService(sim)
    sts.add_role(ROLE, PROVIDER, max_session_duration=3600)
    app = build_app(sim, write_pieces=3, piece_pause=0.2)
    add_sts_routes(app, sts, "/sts/")
    add_metadata_routes(app, MetadataService(sim), "/imds")
    server = await serve(app)
    try:
        token = tmp_path / "token"
        token.write_text(sts.issue_oidc_token())
        rrsa = RrsaProvider(ROLE, PROVIDER, token, sts_endpoint=str(server.make_url("/sts/")))
        assert (await rrsa.fetch()).security_token is not None
        ecs = EcsRoleProvider(str(server.make_url("/imds")), read_timeout=2.0)
        assert (await ecs.fetch()).security_token is not None
    finally:
        await server.close()


async def test_gzip_bomb_fails_the_call_at_the_cap() -> None:
    """A 70 KiB gzip answer that expands to 64 MiB fails with the cap named, after reading at most the cap."""
    sim = simulator()
    sim.add_fault(FaultRule(kind="gzip_bomb", count=1))
    server = await serve(build_app(sim))
    try:
        async with client(str(server.make_url("/"))) as api:
            with pytest.raises(MalformedResponseError) as info:
                await api.get_consumer_progress(REGION, INSTANCE, GROUP)
            assert info.value.code == "malformed_response"
            assert str(info.value) == "malformed_response: answer larger than the 4 MiB cap (api.max_response_size)"
            await api.get_consumer_progress(REGION, INSTANCE, GROUP)  # the next answer is fine
    finally:
        await server.close()


async def test_body_over_the_cap_fails_clearly() -> None:
    """A plain answer larger than api.max_response_size fails with the cap named, never the URL."""
    sim = simulator()
    server = await serve(build_app(sim, write_pieces=4, piece_pause=0.01))
    try:
        async with client(str(server.make_url("/")), max_response_size=512) as api:
            with pytest.raises(MalformedResponseError, match=r"larger than the 512 bytes cap \(api.max_response_size\)"):
                await api.get_consumer_progress(REGION, INSTANCE, GROUP)
    finally:
        await server.close()


async def test_a_body_that_trickles_past_the_timeout_is_a_timeout() -> None:
    """An answer whose pieces come slower than api.timeout allows fails as a timeout naming the time."""
    sim = simulator()
    sim.add_fault(FaultRule(kind="slow_body", pieces=3, delay=0.4))
    server = await serve(build_app(sim))
    try:
        async with client(str(server.make_url("/")), timeout=0.5) as api:
            with pytest.raises(TransportError, match=r"^timeout: answer not complete within the 0.5s timeout \(\d+ bytes"):
                await api.get_consumer_progress(REGION, INSTANCE, GROUP)
    finally:
        await server.close()


@pytest.mark.parametrize("signature", ["v3", "v1"])
async def test_a_redirect_to_another_origin_fails_and_sends_nothing_there(signature: str) -> None:
    """A 307 to another origin fails the pair as "307"; the other origin receives nothing (no signature, no token)."""
    recorder = Recorder()
    other = await serve(recorder.app())
    sim = simulator()
    sim.add_fault(FaultRule(kind="redirect", location=str(other.make_url("/steal"))))
    server = await serve(build_app(sim))
    try:
        async with client(str(server.make_url("/")), signature=signature) as api:
            with pytest.raises(RequestError) as info:
                await api.get_consumer_progress(REGION, INSTANCE, GROUP)
        assert info.value.code == "307" and info.value.http_status == 307
        assert "redirect to another location refused" in str(info.value)
        assert recorder.seen == []
    finally:
        await server.close()
        await other.close()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def tls_pair(ca: trustme.CA) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context for 127.0.0.1 signed by ``ca``, and a client context trusting ``ca``."""
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server)
    client_side = ssl.create_default_context()
    ca.configure_trust(client_side)
    return server, client_side


async def test_tls_answers_in_pieces_with_pauses(ca: trustme.CA) -> None:
    """Over TLS, every answer in five writes 100 ms apart: the client reads them whole (v3 and v1)."""
    sim = simulator()
    server_ctx, trust = tls_pair(ca)
    server = await serve(build_app(sim, write_pieces=5, piece_pause=0.1), server_ctx)
    try:
        base = str(server.make_url("/"))
        assert base.startswith("https://")
        for signature in ("v3", "v1"):
            async with client(base, trust, signature=signature) as api:
                progress, _ = await api.get_consumer_progress(REGION, INSTANCE, GROUP)
            assert progress.topics
    finally:
        await server.close()


async def test_https_to_http_redirect_is_refused(ca: trustme.CA) -> None:
    """An https endpoint redirecting to plain http: refused, nothing reaches the http origin."""
    recorder = Recorder()
    other = await serve(recorder.app())
    sim = simulator()
    sim.add_fault(FaultRule(kind="redirect", location=str(other.make_url("/"))))
    server_ctx, trust = tls_pair(ca)
    server = await serve(build_app(sim), server_ctx)
    try:
        async with client(str(server.make_url("/")), trust) as api:
            with pytest.raises(RequestError, match="307"):
                await api.get_consumer_progress(REGION, INSTANCE, GROUP)
        assert recorder.seen == []
    finally:
        await server.close()
        await other.close()


async def test_credentials_redirect_is_a_clear_error(tmp_path: Path) -> None:
    """STS or the metadata service answering 3xx: a credentials error naming the status; the OIDC token
    and the metadata request never reach the Location."""
    recorder = Recorder()
    other = await serve(recorder.app())

    async def moved(_: web.Request) -> web.Response:
        return web.Response(status=302, headers={"Location": str(other.make_url("/"))})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", moved)
    server = await serve(app)
    try:
        token = tmp_path / "token"
        token.write_text("oidc-token-value")
        rrsa = RrsaProvider(ROLE, PROVIDER, token, sts_endpoint=str(server.make_url("/sts/")), attempts=1)
        with pytest.raises(Exception, match="HTTP 302 redirect to another location refused"):
            await rrsa.fetch()
        ecs = EcsRoleProvider(str(server.make_url("/imds")), attempts=1)
        with pytest.raises(Exception, match="HTTP 302 redirect to another location refused"):
            await ecs.fetch()
        assert recorder.seen == []
    finally:
        await server.close()
        await other.close()


async def test_strict_signing_accepts_the_exporter_and_refuses_an_unsigned_content_type() -> None:
    """The strict gateway (the default) passes the exporter's v3 and v1 requests; a v3 request carrying a
    Content-Type it did not sign (what aiohttp adds by itself) is refused as IncompleteSignature."""
    sim = simulator()
    assert sim.auth.strict
    server = await serve(build_app(sim))
    try:
        for signature in ("v3", "v1"):
            async with client(str(server.make_url("/")), signature=signature) as api:
                await api.get_consumer_progress(REGION, INSTANCE, GROUP)
        assert [r.code for r in sim.requests] == ["200", "200"]
        async with client(str(server.make_url("/"))) as api:
            url, headers = api._sign("GetConsumerProgress", REGION, {"RegionId": REGION, "InstanceId": INSTANCE,
                                                                    "ConsumerId": GROUP},
                                     Credentials(KEY_ID, Secret(SECRET), Secret(TOKEN)))
            assert api._session is not None
            async with api._session.post(url, headers=headers, data=b"") as resp:  # octet-stream, unsigned
                body = await resp.json()
        assert (resp.status, body["Code"]) == (400, "IncompleteSignature")
        assert "content-type" in body["Message"]
        sim.auth.strict = False
        async with client(str(server.make_url("/"))) as api:
            url, headers = api._sign("GetConsumerProgress", REGION, {"RegionId": REGION, "InstanceId": INSTANCE,
                                                                    "ConsumerId": GROUP},
                                     Credentials(KEY_ID, Secret(SECRET), Secret(TOKEN)))
            assert api._session is not None
            async with api._session.post(url, headers=headers, data=b"") as resp:
                assert resp.status == 200  # a lenient gateway lets it through
    finally:
        await server.close()


def test_max_response_size_setting() -> None:
    """api.max_response_size takes bytes or a size; out of bounds or unreadable values name the key."""
    assert load_settings({}, {}, None).api.max_response_size == 4 * 1024 * 1024
    assert load_settings({}, {"ALIKAFKA_EXPORTER_API__MAX_RESPONSE_SIZE": "512KiB"}, None).api.max_response_size \
        == 512 * 1024
    assert load_settings({"api": {"max_response_size": 1_000_000}}, {}, None).api.max_response_size == 1_000_000
    for bad in ("1KiB", "lots", "1TiB", True, 10**12):
        with pytest.raises(ConfigError, match=r"^api\.max_response_size \(flag\): "):
            load_settings({"api": {"max_response_size": bad}}, {}, None)


def test_bad_max_response_size_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A bad value in the config file stops the exporter with exit code 2 naming the key."""
    from exporter.__main__ import main  # noqa: PLC0415 - the entry point, as a user runs it

    config = tmp_path / "config.yaml"
    config.write_text("api:\n  max_response_size: 3 bananas\ntargets: []\n")
    assert main(["--config.file", str(config), "--check-config"]) == 2
    assert "api.max_response_size" in capsys.readouterr().err


def _plan(endpoint: str, credentials: object = None) -> tuple[object, Plan]:
    settings = load_settings({"api": {"endpoint": endpoint, "region": REGION}}, {}, None) if endpoint else \
        load_settings({"api": {"region": REGION}}, {}, None)
    provider = credentials or StaticProvider(Credentials("id", Secret("s")), "test")
    return settings, Plan((), settings.api, provider)  # type: ignore[arg-type]


@pytest.mark.parametrize(("endpoint", "warned"), [
    ("", False), ("https://alikafka.example.com/", False), ("http://127.0.0.1:9898/", False),
    ("http://localhost:9898/", False), ("http://[::1]:9898/", False), ("http://alikafka.internal:8080/", True),
    ("http://10.0.0.5/", True),
])
def test_plain_http_api_endpoint_warning(endpoint: str, warned: bool) -> None:
    """A plain-http API endpoint on a non-loopback host is warned about (it carries signatures and tokens)."""
    settings, plan = _plan(endpoint)
    lines = cleartext_endpoints(settings, plan)  # type: ignore[arg-type]
    assert bool(lines) == warned
    if warned:
        assert lines == [f"the API endpoint {endpoint} is plain http: signatures and STS tokens travel in clear"]
        assert f"warning: {lines[0]}" in summary_lines(settings, plan)  # type: ignore[arg-type]


def test_plain_http_credential_endpoints_warning(tmp_path: Path) -> None:
    """STS over http off loopback is warned about; the ECS metadata service on 100.100.100.200 is not
    (plain http by design, link-local), but one elsewhere over http is."""
    token = tmp_path / "token"
    sts = RrsaProvider(ROLE, PROVIDER, token, sts_endpoint="http://sts.example.com/")
    settings, plan = _plan("", sts)
    assert cleartext_endpoints(settings, plan) == [  # type: ignore[arg-type]
        "the STS endpoint http://sts.example.com/ is plain http: the OIDC token and the issued keys travel in clear"]
    settings, plan = _plan("", RrsaProvider(ROLE, PROVIDER, token, sts_endpoint="https://sts.aliyuncs.com/"))
    assert cleartext_endpoints(settings, plan) == []  # type: ignore[arg-type]
    settings, plan = _plan("", EcsRoleProvider("http://100.100.100.200"))
    assert cleartext_endpoints(settings, plan) == []  # type: ignore[arg-type]
    settings, plan = _plan("", EcsRoleProvider("http://metadata.example.com"))
    assert cleartext_endpoints(settings, plan) == [  # type: ignore[arg-type]
        "the ECS metadata endpoint http://metadata.example.com is plain http off the link-local 100.100.100.200: "
        "the role's keys travel in clear"]


async def test_answers_keep_coming_while_slow_bodies_pass() -> None:
    """slow_body on some answers slows them down but they still parse (the soak's standing fault)."""
    sim = simulator()
    sim.add_fault(FaultRule(kind="slow_body", pieces=4, delay=0.05))
    server = await serve(build_app(sim))
    try:
        async with client(str(server.make_url("/"))) as api:
            results = await asyncio.gather(*(api.get_consumer_progress(REGION, INSTANCE, GROUP) for _ in range(3)))
        assert all(progress.topics for progress, _ in results)
    finally:
        await server.close()


async def test_simulator_command_serves_tls_in_pieces(ca: trustme.CA, tmp_path: Path) -> None:
    """``alikafka-simulator --tls-cert --tls-key --write-pieces 3 --piece-pause 0.1``: the client reads it."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    issued = ca.issue_cert("127.0.0.1")
    issued.cert_chain_pems[0].write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    _, trust = tls_pair(ca)
    port = free_port()
    args = python_module("exporter.simulator", "--listen", f"127.0.0.1:{port}", "--scenario", "builtin:minimal",
                         "--access-key", f"{KEY_ID}:{SECRET}", "--tls-cert", str(cert), "--tls-key", str(key),
                         "--write-pieces", "3", "--piece-pause", "0.1")
    with process(args, clean_env(), tmp_path / "sim.log"):
        opts = api_settings(f"https://127.0.0.1:{port}/", max_retries=0)
        creds = StaticProvider(Credentials(KEY_ID, Secret(SECRET)), "test")
        for _ in range(100):
            try:
                async with AlikafkaClient(opts, creds, RateLimiter(1000), ApiStats(), trust=trust) as api:
                    progress, _ = await api.get_consumer_progress(REGION, INSTANCE, GROUP)
                break
            except TransportError:  # not listening yet
                await asyncio.sleep(0.1)
        else:
            pytest.fail("the simulator did not answer over TLS")
    assert progress.topics
    log = (tmp_path / "sim.log").read_text()
    assert "tls=true" in log and "write_pieces=3" in log
    bad = await asyncio.to_thread(subprocess.run, python_module("exporter.simulator", "--tls-cert", str(cert)),
                                  env=clean_env(), capture_output=True, text=True, timeout=30, check=False)
    assert bad.returncode == 2 and "--tls-cert and --tls-key go together" in bad.stderr


async def test_gzip_bombs_leave_nothing_behind() -> None:
    """Five gzip bombs in a row: Python memory stays within the cap while reading and returns after each
    (the refused chunks are not kept alive by the error's traceback until a garbage collection)."""
    sim = simulator()
    server = await serve(build_app(sim))
    cap = 1024 * 1024
    try:
        async with client(str(server.make_url("/")), max_response_size=cap) as api:
            await api.get_consumer_progress(REGION, INSTANCE, GROUP)
            sim.add_fault(FaultRule(kind="gzip_bomb", count=5, size=64 * cap))
            await asyncio.to_thread(gzip_bomb, 64 * cap)  # the simulator's side, built before measuring
            gc.collect()
            gc.disable()
            tracemalloc.start()
            try:
                for _ in range(5):
                    with pytest.raises(MalformedResponseError, match="cap"):
                        await api.get_consumer_progress(REGION, INSTANCE, GROUP)
                current, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
                gc.enable()
        assert peak < 4 * cap, f"peak {peak} bytes"  # the cap, plus what aiohttp holds in its buffers
        assert current < cap, f"{current} bytes still held after five bombs"  # each kept its ~cap before
    finally:
        await server.close()
