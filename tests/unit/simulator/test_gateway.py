"""The simulated gateway rejects what the real one rejects, throttles like it, and tells the truth."""

from __future__ import annotations

import gzip
import hashlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from email.utils import parsedate_to_datetime
from typing import Any

import pytest
from aiohttp import ClientSession
from aiohttp.test_utils import TestServer
from yarl import URL

from exporter.cloud import signing
from exporter.simulator import FaultRule, Scenario, ScenarioError, Simulator, build_app

KEY, SECRET = "LTAI-gw", "gw-secret"
INSTANCE = "alikafka_post-cn-test0001"


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def gateway() -> AsyncIterator[tuple[Simulator, str, ClientSession, Clock]]:
    clock = Clock()
    sim = Simulator(Scenario.builtin("minimal"), {KEY: SECRET, "LTAI-ro": "ro-secret"}, clock=clock,
                    denied_actions={"LTAI-ro": frozenset({"GetConsumerProgress"})})
    server = TestServer(build_app(sim), host="127.0.0.1")
    await server.start_server()
    async with ClientSession() as session:
        yield sim, str(server.make_url("/")), session, clock
    await server.close()


def iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


def v1_url(base: str, params: dict[str, str], *, secret: str = SECRET, key: str = KEY, at: float | None = None,
           nonce: str | None = None, method: str = "POST") -> URL:
    query = {**params, "Version": "2019-09-16", "Format": "JSON", "AccessKeyId": key, "SignatureMethod": "HMAC-SHA1",
             "SignatureVersion": "1.0", "SignatureNonce": nonce or uuid.uuid4().hex,
             "Timestamp": iso(time.time() if at is None else at)}
    query["Signature"] = signing.v1_signature(secret, method, query)
    return URL(f"{base}?{signing.canonical_query(query)}", encoded=True)


def v3_request(base: str, action: str, query: dict[str, str], *, body: bytes = b"", secret: str = SECRET,
               sign: list[str] | None = None, content_hash: str | None = None,
               content_type: str | None = None) -> tuple[URL, dict[str, str]]:
    url = URL(base)
    headers = {"host": url.raw_authority, "x-acs-action": action, "x-acs-version": "2019-09-16",
               "x-acs-date": iso(time.time()), "x-acs-signature-nonce": uuid.uuid4().hex,
               "x-acs-content-sha256": content_hash or hashlib.sha256(body).hexdigest()}
    if content_type is not None:
        headers["content-type"] = content_type
    names = sign if sign is not None else signing.v3_signed_header_names(headers)
    canonical = signing.v3_canonical_request("POST", "/", query, headers, names, headers["x-acs-content-sha256"])
    headers["Authorization"] = signing.v3_authorization(KEY, names, signing.v3_signature(secret, canonical))
    return URL(f"{base}?{signing.canonical_query(query)}", encoded=True), headers


PROGRESS = {"Action": "GetConsumerProgress", "RegionId": "cn-hangzhou", "InstanceId": INSTANCE,
            "ConsumerId": "orders-consumer"}


async def call(session: ClientSession, url: URL, headers: dict[str, str] | None = None,
               method: str = "POST", data: bytes = b"") -> tuple[int, dict[str, Any], dict[str, str]]:
    # Without data there is no Content-Type (aiohttp would add application/octet-stream, unsigned).
    skip = () if data else ("Content-Type",)
    async with session.request(method, url, headers=headers, data=data or None, skip_auto_headers=skip) as resp:
        return resp.status, await resp.json(), dict(resp.headers)


async def test_success_shape(gateway: tuple[Simulator, str, ClientSession, Clock]) -> None:
    """A signed call gets the documented success envelope with int Code and lower-case state."""
    _, base, session, _ = gateway
    status, body, _ = await call(session, v1_url(base, PROGRESS))
    assert status == 200
    assert (body["Success"], body["Code"], body["Message"]) == (True, 200, "operation success.")
    progress = body["ConsumerProgress"]
    assert progress["state"] == "STABLE"
    assert isinstance(progress["TopicList"]["TopicList"], list)
    assert isinstance(progress["TopicList"]["TopicList"][0]["OffsetList"]["OffsetList"], list)


