"""Several accounts end to end, in process: the exporter as it starts (config file, the entry point's plan,
``app.serve``) against a simulator playing three accounts, each with its own key and instances.

prod and staging sign with their own key files; analytics assumes a role (STS AssumeRole) with a third key
that alone reaches none of analytics' instances. Each target must be polled with its own account's keys
(a wrong key is refused 403 Forbidden.RAM), and each account must spend its own budget: prod at 3 requests
per second while staging, in the same seconds, stays at its 1.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from exporter import __main__ as entry
from exporter import app
from exporter.config.settings import load_settings
from exporter.logs import Redactor
from exporter.simulator import Scenario, Simulator, build_app
from exporter.simulator.sts import StsService, add_sts_routes
from tests.support import samples
from tests.support.procs import free_port

REGION = "cn-hangzhou"
PROD, STAG, ANALYTICS = "alikafka_post-cn-prod0001", "alikafka_post-cn-stag0001", "alikafka_post-cn-anly0001"
GROUPS = {PROD: [f"p{n}" for n in range(9)], STAG: [f"s{n}" for n in range(6)], ANALYTICS: ["a0", "a1"]}
KEYS = {"prod": ("LTAI5tProd000001", "prod-secret-9f8e7d6c"), "staging": ("LTAI5tStag000001", "stag-secret-1a2b3c4d"),
        "base": ("LTAI5tBase000001", "base-secret-5e6f7a8b")}
ROLE = "acs:ram::3333333333333333:role/alikafka-monitor"


def scenario() -> Scenario:
    return Scenario.from_dict({"seed": 9, "instances": [
        {"instance_id": instance, "region": REGION, "name": instance[-8:],
         "topics": [{"name": "orders", "partitions": 1, "rate": 5}],
         "groups": [{"name": g, "topics": ["orders"], "delay": 2} for g in groups]}
        for instance, groups in GROUPS.items()]}, "three-accounts")


@dataclass
class World:
    sim: Simulator
    sts: StsService
    url: str


@pytest.fixture
async def world() -> AsyncIterator[World]:
    """prod and staging own one instance and one key each; the base key belongs to neither, and may assume
    the analytics role, whose keys reach analytics' instance."""
    sim = Simulator(scenario(), dict([KEYS["base"]]), seed=4)
    sim.add_account("prod", dict([KEYS["prod"]]), [PROD])
    sim.add_account("staging", dict([KEYS["staging"]]), [STAG])
    sim.add_account("analytics", {}, [ANALYTICS])
    sts = StsService(sim)
    sts.add_assumable_role(ROLE, "analytics", {KEYS["base"][0]})
    web_app = build_app(sim)
    add_sts_routes(web_app, sts, "/sts/")
    server = TestServer(web_app, host="127.0.0.1")
    await server.start_server()
    try:
        yield World(sim, sts, str(server.make_url("/")))
    finally:
        await server.close()


def config(world: World, tmp_path: Path, port: int) -> Path:
    for name, (key_id, secret) in KEYS.items():
        (tmp_path / f"{name}.id").write_text(key_id)
        (tmp_path / f"{name}.secret").write_text(secret)
        for suffix in ("id", "secret"):
            (tmp_path / f"{name}.{suffix}").chmod(0o400)

    def files(name: str) -> str:
        return f"{{access_key_id_file: {tmp_path}/{name}.id, access_key_secret_file: {tmp_path}/{name}.secret"

    path = tmp_path / "config.yaml"
    path.write_text(f"""
api: {{region: {REGION}, endpoint: "{world.url}", max_retries: 0}}
accounts:
  prod: {{credentials: {files("prod")}}}, max_qps: 3}}
  staging: {{credentials: {files("staging")}}}, max_qps: 1}}
  analytics: {{credentials: {files("base")}, sts_endpoint: "{world.url}sts/"}}, role_arn: "{ROLE}"}}
targets:
  - {{instance_id: {PROD}, account: prod, groups: [{", ".join(GROUPS[PROD])}]}}
  - {{instance_id: {STAG}, account: staging, groups: [{", ".join(GROUPS[STAG])}]}}
  - {{instance_id: {ANALYTICS}, account: analytics, groups: all}}
web: {{listen_address: "127.0.0.1:{port}"}}
""")
    return path


def busiest_second(times: list[float]) -> int:
    """The most requests in any one-second window (as the gateway's flow control counts them)."""
    times = sorted(times)
    return max((sum(1 for t in times[i:] if t < start + 1.0) for i, start in enumerate(times)), default=0)


async def get(port: int, path: str) -> str:
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}{path}") as response:
        assert response.status == 200
        return await response.text()


