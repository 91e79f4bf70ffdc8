"""The Helm chart's ``accounts``: one Secret per account or a role ARN on the pod's RRSA credentials, rendered by
Helm's own engine and read back through the exporter's own settings loader, as the pod would see them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml

from exporter.config.errors import ConfigError
from tests.deploy.test_helm import (
    consumer_chart,  # noqa: F401 - the parent chart fixture, shared with the sidecar tests there
    deployment_settings,
    exporter_container,
    kube_validate,
    one,
    render,
    values,
    volume,
)
from tests.support.tools import ROOT

ROLE = "acs:ram::2222222222222222:role/alikafka-monitor"
THREE = {
    "accounts": {
        "prod": {"existingSecret": "alikafka-prod", "maxQps": 2},
        "stag_eu": {"existingSecret": "alikafka-stag", "existingSecretKeys": {
            "accessKeyId": "id", "accessKeySecret": "secret", "securityToken": "sts"}, "maxConcurrency": 2},
        "analytics": {"roleArn": ROLE},
    },
    "rrsa": {"enabled": True, "mode": "manual", "roleArn": "acs:ram::1111111111111111:role/lag",
             "oidcProviderArn": "acs:ram::1111111111111111:oidc-provider/ack-rrsa-c0ffee"},
    "config": {
        "accounts": {"analytics": {"credentials": {"role_session_name": "lag-analytics"}}},
        "targets": [
            {"instance_id": "alikafka_post-cn-0pp1abcd0001", "account": "prod", "groups": ["orders-consumer"]},
            {"instance_id": "alikafka_pre-cn-7mz2efgh0002", "region": "cn-shanghai", "account": "stag_eu",
             "groups": ["audit-log"]},
            {"instance_id": "alikafka_post-cn-0pp1abcd0003", "account": "analytics", "groups": "all"},
        ],
    },
}


def _account_files(pod: dict[str, Any], container: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """{file path in the container: (Secret name, key)} for every mounted account Secret."""
    files = {}
    for mount in container["volumeMounts"]:
        if not mount["name"].startswith("account-"):
            continue
        assert mount["readOnly"]
        secret = volume(pod, mount["name"])["secret"]
        files.update({f"{mount['mountPath']}/{i['path']}": (secret["secretName"], i["key"]) for i in secret["items"]})
    return files


def test_three_accounts_mount_their_secrets_and_reach_the_exporters_settings(tmp_path: Path) -> None:
    """Each account with a Secret gets its own volume and file paths; a role ARN and limits pass through;
    the exporter loads the result and each target names its account."""
    docs = render(values(THREE))
    kube_validate(docs, tmp_path)
    deployment = one(docs, "Deployment")
    pod, container = deployment["spec"]["template"]["spec"], exporter_container(deployment)
    settings = deployment_settings(docs, tmp_path)[0]
    assert sorted(settings.accounts) == ["analytics", "prod", "stag_eu"]
    prod, stag, analytics = (settings.accounts[n] for n in ("prod", "stag_eu", "analytics"))
    files = _account_files(pod, container)
    assert files == {
        str(prod.credentials.access_key_id_file): ("alikafka-prod", "access_key_id"),
        str(prod.credentials.access_key_secret_file): ("alikafka-prod", "access_key_secret"),
        str(stag.credentials.access_key_id_file): ("alikafka-stag", "id"),
        str(stag.credentials.access_key_secret_file): ("alikafka-stag", "secret"),
        str(stag.credentials.security_token_file): ("alikafka-stag", "sts"),
    }
    assert prod.credentials.security_token_file is None
    assert (analytics.role_arn, analytics.credentials.access_key_id_file) == (ROLE, None)
    assert analytics.credentials.role_session_name == "lag-analytics"  # config.accounts merges with accounts
    assert (settings.account_limits("prod"), settings.account_limits("stag_eu")) == ((2.0, 4), (3.0, 2))
    assert [settings.account_of(t) for t in settings.targets] == ["prod", "stag_eu", "analytics"]
    assert settings.credentials.access_key_id_file is None  # the default chain stays the pod's (RRSA here)
    assert {v["name"] for v in pod["volumes"]} >= {"config", "tmp", "rrsa-oidc-token"}
    assert all(re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", v["name"]) for v in pod["volumes"])
    assert volume(pod, next(n for n in (m["name"] for m in container["volumeMounts"])
                            if n.startswith("account-")))["secret"]["defaultMode"] == 0o440


def test_without_accounts_nothing_changes() -> None:
    docs = render(values())
    config = yaml.safe_load(one(docs, "ConfigMap")["data"]["config.yaml"])
    assert "accounts" not in config
    container = exporter_container(one(docs, "Deployment"))
    assert not [m for m in container["volumeMounts"] if m["name"].startswith("account-")]


@pytest.mark.parametrize(("bad", "message"), [
    ({"accounts": {"Prod": {}}}, r"invalid propertyName 'Prod'"),
    ({"accounts": {"default": {}}}, r"invalid propertyName 'default'"),
    ({"accounts": {"prod": {"roleArn": "arn:aws:iam::1:role/x"}}}, r"/accounts/prod/roleArn.*pattern"),
    ({"accounts": {"prod": {"maxQps": 0}}}, r"/accounts/prod/maxQps.*exclusiveMinimum"),
    ({"accounts": {"prod": {"secret": "x"}}}, r"additional properties 'secret' not allowed"),
    ({"config": {"accounts": {"prod": {"max_qps": 5000}}}}, r"/config/accounts/prod/max_qps.*maximum"),
    ({"config": {"targets": [{"instance_id": "x", "groups": ["g"], "account": "Prod"}]}},
     r"/config/targets/0/account.*pattern"),
])
def test_schema_rejects_bad_accounts(bad: dict[str, Any], message: str) -> None:
    with pytest.raises(helm.HelmValuesError, match=message):
        render(values(bad))


def test_a_secret_and_hand_written_key_files_exclude_each_other() -> None:
    bad = {"accounts": {"prod": {"existingSecret": "ak"}},
           "config": {"accounts": {"prod": {"credentials": {"access_key_id_file": "/x"}}}}}
    with pytest.raises(helm.HelmError, match=r"config\.accounts\.prod\.credentials\.access_key_id_file is managed"):
        render(values(bad))


def test_a_target_naming_no_account_fails_in_the_exporters_loader(tmp_path: Path) -> None:
    """The chart renders it; the exporter refuses it at start naming the key (exit 2)."""
    docs = render(values({"config": {"targets": [{"instance_id": "x", "groups": ["g"], "account": "nope"}]}}))
    with pytest.raises(ConfigError, match=r"targets\[0\]\.account .*no account 'nope'"):
        deployment_settings(docs, tmp_path)


def test_three_account_example_in_the_deploy_docs_installs(tmp_path: Path) -> None:
    text = (ROOT / "docs" / "deploy.md").read_text()
    block = re.search(r"```yaml\n(# accounts-values\.yaml\n.*?)```", text, re.DOTALL)
    assert block, "docs/deploy.md lost its accounts-values.yaml example"
    docs = render(yaml.safe_load(block.group(1)))
    kube_validate(docs, tmp_path)
    settings = deployment_settings(docs, tmp_path)[0]
    assert sorted(settings.accounts) == ["analytics", "prod", "staging"]
    assert settings.accounts["staging"].role_arn.startswith("acs:ram::2222")
    assert settings.accounts["staging"].credentials.sts_network == "vpc"
    assert settings.accounts["prod"].credentials.access_key_secret_file is not None
    assert [settings.account_of(t) for t in settings.targets] == ["prod", "staging", "analytics"]


def test_the_sidecar_refuses_accounts(consumer_chart: Path) -> None:  # noqa: F811 - the imported fixture
    """A sidecar polls its application's one instance with the top-level credentials: accounts are refused
    with a message saying so, not silently ignored."""
    for extra in ({"accounts": {"prod": {"existingSecret": "orders-prod-ak"}}},
                  {"config": {"accounts": {"prod": {"max_qps": 1}}}}):
        with pytest.raises(helm.HelmError, match="accounts are for the Deployment modes"):
            render({"alikafka-exporter": extra}, chart=consumer_chart)