async def test_get_method_and_form_body(gateway: tuple[Simulator, str, ClientSession, Clock]) -> None:
    """GET works with the method in the string to sign; parameters may come in a form body."""
    _, base, session, _ = gateway
    assert (await call(session, v1_url(base, PROGRESS, method="GET"), method="GET"))[0] == 200
    # v1 with the operation parameters in a form body, signed together with the query
    query = {"Version": "2019-09-16", "Format": "JSON", "AccessKeyId": KEY, "SignatureMethod": "HMAC-SHA1",
             "SignatureVersion": "1.0", "SignatureNonce": uuid.uuid4().hex, "Timestamp": iso(time.time())}
    signature = signing.v1_signature(SECRET, "POST", {**query, **PROGRESS})
    url = URL(f"{base}?{signing.canonical_query({**query, 'Signature': signature})}", encoded=True)
    body = signing.canonical_query(PROGRESS).encode()
    status, _, _ = await call(session, url, {"Content-Type": "application/x-www-form-urlencoded"}, data=body)
    assert status == 200


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"secret": "nope"}, 400, "SignatureDoesNotMatch"),
        ({"key": "LTAI-nobody"}, 404, "InvalidAccessKeyId.NotFound"),
        ({"offset": -905}, 400, "InvalidTimeStamp.Expired"),
        ({"offset": 905}, 400, "InvalidTimeStamp.Expired"),
    ],
)
async def test_v1_refusals(gateway: tuple[Simulator, str, ClientSession, Clock], change: dict[str, Any],
                           status: int, code: str) -> None:
    """Wrong secret, unknown key and a timestamp outside 15 minutes are refused as documented."""
    _, base, session, clock = gateway
    if "offset" in change:  # relative to the gateway's clock at run time, not at collection
        change = {"at": clock.now + change.pop("offset")}
    got_status, body, _ = await call(session, v1_url(base, PROGRESS, **change))
    assert (got_status, body["Code"]) == (status, code)
    assert body["RequestId"]
    assert body["HostId"]
    assert code in body["Recommend"]


async def test_nonce_reuse(gateway: tuple[Simulator, str, ClientSession, Clock]) -> None:
    """The same nonce twice within the window is SignatureNonceUsed."""
    _, base, session, _ = gateway
    assert (await call(session, v1_url(base, PROGRESS, nonce="n-1")))[0] == 200
    status, body, _ = await call(session, v1_url(base, PROGRESS, nonce="n-1"))
    assert (status, body["Code"]) == (400, "SignatureNonceUsed")


async def test_v3_refusals(gateway: tuple[Simulator, str, ClientSession, Clock]) -> None:
    """v3: an unsigned x-acs header, a wrong body hash and a wrong secret are refused."""
    _, base, session, _ = gateway
    query = {k: v for k, v in PROGRESS.items() if k != "Action"}
    url, headers = v3_request(base, "GetConsumerProgress", query)
    assert (await call(session, url, headers))[0] == 200
    url, headers = v3_request(base, "GetConsumerProgress", query, sign=["host", "x-acs-action"])
    assert (await call(session, url, headers))[1]["Code"] == "IncompleteSignature"
    url, headers = v3_request(base, "GetConsumerProgress", query, content_hash="0" * 64)
    assert (await call(session, url, headers))[1]["Code"] == "SignatureDoesNotMatch"
    url, headers = v3_request(base, "GetConsumerProgress", query, secret="bad")
    status, body, _ = await call(session, url, headers)
    assert (status, body["Code"]) == (400, "SignatureDoesNotMatch")
    url, headers = v3_request(base, "GetConsumerProgress", query)
    headers["Authorization"] = "ACS3-HMAC-SHA256 garbage"
    assert (await call(session, url, headers))[1]["Code"] == "IncompleteSignature"


async def test_ram_denial_version_and_action(gateway: tuple[Simulator, str, ClientSession, Clock]) -> None:
    """Forbidden.RAM for a key without permission; unknown Action, group or region; missing parameter."""
    sim, base, session, _ = gateway
    sim.set_qps_limit("GetConsumerProgress", 100)
    status, body, _ = await call(session, v1_url(base, PROGRESS, key="LTAI-ro", secret="ro-secret"))
    assert (status, body["Code"]) == (403, "Forbidden.RAM")
    bad_action = {**PROGRESS, "Action": "DeleteEverything"}
    status, body, _ = await call(session, v1_url(base, bad_action))
    assert (status, body["Code"]) == (404, "InvalidAction.NotFound")
    missing = {k: v for k, v in PROGRESS.items() if k != "ConsumerId"}
    assert (await call(session, v1_url(base, missing)))[1]["Code"] == "MissingParameter.ConsumerId"
    unknown = {**PROGRESS, "ConsumerId": "nope"}
    status, body, _ = await call(session, v1_url(base, unknown))
    assert (status, body["Code"]) == (400, "BIZ_SUBSCRIPTION_NOT_FOUND")
    wrong_region = {**PROGRESS, "RegionId": "cn-beijing"}
    assert (await call(session, v1_url(base, wrong_region)))[1]["Code"] == "INSTANCE_NOT_FOUND"


