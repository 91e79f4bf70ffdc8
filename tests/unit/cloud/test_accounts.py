"""Accounts against the simulator over real HTTP: STS AssumeRole for a role_arn, one client with a lane per
account (own credentials, own rate limiter), and a simulator that keeps each account's keys to its instances."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from exporter.cloud.client import AlikafkaClient
from exporter.cloud.credential_chain import account_chain, account_providers
from exporter.cloud.credentials import Credentials, Learning, Secret, StaticProvider
from exporter.cloud.credentials_remote import AssumeRoleProvider
from exporter.cloud.errors import AuthError, ForbiddenError
from exporter.cloud.ratelimit import RateLimiter
from exporter.cloud.stats import ApiStats
from exporter.cloud.transport import PlainTransport
from exporter.config.settings import CredentialsSettings, load_settings
from exporter.logs import Redactor
from exporter.simulator import Scenario, Simulator, build_app
from exporter.simulator.sts import StsService, add_sts_routes
from tests.support.fakes import Clock, api_settings

REGION = "cn-hangzhou"
PROD, STAGING = "alikafka_post-cn-prod0001", "alikafka_post-cn-stag0001"
GROUP = "orders-consumer"
ROLE = "acs:ram::1111222233334444:role/alikafka-monitor"
KEYS = {"prod": ("LTAI5tProdKey0001", "prod-secret-0123456789"),
        "staging": ("LTAI5tStagKey0001", "staging-secret-0123456789")}
NO_ENV = {"ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true"}


def two_instances() -> Scenario:
    def instance(instance_id: str) -> dict[str, object]:
        return {"instance_id": instance_id, "region": REGION, "name": instance_id[-8:],
                "topics": [{"name": "orders", "partitions": 2, "rate": 10}],
                "groups": [{"name": GROUP, "topics": ["orders"], "delay": 3, "members": 1}]}
    return Scenario.from_dict({"seed": 5, "instances": [instance(PROD), instance(STAGING)]}, "two-accounts")


@dataclass
class World:
    sim: Simulator
    sts: StsService
    base: str
    clock: Clock

    @property
    def sts_url(self) -> str:
        return self.base + "sts/"


@pytest.fixture
async def world() -> AsyncIterator[World]:
    """Two accounts, each owning one instance and one key; STS lets the staging key assume a staging role."""
    clock = Clock(time.time())
    sim = Simulator(two_instances(), access_keys={}, seed=3, clock=clock)
    sim.set_qps_limit("GetConsumerProgress", 1000)
    sim.add_account("prod", dict([KEYS["prod"]]), [PROD])
    sim.add_account("staging", dict([KEYS["staging"]]), [STAGING])
    sts = StsService(sim)
    sts.add_assumable_role(ROLE, "staging", {KEYS["staging"][0]})
    app = build_app(sim)
    add_sts_routes(app, sts, "/sts/")
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield World(sim, sts, str(server.make_url("/")), clock)
    finally:
        await server.close()


def static(account: str) -> StaticProvider:
    key_id, secret = KEYS[account]
    return StaticProvider(Credentials(key_id, Secret(secret)), f"test keys of {account}")


def key_files(tmp_path: Path, account: str) -> CredentialsSettings:
    key_id, secret = KEYS[account]
    (tmp_path / f"{account}.id").write_text(key_id)
    (tmp_path / f"{account}.secret").write_text(secret)
    (tmp_path / f"{account}.secret").chmod(0o400)
    return CredentialsSettings(access_key_id_file=tmp_path / f"{account}.id",
                               access_key_secret_file=tmp_path / f"{account}.secret")


# --- the simulator keeps each account to its own ----------------------------------------------------


async def test_each_accounts_key_reaches_only_its_own_instances(world: World) -> None:
    """The prod key polls prod's instance; asked for staging's it is refused 403 Forbidden.RAM, which the
    client classifies as forbidden (not retried); GetInstanceList shows each account only its own."""
    stats = ApiStats()
    async with AlikafkaClient(api_settings(world.base), static("prod"), RateLimiter(1000), stats,
                              account="prod") as client:
        await client.get_consumer_progress(REGION, PROD, GROUP)
        with pytest.raises(ForbiddenError) as info:
            await client.get_consumer_progress(REGION, STAGING, GROUP)
        listed = await client.call("GetInstanceList", REGION, {"RegionId": REGION})
    assert info.value.code == "Forbidden.RAM" and info.value.http_status == 403
    assert [i["InstanceId"] for i in listed.body["InstanceList"]["InstanceVO"]] == [PROD]
    assert stats.by_account == {("prod", "GetConsumerProgress", "200"): 1,
                                ("prod", "GetConsumerProgress", "Forbidden.RAM"): 1,
                                ("prod", "GetInstanceList", "200"): 1}
    assert [(r.account, r.params.get("InstanceId"), r.status) for r in world.sim.requests] == [
        ("prod", PROD, 200), ("prod", STAGING, 403), ("prod", None, 200)]


async def test_flow_control_is_per_account(world: World) -> None:
    """The documented limit is per account: one account's burst does not throttle another's calls."""
    world.sim.set_qps_limit("GetConsumerProgress", 1)
    stats = ApiStats()
    client = AlikafkaClient(api_settings(world.base, max_retries=0), static("prod"), RateLimiter(1000), stats,
                            account="prod")
    client.add_account("staging", static("staging"), RateLimiter(1000), 4)
    async with client:
        await client.get_consumer_progress(REGION, PROD, GROUP)
        await client.account("staging").get_consumer_progress(REGION, STAGING, GROUP)  # another account's window
        with pytest.raises(Exception, match="Throttling"):
            await client.get_consumer_progress(REGION, PROD, GROUP)  # prod's second in the same second
    assert stats.by_account[("staging", "GetConsumerProgress", "200")] == 1


# --- one client, a lane per account --------------------------------------------------------------------


async def test_one_client_signs_each_accounts_calls_with_its_own_keys_and_budget(world: World) -> None:
    """Two lanes over one session: each account's calls carry its key and pass its limiter only."""
    prod_limiter, staging_limiter = RateLimiter(1000), RateLimiter(1000)
    stats = ApiStats()
    client = AlikafkaClient(api_settings(world.base), static("prod"), prod_limiter, stats, account="prod")
    client.add_account("staging", static("staging"), staging_limiter, 2)
    assert client.accounts == ("prod", "staging")
    async with client:
        await asyncio.gather(*(client.account("prod").get_consumer_progress(REGION, PROD, GROUP) for _ in range(3)),
                             client.account("staging").get_consumer_progress(REGION, STAGING, GROUP))
        with pytest.raises(AuthError, match="not configured"):
            await client.account("dev").call("GetInstanceList", REGION, {"RegionId": REGION})
        with pytest.raises(RuntimeError):
            client.add_account("late", static("prod"), RateLimiter(1), 1)
    assert {(r.access_key_id, r.params["InstanceId"]) for r in world.sim.requests} == {
        (KEYS["prod"][0], PROD), (KEYS["staging"][0], STAGING)}
    assert stats.by_account == {("prod", "GetConsumerProgress", "200"): 3,
                                ("staging", "GetConsumerProgress", "200"): 1}
    assert client.limiter("prod") is prod_limiter and client.limiter("staging") is staging_limiter


