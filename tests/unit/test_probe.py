"""``--probe`` against the real simulator: one call per action, a report a person can act on, exit 0/1/2."""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from exporter import app
from exporter.cloud.credentials import Credentials, FileProvider, Secret, StaticProvider
from exporter.cloud.errors import ApiError, RequestError
from exporter.config.settings import load_settings
from exporter.probe import Report, answer_shape, fix_for, run_probe
from exporter.simulator import FaultRule, Scenario, Simulator, build_app
from tests.support.procs import clean_env, free_port

INSTANCE = "alikafka_post-cn-test0001"
GROUP = "orders-consumer"
REGION = "cn-hangzhou"
KEY_ID, SECRET = "LTAI5tProbeKey0001", "probe-secret-value-4b2c9e"
TOKEN = "sts-token-value-77aa01"
REQUEST_ID = re.compile(r"RequestId +[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}\n")


class Sim:
    """A simulator served on 127.0.0.1, and what it was asked."""

    def __init__(self, simulator: Simulator, url: str) -> None:
        self.simulator = simulator
        self.url = url

    @property
    def actions(self) -> list[str]:
        """The actions of the requests that reached the gateway, in order."""
        return [r.action for r in self.simulator.requests]


MakeSim = Callable[..., Any]


@pytest.fixture
async def make_sim() -> AsyncIterator[MakeSim]:
    servers: list[TestServer] = []

    async def factory(*, denied: frozenset[str] = frozenset(), token: str | None = None,
                      scenario: Scenario | None = None) -> Sim:
        simulator = Simulator(scenario or Scenario.builtin("minimal"), access_keys={KEY_ID: SECRET}, seed=7,
                              security_tokens={KEY_ID: token} if token else None,
                              denied_actions={KEY_ID: denied} if denied else None)
        server = TestServer(build_app(simulator), host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        return Sim(simulator, str(server.make_url("/")))

    yield factory
    for server in servers:
        await server.close()


def _target(**extra: Any) -> dict[str, Any]:
    return {"instance_id": INSTANCE, "groups": [GROUP], **extra}


async def probe(url: str, targets: list[dict[str, Any]] | None = None, *, secret: str = SECRET,
                token: str | None = None, api: dict[str, Any] | None = None) -> tuple[Report, str]:
    """Run the probe as ``--probe`` does (settings validated, the same plan), with a fixed key."""
    layer = {"api": {"endpoint": url, "region": REGION, **(api or {})}, "targets": targets or [_target()]}
    settings = load_settings(layer, {}, None)
    creds = StaticProvider(Credentials(KEY_ID, Secret(secret), Secret(token) if token else None), "test key")
    plan = app.Plan(app.plan_pairs(settings), settings.api, creds, tuple(settings.targets))
    report = await run_probe(settings, plan)
    return report, report.render()


def block(text: str, title: str) -> str:
    """The report's block of one step (title line to the blank line after it)."""
    match = re.search(rf"^{title} +[A-Z]+\n(?:  .*\n)*", text, flags=re.MULTILINE)
    assert match is not None, f"no {title} block in:\n{text}"
    return match.group(0)


def assert_no_secret(*texts: str) -> None:
    for text in texts:
        for secret in (SECRET, TOKEN, "wrong-secret-5d5d5d"):
            assert secret not in text
        assert "string to sign" not in text.lower()


async def test_every_call_works_exit_0(make_sim: MakeSim) -> None:
    """One call of each action, each block with status 200, a RequestId, a latency and the answer's shape."""
    sim = await make_sim()
    report, text = await probe(sim.url)
    assert report.exit_code == 0, text
    assert sim.actions == ["GetInstanceList", "GetConsumerProgress", "GetTopicStatus"]
    assert block(text, "credentials").startswith("credentials             OK\n")
    assert "source       test key" in block(text, "credentials")
    for action in ("GetInstanceList", "GetConsumerProgress", "GetTopicStatus"):
        part = block(text, action)
        assert part.startswith(f"{action:<24}OK\n"), part
        assert f"endpoint     {sim.url}\n" in part
        assert "signature    v3 (ACS3-HMAC-SHA256)\n" in part
        assert "HTTP status  200\n" in part
        assert REQUEST_ID.search(part), part
        assert re.search(r"latency +\d+ ms\n", part), part
        assert "clock skew" in part and "fix" not in part
    progress = block(text, "GetConsumerProgress")
    assert f"instance {INSTANCE}, group {GROUP} in {REGION} (the first configured pair)" in progress
    assert "ConsumerProgress.TopicList.TopicList[1]: Topic, TotalDiff, LastTimestamp, OffsetList" in progress
    assert "OffsetList.OffsetList[3]: Partition, BrokerOffset" in progress
    assert "1 topic, 3 partitions, 2 members" in progress
    assert f"{INSTANCE} is listed, serving" in block(text, "GetInstanceList")
    assert "3 partitions in TopicStatus.OffsetTable" in block(text, "GetTopicStatus")
    # the topic comes from the answer: it is used, never printed
    assert "orders" not in block(text, "GetTopicStatus").replace(GROUP, "")
    assert text.rstrip().endswith("result: OK, credentials and 3 calls worked; exit 0")
    assert_no_secret(text)


@pytest.mark.parametrize(("action", "ram"), [
    ("GetConsumerProgress", "alikafka:ListGroup"),
    ("GetTopicStatus", "alikafka:ListTopic"),
    ("GetInstanceList", "alikafka:ListInstance"),
    ("GetConsumerList", "alikafka:ListGroup"),
])
async def test_a_denied_action_names_the_ram_action_to_grant(make_sim: MakeSim, action: str, ram: str) -> None:
    """A key refused one action: that call shows 403 Forbidden.RAM and the RAM action to grant; exit 1."""
    sim = await make_sim(denied=frozenset({action}))
    targets = [{"instance_id": INSTANCE, "groups": "all"}] if action == "GetConsumerList" else None
    report, text = await probe(sim.url, targets)
    assert report.exit_code == 1
    part = block(text, action)
    assert part.startswith(f"{action:<24}FAILED\n")
    assert "HTTP status  403\n" in part and "code         Forbidden.RAM\n" in part
    assert REQUEST_ID.search(part)
    fix = " ".join(part.split("fix", 1)[1].split())
    assert f"grant the RAM action {ram}" in fix
    if action == "GetInstanceList":
        assert "no public page confirms the name" in fix
        assert "lag polling works without this call" in part
    assert "result: FAILED (" in text and action in text.splitlines()[-1]
    assert block(text, "GetInstanceList").split("\n", 1)[0].endswith("FAILED" if action == "GetInstanceList" else "OK")
    # a configured pair is polled whatever the listings say; a listed one needs the listing
    expected = "SKIPPED" if action == "GetConsumerList" else "FAILED" if action == "GetConsumerProgress" else "OK"
    assert block(text, "GetConsumerProgress").split("\n", 1)[0].endswith(expected)
    assert sim.actions.count(action) == 1  # one attempt, no retry


@pytest.mark.parametrize("signature", ["v3", "v1"])
async def test_wrong_secret_says_so_and_prints_no_secret(make_sim: MakeSim, signature: str) -> None:
    """SignatureDoesNotMatch (whose message echoes the string to sign, with the token under v1): the hint, no secret."""
    sim = await make_sim(token=TOKEN)
    report, text = await probe(sim.url, secret="wrong-secret-5d5d5d", token=TOKEN, api={"signature": signature})
    assert report.exit_code == 1
    part = block(text, "GetConsumerProgress")
    assert "code         SignatureDoesNotMatch\n" in part
    assert "HTTP status  400\n" in part
    assert "Specified signature is not matched with our calculation" in part
    fix = " ".join(part.split("fix", 1)[1].split())
    assert "the AccessKey secret is wrong" in fix and "a proxy" in fix
    assert_no_secret(text)
    assert sim.actions.count("GetConsumerProgress") == 1


async def test_sts_credentials_work_and_the_token_is_never_printed(make_sim: MakeSim) -> None:
    """With an STS token every call works, the report says a token is used, and never shows it or the secret."""
    sim = await make_sim(token=TOKEN)
    report, text = await probe(sim.url, token=TOKEN, api={"signature": "v1"})
    assert report.exit_code == 0, text
    assert "STS token    yes (STS credentials)" in text
    assert "access key   LTAI***********001" in text
    assert KEY_ID not in text
    assert_no_secret(text)


async def test_clock_skew_shows_in_every_block(make_sim: MakeSim) -> None:
    """A gateway clock two minutes ahead (/_sim/clock): each call reports the local clock about 120 s behind."""
    sim = await make_sim()
    async with aiohttp.ClientSession() as session, session.post(f"{sim.url}_sim/clock", json={"offset": 120}) as r:
        assert r.status == 200
    report, text = await probe(sim.url)
    assert report.exit_code == 0, text
    for action in ("GetInstanceList", "GetConsumerProgress", "GetTopicStatus"):
        assert re.search(r"clock skew +local clock 1(19|20|21) s behind the API server \(from its Date header\): "
                         r"synchronise the clock", block(text, action)), block(text, action)


async def test_clock_skew_past_the_window_is_named(make_sim: MakeSim) -> None:
    """Past the 15-minute window every call is refused with InvalidTimeStamp.Expired, and the fix names the clock."""
    sim = await make_sim()
    sim.simulator.clock_offset = -1000.0
    report, text = await probe(sim.url)
    assert report.exit_code == 1
    part = block(text, "GetConsumerProgress")
    assert "code         InvalidTimeStamp.Expired\n" in part
    assert re.search(r"local clock (999|1000|1001) s ahead of the API server", part), part
    assert "synchronise the local clock" in " ".join(part.split())


async def test_groups_all_and_instances_all_make_the_listing_calls(make_sim: MakeSim) -> None:
    """instances: all and groups: all list first, then poll a listed pair; listed names are never printed."""
    sim = await make_sim()
    report, text = await probe(sim.url, [{"instances": "all", "groups": "all", "group_deny": "^billing$"}])
    assert report.exit_code == 0, text
    assert sim.actions == ["GetInstanceList", "GetConsumerList", "GetConsumerProgress", "GetTopicStatus"]
    assert "region cn-hangzhou: instances: all" in block(text, "GetInstanceList")
    assert "1 instance, 1 serving (as discovery counts them); ServiceStatus 5 x1" in block(text, "GetInstanceList")
    listing = block(text, "GetConsumerList")
    assert "instance <serving instance 1 of the list> in cn-hangzhou, page 1 of up to 100 groups" in listing
    assert "2 groups on page 1 (Total 2), 1 kept by group_allow/group_deny" in listing
    assert "group <group 1 of the list> in cn-hangzhou (the first pair the listings found)" in " ".join(text.split())
    for name in (INSTANCE, GROUP, "billing", "orders", "audit"):
        assert name not in text


async def test_instances_all_with_named_groups(make_sim: MakeSim) -> None:
    """instances: all with named groups: no group listing; the configured group is polled on a listed instance."""
    sim = await make_sim()
    report, text = await probe(sim.url, [{"instances": "all", "groups": [GROUP]}])
    assert report.exit_code == 0, text
    assert sim.actions == ["GetInstanceList", "GetConsumerProgress", "GetTopicStatus"]
    flat = " ".join(text.split())
    assert f"instance <serving instance 1 of the list>, group {GROUP} in cn-hangzhou" in flat
    assert INSTANCE not in text


async def test_a_group_that_never_committed_is_a_good_answer_without_a_topic(make_sim: MakeSim) -> None:
    """ConsumerProgress null (a group with no committed offset): the call works, GetTopicStatus has no topic
    to ask about and is skipped, and the probe exits 0."""
    scenario = Scenario.from_dict({"instances": [{
        "instance_id": INSTANCE, "region": REGION, "topics": [{"name": "t", "partitions": 2}],
        "groups": [{"name": "new-group", "topics": ["t"], "never_committed": "null", "members": 1}]}]})
    sim = await make_sim(scenario=scenario)
    report, text = await probe(sim.url, [_target(groups=["new-group"])])
    assert report.exit_code == 0, text
    progress = block(text, "GetConsumerProgress")
    assert "(top): RequestId, Success, Code, Message, ConsumerProgress=null" in progress
    assert "0 topics, 0 partitions" in progress
    assert block(text, "GetTopicStatus").startswith(f"{'GetTopicStatus':<24}SKIPPED\n")
    assert sim.actions == ["GetInstanceList", "GetConsumerProgress"]
    assert text.rstrip().endswith("result: OK, credentials and 2 calls worked; exit 0")


async def test_groups_all_of_a_configured_instance(make_sim: MakeSim) -> None:
    """groups: all of a named instance: the instance list checks it, the group list is asked for it by name."""
    sim = await make_sim()
    report, text = await probe(sim.url, [{"instance_id": INSTANCE, "groups": "all"}])
    assert report.exit_code == 0, text
    assert sim.actions == ["GetInstanceList", "GetConsumerList", "GetConsumerProgress", "GetTopicStatus"]
    assert f"instance {INSTANCE} in cn-hangzhou, page 1" in block(text, "GetConsumerList")
    assert f"{INSTANCE} is listed, serving" in block(text, "GetInstanceList")


async def test_a_failed_listing_skips_what_needs_it(make_sim: MakeSim) -> None:
    """instances: all refused: the list shows the RAM fix, the pair-dependent calls are skipped; exit 1."""
    sim = await make_sim(denied=frozenset({"GetInstanceList"}))
    report, text = await probe(sim.url, [{"instances": "all", "groups": [GROUP]}])
    assert report.exit_code == 1
    assert "lag polling works" not in text  # for discovery the list is needed, not descriptive
    assert block(text, "GetConsumerProgress").startswith(f"{'GetConsumerProgress':<24}SKIPPED\n")
    assert "needs the instance listing: see the failure above" in text
    assert sim.actions == ["GetInstanceList"]


async def test_unknown_group_and_instance(make_sim: MakeSim) -> None:
    """A group that does not exist: not found with what to check; an instance not listed is named as such."""
    sim = await make_sim()
    report, text = await probe(sim.url, [_target(groups=["no-such-group"])])
    assert report.exit_code == 1
    part = block(text, "GetConsumerProgress")
    assert "code         BIZ_SUBSCRIPTION_NOT_FOUND\n" in part
    assert "check the instance id and its region" in " ".join(part.split())
    assert "needs a topic from GetConsumerProgress" in block(text, "GetTopicStatus")
    report, text = await probe(sim.url, [{"instance_id": "alikafka_post-cn-nope", "groups": [GROUP]}])
    assert report.exit_code == 1
    assert "alikafka_post-cn-nope is not in cn-hangzhou's list: check the instance id and its region" in text


async def test_throttling_is_one_attempt_with_the_rate_hint(make_sim: MakeSim) -> None:
    """Throttling is shown as it came (no retry hides it), with the advice to lower api.max_qps."""
    sim = await make_sim()
    sim.simulator.add_fault(FaultRule("throttle", action="GetConsumerProgress"))
    report, text = await probe(sim.url, api={"max_retries": 5})
    assert report.exit_code == 1
    part = block(text, "GetConsumerProgress")
    assert "code         Throttling.User\n" in part
    assert "lower api.max_qps" in " ".join(part.split())
    assert sim.actions.count("GetConsumerProgress") == 1


async def test_timeout_and_refused_connection_point_at_the_network(make_sim: MakeSim) -> None:
    """No answer within api.timeout, or nothing listening: the fix names the endpoint, network and proxy."""
    sim = await make_sim()
    sim.simulator.add_fault(FaultRule("timeout", action="GetConsumerProgress", delay=3))
    report, text = await probe(sim.url, api={"timeout": "0.5s"})
    assert report.exit_code == 1
    part = " ".join(block(text, "GetConsumerProgress").split())
    assert "HTTP status none (no answer)" in part and "code timeout" in part
    assert "no answer within api.timeout (0.5s)" in part and "HTTPS_PROXY" in part
    report, text = await probe(f"http://127.0.0.1:{free_port()}/")
    assert report.exit_code == 1
    part = " ".join(block(text, "GetInstanceList").split())
    assert "code connection_error" in part
    assert "could not connect" in part and "api.endpoint is set to http://127.0.0.1:" in part
    assert "clock skew not measured (no answer)" in part


def test_credentials_failure_is_a_failed_step(tmp_path: Path) -> None:
    """Unreadable key files: the credentials step fails with what to check, every call is skipped; exit 1."""
    settings = load_settings({"api": {"region": REGION}, "targets": [_target()]}, {}, None)
    provider = FileProvider(tmp_path / "id", tmp_path / "secret", None)
    plan = app.Plan(app.plan_pairs(settings), settings.api, provider, tuple(settings.targets))
    report = asyncio.run(run_probe(settings, plan))
    text = report.render()
    assert report.exit_code == 1
    part = block(text, "credentials")
    assert part.startswith("credentials             FAILED\n")
    assert f"cannot read credentials file {tmp_path / 'id'}" in part
    assert "check that the files exist, are readable" in " ".join(part.split())
    for action in ("GetInstanceList", "GetConsumerProgress", "GetTopicStatus"):
        assert block(text, action).startswith(f"{action:<24}SKIPPED\n")


async def test_hostile_answers_fail_their_call_never_the_probe() -> None:
    """A gateway answering 200 with JSON nested 100,000 deep, or with a shape that does not parse: each call
    fails with a line saying so, the report is printed, nothing is raised."""

    async def gateway(request: web.Request) -> web.Response:
        action = request.headers.get("x-acs-action", "")
        if action == "GetInstanceList":
            return web.Response(body=b"[" * 100_000 + b"]" * 100_000, content_type="application/json")
        body = {"RequestId": "0A0A0A0A-0000-0000-0000-000000000000", "Success": True, "Code": 200,
                "ConsumerProgress": {"TopicList": {"TopicList": [{"Topic": None, "OffsetList": "name-7f"}]}}}
        return web.json_response(body)

    gateway_app = web.Application()
    gateway_app.router.add_post("/", gateway)
    server = TestServer(gateway_app, host="127.0.0.1")
    await server.start_server()
    try:
        report, text = await probe(str(server.make_url("/")))
    finally:
        await server.close()
    assert report.exit_code == 1
    assert block(text, "GetInstanceList").startswith(f"{'GetInstanceList':<24}FAILED\n")
    progress = block(text, "GetConsumerProgress")
    assert progress.startswith(f"{'GetConsumerProgress':<24}FAILED\n")
    assert "HTTP status  200\n" in progress and "RequestId    0A0A0A0A-0000-0000-0000-000000000000\n" in progress
    assert "the answer does not parse as the exporter reads it" in " ".join(progress.split())
    assert "ConsumerProgress.TopicList.TopicList[1]: Topic=null, OffsetList" in progress
    assert "name-7f" not in text and "Traceback" not in text


def test_fix_for_a_redirect_names_the_endpoint() -> None:
    """A 3xx answer means the endpoint is wrong: the fix says so (a signed call never follows it)."""
    settings = load_settings({"api": {"region": REGION}}, {}, None)
    fix = fix_for("GetConsumerProgress", RequestError("307", "HTTP 307", http_status=307), settings, "env")
    assert "redirect (HTTP 307)" in fix and "api.endpoint" in fix
    assert "connection" not in fix_for("GetConsumerProgress", ApiError("Odd.Code", http_status=400), settings, "env")


def test_answer_shape_shows_names_and_sizes_never_values() -> None:
    """Field names, list sizes and nulls; no value, and a map keyed by names shows only its size."""
    body = {"RequestId": "REQ-VALUE-1", "Success": True, "Thing": None,
            "List": {"Item": [{"Name": "secret-name-1", "Tags": {"TagVO": []}}, {"Name": "secret-name-2"}]},
            "Ids": ["id-value-1", "id-value-2"],
            "ByRegion": {f"group-{i}": [i] for i in range(100)},
            "bad key!": 1}
    lines = answer_shape(body)
    assert lines[0] == "(top): RequestId, Success, Thing=null, List, Ids, ByRegion, +1 other key"
    assert "Ids[2] of text" in lines
    assert "List.Item[2]: Name, Tags" in lines
    assert "List.Item[2].Tags.TagVO[0]" in lines
    assert "ByRegion: a map of 100 keys" in lines
    text = "\n".join(lines)
    for value in ("REQ-VALUE-1", "secret-name", "id-value", "group-1", "bad key"):
        assert value not in text


def test_answer_shape_is_bounded() -> None:
    """A deep or wide answer gives a bounded number of lines, not a recursion error."""
    deep: dict[str, Any] = {}
    node = deep
    for i in range(500):
        node[f"Level{i}"] = {"x": 1, "y": {}}
        node = node[f"Level{i}"]["y"]
    assert len(answer_shape(deep)) <= 14
    wide = {f"Key{i}": {"A": 1, "B": [1]} for i in range(50)}
    assert len(answer_shape(wide)) <= 14


# --- as a user runs it ---------------------------------------------------------------------------------


async def run_cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """``python -m exporter ARGS`` as a process, awaited without blocking the simulator's event loop."""
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "exporter", *args, env=clean_env(**(env or {})),
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_cli_probe_against_the_simulator(make_sim: MakeSim) -> None:
    """``python -m exporter --probe --target ...`` with an STS key from the environment: exit 0, no secret."""
    sim = await make_sim(token=TOKEN)
    env = {"ALIBABA_CLOUD_ACCESS_KEY_ID": KEY_ID, "ALIBABA_CLOUD_ACCESS_KEY_SECRET": SECRET,
           "ALIBABA_CLOUD_SECURITY_TOKEN": TOKEN, "ALIKAFKA_EXPORTER_API__ENDPOINT": sim.url,
           "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true"}
    code, out, err = await run_cli("--probe", "--target", f"{INSTANCE}={GROUP}", "--region", REGION,
                                   "--log.level", "debug", env=env)
    assert code == 0, out + err
    assert "source environment (ALIBABA_CLOUD_ACCESS_KEY_ID, ALIBABA_CLOUD_ACCESS_KEY_SECRET, " in " ".join(out.split())
    for action in ("GetInstanceList", "GetConsumerProgress", "GetTopicStatus"):
        assert block(out, action).startswith(f"{action:<24}OK\n")
    assert sim.actions == ["GetInstanceList", "GetConsumerProgress", "GetTopicStatus"]
    assert_no_secret(out, err)


async def test_cli_probe_failures_exit_1_and_print_no_secret(make_sim: MakeSim, tmp_path: Path) -> None:
    """A wrong secret (v1: the echo carries the token) exits 1; unreadable key files are a failed step, not exit 2."""
    sim = await make_sim(token=TOKEN)
    env = {"ALIBABA_CLOUD_ACCESS_KEY_ID": KEY_ID, "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "wrong-secret-5d5d5d",
           "ALIBABA_CLOUD_SECURITY_TOKEN": TOKEN, "ALIKAFKA_EXPORTER_API__ENDPOINT": sim.url,
           "ALIKAFKA_EXPORTER_API__SIGNATURE": "v1"}
    code, out, err = await run_cli("--probe", "--target", f"{INSTANCE}={GROUP}", "--region", REGION, env=env)
    assert code == 1, out + err
    assert "SignatureDoesNotMatch" in block(out, "GetConsumerProgress")
    assert_no_secret(out, err)
    config = tmp_path / "c.yaml"
    config.write_text(f"credentials:\n  access_key_id_file: {tmp_path}/id\n  access_key_secret_file: {tmp_path}/s\n"
                      f"api:\n  endpoint: {sim.url}\n")
    code, out, err = await run_cli("--probe", "--config.file", str(config), "--target", f"{INSTANCE}={GROUP}",
                                   "--region", REGION)
    assert code == 1, out + err
    assert block(out, "credentials").startswith("credentials             FAILED\n")


@pytest.mark.parametrize("args", [
    ("--probe", "--target", "i-1=g"),  # no region
    ("--probe", "--once", "--target", "i-1=g", "--region", REGION),
    ("--probe",),  # no targets
])
async def test_cli_probe_invalid_configuration_exits_2(args: tuple[str, ...]) -> None:
    """An invalid configuration is reported by the usual config error path, exit 2, before any call."""
    code, out, err = await run_cli(*args, env={"ALIBABA_CLOUD_ACCESS_KEY_ID": KEY_ID,
                                               "ALIBABA_CLOUD_ACCESS_KEY_SECRET": SECRET})
    assert code == 2, out + err
    assert out == ""
    assert err.startswith("alikafka-exporter: config error: ")


async def test_cli_demo_probe_shows_a_good_report() -> None:
    """``--demo --probe`` probes the built-in simulator: every call works, exit 0."""
    code, out, err = await run_cli("--demo", "--probe")
    assert code == 0, out + err
    assert "(demo mode: against the built-in simulated alikafka API, with a generated key)" in out
    assert "source       demo simulator (generated key pair)" in out
    for action in ("GetInstanceList", "GetConsumerProgress", "GetTopicStatus"):
        assert block(out, action).startswith(f"{action:<24}OK\n")