async def test_flow_control(gateway: tuple[Simulator, str, ClientSession, Clock]) -> None:
    """GetConsumerProgress allows 3 per second per account; the 4th gets Throttling.User + retry-after."""
    sim, base, session, clock = gateway
    results = [await call(session, v1_url(base, PROGRESS)) for _ in range(4)]
    assert [r[0] for r in results] == [200, 200, 200, 400]
    assert results[3][1]["Code"] == "Throttling.User"
    assert 0 < int(results[3][2]["x-acs-retry-after"]) <= 1001
    clock.now += 1.01
    assert (await call(session, v1_url(base, PROGRESS)))[0] == 200
    # other actions have their own budget
    listing = {"Action": "GetConsumerList", "RegionId": "cn-hangzhou", "InstanceId": INSTANCE}
    assert (await call(session, v1_url(base, listing)))[0] == 200
    assert [r.code for r in sim.requests].count("Throttling.User") == 1


async def test_truth_matches_the_answer(gateway: tuple[Simulator, str, ClientSession, Clock]) -> None:
    """At a fixed clock, the API's offsets equal /_sim/truth's, and lag = broker - consumer."""
    sim, base, session, _ = gateway
    _, body, _ = await call(session, v1_url(base, PROGRESS))
    answered = {(t["Topic"], p["Partition"]): (p["BrokerOffset"], p["ConsumerOffset"])
                for t in body["ConsumerProgress"]["TopicList"]["TopicList"] for p in t["OffsetList"]["OffsetList"]}
    async with session.get(URL(base).with_path("/_sim/truth"), params={"group": "orders-consumer"}) as resp:
        truth = (await resp.json())["partitions"]
    assert answered == {(r["topic"], r["partition"]): (r["broker_offset"], r["consumer_offset"]) for r in truth}
    assert all(r["lag"] == r["broker_offset"] - r["consumer_offset"] >= 0 for r in truth)
    assert body["ConsumerProgress"]["TotalDiff"] == sum(r["lag"] for r in truth)
    # healthy with a 3 s delay and 5 s commits: the true time lag stays within delay + commit interval
    assert all(0 <= r["time_lag_seconds"] <= 3 + 5 + 1 for r in truth)
    assert sim.truth(INSTANCE, "orders-consumer")[0].lag == truth[0]["lag"]


async def test_last_timestamp_rules(gateway: tuple[Simulator, str, ClientSession, Clock]) -> None:
    """LastTimestamp is -1 for local-storage topics and with HideLastTimestamp; else the produce time."""
    _, base, session, clock = gateway
    billing = {**PROGRESS, "ConsumerId": "billing"}
    _, body, _ = await call(session, v1_url(base, billing))
    stamps = {t["Topic"]: t["LastTimestamp"] for t in body["ConsumerProgress"]["TopicList"]["TopicList"]}
    assert stamps["audit"] == -1
    assert 0 < stamps["orders"] <= clock.now * 1000
    _, hidden, _ = await call(session, v1_url(base, {**billing, "HideLastTimestamp": "True"}))
    assert hidden["ConsumerProgress"]["LastTimestamp"] == -1


async def test_paging_and_lists(gateway: tuple[Simulator, str, ClientSession, Clock]) -> None:
    """GetTopicList pages with string parameters; GetInstanceList lists running instances of the region."""
    _, base, session, _ = gateway
    page = {"Action": "GetTopicList", "RegionId": "cn-hangzhou", "InstanceId": INSTANCE, "CurrentPage": "2",
            "PageSize": "1"}
    _, body, _ = await call(session, v1_url(base, page))
    assert body["Total"] == 2
    assert [t["Topic"] for t in body["TopicList"]["TopicVO"]] == ["orders"]
    _, body, _ = await call(session, v1_url(base, {"Action": "GetInstanceList", "RegionId": "cn-hangzhou"}))
    assert [i["InstanceId"] for i in body["InstanceList"]["InstanceVO"]] == [INSTANCE]
    assert body["InstanceList"]["InstanceVO"][0]["ServiceStatus"] == 5


