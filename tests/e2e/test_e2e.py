"""End to end: simulator -> exporter -> real Prometheus, and a PromQL query returns the true lag."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import pytest

from tests.support.procs import clean_env, free_port, http_get, process, prom_query, python_module, wait_for

pytestmark = pytest.mark.e2e

INSTANCE = "alikafka_post-cn-e2e00001"
# A topic that stopped producing 30 minutes before the start and a group that stopped consuming
# 50 minutes before it: the lag is frozen, so the value Prometheus stores can be compared exactly.
SCENARIO = f"""
seed: 3
instances:
  - instance_id: {INSTANCE}
    region: cn-hangzhou
    topics:
      - {{name: frozen-topic, partitions: 4, rate: 2, shape: idle}}
      - {{name: live-topic, partitions: 2, rate: 5}}
    groups:
      - {{name: frozen, topics: [frozen-topic], behaviour: stopped, since: -3000, members: 0}}
      - {{name: live, topics: [live-topic], delay: 1, members: 1}}
"""


def test_prometheus_scrapes_the_true_lag(tmp_path: Path, prometheus_bin: str) -> None:
    """Prometheus scrapes the exporter; group and partition lag queries equal the simulator's truth."""
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(SCENARIO)
    sim_port, exp_port, prom_port = free_port(), free_port(), free_port()
    key = ("LTAI-e2e", "e2e-secret-value")
    sim_cmd = python_module("exporter.simulator", "--listen", f"127.0.0.1:{sim_port}", "--scenario", str(scenario),
                            "--access-key", f"{key[0]}:{key[1]}")
    exp_cmd = python_module("exporter", "--target", f"{INSTANCE}=frozen,live", "--region", "cn-hangzhou",
                            "--web.listen-address", f"127.0.0.1:{exp_port}")
    exp_env = clean_env(ALIBABA_CLOUD_ACCESS_KEY_ID=key[0], ALIBABA_CLOUD_ACCESS_KEY_SECRET=key[1],
                        ALIKAFKA_EXPORTER_API__ENDPOINT=f"http://127.0.0.1:{sim_port}/",
                        ALIKAFKA_EXPORTER_POLL__INTERVAL="1s", ALIKAFKA_EXPORTER_POLL__STALE_AFTER="10s")
    prom_config = tmp_path / "prometheus.yml"
    prom_config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        f"scrape_configs:\n  - job_name: alikafka\n    static_configs: [{{targets: ['127.0.0.1:{exp_port}']}}]\n")
    prom_cmd = [prometheus_bin, f"--config.file={prom_config}", f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{prom_port}"]

    with process(sim_cmd, clean_env(), tmp_path / "sim.log"), \
            process(exp_cmd, exp_env, tmp_path / "exporter.log") as exporter, \
            process(prom_cmd, clean_env(), tmp_path / "prometheus.log"):
        wait_for(lambda: True if http_get(f"http://127.0.0.1:{exp_port}/readyz")[0] == 200 else None, 30,
                 "exporter readiness")
        truth = json.loads(http_get(f"http://127.0.0.1:{sim_port}/_sim/truth?group=frozen")[1])["partitions"]
        expected = {str(p["partition"]): p["lag"] for p in truth}
        assert sum(expected.values()) > 0

        group_lag = wait_for(
            lambda: prom_query(prom_port, 'alikafka_consumergroup_group_lag{group="frozen"}') or None, 30,
            "Prometheus to scrape group lag")
        assert float(group_lag[0]["value"][1]) == sum(expected.values())
        assert group_lag[0]["metric"]["instance_id"] == INSTANCE
        assert group_lag[0]["metric"]["job"] == "alikafka"

        partitions = prom_query(prom_port, 'alikafka_consumergroup_lag{group="frozen"}')
        assert {r["metric"]["partition"]: float(r["value"][1]) for r in partitions} == expected
        up = prom_query(prom_port, "sum(alikafka_consumergroup_up)")
        assert float(up[0]["value"][1]) == 2
        members = prom_query(prom_port, 'alikafka_consumergroup_members{group="frozen"}')
        assert float(members[0]["value"][1]) == 0
        stopped = prom_query(prom_port, 'alikafka_consumergroup_status{group="frozen",status="stopped"} == 1')
        assert len(stopped) == 1
        # the oldest unconsumed message of the frozen group: the truth, give or take a poll and a scrape
        true_age = max(p["time_lag_seconds"] for p in json.loads(
            http_get(f"http://127.0.0.1:{sim_port}/_sim/truth?group=frozen")[1])["partitions"])
        age = float(prom_query(prom_port, 'alikafka_consumergroup_max_lag_seconds{group="frozen"}')[0]["value"][1])
        assert abs(age - true_age) < 10, (age, true_age)

        # SIGTERM stops the exporter cleanly within 5 s
        started = time.monotonic()
        exporter.send_signal(signal.SIGTERM)
        assert exporter.wait(timeout=5) == 0
        assert time.monotonic() - started < 5
    log = (tmp_path / "exporter.log").read_text()
    assert "e2e-secret-value" not in log
    assert "msg=stopped" in log
