"""Labels and thresholds per target end to end: an exporter process polling a real simulator, reloaded.

The configuration gives one target labels and thresholds and leaves another on the defaults; a reload then
changes only the top-level thresholds, another the target's labels. The series follow at once, the old
label set disappears, and the pair's status window survives (a relabelled pair is not a new pair).
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from tests.support.procs import clean_env, free_port, http_get, process, python_module, wait_for
from tests.support.samples import find, get

pytestmark = pytest.mark.e2e

INSTANCE = "alikafka_post-cn-labels01"
SCENARIO = f"""
seed: 7
instances:
  - instance_id: {INSTANCE}
    region: cn-hangzhou
    topics:
      - {{name: events, partitions: 2, rate: 5}}
    groups:
      - {{name: orders, topics: [events], delay: 1, members: 1}}
      - {{name: billing, topics: [events], delay: 1, members: 1}}
"""
KEY = ("LTAI-labels", "labels-secret-value-31")


def config(orders_team: str, default_seconds: str) -> str:
    return (f"thresholds: {{lag_seconds: {default_seconds}}}\n"
            "targets:\n"
            f"  - {{instance_id: {INSTANCE}, groups: [orders], labels: {{team: {orders_team}}},"
            " thresholds: {lag_seconds: 2m, lag: 5000}}\n"
            f"  - {{instance_id: {INSTANCE}, groups: [billing]}}\n"
            "poll: {interval: 1s, stale_after: 10s}\n"
            "lag: {status_min_polls: 2, status_min_span: 0s}\n"
            "metrics: {compat: [kafka_exporter, kafka_lag_exporter]}\n")


def test_labels_and_thresholds_reach_the_series_and_follow_a_reload(tmp_path: Path) -> None:
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(SCENARIO)
    cfg = tmp_path / "config.yaml"
    cfg.write_text(config("payments", "15m"))
    sim_port, exp_port = free_port(), free_port()
    sim_cmd = python_module("exporter.simulator", "--listen", f"127.0.0.1:{sim_port}", "--scenario", str(scenario),
                            "--access-key", f"{KEY[0]}:{KEY[1]}")
    exp_cmd = python_module("exporter", "--config.file", str(cfg), "--region", "cn-hangzhou",
                            "--web.listen-address", f"127.0.0.1:{exp_port}")
    exp_env = clean_env(ALIBABA_CLOUD_ACCESS_KEY_ID=KEY[0], ALIBABA_CLOUD_ACCESS_KEY_SECRET=KEY[1],
                        ALIKAFKA_EXPORTER_API__ENDPOINT=f"http://127.0.0.1:{sim_port}/")

    def scrape() -> str:
        status, body = http_get(f"http://127.0.0.1:{exp_port}/metrics")
        assert status == 200
        return body.decode()

    with process(sim_cmd, clean_env(), tmp_path / "sim.log"), \
            process(exp_cmd, exp_env, tmp_path / "exporter.log") as exporter:
        def known() -> str | None:  # both pairs polled, and the orders status known (two polls in its window)
            t = scrape() if http_get(f"http://127.0.0.1:{exp_port}/readyz")[0] == 200 else ""
            return t if get(t, "alikafka_consumergroup_status", group="orders", status="unknown") == 0 else None

        text = wait_for(known, 30, "orders' status")
        orders = [s for s in find(text, "alikafka_consumergroup_lag") if s.labels["group"] == "orders"]
        assert orders and all(s.labels["team"] == "payments" for s in orders)
        assert all("team" not in s.labels for s in find(text, "alikafka_consumergroup_lag", group="billing"))
        assert find(text, "kafka_consumergroup_group_lag", group="orders", team="payments")
        assert find(text, "kafka_consumergroup_lag", consumergroup="orders", team="payments")
        assert get(text, "alikafka_consumergroup_lag_seconds_threshold", group="orders") == 120
        assert get(text, "alikafka_consumergroup_lag_threshold", group="orders") == 5000
        assert get(text, "alikafka_consumergroup_lag_seconds_threshold", group="billing") == 900
        assert get(text, "alikafka_consumergroup_lag_threshold", group="billing") is None

        # 1. only the default thresholds change: the pairs on the defaults follow
        cfg.write_text(config("payments", "20m"))
        exporter.send_signal(signal.SIGHUP)
        wait_for(lambda: get(scrape(), "alikafka_consumergroup_lag_seconds_threshold", group="billing") == 1200 or None,
                 30, "the new default threshold")

        # 2. a target's labels change
        cfg.write_text(config("checkout", "20m"))
        exporter.send_signal(signal.SIGHUP)
        def relabelled() -> str | None:
            t = scrape()
            return t if find(t, "alikafka_consumergroup_up", group="orders", team="checkout") else None

        text = wait_for(relabelled, 30, "the new labels")
        assert not find(text, "alikafka_consumergroup_up", team="payments")  # the old label set is gone
        assert not [s for s in find(text, "alikafka_topic_partition_end_offset") if s.labels.get("team") == "payments"]
        # the status window survived the relabelling: not back to unknown
        assert get(text, "alikafka_consumergroup_status", group="orders", team="checkout", status="unknown") == 0
        assert get(text, "alikafka_consumergroup_lag_seconds_threshold", group="orders") == 120  # its own stays
