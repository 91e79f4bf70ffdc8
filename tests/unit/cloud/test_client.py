"""The signed client against the real simulator on 127.0.0.1: signatures, retries, errors, shapes."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from exporter.cloud.client import AlikafkaClient
from exporter.cloud.credentials import Credentials, Secret, StaticProvider
from exporter.cloud.errors import (
    AuthError,
    ForbiddenError,
    MalformedResponseError,
    NotFoundError,
    RequestError,
    ServerError,
    ThrottledError,
    TransportError,
)
from exporter.cloud.ratelimit import RateLimiter
from exporter.cloud.stats import ApiStats
from exporter.simulator import FaultRule, Scenario, Simulator, build_app
from tests.support.fakes import api_settings

INSTANCE = "alikafka_post-cn-test0001"
GROUP = "orders-consumer"
REGION = "cn-hangzhou"
KEY_ID, SECRET = "LTAI-test-key", "test-secret-value-9f8e7d"


class RecordingSleep:
    """Records backoff delays and waits only a token time, so retry tests do not take seconds."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(0)


@pytest.fixture
async def sim() -> AsyncIterator[tuple[Simulator, str]]:
    simulator = Simulator(Scenario.builtin("minimal"), access_keys={KEY_ID: SECRET}, seed=7)
    simulator.set_qps_limit("GetConsumerProgress", 1000)  # flow control has its own test
    server = TestServer(build_app(simulator), host="127.0.0.1")
    await server.start_server()
    yield simulator, str(server.make_url("/"))
    await server.close()


MakeClient = Callable[..., Awaitable[tuple[AlikafkaClient, ApiStats, RecordingSleep]]]


@pytest.fixture
async def make_client(sim: tuple[Simulator, str]) -> AsyncIterator[MakeClient]:
    clients: list[AlikafkaClient] = []

    async def factory(
        *, secret: str = SECRET, token: str | None = None, key_id: str = KEY_ID, **options: object
    ) -> tuple[AlikafkaClient, ApiStats, RecordingSleep]:
        opts = api_settings(sim[1], **options)
        creds = Credentials(key_id, Secret(secret), Secret(token) if token else None)
        stats, sleep = ApiStats(), RecordingSleep()
        client = AlikafkaClient(opts, StaticProvider(creds, "test"), RateLimiter(1000), stats, sleep=sleep)
        await client.__aenter__()
        clients.append(client)
        return client, stats, sleep

    yield factory
    for client in clients:
        await client.__aexit__(None, None, None)


@pytest.mark.parametrize("signature", ["v3", "v1"])
async def test_both_signatures_are_accepted(make_client: MakeClient, sim: tuple[Simulator, str], signature: str) -> None:
    """v3 and v1 requests pass the simulator's gateway and parse into progress matching its truth."""
    client, stats, _ = await make_client(signature=signature)
    progress, request_id = await client.get_consumer_progress(REGION, INSTANCE, GROUP)
    assert request_id
    assert progress.topics and progress.total_diff is not None
    assert progress.last_timestamp_ms is not None
    assert stats.requests == {("GetConsumerProgress", "200"): 1}


async def test_hide_last_timestamp_is_sent(make_client: MakeClient, sim: tuple[Simulator, str]) -> None:
    """hide_last_timestamp sends HideLastTimestamp=true, and timestamps come back absent."""
    client, _, _ = await make_client(hide_last_timestamp=True)
    progress, _ = await client.get_consumer_progress(REGION, INSTANCE, GROUP)
    assert progress.last_timestamp_ms is None
    assert all(p.last_timestamp_ms is None for t in progress.topics for p in t.partitions)


async def test_wrong_secret_is_an_auth_error_never_retried(
    make_client: MakeClient, sim: tuple[Simulator, str], caplog: pytest.LogCaptureFixture
) -> None:
    """SignatureDoesNotMatch is not retried and the message carries no secret or string to sign."""
    client, stats, sleep = await make_client(secret="wrong-secret-123")
    with caplog.at_level(logging.DEBUG), pytest.raises(AuthError) as info:
        await client.get_consumer_progress(REGION, INSTANCE, GROUP)
    assert info.value.code == "SignatureDoesNotMatch"
    assert sleep.delays == []
    assert stats.requests == {("GetConsumerProgress", "SignatureDoesNotMatch"): 1}
    for text in (str(info.value), caplog.text):
        assert "wrong-secret-123" not in text and "string to sign" not in text


