"""The Helm chart in deploy/helm/alikafka-exporter, rendered by Helm's own engine (helm-python-sdk).

Every mode is rendered for real and checked three ways: the built-in kinds with kubernetes-validate
(strict, Kubernetes 1.30), the ServiceMonitor and PrometheusRule against the prometheus-operator CRD
schemas vendored in fixtures/crds, and the exporter's configuration as the pod would see it (config
file, arguments and environment) through the exporter's own settings loader. The sidecar template is
rendered from a small parent chart that depends on this one, and the plain strategic-merge patch in
deploy/examples is applied with ``kubectl patch --local``.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

import helm_python as helm
import jsonschema
import pytest
import trustme
import yaml

from exporter.app import plan_pairs
from exporter.cloud.ratelimit import RateLimiter
from exporter.config.cli import parse_args
from exporter.config.settings import EXPORTER_LABELS, PROMETHEUS_LABELS, Settings, load_settings
from exporter.web import webconfig
from tests.support import samples
from tests.support.procs import clean_env, free_port, http_get, process, prom_query, python_module, wait_for
from tests.support.tools import ROOT, find_tool
from tests.support.webserve import hash_password

CHART = ROOT / "deploy" / "helm" / "alikafka-exporter"
EXAMPLES = ROOT / "deploy" / "examples"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
CRDS = FIXTURES / "crds"
NAMESPACE = "monitoring"
RELEASE = "lag"
SECRET_VALUE = "s3cr3t-AccessKeySecret-value"

TARGETS: dict[str, Any] = {
    "config": {
        "api": {"region": "cn-hangzhou"},
        "targets": [
            {"instance_id": "alikafka_post-cn-0pp1abcd0001", "groups": ["orders-consumer", "billing"]},
            {"instance_id": "alikafka_pre-cn-7mz2efgh0002", "region": "cn-shanghai", "groups": ["audit-log"]},
        ],
    }
}


def values(*overrides: dict[str, Any]) -> dict[str, Any]:
    """TARGETS deep-merged with the overrides (later wins)."""
    merged = copy.deepcopy(TARGETS)
    for override in overrides:
        _merge(merged, override)
    return merged


def _merge(base: dict[str, Any], over: dict[str, Any]) -> None:
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = copy.deepcopy(value)


def render_raw(vals: dict[str, Any], chart: Path = CHART) -> dict[str, str]:
    with helm.Chart.load(str(chart)) as loaded:
        return loaded.render(vals, name=RELEASE, namespace=NAMESPACE)


def render(vals: dict[str, Any], chart: Path = CHART) -> list[dict[str, Any]]:
    """The rendered objects (NOTES.txt and empty templates dropped)."""
    docs = []
    for path, text in sorted(render_raw(vals, chart).items()):
        if path.endswith("NOTES.txt") or not text.strip():
            continue
        docs.extend(doc for doc in yaml.safe_load_all(text) if doc)
    return docs


def notes(vals: dict[str, Any]) -> str:
    return next(text for path, text in render_raw(vals).items() if path.endswith("NOTES.txt"))


def of_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = of_kind(docs, kind)
    assert len(found) == 1, f"expected one {kind}, got {len(found)}"
    return found[0]


def exporter_container(deployment: dict[str, Any]) -> dict[str, Any]:
    return deployment["spec"]["template"]["spec"]["containers"][0]


def kube_validate(docs: list[dict[str, Any]], tmp_path: Path) -> None:
    """kubernetes-validate --strict against Kubernetes 1.30 for the built-in kinds."""
    builtin = [d for d in docs if not d["apiVersion"].startswith("monitoring.coreos.com/")]
    assert builtin
    path = tmp_path / "rendered.yaml"
    path.write_text(yaml.safe_dump_all(builtin))
    tool = str(Path(sys.executable).parent / "kubernetes-validate")
    result = subprocess.run([tool, "--strict", "-k", "1.30.0", str(path)], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(" passed for resource ") == len(builtin), result.stdout


def _close(schema: Any) -> Any:
    """Strict field validation: objects with listed properties refuse unknown ones."""
    if isinstance(schema, dict):
        schema = {k: _close(v) for k, v in schema.items()}
        if ("properties" in schema and "additionalProperties" not in schema
                and not schema.get("x-kubernetes-preserve-unknown-fields")):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [_close(item) for item in schema]
    return schema


def crd_validate(doc: dict[str, Any]) -> None:
    """Validate a prometheus-operator object against its vendored CRD's openAPIV3Schema."""
    group, version = doc["apiVersion"].split("/")
    plural = {"ServiceMonitor": "servicemonitors", "PrometheusRule": "prometheusrules"}[doc["kind"]]
    crd = yaml.safe_load((CRDS / f"{group}_{plural}.yaml").read_text())
    assert crd["spec"]["names"]["kind"] == doc["kind"]
    served = {v["name"]: v for v in crd["spec"]["versions"]}
    schema = _close(served[version]["schema"]["openAPIV3Schema"])
    schema["properties"]["metadata"] = {"type": "object", "required": ["name", "namespace"]}
    jsonschema.Draft7Validator(schema).validate(doc)


def materialize(pod_spec: dict[str, Any], container: dict[str, Any], configmaps: list[dict[str, Any]],
                tmp_path: Path, secrets: dict[str, dict[str, str]] | None = None) -> tuple[list[str], dict[str, str]]:
    """The container's arguments and environment with its ConfigMap and Secret volumes written under
    tmp_path, and every mount path in them (and in the files) pointed there instead."""
    mounts = {m["name"]: m["mountPath"] for m in container.get("volumeMounts", [])}
    by_name = {cm["metadata"]["name"]: cm["data"] for cm in configmaps}
    files: dict[str, dict[str, str]] = {}
    for vol in pod_spec["volumes"]:
        if vol["name"] not in mounts:
            continue
        if "configMap" in vol:
            files[mounts[vol["name"]]] = dict(by_name[vol["configMap"]["name"]])
        elif "secret" in vol and secrets is not None:
            data = secrets[vol["secret"]["secretName"]]
            files[mounts[vol["name"]]] = {i["path"]: data[i["key"]] for i in vol["secret"]["items"]}
    local = {path: tmp_path / "mounts" / str(n) for n, path in enumerate(sorted(files, key=len, reverse=True))}

    def relocate(text: str) -> str:
        for path, there in local.items():
            text = text.replace(f"{path}/", f"{there}/")
        return text

    for path, content in files.items():
        local[path].mkdir(parents=True, exist_ok=True)
        for name, text in content.items():
            (local[path] / name).write_text(relocate(text))
    args = [relocate(a) for a in container["args"]]
    environ = {e["name"]: relocate(e["value"]) for e in container.get("env", []) if "value" in e}
    return args, environ


def pod_settings(pod_spec: dict[str, Any], container: dict[str, Any], configmaps: list[dict[str, Any]],
                 tmp_path: Path) -> Settings:
    """The exporter's settings as the container would load them: its mounted config file, args and env."""
    args, environ = materialize(pod_spec, container, configmaps, tmp_path)
    cli = parse_args(args)
    return load_settings(cli.flags, environ, cli.config_file)


def deployment_settings(docs: list[dict[str, Any]], tmp_path: Path) -> list[Settings]:
    result = []
    for index, deployment in enumerate(of_kind(docs, "Deployment")):
        spec = deployment["spec"]["template"]["spec"]
        result.append(pod_settings(spec, spec["containers"][0], of_kind(docs, "ConfigMap"), tmp_path / str(index)))
    return result


def volume(pod_spec: dict[str, Any], name: str) -> dict[str, Any]:
    return next(v for v in pod_spec["volumes"] if v["name"] == name)


# -- lint and schema -----------------------------------------------------------------------------------

@pytest.mark.parametrize("extra", [
    {},
    {"sharding": {"enabled": True, "shards": 3}, "serviceMonitor": {"enabled": True},
     "prometheusRule": {"enabled": True}, "podDisruptionBudget": {"enabled": True},
     "networkPolicy": {"enabled": True, "ingressFrom": [{"podSelector": {"matchLabels": {"app": "prometheus"}}}]}},
    {"rrsa": {"enabled": True, "mode": "manual", "roleArn": "acs:ram::1234567890123456:role/lag",
              "oidcProviderArn": "acs:ram::1234567890123456:oidc-provider/ack-rrsa-c0ffee"}},
], ids=["default", "sharded-monitored", "rrsa-manual"])
def test_lint_strict_is_clean(extra: dict[str, Any]) -> None:
    report = helm.lint(str(CHART), values(extra), strict=True, namespace=NAMESPACE, kube_version="v1.30.0")
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


def test_default_values_without_targets_fail_with_a_clear_message() -> None:
    with pytest.raises(helm.HelmError, match=r"config\.targets is empty: list at least one target"):
        render({})