async def test_fault_control_endpoint(gateway: tuple[Simulator, str, ClientSession, Clock]) -> None:
    """Faults can be added and cleared over HTTP; counted faults expire."""
    sim, base, session, _ = gateway
    control = URL(base).with_path("/_sim/faults")
    async with session.post(control, json={"kind": "http_503", "count": 1}) as resp:
        assert resp.status == 200
    async with session.post(control, json={"kind": "bogus"}) as resp:
        assert resp.status == 400
    assert (await call(session, v1_url(base, PROGRESS)))[0] == 503
    assert (await call(session, v1_url(base, PROGRESS)))[0] == 200
    sim.add_fault(FaultRule(kind="http_500"))
    async with session.delete(control) as resp:
        assert resp.status == 200
    assert sim.faults == []


def test_determinism_and_scenario_errors() -> None:
    """The same seed and start give the same workload; bad scenarios name the key."""
    a = Simulator(Scenario.builtin("demo"), {"k": "s"}, seed=9, clock=lambda: 1_800_000_000.0)
    b = Simulator(Scenario.builtin("demo"), {"k": "s"}, seed=9, clock=lambda: 1_800_000_000.0)
    assert a.truth("alikafka_post-cn-demo0001", "orders-consumer") == b.truth("alikafka_post-cn-demo0001",
                                                                                "orders-consumer")
    with pytest.raises(ScenarioError, match=r"instances\.0\.topics\.0\.partitions"):
        Scenario.from_dict({"instances": [{"instance_id": "i", "topics": [{"name": "t", "partitions": 0}]}]})
    with pytest.raises(ScenarioError, match="no topic 'missing'"):
        Scenario.from_dict({"instances": [{"instance_id": "i", "groups": [{"name": "g", "topics": ["missing"]}]}]})
    with pytest.raises(ScenarioError, match="unknown key"):
        Scenario.from_dict({"instances": [{"instance_id": "i", "colour": "red"}]})
    with pytest.raises(ScenarioError, match="no such scenario"):
        Scenario.builtin("nope")


def test_demo_scenario_has_the_promised_groups() -> None:
    """Two regions, dozens of groups; one lagging, one stopped, one stalled, one rebalancing, as observed."""
    clock = Clock()
    sim = Simulator(Scenario.builtin("demo"), {"k": "s"}, clock=clock)
    assert {"cn-hangzhou", "cn-shanghai"} <= {region for _, region, _ in sim.pairs()}
    assert len(sim.pairs()) >= 24
    hz = sim.instances["alikafka_post-cn-demo0001"]

    def lag(group: str) -> int:
        return sum(t.lag for t in sim.truth(hz.instance_id, group))

    def committed(group: str) -> list[int]:
        return [t.consumer_offset for t in sim.truth(hz.instance_id, group)]

    before = {g: (lag(g), committed(g)) for g in ("analytics-etl", "email-sender", "fraud-detector", "orders-consumer")}
    clock.now += 120
    assert lag("analytics-etl") > before["analytics-etl"][0] + 1000  # lagging: grows
    assert committed("fraud-detector") == before["fraud-detector"][1]  # stalled: offsets frozen...
    assert hz.groups["fraud-detector"].members_at(clock.now)  # ...with members present
    assert committed("email-sender") == before["email-sender"][1]  # stopped: frozen, no members
    assert not hz.groups["email-sender"].members_at(clock.now)
    assert hz.groups["email-sender"].state_at(clock.now) == "EMPTY"
    assert lag("orders-consumer") < 12 * 60 * 8  # healthy: within delay + commit interval of the head
    shanghai = sim.instances["alikafka_pre-cn-demo0002"]
    assert shanghai.groups["tracking-aggregator"].state_at(clock.now) == "PREPARING_REBALANCE"


async def test_expired_token_and_clock_skew_faults(gateway: tuple[Simulator, str, ClientSession, Clock]) -> None:
    """token_expired answers like an STS token past expiry; clock_skew beyond 15 minutes fails the real
    timestamp check, a small skew passes it."""
    sim, base, session, _ = gateway
    sim.add_fault(FaultRule(kind="token_expired", count=1))
    status, body, _ = await call(session, v1_url(base, PROGRESS))
    assert (status, body["Code"]) == (400, "InvalidSecurityToken.Expired")
    sim.add_fault(FaultRule(kind="clock_skew", delay=60.0, count=1))
    assert (await call(session, v1_url(base, PROGRESS)))[0] == 200
    sim.add_fault(FaultRule(kind="clock_skew", delay=-1200.0, count=1))
    status, body, headers = await call(session, v1_url(base, PROGRESS))
    assert (status, body["Code"]) == (400, "InvalidTimeStamp.Expired")
    # the skewed gateway reports its own clock in Date, so a client can measure the offset from it
    assert abs(parsedate_to_datetime(headers["Date"]).timestamp() - (sim.server_time() - 1200)) <= 2
    status, _, headers = await call(session, v1_url(base, PROGRESS))
    assert status == 200 and abs(parsedate_to_datetime(headers["Date"]).timestamp() - sim.server_time()) <= 2


