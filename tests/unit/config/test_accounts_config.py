"""The ``accounts`` section and ``targets[].account``: names, references, limits, secret files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from exporter.config.errors import ConfigError
from exporter.config.settings import load_settings


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_settings({}, {}, path)
    return info.value.problems


THREE = """
api: {region: cn-hangzhou, max_qps: 5}
accounts:
  prod:
    credentials: {access_key_id_file: /s/prod/id, access_key_secret_file: /s/prod/secret}
    max_qps: 2
    max_concurrency: 2
  staging:
    role_arn: acs:ram::1234567890123456:role/alikafka-monitor
targets:
  - {instance_id: i-prod, account: prod, groups: [a]}
  - {instance_id: i-staging, account: staging, groups: [b]}
  - {instance_id: i-own, groups: [c]}
"""


def test_accounts_are_read_with_their_limits(tmp_path: Path) -> None:
    """Each account has its own budget; an account that sets none takes api's; targets name them."""
    s = load_settings({}, {}, write(tmp_path, THREE))
    assert sorted(s.accounts) == ["prod", "staging"]
    assert s.accounts["prod"].credentials.access_key_secret_file == Path("/s/prod/secret")
    assert s.accounts["staging"].role_arn == "acs:ram::1234567890123456:role/alikafka-monitor"
    assert s.account_limits("prod") == (2.0, 2)
    assert s.account_limits("staging") == (5.0, 4)
    assert s.account_limits("default") == (5.0, 4)
    assert [s.account_of(t) for t in s.targets] == ["prod", "staging", "default"]
    assert s.used_accounts == ("default", "prod", "staging")


def test_without_accounts_everything_is_the_default_account() -> None:
    """No accounts section: today's behaviour, one account named default."""
    s = load_settings({}, {}, None)
    assert s.accounts == {}
    assert s.used_accounts == ("default",)


def test_a_target_naming_an_undefined_account_is_refused(tmp_path: Path) -> None:
    """Exit 2 naming targets[N].account and the accounts that exist."""
    found = problems(write(tmp_path, THREE.replace("account: staging", "account: stagng")))
    assert len(found) == 1
    assert found[0].startswith("targets[1].account (file ")
    assert "no account 'stagng' in accounts (defined: prod, staging)" in found[0]


@pytest.mark.parametrize("name", ["Prod", "prod team", "prod.eu", "-x", "", "a" * 64])
def test_account_names_must_be_label_values(tmp_path: Path, name: str) -> None:
    """Names become the account label's value: lower-case letters, digits, _ and -."""
    found = problems(write(tmp_path, f"accounts:\n  {name!r}: {{}}\n"))
    assert len(found) == 1 and found[0].startswith("accounts (file ") and "account names must be" in found[0]


def test_default_is_reserved_for_the_top_level_credentials(tmp_path: Path) -> None:
    found = problems(write(tmp_path, "accounts:\n  default: {}\n"))
    assert len(found) == 1 and "'default' names the top-level credentials" in found[0]


@pytest.mark.parametrize(("key", "value", "wanted"), [
    ("role_arn", "arn:aws:iam::1:role/x", "accounts.prod.role_arn"),
    ("max_qps", 0, "accounts.prod.max_qps"),
    ("max_concurrency", 1000, "accounts.prod.max_concurrency"),
    ("credentials", {"access_key_id_file": "/x"}, "accounts.prod.credentials.access_key_secret_file"),
    ("colour", "blue", "accounts.prod.colour"),
])
def test_bad_account_keys_are_named(tmp_path: Path, key: str, value: Any, wanted: str) -> None:
    found = problems(write(tmp_path, f"accounts:\n  prod:\n    {key}: {value!r}\n".replace("'", '"')))
    assert any(p.startswith(wanted + " (file ") for p in found), found


def test_account_secret_files_are_shown_to_the_redactor_first(tmp_path: Path) -> None:
    """Each account's secret and token files are learnt before validation, like the top-level ones."""
    seen: list[str] = []
    path = write(tmp_path, "credentials: {access_key_id_file: /t/id, access_key_secret_file: /t/secret}\n"
                           "accounts:\n"
                           "  prod: {credentials: {access_key_id_file: /p/id, access_key_secret_file: /p/secret,"
                           " security_token_file: /p/token}}\n"
                           "  dev: {credentials: {access_key_id_file: /d/id, access_key_secret_file: /d/secret}}\n")
    load_settings({}, {}, path, seen.append)
    assert sorted(seen) == ["/d/secret", "/p/secret", "/p/token", "/t/secret"]