@pytest.mark.parametrize(("bad", "message"), [
    ({"sharding": {"enabled": True, "shards": 0}}, r"/sharding/shards.*minimum"),
    ({"sharding": {"shards": -2}}, r"/sharding/shards.*minimum"),
    ({"sharding": {"shards": "three"}}, r"/sharding/shards.*integer"),
    ({"sharding": {"shards": 1.5}}, r"/sharding/shards.*integer"),
    ({"sharding": {"shards": 1000}}, r"/sharding/shards.*maximum"),
    ({"replicas": 2}, r"additional properties 'replicas' not allowed"),
    ({"config": {"poll": {"intervall": "30s"}}}, r"/config/poll.*additional properties 'intervall' not allowed"),
    ({"config": {"reloading": {"x": 1}}}, r"/config.*additional properties 'reloading' not allowed"),
    ({"config": {"reload": {"watch_interval": "soon"}}}, r"/config/reload/watch_interval.*pattern"),
    ({"config": {"api": {"network": "internal"}}}, r"/config/api/network.*(enum|value must be one of)"),
    ({"config": {"api": {"max_qps": 0}}}, r"/config/api/max_qps.*exclusiveMinimum"),
    ({"config": {"poll": {"interval": "soon"}}}, r"/config/poll/interval.*pattern"),
    ({"config": {"targets": [{"instance_id": "x"}]}}, r"/config/targets/0.*missing propert(y|ies) 'groups'"),
    ({"image": {"pullPolicy": "Sometimes"}}, r"/image/pullPolicy"),
    ({"port": 70000}, r"/port.*maximum"),
    ({"rrsa": {"roleArn": "arn:aws:iam::1:role/x"}}, r"/rrsa/roleArn.*pattern"),
    ({"rrsa": {"tokenExpirationSeconds": 60}}, r"/rrsa/tokenExpirationSeconds.*minimum"),
    ({"credentials": {"accessKeyID": "x"}}, r"additional properties 'accessKeyID' not allowed"),
    ({"config": {"credentials": {"duration_seconds": 600}}}, r"/config/credentials/duration_seconds.*minimum"),
    ({"config": {"credentials": {"duration_seconds": 50000}}}, r"/config/credentials/duration_seconds.*maximum"),
    ({"config": {"credentials": {"sts_network": "intranet"}}}, r"/config/credentials/sts_network"),
    ({"config": {"credentials": {"role_session_name": "x"}}}, r"/config/credentials/role_session_name.*pattern"),
    ({"config": {"credentials": {"sts_region": "CN Hangzhou"}}}, r"/config/credentials/sts_region.*pattern"),
    ({"config": {"credentials": {"metadata_endpoint": "100.100.100.200"}}},
     r"/config/credentials/metadata_endpoint.*pattern"),
    ({"config": {"credentials": {"sts_endpoint": "https://sts.aliyuncs.com/?x=1"}}},
     r"/config/credentials/sts_endpoint.*pattern"),
    ({"config": {"credentials": {"refresh_margin": 7200}}}, r"/config/credentials/refresh_margin.*maximum"),
    ({"config": {"credentials": {"refresh_margin": "soon"}}}, r"/config/credentials/refresh_margin.*pattern"),
    ({"config": {"targets": [{"instance_id": "x", "groups": ["g"], "labels": {"Team-X": "a"}}]}},
     r"invalid propertyName 'Team-X'"),
    ({"config": {"targets": [{"instance_id": "x", "groups": ["g"], "labels": {"instance_id": "a"}}]}},
     r"invalid propertyName 'instance_id'"),
    ({"config": {"targets": [{"instance_id": "x", "groups": ["g"], "labels": {"__name__": "a"}}]}},
     r"invalid propertyName '__name__'"),
    ({"config": {"targets": [{"instance_id": "x", "groups": ["g"], "labels": {"team": ""}}]}},
     r"/config/targets/0/labels/team.*(minLength|length)"),
    ({"config": {"targets": [{"instance_id": "x", "groups": ["g"], "labels": {"team": 7}}]}},
     r"/config/targets/0/labels/team.*string"),
    ({"config": {"targets": [{"instance_id": "x", "groups": ["g"], "thresholds": {"lag": -1}}]}},
     r"/config/targets/0/thresholds/lag.*minimum"),
    ({"config": {"targets": [{"instance_id": "x", "groups": ["g"], "thresholds": {"lag_second": "5m"}}]}},
     r"/config/targets/0/thresholds.*additional properties 'lag_second' not allowed"),
    ({"config": {"thresholds": {"lag_seconds": "soon"}}}, r"/config/thresholds/lag_seconds.*pattern"),
    ({"config": {"thresholds": {"lag_seconds": 0}}}, r"/config/thresholds/lag_seconds.*exclusiveMinimum"),
    ({"config": {"metrics": {"compat": ["burrow"]}}}, r"/config/metrics/compat"),
], ids=lambda v: json.dumps(v) if isinstance(v, dict) else None)
def test_schema_rejects_bad_values(bad: dict[str, Any], message: str) -> None:
    with pytest.raises(helm.HelmValuesError, match=message):
        render(values(bad))


@pytest.mark.parametrize(("bad", "message"), [
    ({"credentials": {"accessKeyId": "LTAI5t"}}, "must be set together"),
    ({"credentials": {"existingSecret": "ak", "accessKeyId": "a", "accessKeySecret": "b"}}, "not both"),
    ({"credentials": {"existingSecret": "ak"}, "config": {"credentials": {"access_key_id_file": "/x"}}},
     "remove config.credentials"),
    ({"credentials": {"existingSecret": "ak"}, "rrsa": {"enabled": True, "roleName": "lag"}}, "choose one"),
    ({"rrsa": {"enabled": True}}, "rrsa.mode=webhook needs rrsa.roleName"),
    ({"rrsa": {"enabled": True, "mode": "manual", "roleArn": "acs:ram::1:role/x"}},
     "needs rrsa.roleArn and rrsa.oidcProviderArn"),
    ({"sharding": {"enabled": True}, "config": {"shard": "0/2"}}, "config.shard and sharding.enabled"),
    ({"config": {"web": {"listen_address": ":8080"}}}, "set port instead"),
    ({"extraArgs": ["--shard=1/2"]}, "extraArgs: --shard is set by the chart"),
    ({"extraArgs": ["--config.file", "/x"]}, "extraArgs: --config.file is set by the chart"),
    ({"sharding": {"enabled": True, "shards": 200}, "config": {"api": {"max_qps": 1}}}, "below 0.01 per shard"),
])
def test_cross_field_rules_fail_naming_the_values(bad: dict[str, Any], message: str) -> None:
    with pytest.raises(helm.HelmError, match=message.replace(".", r"\.")):
        render(values(bad))


def test_schema_knows_exactly_the_exporters_config_keys() -> None:
    """The schema's config section tracks exporter/config/settings.py: a new or renamed key fails here first."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    config = schema["properties"]["config"]
    assert config["additionalProperties"] is False
    assert set(config["properties"]) == set(Settings.model_fields)
    for name, field in Settings.model_fields.items():
        section = config["properties"][name]
        model = field.annotation
        if name == "targets":
            section, model = section["items"], Settings.model_fields["targets"].annotation.__args__[0]
        if isinstance(model, type) and hasattr(model, "model_fields"):
            assert section["additionalProperties"] is False, name
            assert set(section["properties"]) == set(model.model_fields), name


def test_schema_reserves_the_label_names_the_exporter_refuses() -> None:
    """targets[].labels: the schema refuses the names the settings refuse, no more and no fewer."""
    schema = json.loads((CHART / "values.schema.json").read_text())
    names = schema["properties"]["config"]["properties"]["targets"]["items"]["properties"]["labels"]["propertyNames"]
    assert set(names["not"]["anyOf"][1]["enum"]) == EXPORTER_LABELS | PROMETHEUS_LABELS


def test_labels_thresholds_and_compat_reach_the_exporter(tmp_path: Path) -> None:
    """Per-target labels and thresholds, the default thresholds and a compat list, rendered by Helm, load in
    the exporter as the pod would load them, and its pairs carry them."""
    targets = [
        {"instance_id": "alikafka_post-cn-0pp1abcd0001", "groups": ["orders-consumer"],
         "labels": {"team": "payments", "env": "prod"}, "thresholds": {"lag_seconds": "5m", "lag": 100000}},
        {"instance_id": "alikafka_post-cn-0pp1abcd0001", "groups": ["billing"], "labels": {"team": "billing"}},
    ]
    vals = values({"config": {"targets": targets, "thresholds": {"lag_seconds": "15m"},
                              "metrics": {"compat": ["kafka_exporter", "kafka_lag_exporter"]}}})
    report = helm.lint(str(CHART), vals, strict=True, namespace=NAMESPACE, kube_version="v1.30.0")
    assert report["errors"] == []
    docs = render(vals)
    kube_validate(docs, tmp_path)
    settings = deployment_settings(docs, tmp_path)[0]
    assert settings.metrics.compat == ("kafka_exporter", "kafka_lag_exporter")
    orders, billing = plan_pairs(settings)
    assert dict(orders.labels) == {"team": "payments", "env": "prod"}
    assert (orders.thresholds.lag_seconds, orders.thresholds.lag) == (300.0, 100000)
    assert dict(billing.labels) == {"team": "billing"}
    assert (billing.thresholds.lag_seconds, billing.thresholds.lag) == (900.0, 0)


def test_sts_and_metadata_settings_reach_the_exporter_next_to_chart_managed_files(tmp_path: Path) -> None:
    """config.credentials' STS and ECS keys pass through, also when the chart fills in the file paths."""
    sts = {"sts_endpoint": "sts-vpc.cn-shanghai.aliyuncs.com", "sts_region": "cn-shanghai", "sts_network": "vpc",
           "role_session_name": "alikafka-exporter@lag", "duration_seconds": 7200,
           "metadata_endpoint": "http://100.100.100.200", "refresh_margin": "10m"}
    docs = render(values({"config": {"credentials": sts}, "credentials": {"existingSecret": "ak"}}))
    creds = deployment_settings(docs, tmp_path)[0].credentials
    assert creds.access_key_id_file is not None and creds.access_key_secret_file is not None
    assert (creds.sts_endpoint, creds.sts_region, creds.sts_network) == ("sts-vpc.cn-shanghai.aliyuncs.com",
                                                                         "cn-shanghai", "vpc")
    assert (creds.role_session_name, creds.duration_seconds, creds.refresh_margin) == ("alikafka-exporter@lag",
                                                                                       7200, 600.0)
    assert creds.metadata_endpoint == "http://100.100.100.200"


# -- the default Deployment ------------------------------------------------------------------------------