async def test_latency_composes_with_the_next_rule(gateway: tuple[Simulator, str, ClientSession, Clock]) -> None:
    """A latency rule delays the answer and lets a later rule decide it: slow and failing."""
    sim, base, session, _ = gateway
    sim.add_fault(FaultRule(kind="latency", delay=0.2))
    sim.add_fault(FaultRule(kind="http_500", count=1))
    started = time.monotonic()
    assert (await call(session, v1_url(base, PROGRESS)))[0] == 500
    assert time.monotonic() - started >= 0.19
    assert (await call(session, v1_url(base, PROGRESS)))[0] == 200


async def test_network_faults_slow_body_redirect_and_gzip_bomb(
    gateway: tuple[Simulator, str, ClientSession, Clock],
) -> None:
    """slow_body: the same body, arriving in pieces with pauses; redirect: a 307 to another origin; gzip_bomb:
    a small gzip body that expands far past any cap. All three can be added through /_sim/faults."""
    sim, base, session, _ = gateway
    sim.set_qps_limit("GetConsumerProgress", 100)
    control = URL(base).with_path("/_sim/faults")
    async with session.post(control, json={"kind": "slow_body", "pieces": 3, "delay": 0.2, "count": 1}) as resp:
        assert resp.status == 200
    async with session.post(control, json={"kind": "slow_body", "pieces": 0}) as resp:
        assert resp.status == 400
    arrivals: list[tuple[float, int]] = []
    async with session.post(v1_url(base, PROGRESS)) as resp:
        assert resp.content_length is not None
        async for chunk in resp.content.iter_any():
            arrivals.append((time.monotonic(), len(chunk)))
    assert len(arrivals) == 3 and sum(n for _, n in arrivals) == resp.content_length
    assert arrivals[2][0] - arrivals[0][0] >= 0.35

    sim.add_fault(FaultRule(kind="redirect", count=1, location="http://192.0.2.1/elsewhere"))
    async with session.post(v1_url(base, PROGRESS), allow_redirects=False) as resp:
        assert (resp.status, resp.headers["Location"]) == (307, "http://192.0.2.1/elsewhere")

    sim.add_fault(FaultRule(kind="gzip_bomb", count=1, size=8 * 1024 * 1024))
    async with session.post(v1_url(base, PROGRESS), auto_decompress=False) as resp:
        wire = await resp.read()
        assert resp.headers["Content-Encoding"] == "gzip"
    expanded = gzip.decompress(wire)
    assert len(wire) < 16 * 1024 and len(expanded) > 8 * 1024 * 1024
    assert json.loads(expanded)["Success"] is True  # valid JSON, only far too large
    assert [r.code for r in sim.requests[-3:]] == ["200", "fault:redirect", "fault:gzip_bomb"]


async def test_strict_signing_refuses_an_unsigned_content_type(
    gateway: tuple[Simulator, str, ClientSession, Clock],
) -> None:
    """Strict (the default): a Content-Type sent but not in SignedHeaders is IncompleteSignature; signed, it
    passes; a lenient gateway (strict off) lets the unsigned one through."""
    sim, base, session, _ = gateway
    sim.set_qps_limit("GetConsumerProgress", 100)
    query = {k: v for k, v in PROGRESS.items() if k != "Action"}
    url, headers = v3_request(base, "GetConsumerProgress", query)
    headers["Content-Type"] = "application/json"
    status, body, _ = await call(session, url, headers)
    assert (status, body["Code"]) == (400, "IncompleteSignature") and "content-type" in body["Message"]
    url, headers = v3_request(base, "GetConsumerProgress", query, content_type="application/json")
    assert (await call(session, url, headers))[0] == 200
    sim.auth.strict = False
    url, headers = v3_request(base, "GetConsumerProgress", query)
    headers["Content-Type"] = "application/json"
    assert (await call(session, url, headers))[0] == 200