async def test_an_echoed_string_to_sign_is_cut_however_it_is_worded() -> None:
    """A gateway that words or cases its echo differently still has it cut from the error (the token is in it)."""
    async def refuse(_: web.Request) -> web.Response:
        return web.json_response({"RequestId": "R-1", "Code": "SignatureDoesNotMatch",
                                  "Message": "Signature mismatch. String To Sign: POST&%2F&SecurityToken%3Dtok-777"},
                                 status=400)

    app = web.Application()
    app.router.add_post("/", refuse)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    creds = Credentials(KEY_ID, Secret(SECRET), Secret("tok-777"))
    try:
        async with AlikafkaClient(api_settings(str(server.make_url("/")), max_retries=0), StaticProvider(creds, "t"),
                                  RateLimiter(1000), ApiStats()) as client:
            with pytest.raises(AuthError) as info:
                await client.get_consumer_progress(REGION, INSTANCE, GROUP)
    finally:
        await server.close()
    assert info.value.message == "Signature mismatch"
    assert "tok-777" not in str(info.value) and "POST&" not in str(info.value)


async def test_unknown_key_id(make_client: MakeClient) -> None:
    """An unknown AccessKey ID is an auth error."""
    client, _, _ = await make_client(key_id="LTAI-nobody")
    with pytest.raises(AuthError, match="InvalidAccessKeyId"):
        await client.get_consumer_progress(REGION, INSTANCE, GROUP)


async def test_throttling_is_retried_after_retry_after(make_client: MakeClient, sim: tuple[Simulator, str]) -> None:
    """Throttling.User twice, then success; each backoff is at least the server's retry-after."""
    sim[0].add_fault(FaultRule(kind="throttle", count=2))
    client, stats, sleep = await make_client()
    progress, _ = await client.get_consumer_progress(REGION, INSTANCE, GROUP)
    assert progress.topics
    assert stats.requests == {("GetConsumerProgress", "Throttling.User"): 2, ("GetConsumerProgress", "200"): 1}
    assert len(sleep.delays) == 2 and all(d > 0 for d in sleep.delays)


async def test_server_errors_retry_then_give_up(make_client: MakeClient, sim: tuple[Simulator, str]) -> None:
    """5xx is retried max_retries times, then raised as ServerError."""
    sim[0].add_fault(FaultRule(kind="http_500"))
    client, stats, sleep = await make_client(max_retries=2)
    with pytest.raises(ServerError):
        await client.get_consumer_progress(REGION, INSTANCE, GROUP)
    assert sum(stats.requests.values()) == 3 and len(sleep.delays) == 2


async def test_html_error_page_is_a_server_error(make_client: MakeClient, sim: tuple[Simulator, str]) -> None:
    """An HTML 502 page counts under its HTTP status and is retried."""
    sim[0].add_fault(FaultRule(kind="html", count=1))
    client, stats, _ = await make_client()
    await client.get_consumer_progress(REGION, INSTANCE, GROUP)
    assert stats.requests[("GetConsumerProgress", "502")] == 1


async def test_timeout_and_reset_are_transport_errors(make_client: MakeClient, sim: tuple[Simulator, str]) -> None:
    """A hung answer times out ('timeout'); a reset connection is 'connection_error'; both retried."""
    sim[0].add_fault(FaultRule(kind="timeout", delay=5.0))
    client, stats, _ = await make_client(timeout=0.3, max_retries=1)
    with pytest.raises(TransportError) as info:
        await client.get_consumer_progress(REGION, INSTANCE, GROUP)
    assert info.value.code == "timeout" and stats.requests == {("GetConsumerProgress", "timeout"): 2}
    sim[0].clear_faults()
    sim[0].add_fault(FaultRule(kind="reset", count=1))
    client2, stats2, _ = await make_client()
    await client2.get_consumer_progress(REGION, INSTANCE, GROUP)
    assert stats2.requests[("GetConsumerProgress", "connection_error")] == 1


