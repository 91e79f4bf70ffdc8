"""Accounts through the command line: ``alikafka-simulator --account/--assume-role`` as its own process, and
``alikafka-exporter --check-config``, ``--probe`` and ``--once`` as a user runs them with two accounts of
different keys (one also assuming a role). Each prints each account's source, never a secret."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import samples
from tests.support.procs import clean_env, free_port, http_get, process, python_module, wait_for

REGION = "cn-hangzhou"
HZ, SH = "alikafka_post-cn-demo0001", "alikafka_pre-cn-demo0002"  # builtin:demo's instances
PROD = ("LTAI5tProdE2E0001", "prod-e2e-secret-0a1b2c")
STAG = ("LTAI5tStagE2E0001", "stag-e2e-secret-3d4e5f")
ROLE = "acs:ram::4444444444444444:role/alikafka-monitor"


def exporter(*args: str) -> tuple[int, str, str]:
    done = subprocess.run([sys.executable, "-m", "exporter", *args], env=clean_env(), capture_output=True,
                          text=True, timeout=60, check=False)
    return done.returncode, done.stdout, done.stderr


@pytest.fixture
def simulator(tmp_path: Path) -> str:
    """prod owns HZ with its key; staging owns SH, reached only through a role the staging key may assume."""
    port = free_port()
    args = python_module("exporter.simulator", "--listen", f"127.0.0.1:{port}", "--scenario", "builtin:demo",
                         "--account", f"prod={PROD[0]}:{PROD[1]}@{HZ}",
                         "--account", f"staging-base={STAG[0]}:{STAG[1]}@alikafka_serverless-cn-demo0003",
                         "--account", f"staging=unused:unused@{SH}",
                         "--assume-role", f"{ROLE}=staging:{STAG[0]}")
    base = f"http://127.0.0.1:{port}"
    with process(args, clean_env(), tmp_path / "sim.log"):
        wait_for(lambda: True if http_get(f"{base}/_sim/truth")[0] == 200 else None, 20, "simulator")
        yield base


def write_config(tmp_path: Path, base: str) -> Path:
    for name, (key_id, secret) in (("prod", PROD), ("stag", STAG)):
        for suffix, text in (("id", key_id), ("secret", secret)):
            path = tmp_path / f"{name}.{suffix}"
            path.write_text(text)
            path.chmod(0o400)
    config = tmp_path / "config.yaml"
    config.write_text(f"""
api: {{endpoint: "{base}/", region: {REGION}}}
accounts:
  prod: {{credentials: {{access_key_id_file: {tmp_path}/prod.id, access_key_secret_file: {tmp_path}/prod.secret}}}}
  staging:
    credentials: {{access_key_id_file: {tmp_path}/stag.id, access_key_secret_file: {tmp_path}/stag.secret,
                  sts_endpoint: "{base}/sts/"}}
    role_arn: {ROLE}
    max_qps: 2
targets:
  - {{instance_id: {HZ}, account: prod, groups: [orders-consumer, payments-processor]}}
  - {{instance_id: {SH}, region: cn-shanghai, account: staging, groups: all}}
""")
    return config


def test_check_config_probe_and_once_with_two_accounts(simulator: str, tmp_path: Path) -> None:
    config = write_config(tmp_path, simulator)
    code, out, err = exporter("--config.file", str(config), "--check-config")
    assert code == 0, err
    assert f"  prod: files ({tmp_path}/prod.id, {tmp_path}/prod.secret); max_qps 3, max_concurrency 4" in out
    assert f"  staging: assume role {ROLE} (STS {simulator}/sts/) with files ({tmp_path}/stag.id" in out
    assert "max_qps 2" in out

    code, out, err = exporter("--config.file", str(config), "--probe")
    assert code == 0, out + err
    assert "credentials prod" in out and "credentials staging" in out
    assert f"assume role {ROLE}" in out

    code, out, err = exporter("--config.file", str(config), "--once")
    assert code == 0, err
    for group in ("orders-consumer", "payments-processor"):
        assert samples.value(out, "alikafka_consumergroup_up", instance_id=HZ, group=group) == 1
    assert samples.has(out, "alikafka_consumergroup_up", instance_id=SH)
    # The role's first keys were fetched by the start-up check, before counting starts (docs/metrics.md).
    assert samples.value(out, "alikafka_exporter_api_requests_total", account="staging", action="GetConsumerList",
                         code="200") == 1
    assert samples.value(out, "alikafka_exporter_api_requests_total", account="prod",
                         action="GetConsumerProgress", code="200") == 2
    for text in (out, err):
        assert PROD[1] not in text and STAG[1] not in text


def test_a_role_the_key_may_not_assume_exits_2_naming_the_account(simulator: str, tmp_path: Path) -> None:
    """prod's key asking for staging's role: STS refuses (NoPermission); start-up fails naming the key."""
    config = write_config(tmp_path, simulator)
    config.write_text(config.read_text().replace(f"{tmp_path}/stag.", f"{tmp_path}/prod."))
    code, _, err = exporter("--config.file", str(config), "--check-config")
    assert code == 2
    assert "accounts.staging.credentials: STS AssumeRole for" in err and "NoPermission (HTTP 403)" in err
    assert PROD[1] not in err