async def test_each_target_is_polled_with_its_own_accounts_keys_and_budget(world: World, tmp_path: Path) -> None:
    port = free_port()
    redactor = Redactor()
    settings = load_settings({}, {}, config(world, tmp_path, port), lambda path: redactor.add(Path(path).read_text()))
    plan = entry._plan(settings)
    assert [a.name for a in plan.all_accounts] == ["analytics", "prod", "staging"]
    summary = "\n".join(app.summary_lines(settings, plan))
    assert f"  prod: files ({tmp_path}/prod.id, {tmp_path}/prod.secret); max_qps 3, max_concurrency 4, " \
           "9 listed pairs" in summary
    assert f"  analytics: assume role {ROLE} (STS {world.url}sts/) with files (" in summary
    assert not any(secret in summary for _, secret in KEYS.values())

    stop = asyncio.Event()
    task = asyncio.create_task(app.serve(settings, plan, stop))
    try:
        await asyncio.sleep(7.5)  # staging's 6 groups at 1 per second: its first pass takes 6 s
        metrics = await get(port, "/metrics")
        status = json.loads(await get(port, "/?format=json"))
    finally:
        stop.set()
        assert await asyncio.wait_for(task, 5) == 0

    # Every pair up: each target was polled with keys its account's instances accept.
    polls = [r for r in world.sim.requests if r.action == "GetConsumerProgress"]
    assert {(r.params["InstanceId"], r.account) for r in polls} == {
        (PROD, "prod"), (STAG, "staging"), (ANALYTICS, "analytics")}
    assert {r.access_key_id for r in polls if r.account == "prod"} == {KEYS["prod"][0]}
    assert {r.access_key_id for r in polls if r.account == "staging"} == {KEYS["staging"][0]}
    assert all(r.access_key_id.startswith("STS.") for r in polls if r.account == "analytics")
    assert Counter(r.code for r in world.sim.requests) == Counter({"200": len(world.sim.requests)})
    # GetTopicStatus (earliest offsets) goes through the account of the groups reading the topic, too
    topic_status = {(r.params["InstanceId"], r.account) for r in world.sim.requests if r.action == "GetTopicStatus"}
    assert topic_status and topic_status <= {(PROD, "prod"), (STAG, "staging"), (ANALYTICS, "analytics")}
    for instance, groups in GROUPS.items():
        for group in groups:
            assert samples.value(metrics, "alikafka_consumergroup_up", instance_id=instance, group=group) == 1.0

    # Each account spends its own budget, at the same time: prod reaches its 3 a second, staging stays at 1.
    first_pass_end = max(r.at for r in polls if r.account == "prod")
    overlap = [r for r in polls if r.at <= first_pass_end]
    assert busiest_second([r.at for r in overlap if r.account == "prod"]) == 3
    assert busiest_second([r.at for r in overlap if r.account == "staging"]) == 1
    assert busiest_second([r.at for r in polls if r.account == "staging"]) == 1
    # staging's 6 groups in its first pass, at its own pace (its own schedule then starts its next round)
    assert {r.params["ConsumerId"] for r in polls if r.account == "staging"} == set(GROUPS[STAG])

    # The self-metrics count by account, the STS exchange under the account it serves.
    def count(account: str, action: str) -> float:
        return samples.value(metrics, "alikafka_exporter_api_requests_total", account=account, action=action,
                             code="200")
    for account in ("prod", "staging", "analytics"):
        assert count(account, "GetConsumerProgress") == sum(1 for r in polls if r.account == account)
    assert count("analytics", "AssumeRole") == 1 and count("analytics", "GetConsumerList") >= 1
    assert not samples.has(metrics, "alikafka_exporter_api_requests_total", account="default")
    # The catalog lists each account's instances with that account's keys: all three are described.
    for instance in GROUPS:
        assert samples.value(metrics, "alikafka_instance_info", instance_id=instance) == 1.0

    # The status page names each account's source, never a secret.
    sources = {a["name"]: a["credentials"] for a in status["accounts"]}
    assert sources["staging"] == f"files ({tmp_path}/staging.id, {tmp_path}/staging.secret)"
    assert sources["analytics"].startswith(f"assume role {ROLE}")
    page = json.dumps(status) + metrics
    assert not any(secret in page for _, secret in KEYS.values())
    assert {t["account"] for t in status["targets"] if t["instance_id"] == STAG} == {"staging"}


async def test_a_key_used_for_another_accounts_instance_fails_only_that_pair(world: World, tmp_path: Path) -> None:
    """staging's target pointing at prod's instance: refused 403 Forbidden.RAM, that pair down, the rest up."""
    port = free_port()
    path = config(world, tmp_path, port)
    text = path.read_text().replace("p7, p8]", "p7]")  # p8 moves to a target of staging's, on prod's instance
    path.write_text(text.replace("web:", f"  - {{instance_id: {PROD}, account: staging, groups: [p8]}}\nweb:"))
    settings = load_settings({}, {}, path)
    plan = entry._plan(settings)
    async with app._pipeline(settings, plan) as parts:
        snapshot = await parts.poller.poll_once()
    errors = {(p.instance_id, p.group): s.error.code for p, s in snapshot.pairs.items() if s.error is not None}
    assert errors == {(PROD, "p8"): "Forbidden.RAM"}  # p8 of prod's instance, asked with staging's key
    assert sum(1 for s in snapshot.pairs.values() if s.up) == len(snapshot.pairs) - 1


