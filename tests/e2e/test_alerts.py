"""The alert rules: promtool accepts them, unit tests prove each fires and stays quiet when it should,
each has a runbook, and a real Prometheus evaluates every one against the demo without error."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.demo_prometheus import DemoPrometheus, demo_stack
from tests.support.procs import wait_for
from tests.support.tools import FIXTURES, ROOT

RULES = ROOT / "deploy" / "helm" / "alikafka-exporter" / "files" / "alerts.yaml"
UNIT_TESTS = FIXTURES / "alerts" / "alerts_test.yaml"
SEVERITIES = {"warning", "critical"}


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def promtool_run(promtool: str, *args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.e2e
def test_promtool_check_rules(promtool: str) -> None:
    result = promtool_run(promtool, "check", "rules", str(RULES))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in result.stdout


@pytest.mark.e2e
def test_promtool_unit_tests_pass(promtool: str) -> None:
    result = promtool_run(promtool, "test", "rules", str(UNIT_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.e2e
def test_unit_tests_fail_on_a_broken_rule(promtool: str, tmp_path: Path) -> None:
    """The unit tests are not vacuous: a threshold moved or a `for` shortened makes them fail."""
    for old, new in ((") + 600\n", ") + 6000\n"),  # the default where no threshold series exists
                     ("          3 * (\n", "          30 * (\n"),  # critical: three times the group's threshold
                     ("(alikafka_consumergroup_lag_threshold)\n", "(alikafka_consumergroup_lag_threshold) * 2\n"),
                     ("group_left()\n          (\n            max by (instance_id, group) "
                      "(alikafka_consumergroup_lag_seconds_threshold)",
                      "group_left()\n          (\n            2 * max by (instance_id, group) "
                      "(alikafka_consumergroup_lag_seconds_threshold)"),  # the group's own threshold
                     ("for: 15m", "for: 2m"), ('{status="stalled"}) == 1', '{status="stalled"}) == 0'),
                     # retention and catch-up
                     ("(alikafka_consumergroup_retention_margin_seconds) < 21600\n",
                      "(alikafka_consumergroup_retention_margin_seconds) < 2160\n"),  # 6 hours
                     ("            < on(instance_id, group)\n            min by",
                      "            > on(instance_id, group)\n            min by"),  # left out only if the ETA is sooner
                     ("lost_messages))[15m:1m])", "lost_messages))[3m:1m])"),  # losses of the last 15 minutes
                     ("(\n            max without (instance, pod) (alikafka_consumergroup_lost_messages)\n",
                      "(\n            0 * max without (instance, pod) (alikafka_consumergroup_lost_messages)\n"),
                     ("group_lag))[30m:1m]) > 0", "group_lag))[30m:1m]) < 0"),  # the lag grows
                     ("(alikafka_consumergroup_up[10m])", "(alikafka_consumergroup_up[1m])"),  # one failed poll
                     ("\n          unless on(instance_id, group) max by (instance_id, group) "
                      "(alikafka_consumergroup_catch_up_seconds)\n", "\n"),  # no ETA
                     ('{status=~"stopped|stalled"}) == 1', '{status=~"stopped"}) == 1'),
                     ("for: 30m", "for: 20m")):
        assert old in RULES.read_text()
        broken = tmp_path / "alerts.yaml"
        broken.write_text(RULES.read_text().replace(old, new, 1))
        tests = yaml.safe_load(UNIT_TESTS.read_text())
        tests["rule_files"] = [str(broken)]
        (tmp_path / "alerts_test.yaml").write_text(yaml.safe_dump(tests))
        result = promtool_run(promtool, "test", "rules", str(tmp_path / "alerts_test.yaml"))
        assert result.returncode != 0, f"unit tests still pass with {new!r}"


def test_every_alert_has_a_firing_and_a_quiet_case() -> None:
    cases = [case for test in yaml.safe_load(UNIT_TESTS.read_text())["tests"] for case in test["alert_rule_test"]]
    names = [rule["alert"] for rule in alert_rules()]
    assert len(names) == len(set(names)) >= 9
    for name in names:
        fires = [c for c in cases if c["alertname"] == name and c.get("exp_alerts")]
        quiet = [c for c in cases if c["alertname"] == name and not c.get("exp_alerts")]
        assert fires, f"{name}: no unit test where it fires"
        assert quiet, f"{name}: no unit test where it stays quiet"
    assert {c["alertname"] for c in cases} <= set(names)


def documented_families() -> set[str]:
    return set(re.findall(r"^### `(alikafka_\w+)`", (ROOT / "docs" / "metrics.md").read_text(), re.MULTILINE))


def runbook_section() -> str:
    text = (ROOT / "docs" / "deploy.md").read_text()
    match = re.search(r"^## Dashboards and alerts\n(.*?)(?=^## |\Z)", text, re.MULTILINE | re.DOTALL)
    assert match, "docs/deploy.md has no 'Dashboards and alerts' section"
    return match.group(1)


def test_rules_are_labelled_annotated_and_have_runbooks() -> None:
    families = documented_families()
    runbooks = set(re.findall(r"^#### (\w+)$", runbook_section(), re.MULTILINE))
    for rule in alert_rules():
        name = rule["alert"]
        assert name.startswith("Alikafka"), name
        assert rule["labels"]["severity"] in SEVERITIES, name
        assert {"summary", "description"} <= set(rule["annotations"]), name
        assert re.fullmatch(r"\d+m", rule["for"]), name
        for metric in re.findall(r"\balikafka_\w+", rule["expr"]):
            assert re.sub(r"_(bucket|count|sum)$", "", metric) in families, f"{name}: {metric} undocumented"
        assert name in runbooks, f"{name}: no runbook heading '#### {name}' in docs/deploy.md"
    assert runbooks <= {rule["alert"] for rule in alert_rules()}, "runbooks for alerts that do not exist"


# --- live: Prometheus loads the file and evaluates every rule against the demo -----------------------

@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, prometheus_bin: str) -> Iterator[DemoPrometheus]:
    with demo_stack(tmp_path_factory.mktemp("alerts"), prometheus_bin, rule_files=[RULES]) as stack:
        yield stack


@pytest.mark.e2e
def test_prometheus_evaluates_every_rule_without_error(demo: DemoPrometheus) -> None:
    names = {rule["alert"] for rule in alert_rules()}

    def evaluated() -> list[dict[str, Any]] | None:
        rules = demo.rules()
        return rules if {r["name"] for r in rules} == names and all(r["health"] != "unknown" for r in rules) else None

    rules = wait_for(evaluated, 30, "Prometheus to evaluate every rule")
    assert all(r["health"] == "ok" and not r.get("lastError") for r in rules), [
        (r["name"], r["health"], r.get("lastError")) for r in rules]
    for rule in alert_rules():
        demo.query(rule["expr"])  # parses and runs (PromError otherwise); data is not required


@pytest.mark.e2e
def test_demo_data_makes_the_right_alerts_pending(demo: DemoPrometheus) -> None:
    """The demo's stopped group is caught at once, and so is its data loss on the full disk; nothing says
    the running exporter is down or absent."""
    by_name = {rule["alert"]: rule["expr"] for rule in alert_rules()}
    stopped = demo.query(by_name["AlikafkaConsumerGroupStopped"])
    assert {r["metric"]["group"] for r in stopped} == {"email-sender"}
    # email-sender loses messages on the demo's full disk: margin 0, no catch-up ETA (fraud-detector, stalled
    # on the same instance, joins it a few minutes in); healthy groups have days of margin
    losing = wait_for(lambda: demo.query(by_name["AlikafkaConsumerGroupWillLoseMessages"]) or None, 30,
                      "email-sender's retention margin of 0")
    assert "email-sender" in {r["metric"]["group"] for r in losing} <= {"email-sender", "fraud-detector"}
    # (not AlikafkaTargetFailing: the demo's simulator throttles at 3 requests a second, like the real API,
    # so a poll can fail now and then)
    for quiet in ("AlikafkaExporterDown", "AlikafkaExporterAbsent", "AlikafkaExporterConfigReloadFailed",
                  "AlikafkaDataStale"):
        assert demo.query(by_name[quiet]) == [], quiet
    pending = wait_for(lambda: [a for a in demo.query("ALERTS") if a["metric"]["alertname"] ==
                                "AlikafkaConsumerGroupStopped"] or None, 15, "the stopped alert to be pending")
    assert pending[0]["metric"]["alertstate"] == "pending"
    assert pending[0]["metric"]["severity"] == "warning"