def test_default_mode_renders_a_hardened_deployment(tmp_path: Path) -> None:
    docs = render(values())
    assert sorted(d["kind"] for d in docs) == ["ConfigMap", "Deployment", "Service", "ServiceAccount"]
    kube_validate(docs, tmp_path)

    deployment = one(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    container = exporter_container(deployment)
    assert deployment["spec"]["replicas"] == 1
    assert pod["automountServiceAccountToken"] is False
    assert pod["serviceAccountName"] == one(docs, "ServiceAccount")["metadata"]["name"]
    assert pod["securityContext"] == {"runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532,
                                      "fsGroup": 65532, "seccompProfile": {"type": "RuntimeDefault"}}
    sc = container["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 65532
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False and sc["privileged"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["ports"] == [{"name": "http", "containerPort": 9897, "protocol": "TCP"}]
    assert "env" not in container  # no credentials or anything else through the environment by default
    tmp_mount = next(m for m in container["volumeMounts"] if m["mountPath"] == "/tmp")
    assert "emptyDir" in volume(pod, tmp_mount["name"])

    configmap = one(docs, "ConfigMap")
    config_mount = next(m for m in container["volumeMounts"] if m["name"] == "config")
    assert f"--config.file={config_mount['mountPath']}/config.yaml" in container["args"]
    assert volume(pod, "config")["configMap"]["name"] == configmap["metadata"]["name"]
    checksum = deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
    assert checksum == hashlib.sha256(configmap["data"]["config.yaml"].rstrip("\n").encode()).hexdigest()

    service = one(docs, "Service")
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()

    settings = deployment_settings(docs, tmp_path)[0]
    assert settings.web.listen_address == ":9897"
    assert settings.api.network == "vpc" and settings.api.region == "cn-hangzhou"
    assert settings.shard == "0/1"
    assert settings.credentials.access_key_id_file is None
    assert [(t.instance_id, t.groups) for t in settings.targets] == [
        ("alikafka_post-cn-0pp1abcd0001", ["orders-consumer", "billing"]),
        ("alikafka_pre-cn-7mz2efgh0002", ["audit-log"])]
    assert "Credentials: no AccessKey Secret and no RRSA" in notes(values())


def test_demo_mode_needs_no_targets(tmp_path: Path) -> None:
    docs = render({"extraArgs": ["--demo"]})
    kube_validate(docs, tmp_path)
    settings = deployment_settings(docs, tmp_path)[0]
    assert settings.demo is True and settings.targets == []


def test_config_change_rolls_the_pods_and_nothing_else_does() -> None:
    def checksum(vals: dict[str, Any]) -> str:
        deployment = one(render(vals), "Deployment")
        return deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"]

    base = checksum(values())
    assert checksum(values({"config": {"poll": {"interval": "30s"}}})) != base
    assert checksum(values({"podLabels": {"team": "kafka"}, "resources": {"limits": {"memory": "1Gi"}}})) == base


def test_exporter_options_reach_the_pod(tmp_path: Path) -> None:
    vals = values({
        "port": 9400, "service": {"port": 80}, "extraArgs": ["--log.format=json"],
        "extraEnv": [{"name": "ALIBABA_CLOUD_ECS_METADATA_DISABLED", "value": "true"}],
        "image": {"tag": "1.2.3"}, "nodeSelector": {"kubernetes.io/os": "linux"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "monitoring", "effect": "NoSchedule"}],
        "affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [{"weight": 1, "preference": {
            "matchExpressions": [{"key": "pool", "operator": "In", "values": ["ops"]}]}}]}},
        "podDisruptionBudget": {"enabled": True},
        "config": {"web": {"telemetry_path": "/lag"}, "log": {"level": "debug"}},
        "serviceMonitor": {"enabled": True},
    })
    docs = render(vals)
    kube_validate(docs, tmp_path)
    deployment = one(docs, "Deployment")
    container = exporter_container(deployment)
    pod = deployment["spec"]["template"]["spec"]
    assert container["image"] == "ghcr.io/alikafka-exporter/alikafka-exporter:1.2.3"
    assert container["ports"][0]["containerPort"] == 9400
    assert pod["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert pod["tolerations"][0]["key"] == "dedicated" and "nodeAffinity" in pod["affinity"]
    assert one(docs, "Service")["spec"]["ports"][0] == {"name": "http", "port": 80, "targetPort": "http",
                                                        "protocol": "TCP"}
    assert one(docs, "ServiceMonitor")["spec"]["endpoints"][0]["path"] == "/lag"
    assert one(docs, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1
    settings = deployment_settings(docs, tmp_path)[0]
    assert (settings.web.listen_address, settings.web.telemetry_path) == (":9400", "/lag")
    assert (settings.log.level, settings.log.format) == ("debug", "json")


# -- credentials -----------------------------------------------------------------------------------------

def _secret_files(pod: dict[str, Any], container: dict[str, Any]) -> dict[str, str]:
    """{file path in the container: secret key} for the mounted credentials Secret."""
    mount = next(m for m in container["volumeMounts"] if m["name"] == "credentials")
    secret = volume(pod, "credentials")["secret"]
    return {f"{mount['mountPath']}/{item['path']}": item["key"] for item in secret["items"]}


def test_chart_managed_secret_is_mounted_as_files_and_never_in_the_environment(tmp_path: Path) -> None:
    docs = render(values({"credentials": {"accessKeyId": "LTAI5tExampleId", "accessKeySecret": SECRET_VALUE}}))
    kube_validate(docs, tmp_path)
    secret = one(docs, "Secret")
    assert base64.b64decode(secret["data"]["access_key_secret"]).decode() == SECRET_VALUE
    for doc in docs:
        if doc is not secret:
            assert SECRET_VALUE not in json.dumps(doc)
            assert base64.b64encode(SECRET_VALUE.encode()).decode() not in json.dumps(doc)
    deployment = one(docs, "Deployment")
    pod, container = deployment["spec"]["template"]["spec"], exporter_container(deployment)
    assert volume(pod, "credentials")["secret"]["secretName"] == secret["metadata"]["name"]
    assert volume(pod, "credentials")["secret"]["defaultMode"] == 0o440
    assert "env" not in container
    files = _secret_files(pod, container)
    settings = deployment_settings(docs, tmp_path)[0]
    assert files[str(settings.credentials.access_key_id_file)] == "access_key_id"
    assert files[str(settings.credentials.access_key_secret_file)] == "access_key_secret"
    assert settings.credentials.security_token_file is None


def test_existing_secret_with_own_key_names_and_a_security_token(tmp_path: Path) -> None:
    docs = render(values({"credentials": {"existingSecret": "alikafka-ram", "existingSecretKeys": {
        "accessKeyId": "id", "accessKeySecret": "secret", "securityToken": "sts"}}}))
    kube_validate(docs, tmp_path)
    assert of_kind(docs, "Secret") == []
    deployment = one(docs, "Deployment")
    pod, container = deployment["spec"]["template"]["spec"], exporter_container(deployment)
    assert volume(pod, "credentials")["secret"]["secretName"] == "alikafka-ram"
    files = _secret_files(pod, container)
    creds = deployment_settings(docs, tmp_path)[0].credentials
    assert [files[str(creds.access_key_id_file)], files[str(creds.access_key_secret_file)],
            files[str(creds.security_token_file)]] == ["id", "secret", "sts"]


def test_rrsa_webhook_annotates_the_service_account_only(tmp_path: Path) -> None:
    vals = values({"rrsa": {"enabled": True, "mode": "webhook", "roleName": "alikafka-lag-reader"},
                   "serviceAccount": {"annotations": {"team": "kafka"}}})
    docs = render(vals)
    kube_validate(docs, tmp_path)
    account = one(docs, "ServiceAccount")
    assert account["metadata"]["annotations"] == {"pod-identity.alibabacloud.com/role-name": "alikafka-lag-reader",
                                                  "team": "kafka"}
    deployment = one(docs, "Deployment")
    pod, container = deployment["spec"]["template"]["spec"], exporter_container(deployment)
    assert pod["serviceAccountName"] == account["metadata"]["name"]
    assert "env" not in container  # the ack-pod-identity-webhook injects the token and variables itself
    assert {v["name"] for v in pod["volumes"]} == {"config", "tmp"}
    assert deployment_settings(docs, tmp_path)[0].credentials.access_key_id_file is None
    text = notes(vals)
    assert f"kubectl label namespace {NAMESPACE} pod-identity.alibabacloud.com/injection=on" in text
    assert f"system:serviceaccount:{NAMESPACE}:{account['metadata']['name']}" in text


def test_rrsa_manual_mounts_the_projected_token_and_sets_the_three_variables(tmp_path: Path) -> None:
    role = "acs:ram::1234567890123456:role/alikafka-lag-reader"
    provider = "acs:ram::1234567890123456:oidc-provider/ack-rrsa-c0ffee"
    docs = render(values({"rrsa": {"enabled": True, "mode": "manual", "roleArn": role, "oidcProviderArn": provider,
                                   "tokenExpirationSeconds": 7200}}))
    kube_validate(docs, tmp_path)
    assert "annotations" not in one(docs, "ServiceAccount")["metadata"]
    deployment = one(docs, "Deployment")
    pod, container = deployment["spec"]["template"]["spec"], exporter_container(deployment)
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["ALIBABA_CLOUD_ROLE_ARN"] == role
    assert env["ALIBABA_CLOUD_OIDC_PROVIDER_ARN"] == provider
    mount = next(m for m in container["volumeMounts"] if m["name"] == "rrsa-oidc-token")
    source = volume(pod, "rrsa-oidc-token")["projected"]["sources"][0]["serviceAccountToken"]
    assert source == {"audience": "sts.aliyuncs.com", "expirationSeconds": 7200, "path": "token"}
    assert env["ALIBABA_CLOUD_OIDC_TOKEN_FILE"] == f"{mount['mountPath']}/token"
    assert mount["mountPath"] == "/var/run/secrets/ack.alibabacloud.com/rrsa-tokens" and mount["readOnly"]
    deployment_settings(docs, tmp_path)  # the variables are not the exporter's and do not disturb its settings


# -- monitoring ------------------------------------------------------------------------------------------

def test_service_monitor_and_prometheus_rule_match_their_crds(tmp_path: Path, promtool: str) -> None:
    extra_group = {"name": "team-extra", "rules": [{"record": "team:alikafka_lag:max",
                                                    "expr": "max by (group) (alikafka_consumergroup_group_lag)"}]}
    docs = render(values({
        "serviceMonitor": {"enabled": True, "labels": {"release": "kube-prometheus-stack"}, "interval": "15s",
                           "metricRelabelings": [{"action": "drop", "sourceLabels": ["__name__"],
                                                  "regex": "alikafka_exporter_api_request_duration_seconds_bucket"}]},
        "prometheusRule": {"enabled": True, "labels": {"release": "kube-prometheus-stack"},
                           "additionalGroups": [extra_group]},
    }))
    kube_validate(docs, tmp_path)
    monitor, rule = one(docs, "ServiceMonitor"), one(docs, "PrometheusRule")
    crd_validate(monitor)
    crd_validate(rule)
    for doc in (monitor, rule):
        assert doc["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        assert doc["metadata"]["namespace"] == NAMESPACE
    service = one(docs, "Service")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    endpoint = monitor["spec"]["endpoints"][0]
    assert endpoint["port"] == service["spec"]["ports"][0]["name"]
    assert (endpoint["path"], endpoint["interval"]) == ("/metrics", "15s")

    shipped = yaml.safe_load((CHART / "files" / "alerts.yaml").read_text())
    assert rule["spec"]["groups"] == [*shipped["groups"], extra_group]
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    result = subprocess.run([promtool, "check", "rules", str(rules_file)], capture_output=True, text=True,
                            timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_crd_check_catches_a_misspelt_field() -> None:
    """The CRD validation above can fail: an unknown endpoint field is refused."""
    monitor = one(render(values({"serviceMonitor": {"enabled": True}})), "ServiceMonitor")
    monitor["spec"]["endpoints"][0]["scrapeIntervall"] = "30s"
    with pytest.raises(jsonschema.ValidationError, match="scrapeIntervall"):
        crd_validate(monitor)


# -- network policy --------------------------------------------------------------------------------------

PROMETHEUS_PEER = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}},
                   "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}


def _egress_ports(policy: dict[str, Any]) -> list[tuple[tuple[tuple[str, int], ...], list[dict[str, Any]] | None]]:
    return [(tuple((p["protocol"], p["port"]) for p in rule["ports"]), rule.get("to")) for rule in policy["spec"]["egress"]]


def test_network_policy_is_off_by_default_and_in_sidecar_mode() -> None:
    assert of_kind(render(values()), "NetworkPolicy") == []
    assert of_kind(render(values({"standalone": False, "networkPolicy": {"enabled": True}})), "NetworkPolicy") == []


def test_network_policy_allows_the_metrics_port_dns_https_and_metadata_only(tmp_path: Path) -> None:
    """Ingress to the metrics port from the configured peers; egress to DNS, 443 and 100.100.100.200:80, plus extras."""
    proxy = {"to": [{"ipBlock": {"cidr": "10.0.0.5/32"}}], "ports": [{"protocol": "TCP", "port": 3128}]}
    docs = render(values({"port": 9100, "sharding": {"enabled": True, "shards": 2}, "networkPolicy": {
        "enabled": True, "ingressFrom": [PROMETHEUS_PEER, {"ipBlock": {"cidr": "10.10.0.0/16", "except": ["10.10.9.0/24"]}}],
        "extraEgress": [proxy]}}))
    kube_validate(docs, tmp_path)
    policy = one(docs, "NetworkPolicy")
    spec = policy["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    for deployment in of_kind(docs, "Deployment"):  # every shard's pod is selected
        assert spec["podSelector"]["matchLabels"].items() <= deployment["spec"]["template"]["metadata"]["labels"].items()
        assert exporter_container(deployment)["ports"][0]["containerPort"] == 9100
    assert spec["ingress"] == [{"ports": [{"protocol": "TCP", "port": 9100}],
                                "from": [PROMETHEUS_PEER, {"ipBlock": {"cidr": "10.10.0.0/16", "except": ["10.10.9.0/24"]}}]}]
    egress = _egress_ports(policy)
    dns_peer = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
                "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}}
    assert egress == [((("UDP", 53), ("TCP", 53)), [dns_peer]), ((("TCP", 443),), None),
                      ((("TCP", 80),), [{"ipBlock": {"cidr": "100.100.100.200/32"}}]),
                      ((("TCP", 3128),), [{"ipBlock": {"cidr": "10.0.0.5/32"}}])]

    narrow = render(values({"networkPolicy": {"enabled": True, "egress": {
        "dns": {"to": []}, "api": {"ports": [443, 8443], "to": [{"ipBlock": {"cidr": "100.64.0.0/10"}}]},
        "metadata": False}}}))
    kube_validate(narrow, tmp_path)
    policy = one(narrow, "NetworkPolicy")
    assert policy["spec"]["ingress"] == [{"ports": [{"protocol": "TCP", "port": 9897}]}]  # any source, this port only
    assert _egress_ports(policy) == [((("UDP", 53), ("TCP", 53)), None),
                                     ((("TCP", 443), ("TCP", 8443)), [{"ipBlock": {"cidr": "100.64.0.0/10"}}])]


@pytest.mark.parametrize(("bad", "message"), [
    ({"networkPolicy": {"enabled": "yes"}}, r"/networkPolicy/enabled"),
    ({"networkPolicy": {"ingress": []}}, r"additional properties 'ingress'"),
    ({"networkPolicy": {"ingressFrom": [{"namespace": "monitoring"}]}}, r"additional properties 'namespace'"),
    ({"networkPolicy": {"ingressFrom": [{}]}}, r"/networkPolicy/ingressFrom/0"),
    ({"networkPolicy": {"ingressFrom": [{"ipBlock": {"cidr": "10.0.0.0"}}]}}, r"/networkPolicy/ingressFrom/0/ipBlock/cidr"),
    ({"networkPolicy": {"egress": {"api": {"ports": [0]}}}}, r"/networkPolicy/egress/api/ports/0"),
    ({"networkPolicy": {"egress": {"metadata": "100.100.100.200"}}}, r"/networkPolicy/egress/metadata"),
    ({"networkPolicy": {"extraEgress": [{"to": [], "port": 80}]}}, r"additional properties 'port'"),
    ({"sidecar": {"secretMode": 0o644}}, r"/sidecar/secretMode"),
], ids=lambda v: json.dumps(v) if isinstance(v, dict) else None)
def test_network_policy_values_are_checked(bad: dict[str, Any], message: str) -> None:
    with pytest.raises(helm.HelmValuesError, match=message):
        render(values(bad))


# -- sharded mode ----------------------------------------------------------------------------------------

def _many_pairs() -> dict[str, Any]:
    return {"config": {"api": {"max_qps": 6}, "targets": [
        {"instance_id": f"alikafka_post-cn-{i:012d}", "groups": [f"group-{g}" for g in range(40)]}
        for i in range(5)]}}


def test_sharded_mode_splits_every_pair_exactly_once(tmp_path: Path) -> None:
    docs = render(values(_many_pairs(), {"sharding": {"enabled": True, "shards": 3},
                                         "serviceMonitor": {"enabled": True}, "podDisruptionBudget": {"enabled": True}}))
    kube_validate(docs, tmp_path)
    deployments = of_kind(docs, "Deployment")
    assert len(deployments) == 3
    assert len(of_kind(docs, "ConfigMap")) == 1 and len(of_kind(docs, "Service")) == 1
    shard_args = [[a for a in exporter_container(d)["args"] if a.startswith("--shard")] for d in deployments]
    assert sorted(shard_args) == [["--shard=0/3"], ["--shard=1/3"], ["--shard=2/3"]]
    assert all(d["spec"]["replicas"] == 1 for d in deployments)

    # Selectors never overlap (each Deployment owns its pod), while the Service, hence the
    # ServiceMonitor, and the PodDisruptionBudget select every shard's pod: every shard is scraped.
    pod_labels = [d["spec"]["template"]["metadata"]["labels"] for d in deployments]
    for deployment in deployments:
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert sum(selector.items() <= labels.items() for labels in pod_labels) == 1
    service_selector = one(docs, "Service")["spec"]["selector"]
    monitor = one(docs, "ServiceMonitor")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= one(docs, "Service")["metadata"]["labels"].items()
    pdb_selector = one(docs, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"]
    assert all(service_selector.items() <= labels.items() and pdb_selector.items() <= labels.items()
               for labels in pod_labels)

    # The exporter's own shard function, fed each pod's real settings: no overlap, no gap.
    shards = deployment_settings(docs, tmp_path)
    assert sorted(s.shard for s in shards) == ["0/3", "1/3", "2/3"]
    assert {s.api.max_qps for s in shards} == {2.0}  # the release's 6 qps, split
    whole = set(plan_pairs(deployment_settings(render(values(_many_pairs())), tmp_path / "whole")[0]))
    assert len(whole) == 200
    parts = [set(plan_pairs(s)) for s in shards]
    assert all(parts) and set().union(*parts) == whole
    assert sum(len(p) for p in parts) == len(whole)


def test_sharded_mode_can_keep_max_qps_per_shard(tmp_path: Path) -> None:
    docs = render(values(_many_pairs(), {"sharding": {"enabled": True, "shards": 4, "splitMaxQps": False}}))
    assert {s.api.max_qps for s in deployment_settings(docs, tmp_path)} == {6.0}
    docs = render(values({"sharding": {"enabled": True, "shards": 3}}))  # the default 3 qps, split
    assert {s.api.max_qps for s in deployment_settings(docs, tmp_path / "b")} == {1.0}


@pytest.mark.parametrize(("total", "shards", "share", "unused"), [
    (3, 2, 1.0, "1.00"),  # the chart's defaults: 1.5 each would run as 1 each anyway; said, not silent
    (4, 3, 1.0, "1.00"),
    (10, 4, 2.0, "2.00"),
    (2.5, 1, 2.0, "0.50"),  # even unsharded the limiter would enforce 2
    (6, 3, 2.0, None),
    (1, 3, 0.33, None),  # below 1 per shard the share is exact: the limiter spaces requests 1 / share apart
    (1.5, 2, 0.75, None),
])
def test_sharded_max_qps_shares_are_what_the_limiter_enforces(tmp_path: Path, total: float, shards: int,
                                                               share: float, unused: str | None) -> None:
    """A share of 1 or more is a whole number (floor(total / shards)), the remainder unused and said in
    NOTES; below 1 it is exact to 0.01. Either way the shards together never exceed the total, and each
    shard's share is exactly what its limiter enforces."""
    vals = values({"config": {"api": {"max_qps": total}}, "sharding": {"enabled": True, "shards": shards}})
    settings = deployment_settings(render(vals), tmp_path)
    assert {s.api.max_qps for s in settings} == {share}
    assert all(RateLimiter(s.api.max_qps).max_qps == s.api.max_qps for s in settings)
    assert share * shards <= total
    text = notes(vals)
    assert f"API rate: {share:g} requests/s per shard, of config.api.max_qps {total:g}" in text
    assert (f"({unused} unused" in text) if unused else ("unused" not in text)


def test_set_style_overrides(tmp_path: Path) -> None:
    overrides = helm.parse_set_string(
        "sharding.enabled=true,sharding.shards=4,image.tag=2.0.1,serviceMonitor.enabled=true,"
        "serviceMonitor.labels.release=prom,config.poll.interval=2m,config.metrics.granularity=topic,"
        "credentials.existingSecret=ak")
    docs = render(values(overrides))
    kube_validate(docs, tmp_path)
    deployments = of_kind(docs, "Deployment")
    assert len(deployments) == 4
    assert {exporter_container(d)["image"].rsplit(":", 1)[1] for d in deployments} == {"2.0.1"}
    assert one(docs, "ServiceMonitor")["metadata"]["labels"]["release"] == "prom"
    shards = deployment_settings(docs, tmp_path)
    assert sorted(s.shard for s in shards) == [f"{i}/4" for i in range(4)]
    assert {(s.poll.interval, s.metrics.granularity) for s in shards} == {(120.0, "topic")}
    with pytest.raises(helm.HelmValuesError, match="/sharding/shards"):
        render(values(helm.parse_set_string("sharding.shards=0")))


# -- sidecar ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def consumer_chart(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture parent chart with its file:// dependency on this chart resolved by Helm."""
    parent = tmp_path_factory.mktemp("parent") / "consumer-app"
    shutil.copytree(FIXTURES / "consumer-app", parent)
    chart_yaml = parent / "Chart.yaml"
    chart_yaml.write_text(chart_yaml.read_text().replace("file://../../../../deploy/helm/alikafka-exporter",
                                                         f"file://{CHART}"))
    helm.dependency_update(str(parent))
    assert [p.name for p in (parent / "charts").iterdir()] == ["alikafka-exporter-0.1.0.tgz"]
    return parent


def _sidecar(docs: list[dict[str, Any]]) -> tuple[dict[str, Any], dict[str, Any]]:
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    return pod, next(c for c in pod["containers"] if c["name"] == "alikafka-exporter")


def test_sidecar_template_adds_the_exporter_to_the_applications_pod(consumer_chart: Path, tmp_path: Path) -> None:
    report = helm.lint(str(consumer_chart), strict=True, with_subcharts=True, kube_version="v1.30.0")
    assert report["errors"] == [] and [m for m in report["messages"] if m["severity"] >= 2] == []
    docs = render({}, chart=consumer_chart)
    kube_validate(docs, tmp_path)
    # standalone: false leaves only the application's own objects
    assert [(d["kind"], d["metadata"]["name"]) for d in docs] == [("Deployment", f"{RELEASE}-consumer")]
    pod, sidecar = _sidecar(docs)
    assert [c["name"] for c in pod["containers"]] == ["consumer", "alikafka-exporter"]
    assert sidecar["image"] == "ghcr.io/alikafka-exporter/alikafka-exporter:0.1.0"  # this chart's appVersion
    assert sidecar["securityContext"]["readOnlyRootFilesystem"] is True
    assert sidecar["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert "readinessProbe" not in sidecar and sidecar["livenessProbe"]["httpGet"]["port"] == "lag-metrics"
    assert all(v["name"].startswith("alikafka-exporter-") for v in pod["volumes"])
    assert {m["name"] for m in sidecar["volumeMounts"]} == {v["name"] for v in pod["volumes"]}

    settings = pod_settings(pod, sidecar, [], tmp_path)
    assert [(t.instance_id, t.groups) for t in settings.targets] == [("alikafka_post-cn-0pp1abcd0001",
                                                                      ["orders-consumer"])]
    assert (settings.api.region, settings.api.network, settings.api.max_qps) == ("cn-hangzhou", "vpc", 1.0)
    assert (settings.poll.interval, settings.metrics.granularity) == (30.0, "topic")
    secret = next(v for v in pod["volumes"] if "secret" in v)["secret"]
    mount = next(m for m in sidecar["volumeMounts"] if m["name"].endswith("credentials"))
    assert secret["secretName"] == "orders-alikafka-ak"
    assert {f"{mount['mountPath']}/{i['path']}": i["key"] for i in secret["items"]} == {
        str(settings.credentials.access_key_id_file): "access_key_id",
        str(settings.credentials.access_key_secret_file): "access_key_secret"}


def test_sidecar_with_manual_rrsa_and_its_own_port(consumer_chart: Path, tmp_path: Path) -> None:
    role = "acs:ram::1234567890123456:role/orders"
    docs = render({"alikafka-exporter": {
        "credentials": {"existingSecret": ""},
        "rrsa": {"enabled": True, "mode": "manual", "roleArn": role,
                 "oidcProviderArn": "acs:ram::1234567890123456:oidc-provider/ack-rrsa-c0ffee"},
        "sidecar": {"port": 9400}, "config": {"credentials": {"sts_region": "cn-hangzhou", "sts_network": "vpc"}}},
        "consumerGroup": "orders-consumer"}, chart=consumer_chart)
    kube_validate(docs, tmp_path)
    pod, sidecar = _sidecar(docs)
    env = {e["name"]: e["value"] for e in sidecar["env"]}
    assert env["ALIBABA_CLOUD_ROLE_ARN"] == role
    token = next(v for v in pod["volumes"] if "projected" in v)
    assert token["projected"]["sources"][0]["serviceAccountToken"]["audience"] == "sts.aliyuncs.com"
    assert sidecar["ports"][0]["containerPort"] == 9400
    settings = pod_settings(pod, sidecar, [], tmp_path)
    assert settings.web.listen_address == ":9400" and settings.credentials.access_key_id_file is None
    assert (settings.credentials.sts_region, settings.credentials.sts_network) == ("cn-hangzhou", "vpc")


def test_sidecar_uses_the_chart_managed_secret_by_its_real_name(consumer_chart: Path, tmp_path: Path) -> None:
    docs = render({"alikafka-exporter": {"credentials": {"existingSecret": "", "accessKeyId": "LTAI5tExampleId",
                                                         "accessKeySecret": SECRET_VALUE}}}, chart=consumer_chart)
    kube_validate(docs, tmp_path)
    secret = one(docs, "Secret")
    pod, sidecar = _sidecar(docs)
    assert next(v for v in pod["volumes"] if "secret" in v)["secret"]["secretName"] == secret["metadata"]["name"]
    assert SECRET_VALUE not in json.dumps(one(docs, "Deployment"))
    assert pod_settings(pod, sidecar, [], tmp_path).credentials.access_key_secret_file is not None


SUBCHART = '"chart" (index .Subcharts "alikafka-exporter")'


@pytest.mark.parametrize(("arguments", "message"), [
    (f'{SUBCHART} "group" "orders"', 'pass "instanceId"'),
    (f'{SUBCHART} "instanceId" "alikafka_post-cn-0pp1abcd0001"', 'pass "groups"'),
    ('"Values" (index .Values "alikafka-exporter") "instanceId" "i" "group" "g"', "set image.tag"),
    ('"instanceId" "i" "group" "g"', 'pass "chart"'),
])
def test_sidecar_template_names_missing_arguments(tmp_path: Path, arguments: str, message: str) -> None:
    parent = tmp_path / "consumer-app"
    shutil.copytree(FIXTURES / "consumer-app", parent, ignore=shutil.ignore_patterns("templates"))
    (parent / "templates").mkdir()
    (parent / "templates" / "pod.yaml").write_text('{{ include "alikafka-exporter.sidecar" (dict ' + arguments + ") }}\n")
    shutil.copytree(CHART, parent / "charts" / "alikafka-exporter")
    with pytest.raises(helm.HelmError, match=message):
        render({}, chart=parent)


def test_sidecar_template_also_takes_plain_values(tmp_path: Path) -> None:
    """The dict "Values" + "Release" form (for parents that alias the dependency), with image.tag set."""
    parent = tmp_path / "consumer-app"
    shutil.copytree(FIXTURES / "consumer-app", parent, ignore=shutil.ignore_patterns("templates"))
    (parent / "templates").mkdir()
    (parent / "templates" / "pod.yaml").write_text("""apiVersion: v1
kind: Pod
metadata:
  name: app
  namespace: {{ .Release.Namespace }}
spec:
  containers:
    - name: app
      image: app:1
    {{- include "alikafka-exporter.sidecar" (dict "Values" (index .Values "alikafka-exporter") "Release" .Release
          "instanceId" "alikafka_post-cn-0pp1abcd0001" "groups" (list "a" "b") "region" "cn-beijing") | nindent 4 }}
  volumes:
    {{- include "alikafka-exporter.sidecar.volumes" (dict "Values" (index .Values "alikafka-exporter")) | nindent 4 }}
""")
    shutil.copytree(CHART, parent / "charts" / "alikafka-exporter")
    docs = render({"alikafka-exporter": {"image": {"tag": "9.9.9"}, "credentials": {"existingSecret": ""}}},
                  chart=parent)
    kube_validate(docs, tmp_path)
    pod = one(docs, "Pod")["spec"]
    sidecar = pod["containers"][1]
    assert sidecar["image"].endswith(":9.9.9")
    settings = pod_settings(pod, sidecar, [], tmp_path)
    assert [(t.instance_id, t.groups) for t in settings.targets] == [("alikafka_post-cn-0pp1abcd0001", ["a", "b"])]
    assert settings.api.region == "cn-beijing"


def test_sidecar_patch_example_applies_with_kubectl(tmp_path: Path) -> None:
    kubectl = find_tool("kubectl")
    result = subprocess.run(
        [kubectl, "patch", "--local", "-f", str(EXAMPLES / "consumer-deployment.yaml"), "--type", "strategic",
         "--patch-file", str(EXAMPLES / "sidecar-patch.yaml"), "-o", "yaml"],
        capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    patched = yaml.safe_load(result.stdout)
    kube_validate([patched], tmp_path)
    pod = patched["spec"]["template"]["spec"]
    assert sorted(c["name"] for c in pod["containers"]) == ["alikafka-exporter", "consumer"]
    consumer = next(c for c in pod["containers"] if c["name"] == "consumer")
    assert consumer["env"] == [{"name": "KAFKA_GROUP_ID", "value": "orders-consumer"}]  # the app is untouched
    sidecar = next(c for c in pod["containers"] if c["name"] == "alikafka-exporter")
    assert sidecar["securityContext"]["runAsUser"] == 65532
    settings = pod_settings(pod, sidecar, [], tmp_path)
    assert [(t.instance_id, t.groups) for t in settings.targets] == [("alikafka_post-cn-0pp1abcd0001",
                                                                      ["orders-consumer"])]
    assert settings.api.region == "cn-hangzhou" and settings.credentials.access_key_id_file is not None


def test_placeholder_alerts_file_is_a_prometheus_rule_file(promtool: str) -> None:
    result = subprocess.run([promtool, "check", "rules", str(CHART / "files" / "alerts.yaml")],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


# -- the rendered pods, run for real -----------------------------------------------------------------------

E2E_INSTANCE = "alikafka_post-cn-helm0000001"
E2E_GROUPS = [f"group-{n:02d}" for n in range(12)]
E2E_SCENARIO = f"""
seed: 7
instances:
  - instance_id: {E2E_INSTANCE}
    region: cn-hangzhou
    topics:
      - {{name: orders, partitions: 2, rate: 3}}
    groups:
""" + "".join(f"      - {{name: {g}, topics: [orders], members: 1}}\n" for g in E2E_GROUPS)
UP_LINE = re.compile(r'^alikafka_consumergroup_up\{group="([^"]+)",instance_id="([^"]+)"\} 1\.0$', re.MULTILINE)


@pytest.mark.e2e
def test_rendered_shards_poll_the_simulator_and_split_its_groups(tmp_path: Path) -> None:
    """Each shard pod's rendered config file, mounted Secret files and arguments, run as the real exporter
    (--once) against the simulator: every shard succeeds and together they poll every group once."""
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(E2E_SCENARIO)
    port = free_port()
    key_id = "LTAI5tHelmShards"
    sim_cmd = python_module("exporter.simulator", "--listen", f"127.0.0.1:{port}", "--scenario", str(scenario),
                            "--access-key", f"{key_id}:{SECRET_VALUE}", "--qps-limit", "GetConsumerProgress=100")
    docs = render(values({
        "config": {"api": {"endpoint": f"http://127.0.0.1:{port}/", "max_qps": 30, "max_retries": 0},
                   "targets": [{"instance_id": E2E_INSTANCE, "groups": E2E_GROUPS}]},
        "sharding": {"enabled": True, "shards": 3}, "credentials": {"existingSecret": "alikafka-ak"}}))
    secrets = {"alikafka-ak": {"access_key_id": key_id, "access_key_secret": SECRET_VALUE}}
    with process(sim_cmd, clean_env(), tmp_path / "sim.log"):
        wait_for(lambda: True if http_get(f"http://127.0.0.1:{port}/_sim/truth?group=group-00")[0] == 200 else None,
                 20, "the simulator")
        runs = []
        for n, deployment in enumerate(of_kind(docs, "Deployment")):
            pod = deployment["spec"]["template"]["spec"]
            args, environ = materialize(pod, exporter_container(deployment), of_kind(docs, "ConfigMap"),
                                        tmp_path / f"pod{n}", secrets)
            args = [a for a in args if not a.startswith("--web.listen-address")]
            runs.append(subprocess.Popen(python_module("exporter", *args, "--once"), env=clean_env(**environ),
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        outputs = [run.communicate(timeout=60) for run in runs]
    polled = []
    for run, (out, err) in zip(runs, outputs, strict=True):
        assert run.returncode == 0, err
        assert SECRET_VALUE not in out + err
        polled.append({group for group, instance in UP_LINE.findall(out) if instance == E2E_INSTANCE})
    assert all(polled)
    assert sorted(g for part in polled for g in part) == E2E_GROUPS


def test_values_example_in_the_deploy_docs_installs(tmp_path: Path) -> None:
    text = (ROOT / "docs" / "deploy.md").read_text()
    block = re.search(r"```yaml\n(# lag-values\.yaml\n.*?)```", text, re.DOTALL)
    assert block, "docs/deploy.md lost its lag-values.yaml example"
    docs = render(yaml.safe_load(block.group(1)))
    kube_validate(docs, tmp_path)
    crd_validate(one(docs, "ServiceMonitor"))
    settings = deployment_settings(docs, tmp_path)[0]
    assert settings.targets[1].instances == "all"
    pod = one(docs, "Deployment")["spec"]["template"]["spec"]
    keys = {i["key"] for i in volume(pod, "credentials")["secret"]["items"]}
    assert {f"--from-literal={k}=" for k in keys} <= set(re.findall(r"--from-literal=\w+=", text))


# -- web config: TLS and basic auth ---------------------------------------------------------------------

TLS_SECRET = "lag-exporter-tls"
SERVER_NAME = f"{RELEASE}-alikafka-exporter.{NAMESPACE}.svc"
PROBE_PASSWORD = "probe-pa55word"
SCRAPE_PASSWORD = "scrape-pa55word"


@pytest.fixture(scope="module")
def pki() -> dict[str, Any]:
    """A CA, the exporter's certificate for its Service name and 127.0.0.1, a client CA, bcrypt hashes."""
    ca, client_ca = trustme.CA(), trustme.CA()
    leaf = ca.issue_cert(SERVER_NAME, "127.0.0.1")
    return {
        "ca": ca, "client_ca": client_ca, "client": client_ca.issue_cert("prometheus.monitoring"),
        # kubernetes.io/tls as cert-manager writes it: tls.crt, tls.key and the issuing CA in ca.crt
        "tls": {"tls.crt": leaf.cert_chain_pems[0].bytes().decode(), "tls.key": leaf.private_key_pem.bytes().decode(),
                "ca.crt": ca.cert_pem.bytes().decode()},
        "client_ca_pem": client_ca.cert_pem.bytes().decode(),
        "hashes": {"prometheus": hash_password(SCRAPE_PASSWORD), "probe": hash_password(PROBE_PASSWORD)},
    }


def _tls(**extra: Any) -> dict[str, Any]:
    return {"webConfig": {"tls": {"enabled": True, "secretName": TLS_SECRET, **extra}}}


def _auth(pki: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"webConfig": {"basicAuth": {"enabled": True, "users": pki["hashes"]}, **extra}}


def _basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def _secrets(docs: list[dict[str, Any]], pki: dict[str, Any]) -> dict[str, dict[str, str]]:
    """The rendered Secrets decoded, plus the ones a user (or cert-manager) provides."""
    found = {s["metadata"]["name"]: {k: base64.b64decode(v).decode() for k, v in s.get("data", {}).items()}
             for s in of_kind(docs, "Secret")}
    return {TLS_SECRET: pki["tls"], "client-ca": {"ca.crt": pki["client_ca_pem"]},
            "prometheus-client": {}, **found}


def _user_configmaps(pki: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"metadata": {"name": "scraper-cas"}, "data": {"ca.crt": pki["client_ca_pem"]}}]


def pod_web_config(pod: dict[str, Any], container: dict[str, Any], docs: list[dict[str, Any]],
                   pki: dict[str, Any], tmp_path: Path,
                   extra_secrets: dict[str, dict[str, str]] | None = None) -> tuple[list[str], webconfig.WebConfig]:
    """The container's arguments with its mounted files written out, and its --web.config.file loaded by the
    exporter's own loader (which also loads the certificates, key and client CA it names)."""
    args, environ = materialize(pod, container, of_kind(docs, "ConfigMap") + _user_configmaps(pki), tmp_path,
                                {**_secrets(docs, pki), **(extra_secrets or {})})
    cli = parse_args(args)
    settings = load_settings(cli.flags, environ, cli.config_file)
    assert settings.web.config_file is not None
    return args, webconfig.load(settings.web.config_file)


def _probes(container: dict[str, Any]) -> list[dict[str, Any]]:
    return [container[k] for k in ("livenessProbe", "readinessProbe") if k in container]


WEB_MODES: dict[str, tuple[dict[str, Any], ...]] = {
    "tls": (_tls(),),
    "tls13-client-cert-required": (_tls(minVersion="TLS13", clientCA={"secretName": "client-ca"},
                                        clientAllowedSans=["prometheus.monitoring"]),
                                   {"serviceMonitor": {"tlsConfig": {"clientCertSecret": "prometheus-client"}}}),
    "tls-client-cert-if-given-configmap": (_tls(clientCA={"configMapName": "scraper-cas"},
                                                clientAuthType="VerifyClientCertIfGiven"),),
    "basic-auth-only": (),
    "tls-basic-auth": (_tls(),),
    "tls-basic-auth-probe-header": (_tls(),),
}


@pytest.mark.parametrize("mode", list(WEB_MODES))
def test_web_config_modes_render_valid_objects_and_a_loadable_file(
        mode: str, pki: dict[str, Any], tmp_path: Path) -> None:
    auth = "basic-auth" in mode
    layers = list(WEB_MODES[mode])
    if auth:
        headers = [{"name": "Authorization", "value": _basic("probe", PROBE_PASSWORD)}] if "header" in mode else []
        layers.append(_auth(pki, probes={"httpHeaders": headers}))
        layers.append({"serviceMonitor": {"basicAuth": {"secretName": "prometheus-scrape-auth"}}})
    vals = values({"serviceMonitor": {"enabled": True}}, *layers)
    report = helm.lint(str(CHART), vals, strict=True, namespace=NAMESPACE, kube_version="v1.30.0")
    assert report["errors"] == [] and [m for m in report["messages"] if m["severity"] >= 2] == []
    docs = render(vals)
    kube_validate(docs, tmp_path)
    monitor = one(docs, "ServiceMonitor")
    crd_validate(monitor)

    deployment = one(docs, "Deployment")
    pod, container = deployment["spec"]["template"]["spec"], exporter_container(deployment)
    _, loaded = pod_web_config(pod, container, docs, pki, tmp_path)
    tls = loaded.tls_server_config
    assert tls.enabled == (mode != "basic-auth-only")
    assert set(loaded.basic_auth_users) == (set(pki["hashes"]) if auth else set())
    secret = one(docs, "Secret")  # the web config, in a Secret of its own: it holds the bcrypt hashes
    assert volume(pod, "web-config")["secret"]["secretName"] == secret["metadata"]["name"]
    assert volume(pod, "web-config")["secret"]["defaultMode"] == 0o440
    assert all(h not in json.dumps(deployment) for h in pki["hashes"].values())
    assert deployment["spec"]["template"]["metadata"]["annotations"]["checksum/web-config"]
    if tls.enabled:
        assert volume(pod, "tls")["secret"] == {"secretName": TLS_SECRET, "defaultMode": 0o440, "items": [
            {"key": "tls.crt", "path": "tls.crt"}, {"key": "tls.key", "path": "tls.key"}]}
        # a directory mount (no subPath), so the kubelet's update of a renewed certificate reaches the pod
        assert not any("subPath" in m for m in container["volumeMounts"])

    endpoint = monitor["spec"]["endpoints"][0]
    probes = _probes(container)
    assert len(probes) == 2
    if mode == "tls13-client-cert-required":
        assert (tls.min_version, tls.auth, tls.client_allowed_sans) == ("TLS13", "RequireAndVerifyClientCert",
                                                                        ["prometheus.monitoring"])
        assert endpoint["tlsConfig"]["cert"] == {"secret": {"name": "prometheus-client", "key": "tls.crt"}}
        assert endpoint["tlsConfig"]["keySecret"] == {"name": "prometheus-client", "key": "tls.key"}
    if mode == "tls-client-cert-if-given-configmap":
        assert tls.auth == "VerifyClientCertIfGiven"
        assert volume(pod, "client-ca")["configMap"]["name"] == "scraper-cas"
    # The kubelet has no client certificate and no password: such probes are TCP probes of the port.
    if mode == "tls13-client-cert-required" or mode == "basic-auth-only" or mode == "tls-basic-auth":
        assert all(p["tcpSocket"] == {"port": "http"} and "httpGet" not in p for p in probes)
        assert {p["periodSeconds"] for p in probes} == {20, 10}  # the timing is kept
    else:
        scheme = "HTTPS" if tls.enabled else "HTTP"
        assert [p["httpGet"].get("scheme", "HTTP") for p in probes] == [scheme, scheme]
        assert [p["httpGet"]["path"] for p in probes] == ["/healthz", "/readyz"]
        if auth:  # the user's documented choice: the probe user's header in the pod spec
            assert all(p["httpGet"]["httpHeaders"] == [{"name": "Authorization",
                                                        "value": _basic("probe", PROBE_PASSWORD)}] for p in probes)
    if tls.enabled:
        assert endpoint["scheme"] == "https"
        assert endpoint["tlsConfig"]["serverName"] == SERVER_NAME
        assert endpoint["tlsConfig"]["ca"] == {"secret": {"name": TLS_SECRET, "key": "ca.crt"}}
    else:
        assert endpoint["scheme"] == "http" and "tlsConfig" not in endpoint
    if auth:
        assert endpoint["basicAuth"] == {"username": {"name": "prometheus-scrape-auth", "key": "username"},
                                         "password": {"name": "prometheus-scrape-auth", "key": "password"}}
    else:
        assert "basicAuth" not in endpoint
    if "header" not in mode:
        for password in (PROBE_PASSWORD, SCRAPE_PASSWORD):
            assert password not in json.dumps(docs)
            assert base64.b64encode(password.encode()).decode()[:12] not in json.dumps(docs)


def test_web_config_off_by_default_and_extra_keys_merge(pki: dict[str, Any], tmp_path: Path) -> None:
    deployment = one(render(values()), "Deployment")
    container = exporter_container(deployment)
    assert not any(a.startswith("--web.config.file") for a in container["args"])
    assert "checksum/web-config" not in deployment["spec"]["template"]["metadata"]["annotations"]

    docs = render(values(_tls(), {"webConfig": {"extraConfig": {
        "http_server_config": {"headers": {"X-Frame-Options": "deny"}},
        "rate_limit": {"interval": "100ms", "burst": 50},
        "tls_server_config": {"cipher_suites": ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"],
                              "max_version": "TLS12"}}}}))
    deployment = one(docs, "Deployment")
    _, loaded = pod_web_config(deployment["spec"]["template"]["spec"], exporter_container(deployment), docs, pki,
                               tmp_path)
    assert loaded.http_server_config.headers == {"X-Frame-Options": "deny"}
    assert (loaded.rate_limit.interval, loaded.rate_limit.burst) == (0.1, 50)
    assert loaded.tls_server_config.cipher_suites == ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256"]
    assert (loaded.tls_server_config.min_version, loaded.tls_server_config.max_version) == ("TLS12", "TLS12")


def test_existing_web_config_secret_is_mounted_whole(pki: dict[str, Any], tmp_path: Path) -> None:
    """A user's whole file (for example kept in a secret store): the chart mounts it and the TLS Secret."""
    file = yaml.safe_dump({"tls_server_config": {"cert_file": "/etc/alikafka-exporter/tls/tls.crt",
                                                 "key_file": "/etc/alikafka-exporter/tls/tls.key"},
                           "basic_auth_users": {"prometheus": pki["hashes"]["prometheus"]}})
    vals = values(_tls(), {"webConfig": {"existingSecret": "my-web-config", "existingSecretKey": "web.yml",
                                         "basicAuth": {"enabled": True}},
                           "serviceMonitor": {"enabled": True, "basicAuth": {"secretName": "scrape-auth"}}})
    docs = render(vals)
    kube_validate(docs, tmp_path)
    crd_validate(one(docs, "ServiceMonitor"))
    assert of_kind(docs, "Secret") == []
    deployment = one(docs, "Deployment")
    pod, container = deployment["spec"]["template"]["spec"], exporter_container(deployment)
    assert volume(pod, "web-config")["secret"]["secretName"] == "my-web-config"
    assert "checksum/web-config" not in deployment["spec"]["template"]["metadata"]["annotations"]
    assert all("tcpSocket" in p for p in _probes(container))
    _, loaded = pod_web_config(pod, container, docs, pki, tmp_path, {"my-web-config": {"web.yml": file}})
    assert loaded.tls_server_config.enabled and set(loaded.basic_auth_users) == {"prometheus"}


def test_web_config_change_rolls_the_pods(pki: dict[str, Any]) -> None:
    def annotations(*layers: dict[str, Any]) -> dict[str, str]:
        deployment = one(render(values(*layers)), "Deployment")
        return dict(deployment["spec"]["template"]["metadata"]["annotations"])

    base = annotations(_tls(), _auth(pki))
    assert annotations(_tls(), _auth(pki), {"rollOnConfigChange": False})["checksum/web-config"] == \
        base["checksum/web-config"]  # the exporter reads the web config only at start: always rolled
    other_user = {"webConfig": {"basicAuth": {"users": {"prometheus": hash_password("other")}}}}
    assert annotations(_tls(), _auth(pki), other_user)["checksum/web-config"] != base["checksum/web-config"]
    assert annotations(_tls(minVersion="TLS13"), _auth(pki))["checksum/web-config"] != base["checksum/web-config"]


@pytest.mark.parametrize(("bad", "message"), [
    ({"webConfig": {"basicAuth": {"users": {"prometheus": "s3cret"}}}}, r"/webConfig/basicAuth/users/prometheus.*pattern"),
    ({"webConfig": {"basicAuth": {"users": {"a:b": "$2y$10$" + "a" * 53}}}},
     r"/webConfig/basicAuth/users.*additional properties 'a:b' not allowed"),
    ({"webConfig": {"basicAuth": {"users": {"p": "$2y$03$" + "a" * 53}}}}, r"/webConfig/basicAuth/users/p.*pattern"),
    ({"webConfig": {"tls": {"minVersion": "TLS11"}}}, r"/webConfig/tls/minVersion"),
    ({"webConfig": {"tls": {"clientAuthType": "RequireAnyClientCert"}}}, r"/webConfig/tls/clientAuthType"),
    ({"webConfig": {"tls": {"secretName": "Not_A_Name"}}}, r"/webConfig/tls/secretName.*pattern"),
    ({"webConfig": {"extraConfig": {"basic_auth_users": {}}}}, r"additional properties 'basic_auth_users'"),
    ({"webConfig": {"extraConfig": {"tls_server_config": {"client_auth_type": "VerifyClientCertIfGiven"}}}},
     r"/webConfig/extraConfig/tls_server_config.*additional properties 'client_auth_type'"),
    ({"webConfig": {"probes": {"httpHeaders": [{"name": "Authorization"}]}}}, r"/webConfig/probes/httpHeaders/0"),
    ({"serviceMonitor": {"tlsConfig": {"insecure": True}}}, r"additional properties 'insecure' not allowed"),
    ({"rollOnConfigChange": "yes"}, r"/rollOnConfigChange"),
], ids=lambda v: json.dumps(v) if isinstance(v, dict) else None)
def test_web_config_schema_rejects_bad_values(bad: dict[str, Any], message: str) -> None:
    with pytest.raises(helm.HelmValuesError, match=message):
        render(values(bad))


HASH = "$2y$10$" + "a" * 53


@pytest.mark.parametrize(("bad", "message"), [
    ({"webConfig": {"tls": {"enabled": True}}}, "webConfig.tls.enabled needs webConfig.tls.secretName"),
    ({"webConfig": {"tls": {"enabled": True, "secretName": "t", "clientCA": {"secretName": "a",
                                                                             "configMapName": "b"}}}}, "not both"),
    ({"webConfig": {"tls": {"clientCA": {"secretName": "a"}}}}, "clientCA needs webConfig.tls.enabled"),
    ({"webConfig": {"tls": {"enabled": True, "secretName": "t", "clientAllowedSans": ["x"],
                            "clientAuthType": "VerifyClientCertIfGiven"}}}, "clientAllowedSans needs"),
    ({"webConfig": {"tls": {"enabled": True, "secretName": "t", "clientAllowedSans": ["x"]}}}, "clientAllowedSans needs"),
    ({"webConfig": {"extraConfig": {"tls_server_config": {"max_version": "TLS12"}}}},
     "extraConfig.tls_server_config needs webConfig.tls.enabled"),
    ({"webConfig": {"basicAuth": {"users": {"p": HASH}}}}, "basicAuth.enabled is false"),
    ({"webConfig": {"basicAuth": {"enabled": True}}}, "needs webConfig.basicAuth.users"),
    ({"webConfig": {"existingSecret": "w", "basicAuth": {"enabled": True, "users": {"p": HASH}}}},
     "move webConfig.basicAuth.users"),
    ({"webConfig": {"probes": {"httpHeaders": [{"name": "X", "value": "y"}]}}}, "only for basic auth"),
    ({"webConfig": {"tls": {"enabled": True, "secretName": "t", "clientCA": {"secretName": "c"}},
                    "basicAuth": {"enabled": True, "users": {"p": HASH}},
                    "probes": {"httpHeaders": [{"name": "Authorization", "value": "Basic x"}]}}}, "cannot help"),
    ({"webConfig": {"basicAuth": {"enabled": True, "users": {"p": HASH}}}, "serviceMonitor": {"enabled": True}},
     "needs serviceMonitor.basicAuth.secretName"),
    ({"webConfig": {"tls": {"enabled": True, "secretName": "t", "clientCA": {"secretName": "c"}}},
      "serviceMonitor": {"enabled": True}}, "needs serviceMonitor.tlsConfig.clientCertSecret"),
    ({"extraArgs": ["--web.config.file=/x"]}, "extraArgs: --web.config.file is set by the chart: use webConfig"),
    ({"config": {"web": {"config_file": "/x"}}}, "config.web.config_file is set by the chart"),
])
def test_web_config_cross_field_rules(bad: dict[str, Any], message: str) -> None:
    with pytest.raises(helm.HelmError, match=re.escape(message)):
        render(values(bad))


def test_sidecar_with_tls_and_basic_auth(consumer_chart: Path, pki: dict[str, Any], tmp_path: Path) -> None:
    docs = render({"alikafka-exporter": {
        "webConfig": {"tls": {"enabled": True, "secretName": TLS_SECRET},
                      "basicAuth": {"enabled": True, "users": pki["hashes"]}}}}, chart=consumer_chart)
    kube_validate(docs, tmp_path)
    pod, sidecar = _sidecar(docs)
    web_secret = next(s for s in of_kind(docs, "Secret") if "web-config.yml" in s["data"])
    assert volume(pod, "alikafka-exporter-web-config")["secret"]["secretName"] == web_secret["metadata"]["name"]
    assert volume(pod, "alikafka-exporter-web-config")["secret"]["defaultMode"] == 0o444
    strict = render({"alikafka-exporter": {"sidecar": {"secretMode": 0o440},
                                           "webConfig": {"tls": {"enabled": True, "secretName": TLS_SECRET}}}},
                    chart=consumer_chart)
    modes = {v["name"]: v["secret"]["defaultMode"] for v in _sidecar(strict)[0]["volumes"] if "secret" in v}
    assert modes == dict.fromkeys(("alikafka-exporter-credentials", "alikafka-exporter-web-config",
                                   "alikafka-exporter-tls"), 0o440)
    assert volume(pod, "alikafka-exporter-tls")["secret"]["secretName"] == TLS_SECRET
    assert all(v["name"].startswith("alikafka-exporter-") for v in pod["volumes"])
    assert {m["name"] for m in sidecar["volumeMounts"]} == {v["name"] for v in pod["volumes"]}
    assert sidecar["livenessProbe"]["tcpSocket"] == {"port": "lag-metrics"} and "readinessProbe" not in sidecar
    secrets = {"orders-alikafka-ak": {"access_key_id": "LTAI5tId", "access_key_secret": SECRET_VALUE}}
    _, loaded = pod_web_config(pod, sidecar, docs, pki, tmp_path, secrets)
    assert loaded.tls_server_config.enabled and set(loaded.basic_auth_users) == set(pki["hashes"])

    # TLS without auth: the sidecar's liveness probe speaks HTTPS
    docs = render({"alikafka-exporter": {"webConfig": {"tls": {"enabled": True, "secretName": TLS_SECRET}}}},
                  chart=consumer_chart)
    _, sidecar = _sidecar(docs)
    assert sidecar["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "lag-metrics", "scheme": "HTTPS"}


# -- config changes: roll the pods, or let the exporter reload ---------------------------------------------

@pytest.mark.parametrize("roll", [True, False])
def test_roll_on_config_change_switch(roll: bool, tmp_path: Path) -> None:
    def pod_template(*layers: dict[str, Any]) -> dict[str, Any]:
        return one(render(values({"rollOnConfigChange": roll}, *layers)), "Deployment")["spec"]["template"]

    base = pod_template()
    changed = pod_template({"config": {"poll": {"interval": "30s"}}})
    annotations = base["metadata"].get("annotations") or {}
    if roll:
        assert "checksum/config" in annotations and changed != base
    else:  # the pod template, so the pods, stay as they are; only the ConfigMap changes
        assert "checksum/config" not in annotations and changed == base
    # Either way the ConfigMap is mounted as a directory: the kubelet's update reaches the running pod
    # (a subPath mount would never see it), and the exporter's file watcher finds the new content.
    mount = next(m for m in base["spec"]["containers"][0]["volumeMounts"] if m["name"] == "config")
    assert "subPath" not in mount and mount["readOnly"] is True
    docs = render(values({"rollOnConfigChange": roll}))
    kube_validate(docs, tmp_path)
    assert deployment_settings(docs, tmp_path)[0].poll.interval == 60.0


# -- the rendered TLS and basic auth pod, run for real ----------------------------------------------------------

def _https_get(port: int, context: ssl.SSLContext, server_name: str, path: str,
               authorization: str | None = None) -> tuple[int, bytes]:
    """GET over TLS to 127.0.0.1, verifying the certificate for ``server_name`` (the ServiceMonitor's)."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=5)
    with context.wrap_socket(raw, server_hostname=server_name) as sock:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.sock = sock
        conn.request("GET", path, headers={"Authorization": authorization} if authorization else {})
        response = conn.getresponse()
        return response.status, response.read()


def _scrape_job(endpoint: dict[str, Any], secrets: dict[str, dict[str, str]], port: int, tmp_path: Path) -> str:
    """A Prometheus job with what the Prometheus Operator makes of the ServiceMonitor endpoint's scheme,
    tlsConfig and basicAuth (Secret values written to files), scraping 127.0.0.1:port."""
    tls, auth = endpoint["tlsConfig"], endpoint["basicAuth"]
    ca = tmp_path / "prometheus-ca.crt"
    ca.write_text(secrets[tls["ca"]["secret"]["name"]][tls["ca"]["secret"]["key"]])
    job = {"job_name": "servicemonitor", "scheme": endpoint["scheme"], "metrics_path": endpoint["path"],
           "static_configs": [{"targets": [f"127.0.0.1:{port}"]}],
           "tls_config": {"ca_file": str(ca), "server_name": tls["serverName"]},
           "basic_auth": {"username": secrets[auth["username"]["name"]][auth["username"]["key"]],
                          "password": secrets[auth["password"]["name"]][auth["password"]["key"]]}}
    return yaml.safe_dump({"global": {"scrape_interval": "1s"}, "scrape_configs": [job]})


@pytest.mark.e2e
def test_rendered_tls_and_basic_auth_pod_serves_https_to_its_scraper(
        pki: dict[str, Any], tmp_path: Path, prometheus_bin: str) -> None:
    """The Deployment's own arguments, rendered web config Secret and cert-manager-style TLS Secret run the
    real exporter (--demo): the ServiceMonitor's CA and serverName verify its certificate, the scrape
    user gets the metrics, no or a wrong password gets 401 (on /healthz too, hence the TCP probes), the
    TCP probe's connect succeeds, and a real Prometheus configured from the ServiceMonitor scrapes it."""
    vals = values(_tls(), _auth(pki), {"extraArgs": ["--demo"], "serviceMonitor": {
        "enabled": True, "basicAuth": {"secretName": "scrape-auth"}}})
    docs = render(vals)
    deployment = one(docs, "Deployment")
    pod, container = deployment["spec"]["template"]["spec"], exporter_container(deployment)
    args, loaded = pod_web_config(pod, container, docs, pki, tmp_path)
    port = free_port()
    args = [a for a in args if not a.startswith("--web.listen-address")] + [f"--web.listen-address=127.0.0.1:{port}"]
    endpoint = one(docs, "ServiceMonitor")["spec"]["endpoints"][0]
    ca_ref = endpoint["tlsConfig"]["ca"]["secret"]
    context = ssl.create_default_context(cadata=_secrets(docs, pki)[ca_ref["name"]][ca_ref["key"]])
    good = _basic("prometheus", SCRAPE_PASSWORD)
    name = endpoint["tlsConfig"]["serverName"]
    with process(python_module("exporter", *args), clean_env(), tmp_path / "exporter.log") as exporter:
        def scraped() -> bytes | None:
            status, body = _https_get(port, context, name, endpoint["path"], good)
            return body if status == 200 and b"alikafka_consumergroup_lag{" in body else None

        body = wait_for(scraped, 30, "the exporter to serve metrics over TLS")
        assert b"alikafka_exporter_build_info" in body
        assert _https_get(port, context, name, "/metrics", _basic("prometheus", "wrong"))[0] == 401
        assert _https_get(port, context, name, "/metrics")[0] == 401
        assert _https_get(port, context, name, "/healthz")[0] == 401  # why the kubelet's HTTP probes could not pass
        assert _https_get(port, context, name, "/healthz", _basic("probe", PROBE_PASSWORD))[0] == 200
        with socket.create_connection(("127.0.0.1", port), timeout=5):  # what the TCP probes do
            pass
        with pytest.raises(ssl.SSLCertVerificationError):  # a name the certificate does not carry
            _https_get(port, context, "elsewhere.example", "/healthz")
        secrets = {**_secrets(docs, pki), "scrape-auth": {"username": "prometheus", "password": SCRAPE_PASSWORD}}
        (tmp_path / "prometheus.yml").write_text(_scrape_job(endpoint, secrets, port, tmp_path))
        prom_port = free_port()
        prom_cmd = [prometheus_bin, f"--config.file={tmp_path / 'prometheus.yml'}",
                    f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{prom_port}"]
        with process(prom_cmd, clean_env(), tmp_path / "prometheus.log"):
            up = wait_for(lambda: prom_query(prom_port, "up") or None, 30, "Prometheus to scrape the exporter")
            assert [r["value"][1] for r in up] == ["1"], (tmp_path / "prometheus.log").read_text()[-2000:]
        exporter.send_signal(signal.SIGTERM)
        assert exporter.wait(timeout=10) == 0
    log = (tmp_path / "exporter.log").read_text()
    assert "tls=true" in log and "basic_auth=true" in log
    assert "Traceback" not in log and SCRAPE_PASSWORD not in log
    assert loaded.tls_server_config.enabled


def test_tls_example_in_the_deploy_docs_installs(pki: dict[str, Any], tmp_path: Path) -> None:
    """docs/deploy.md's cert-manager Certificate and lag-tls-values.yaml fit together and with the chart."""
    text = (ROOT / "docs" / "deploy.md").read_text()
    base = re.search(r"```yaml\n(# lag-values\.yaml\n.*?)```", text, re.DOTALL)
    tls_values = re.search(r"```yaml\n(# lag-tls-values\.yaml.*?)```", text, re.DOTALL)
    certificate = re.search(r"```yaml\n(# cert-manager:.*?)```", text, re.DOTALL)
    assert base and tls_values and certificate, "docs/deploy.md lost its TLS example"
    vals = yaml.safe_load(base.group(1))
    tls_doc = yaml.safe_load(tls_values.group(1))
    # The example carries a placeholder, not a hash anyone could log in with: the schema refuses it as is.
    assert tls_doc["webConfig"]["basicAuth"]["users"] == {"prometheus": "REPLACE-WITH-A-BCRYPT-HASH"}
    with pytest.raises(helm.HelmValuesError, match=r"/webConfig/basicAuth/users/prometheus.*pattern"):
        render(values(vals, tls_doc))
    tls_doc["webConfig"]["basicAuth"]["users"]["prometheus"] = pki["hashes"]["prometheus"]
    _merge(vals, tls_doc)
    docs = render(vals)
    kube_validate(docs, tmp_path)
    monitor = one(docs, "ServiceMonitor")
    crd_validate(monitor)
    cert = yaml.safe_load(certificate.group(1))
    endpoint = monitor["spec"]["endpoints"][0]
    assert endpoint["scheme"] == "https"
    assert endpoint["tlsConfig"]["serverName"] in cert["spec"]["dnsNames"]
    assert cert["metadata"]["namespace"] == NAMESPACE and cert["metadata"]["name"] == f"{RELEASE}-alikafka-exporter"
    assert endpoint["tlsConfig"]["ca"]["secret"]["name"] == cert["spec"]["secretName"]
    deployment = one(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert volume(pod, "tls")["secret"]["secretName"] == cert["spec"]["secretName"]
    scrape_secret = endpoint["basicAuth"]["password"]["name"]
    assert f"create secret generic {scrape_secret}" in text
    assert {"--from-literal=username=", "--from-literal=password="} <= set(re.findall(r"--from-literal=\w+=", text))
    _, loaded = pod_web_config(pod, exporter_container(deployment), docs, pki, tmp_path, {
        cert["spec"]["secretName"]: pki["tls"],
        "alikafka-exporter-ak": {"access_key_id": "LTAI5tId", "access_key_secret": SECRET_VALUE}})
    assert loaded.tls_server_config.enabled and set(loaded.basic_auth_users) == {"prometheus"}
    assert all("tcpSocket" in p for p in _probes(exporter_container(deployment)))


RELOAD_INSTANCE = "alikafka_post-cn-helmreload1"
RELOAD_SCENARIO = f"""
seed: 3
instances:
  - instance_id: {RELOAD_INSTANCE}
    region: cn-hangzhou
    topics:
      - {{name: events, partitions: 1, rate: 2}}
    groups:
      - {{name: keep, topics: [events], members: 1}}
      - {{name: gone, topics: [events], members: 1}}
      - {{name: fresh, topics: [events], members: 1}}
"""


@pytest.mark.e2e
def test_without_rolling_the_running_pod_reloads_the_upgraded_configmap(tmp_path: Path) -> None:
    """rollOnConfigChange: false. A `helm upgrade` that changes the targets leaves the pod template as it
    was; the new ConfigMap, swapped in the way the kubelet updates a mounted ConfigMap (the ..data
    symlink), is picked up by the running exporter's file watcher: the removed group goes, the new one
    comes, with no restart."""
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(RELOAD_SCENARIO)
    sim_port, exp_port = free_port(), free_port()
    key = ("LTAI5tHelmReload", SECRET_VALUE)

    def release(groups: list[str]) -> list[dict[str, Any]]:
        return render({"rollOnConfigChange": False, "config": {
            "api": {"region": "cn-hangzhou", "endpoint": f"http://127.0.0.1:{sim_port}/", "max_qps": 20},
            "poll": {"interval": "1s"}, "reload": {"watch_interval": "1s"},
            "targets": [{"instance_id": RELOAD_INSTANCE, "groups": groups}]}})

    before, after = release(["keep", "gone"]), release(["keep", "fresh"])
    assert one(before, "Deployment") == one(after, "Deployment")  # nothing for Kubernetes to roll
    assert one(before, "ConfigMap") != one(after, "ConfigMap")

    # The volume as the kubelet lays it out: config.yaml -> ..data/config.yaml, ..data -> a timestamped dir.
    mount = tmp_path / "config"
    for version, docs in (("..2026_12_01_v1", before), ("..2026_12_01_v2", after)):
        (mount / version).mkdir(parents=True)
        for name, text in one(docs, "ConfigMap")["data"].items():
            (mount / version / name).write_text(text)
    (mount / "..data").symlink_to("..2026_12_01_v1")
    (mount / "config.yaml").symlink_to("..data/config.yaml")
    container = exporter_container(one(before, "Deployment"))
    config_dir = next(m["mountPath"] for m in container["volumeMounts"] if m["name"] == "config")
    args = [a.replace(config_dir, str(mount)) for a in container["args"] if not a.startswith("--web.listen-address")]

    def up(text: str, group: str) -> bool:
        return samples.get(text, "alikafka_consumergroup_up", group=group, instance_id=RELOAD_INSTANCE) == 1

    def metrics_with(present: str, absent: str) -> str | None:
        status, body = http_get(f"http://127.0.0.1:{exp_port}/metrics")
        text = body.decode()
        return text if status == 200 and up(text, present) and not up(text, absent) else None

    sim_cmd = python_module("exporter.simulator", "--listen", f"127.0.0.1:{sim_port}", "--scenario", str(scenario),
                            "--access-key", f"{key[0]}:{key[1]}")
    exp_env = clean_env(ALIBABA_CLOUD_ACCESS_KEY_ID=key[0], ALIBABA_CLOUD_ACCESS_KEY_SECRET=key[1])
    with process(sim_cmd, clean_env(), tmp_path / "sim.log"), \
            process(python_module("exporter", *args, f"--web.listen-address=127.0.0.1:{exp_port}"), exp_env,
                    tmp_path / "exporter.log") as exporter:
        wait_for(lambda: metrics_with("gone", "fresh"), 30, "the first ConfigMap's targets")
        (mount / "..data_tmp").symlink_to("..2026_12_01_v2")
        os.replace(mount / "..data_tmp", mount / "..data")  # the kubelet's atomic update
        text = wait_for(lambda: metrics_with("fresh", "gone"), 30, "the exporter to reload the new ConfigMap")
        assert up(text, "keep")
        assert samples.value(text, "alikafka_exporter_config_last_reload_successful") == 1
        exporter.send_signal(signal.SIGTERM)
        assert exporter.wait(timeout=10) == 0
    log = (tmp_path / "exporter.log").read_text()
    assert 'reason="file changed"' in log and "Traceback" not in log and SECRET_VALUE not in log