def test_an_accounts_secret_pasted_into_another_key_is_not_echoed(tmp_path: Path) -> None:
    """An account's secret and token files are learnt by the redactor before validation, like the top-level
    ones: pasted into another key, the value is never echoed; the error names the key (exit 2)."""
    import subprocess  # noqa: PLC0415 - the command line, as a user runs it
    import sys  # noqa: PLC0415

    from tests.support.procs import clean_env  # noqa: PLC0415

    secret, token = "Acct5eCrEt-FromAFile-7Hq2Lp", "Acct70kEn-CAIS-4Rt9Wz1Xs"
    for name, text in (("id", "LTAI5tAcctId0001"), ("secret", secret), ("token", token)):
        (tmp_path / name).write_text(text)
        (tmp_path / name).chmod(0o400)
    for pasted in (secret, token):
        config = tmp_path / "c.yaml"
        config.write_text(f"""
api: {{region: cn-hangzhou, endpoint: "{pasted}"}}
accounts:
  prod: {{credentials: {{access_key_id_file: {tmp_path}/id, access_key_secret_file: {tmp_path}/secret,
                         security_token_file: {tmp_path}/token}}}}
targets: [{{instance_id: {PROD}, account: prod, groups: [p0]}}]
""")
        done = subprocess.run([sys.executable, "-m", "exporter", "--config.file", str(config), "--check-config"],
                              env=clean_env(), capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 2 and "api.endpoint (file " in done.stderr, done.stderr
        assert pasted not in done.stderr + done.stdout and pasted[:12] not in done.stderr + done.stdout


async def test_each_accounts_budget_schedules_its_own_pairs(world: World, tmp_path: Path) -> None:
    """prod: 9 groups at 1 request a second (rate-bound, a round takes over 9 s); staging: 2 groups at the same
    1 a second, poll.interval 3 s. Staging's pairs are polled every 3 s while prod's round runs at prod's pace,
    and neither account's limiter is ever exceeded. (One schedule over both, paced on their sum and held back
    by prod's queue, polled staging's groups once a round.)"""
    port = free_port()
    path = config(world, tmp_path, port)
    text = path.read_text().replace("max_qps: 3}", "max_qps: 1}").replace(", s2, s3, s4, s5]", "]")
    text = "\n".join(line for line in text.splitlines() if "account: analytics" not in line)
    path.write_text(text + "\npoll: {interval: 3s, schedule: uniform}\n")
    settings = load_settings({}, {}, path)
    plan = entry._plan(settings)
    assert [a.name for a in plan.all_accounts] == ["prod", "staging"]
    summary = app.summary_lines(settings, plan)
    assert any(line.startswith("  prod: ") and line.endswith("9 listed pairs, a round takes 9s on its budget")
               for line in summary), summary
    assert any(line.startswith("  staging: ") and line.endswith("2 listed pairs, each polled every 3s")
               for line in summary), summary

    stop = asyncio.Event()
    task = asyncio.create_task(app.serve(settings, plan, stop))
    try:
        await asyncio.sleep(13.5)
        metrics = await get(port, "/metrics")
        status = json.loads(await get(port, "/?format=json"))
    finally:
        stop.set()
        assert await asyncio.wait_for(task, 5) == 0

    polls = [r for r in world.sim.requests if r.action == "GetConsumerProgress"]
    for group in ("s0", "s1"):
        times = sorted(r.at for r in polls if r.account == "staging" and r.params["ConsumerId"] == group)
        gaps = [b - a for a, b in itertools.pairwise(times)]
        assert len(times) >= 4, times  # at 0 (about), 3, 6, 9, 12 s: every poll.interval
        assert max(gaps[1:]) <= 3.6, gaps  # the first pass is paced at the limiter's rate, then every 3 s
    prod = [r.at for r in polls if r.account == "prod"]
    assert {r.params["ConsumerId"] for r in polls if r.account == "prod"} == set(GROUPS[PROD])
    assert len(prod) >= 12  # prod spends its whole budget meanwhile, one a second
    assert busiest_second(prod) == 1
    assert busiest_second([r.at for r in polls if r.account == "staging"]) == 1
    # The label-less gauge is the longest over accounts (prod's rate-bound round); the status page shows each.
    assert samples.value(metrics, "alikafka_exporter_effective_poll_interval_seconds") > 9
    schedules = {a["name"]: a for a in status["accounts"]}
    assert schedules["staging"]["pairs"] == 2 and schedules["staging"]["effective_poll_interval_seconds"] == 3
    assert schedules["prod"]["pairs"] == 9 and schedules["prod"]["effective_poll_interval_seconds"] > 9
