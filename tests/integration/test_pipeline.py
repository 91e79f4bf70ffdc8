"""Client, poller and collector together against the simulator: bad input fails only the pairs it touches.

Each failure mode of the issue's "bad input" list gives up 0 for its pair, one clear log line and a
counted api_requests_total{code}; the other pairs and the process carry on. Secrets never show.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest
from aiohttp.test_utils import TestServer

from exporter.cloud.client import AlikafkaClient
from exporter.cloud.credentials import Credentials, Secret, StaticProvider
from exporter.cloud.ratelimit import RateLimiter
from exporter.cloud.stats import ApiStats
from exporter.polling.poller import Poller
from exporter.simulator import FaultRule, Scenario, Simulator, build_app
from exporter.targets.pair import Pair
from exporter.web.page import PageContext, render
from tests.support.fakes import api_settings, exposition_text
from tests.support.samples import has, value

SECRET = "pipeline-secret-4b1d"
TOKEN = "pipeline-token-77aa"
INSTANCE = "alikafka_post-cn-pipe0001"
GROUPS = ["healthy", "ghost", "throttled", "html", "truncated", "slow"]
SCENARIO = {
    "seed": 5,
    "instances": [{
        "instance_id": INSTANCE, "region": "cn-hangzhou",
        "topics": [{"name": "t", "partitions": 2, "rate": 4}],
        "groups": [{"name": g, "topics": ["t"]} for g in GROUPS if g != "ghost"],
    }],
}


async def no_sleep(_: float) -> None:
    return None


@pytest.fixture
async def pipeline() -> AsyncIterator[tuple[Simulator, Poller, ApiStats]]:
    sim = Simulator(Scenario.from_dict(SCENARIO), {"STS.pipe": SECRET}, security_tokens={"STS.pipe": TOKEN})
    sim.set_qps_limit("GetConsumerProgress", 1000)
    server = TestServer(build_app(sim), host="127.0.0.1")
    await server.start_server()
    stats = ApiStats()
    creds = StaticProvider(Credentials("STS.pipe", Secret(SECRET), Secret(TOKEN)), "test")
    options = api_settings(str(server.make_url("/")), timeout=0.5, max_retries=2, max_concurrency=8)
    async with AlikafkaClient(options, creds, RateLimiter(1000), stats, sleep=no_sleep) as client:
        pairs = [Pair(INSTANCE, g, "cn-hangzhou") for g in GROUPS]
        yield sim, Poller(client, pairs, interval=60, stale_after=180), stats
    await server.close()


def exposition(poller: Poller, stats: ApiStats) -> str:
    return exposition_text(poller.snapshot, stats, member_labels=True)


async def test_bad_input_fails_only_its_pair(
    pipeline: tuple[Simulator, Poller, ApiStats], caplog: pytest.LogCaptureFixture
) -> None:
    """Unknown group, throttling storm, HTML page, truncated JSON, timeout: up 0 each; healthy stays up."""
    sim, poller, stats = pipeline
    sim.add_fault(FaultRule(kind="throttle", group="throttled"))
    sim.add_fault(FaultRule(kind="html", group="html"))
    sim.add_fault(FaultRule(kind="truncated", group="truncated"))
    sim.add_fault(FaultRule(kind="timeout", group="slow", delay=2.0))
    with caplog.at_level(logging.DEBUG):
        snapshot = await poller.poll_once()
    up = {p.group: s.up for p, s in snapshot.pairs.items()}
    assert up == {"healthy": True, "ghost": False, "throttled": False, "html": False, "truncated": False,
                  "slow": False}
    codes = {p.group: s.error.code for p, s in snapshot.pairs.items() if s.error}
    assert codes == {"ghost": "BIZ_SUBSCRIPTION_NOT_FOUND", "throttled": "Throttling.User", "html": "502",
                     "truncated": "malformed_response", "slow": "timeout"}

    failures = [r for r in caplog.records if r.getMessage() == "poll failed"]
    assert sorted(r.group for r in failures) == sorted(codes)  # type: ignore[attr-defined]
    assert all(r.instance_id == INSTANCE and r.action == "GetConsumerProgress" for r in failures)  # type: ignore[attr-defined]
    ghost = next(r for r in failures if r.group == "ghost")  # type: ignore[attr-defined]
    assert ghost.request_id  # type: ignore[attr-defined]

    text = exposition(poller, stats)
    for code, attempts in (("BIZ_SUBSCRIPTION_NOT_FOUND", 1), ("Throttling.User", 3), ("502", 3),
                           ("malformed_response", 1), ("timeout", 3), ("200", 1)):
        assert value(text, "alikafka_exporter_api_requests_total", action="GetConsumerProgress", code=code) == attempts
    assert has(text, "alikafka_consumergroup_group_lag", group="healthy")
    assert value(text, "alikafka_exporter_targets", state="ok") == 1
    assert value(text, "alikafka_exporter_targets", state="stale") == 5

    page = render(snapshot, PageContext())
    ours = "\n".join(str(vars(r)) for r in caplog.records if r.name.startswith("exporter"))
    for text_out in (text, page, ours):
        assert SECRET not in text_out
        assert TOKEN not in text_out


async def test_recovery_and_shape_faults_keep_values(pipeline: tuple[Simulator, Poller, ApiStats]) -> None:
    """A pair that recovers is up again; shape faults give the same series as the documented shape."""
    sim, poller, stats = pipeline
    first = exposition(poller, stats) if (await poller.poll_once()) else ""
    sim.add_fault(FaultRule(kind="single_object", group="healthy"))
    sim.add_fault(FaultRule(kind="numbers_as_strings", group="throttled"))
    sim.add_fault(FaultRule(kind="missing_wrappers", group="html"))
    sim.add_fault(FaultRule(kind="root_wrapper", group="truncated"))
    snapshot = await poller.poll_once()
    assert {p.group for p, s in snapshot.pairs.items() if s.up} == {"healthy", "throttled", "html", "truncated",
                                                                      "slow"}
    series = {line.split(" ")[0] for line in exposition(poller, stats).splitlines() if line.startswith("alikafka_consumergroup_lag{")}
    assert series == {line.split(" ")[0] for line in first.splitlines() if line.startswith("alikafka_consumergroup_lag{")}


async def test_wrong_secret_debug_logs_never_show_it(caplog: pytest.LogCaptureFixture) -> None:
    """Auth failures at debug level: the log names the code, never the secret or the string to sign."""
    sim = Simulator(Scenario.from_dict(SCENARIO), {"AK": "right-secret"})
    server = TestServer(build_app(sim), host="127.0.0.1")
    await server.start_server()
    try:
        for signature in ("v1", "v3"):
            opts = api_settings(str(server.make_url("/")), signature=signature, timeout=0.5, max_retries=2)
            creds = StaticProvider(Credentials("AK", Secret("wrong-secret-5150"), Secret("tok-5150")), "t")
            async with AlikafkaClient(opts, creds, RateLimiter(100), ApiStats()) as client:
                poller = Poller(client, [Pair(INSTANCE, "healthy", "cn-hangzhou")], interval=60,
                                stale_after=180)
                with caplog.at_level(logging.DEBUG):
                    snapshot = await poller.poll_once()
            state = next(iter(snapshot.pairs.values()))
            assert state.error is not None
            assert state.error.code == "SignatureDoesNotMatch"
            # Every record of the exporter, with all its fields; the simulator's access log is not ours.
            ours = [str(vars(r)) for r in caplog.records if r.name.startswith("exporter")]
            shown = "\n".join(ours) + state.error.message + render(snapshot, PageContext())
            assert "wrong-secret-5150" not in shown
            assert "tok-5150" not in shown
            assert "string to sign" not in shown
    finally:
        await server.close()