async def test_unreachable_endpoint(make_client: MakeClient) -> None:
    """A closed port gives connection_error after the retries."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    client, stats, _ = await make_client(endpoint=f"http://127.0.0.1:{port}/", max_retries=1)
    with pytest.raises(TransportError, match="connection_error"):
        await client.get_consumer_progress(REGION, INSTANCE, GROUP)
    assert stats.requests == {("GetConsumerProgress", "connection_error"): 2}


async def test_truncated_json_is_malformed_and_not_retried(make_client: MakeClient, sim: tuple[Simulator, str]) -> None:
    """A cut-off JSON body on HTTP 200 is malformed_response."""
    sim[0].add_fault(FaultRule(kind="truncated", count=1))
    client, stats, sleep = await make_client()
    with pytest.raises(MalformedResponseError):
        await client.get_consumer_progress(REGION, INSTANCE, GROUP)
    assert stats.requests == {("GetConsumerProgress", "malformed_response"): 1} and sleep.delays == []


@pytest.mark.parametrize("kind", ["single_object", "numbers_as_strings", "missing_wrappers", "root_wrapper"])
async def test_odd_shapes_parse_like_the_documented_one(
    make_client: MakeClient, sim: tuple[Simulator, str], kind: str
) -> None:
    """Shape variants give the same topics and partitions as the documented shape."""
    client, _, _ = await make_client()
    normal, _ = await client.get_consumer_progress(REGION, INSTANCE, GROUP)
    sim[0].add_fault(FaultRule(kind=kind))
    odd, _ = await client.get_consumer_progress(REGION, INSTANCE, GROUP)
    assert [t.topic for t in odd.topics] == [t.topic for t in normal.topics]
    assert [p.partition for t in odd.topics for p in t.partitions] == [
        p.partition for t in normal.topics for p in t.partitions]


async def test_http_200_with_success_false(make_client: MakeClient, sim: tuple[Simulator, str]) -> None:
    """HTTP 200 with Success false is an error under the body's Code."""
    sim[0].add_fault(FaultRule(kind="success_false", count=1))
    client, stats, _ = await make_client(max_retries=0)
    with pytest.raises((RequestError, ServerError, ThrottledError)):
        await client.get_consumer_progress(REGION, INSTANCE, GROUP)
    assert ("GetConsumerProgress", "200") not in stats.requests


async def test_unknown_group_is_not_found(make_client: MakeClient) -> None:
    """A group that does not exist is NotFoundError and not retried."""
    client, _, sleep = await make_client()
    with pytest.raises(NotFoundError):
        await client.get_consumer_progress(REGION, INSTANCE, "no-such-group")
    assert sleep.delays == []


async def test_security_token_is_sent_for_sts_keys(sim: tuple[Simulator, str]) -> None:
    """An STS key works only with its token; without it the gateway refuses."""
    simulator = Simulator(Scenario.builtin("minimal"), access_keys={"STS.key": "sts-secret"}, seed=1,
                          security_tokens={"STS.key": "the-token"})
    simulator.set_qps_limit("GetConsumerProgress", 1000)
    server = TestServer(build_app(simulator), host="127.0.0.1")
    await server.start_server()
    try:
        for signature in ("v3", "v1"):
            opts = api_settings(str(server.make_url("/")), signature=signature)
            good = StaticProvider(Credentials("STS.key", Secret("sts-secret"), Secret("the-token")), "t")
            async with AlikafkaClient(opts, good, RateLimiter(100), ApiStats()) as client:
                await client.get_consumer_progress(REGION, INSTANCE, GROUP)
            bad = StaticProvider(Credentials("STS.key", Secret("sts-secret"), None), "t")
            async with AlikafkaClient(opts, bad, RateLimiter(100), ApiStats()) as client:
                with pytest.raises((AuthError, ForbiddenError)):
                    await client.get_consumer_progress(REGION, INSTANCE, GROUP)
    finally:
        await server.close()