def test_each_accounts_caller_paces_on_its_own_limiter() -> None:
    """Each account's schedule reads its own budget: the lane's limiter, never the accounts' rates added up."""
    prod, staging = RateLimiter(3), RateLimiter(1.5)
    client = AlikafkaClient(api_settings("http://127.0.0.1:1/"), static("prod"), prod, ApiStats(), account="prod")
    assert client.pace is prod
    client.add_account("staging", static("staging"), staging, 1)
    assert client.pace is prod
    assert client.account("prod").pace is prod and client.account("staging").pace is staging
    assert (client.account("staging").pace.max_qps, client.account("staging").pace.waiting) == (1.0, 0)


# --- STS AssumeRole --------------------------------------------------------------------------------------


async def test_role_arn_is_assumed_with_the_accounts_keys_and_reaches_the_roles_instances(
        world: World, tmp_path: Path) -> None:
    """account_chain: the files' keys sign AssumeRole; the role's STS keys poll the role's account's instance,
    STS is counted under the account, and the source names role and files but no secret."""
    options = key_files(tmp_path, "staging").model_copy(update={"sts_endpoint": world.sts_url,
                                                                "role_session_name": "exporter-test"})
    transport = PlainTransport()
    provider = account_chain(options, ROLE, NO_ENV, transport.for_account("staging"))
    assert isinstance(provider, AssumeRoleProvider)
    assert provider.source.startswith(f"assume role {ROLE} (STS {world.sts_url}) with files (")
    assert KEYS["staging"][1] not in provider.source
    stats = ApiStats()
    client = AlikafkaClient(api_settings(world.base), static("prod"), RateLimiter(1000), stats, account="prod",
                            transport=transport)
    client.add_account("staging", provider, RateLimiter(1000), 4)
    async with client:
        await client.account("staging").get_consumer_progress(REGION, STAGING, GROUP)
        with pytest.raises(ForbiddenError):
            await client.account("staging").get_consumer_progress(REGION, PROD, GROUP)
    creds = await provider.get()
    assert creds.access_key_id.startswith("STS.") and creds.security_token is not None
    assert provider.assumed_role_arn == f"{ROLE}/exporter-test"
    assert stats.by_account[("staging", "AssumeRole", "200")] == 1
    assert [(r.status, r.code) for r in world.sts.records] == [(200, "200")]


