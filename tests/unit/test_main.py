"""The command line as a user runs it: exit codes, --version, --check-config, config errors, no secrets."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.samples import find, has, value

SECRET = "very-secret-value-7f3a"
TOKEN = "sts-token-value-99c1"


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("ALIBABA_CLOUD_", "ALIKAFKA_EXPORTER_"))}
    return subprocess.run([sys.executable, "-m", "exporter", *args], env={**base, **(env or {})},
                          capture_output=True, text=True, timeout=timeout, check=False)


def test_version() -> None:
    """--version prints the version and exits 0."""
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout.startswith("alikafka-exporter 0.")


def test_unknown_flag_exits_2() -> None:
    """argparse usage errors are configuration errors."""
    assert run("--no-such-flag").returncode == 2


def test_invalid_configuration_exits_2_with_one_line_per_problem(tmp_path: Path) -> None:
    """Every problem on its own line, naming key and source; nothing starts."""
    config = tmp_path / "c.yaml"
    config.write_text("poll: {interval: fast}\napi: {max_qps: 0}\n")
    result = run("--config.file", str(config), "--target", "i-1=g", "--region", "cn-hangzhou")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2, result.stderr
    assert all(line.startswith("alikafka-exporter: config error: ") for line in lines)
    assert any(f"poll.interval (file {config})" in line for line in lines)
    assert any(f"api.max_qps (file {config})" in line for line in lines)


def test_no_targets_and_no_credentials_exit_2() -> None:
    """Nothing to poll, or no credentials, is a configuration error."""
    no_targets = run(env={"ALIBABA_CLOUD_ACCESS_KEY_ID": "AK", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": SECRET})
    assert no_targets.returncode == 2
    assert "no targets configured" in no_targets.stderr
    no_creds = run("--target", "i-1=g", "--region", "cn-hangzhou", env={"ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true"})
    assert no_creds.returncode == 2
    assert "no credentials found" in no_creds.stderr


def test_check_config_names_the_source_never_the_secret(tmp_path: Path) -> None:
    """--check-config prints pairs, endpoints and the credentials source; exit 0; no secret anywhere."""
    env = {"ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAI-check", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": SECRET,
           "ALIBABA_CLOUD_SECURITY_TOKEN": TOKEN, "ALIKAFKA_EXPORTER_API__NETWORK": "vpc"}
    result = run("--check-config", "--target", "alikafka_post-cn-1=orders,billing", "--region", "cn-beijing",
                 "--log.level", "debug", env=env)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "configuration OK" in out
    assert "alikafka_post-cn-1 billing (region cn-beijing)" in out
    assert "https://alikafka-vpc.cn-beijing.aliyuncs.com/" in out
    assert "environment (ALIBABA_CLOUD_ACCESS_KEY_ID" in out
    for text in (result.stdout, result.stderr):
        assert SECRET not in text
        assert TOKEN not in text


def test_credentials_files_unreadable_exit_2(tmp_path: Path) -> None:
    """Configured key files that cannot be read stop the start with a clear line."""
    config = tmp_path / "c.yaml"
    config.write_text(f"credentials:\n  access_key_id_file: {tmp_path}/id\n  access_key_secret_file: {tmp_path}/s\n")
    result = run("--config.file", str(config), "--target", "i=g", "--region", "r")
    assert result.returncode == 2
    assert "cannot read credentials file" in result.stderr


@pytest.mark.parametrize("flag", ["--log.format", "--log.level"])
def test_bad_choice_flags_exit_2(flag: str) -> None:
    """Flags with fixed choices reject other values with exit 2."""
    assert run(flag, "loud").returncode == 2


def test_demo_once_polls_the_simulator() -> None:
    """--demo --once polls every demo group through the in-process simulator and prints their metrics."""
    result = run("--demo", "--once", timeout=60)
    assert result.returncode == 0, result.stderr
    sender = {"group": "email-sender", "instance_id": "alikafka_post-cn-demo0001"}
    assert has(result.stdout, "alikafka_consumergroup_group_lag", **sender)
    assert value(result.stdout, "alikafka_consumergroup_members", **sender) == 0
    assert 1 in [s.value for s in find(result.stdout, "alikafka_consumergroup_state", state="preparing_rebalance")]
    assert has(result.stdout, "alikafka_exporter_targets", state="ok")
    assert "DEMO MODE" in result.stderr
    assert "simulated" in result.stderr


def test_once_exits_1_when_a_pair_fails(tmp_path: Path) -> None:
    """--once against an unreachable endpoint prints the exposition with up 0 and exits 1."""
    env = {"ALIBABA_CLOUD_ACCESS_KEY_ID": "AK", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": SECRET,
           "ALIKAFKA_EXPORTER_API__ENDPOINT": "http://127.0.0.1:9/", "ALIKAFKA_EXPORTER_API__MAX_RETRIES": "0"}
    result = run("--once", "--target", "i-1=g", "--region", "cn-hangzhou", env=env)
    assert result.returncode == 1
    assert value(result.stdout, "alikafka_consumergroup_up", group="g", instance_id="i-1") == 0
    assert 'code="connection_error"' in result.stdout
    assert SECRET not in result.stdout + result.stderr