async def test_assume_role_refreshes_before_expiry(world: World, tmp_path: Path) -> None:
    """900 s credentials, 300 s margin: the RRSA refresh logic, reused: a new AssumeRole at about 600 s."""
    options = key_files(tmp_path, "staging").model_copy(update={"sts_endpoint": world.sts_url,
                                                                "duration_seconds": 900})
    provider = account_chain(options, ROLE, NO_ENV)
    assert isinstance(provider, AssumeRoleProvider)
    provider._clock = world.clock
    first = await provider.get()
    world.clock.now += 550
    assert await provider.get() is first
    world.clock.now += 100
    second = await provider.get()
    assert second.access_key_id != first.access_key_id
    assert sum(r.status == 200 for r in world.sts.records) == 2


async def test_untrusted_caller_and_bad_signature_are_refused_clearly(world: World, tmp_path: Path) -> None:
    """STS checks the caller: prod's key may not assume staging's role (403 NoPermission), a wrong secret fails
    the signature; neither is retried, and no message holds a secret."""
    refused = account_chain(key_files(tmp_path, "prod").model_copy(update={"sts_endpoint": world.sts_url}),
                            ROLE, NO_ENV)
    with pytest.raises(Exception, match=r"NoPermission \(HTTP 403\)") as info:
        await refused.get()
    assert KEYS["prod"][1] not in str(info.value)
    wrong = AssumeRoleProvider(StaticProvider(Credentials(KEYS["staging"][0], Secret("not-the-secret")), "wrong"),
                               ROLE, sts_endpoint=world.sts_url)
    with pytest.raises(Exception, match="SignatureDoesNotMatch") as info:
        await wrong.get()
    assert "not-the-secret" not in str(info.value) and "string to sign" not in str(info.value)
    assert [r.code for r in world.sts.records] == ["NoPermission", "SignatureDoesNotMatch"]


async def test_assumed_keys_are_learnt_by_the_redactor(world: World, tmp_path: Path) -> None:
    """Wrapped as the exporter wraps every account's chain: the role's secret and token reach the redactor."""
    redactor = Redactor()
    options = key_files(tmp_path, "staging").model_copy(update={"sts_endpoint": world.sts_url})
    provider = account_chain(options, ROLE, NO_ENV, wrap=lambda p: Learning(p, redactor.add))
    creds = await provider.get()
    assert creds.security_token is not None
    assert redactor(f"{creds.access_key_secret.reveal()}/{creds.security_token.reveal()}") == "***/***"


def test_account_providers_builds_the_used_accounts_and_names_a_failing_one(tmp_path: Path) -> None:
    """Only accounts some target uses get a chain; a chain that cannot resolve names its account's key."""
    files = key_files(tmp_path, "prod")
    config = tmp_path / "config.yaml"
    config.write_text(
        "api: {region: cn-hangzhou}\n"
        f"accounts:\n  prod: {{credentials: {{access_key_id_file: {files.access_key_id_file}, "
        f"access_key_secret_file: {files.access_key_secret_file}}}}}\n  unused: {{}}\n"
        f"targets: [{{instance_id: {PROD}, account: prod, groups: [g]}}]\n")
    providers = account_providers(load_settings({}, {}, config), NO_ENV)
    assert list(providers) == ["prod"]
    config.write_text(config.read_text().replace("account: prod", "account: unused"))
    with pytest.raises(Exception, match=r"^accounts\.unused\.credentials: no credentials found"):
        account_providers(load_settings({}, {}, config), NO_ENV)
