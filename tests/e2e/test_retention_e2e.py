"""End to end: ``alikafka-exporter --demo`` as a process; the demo's full disk deletes messages its stopped group
never read, and the exposition says so while every pair's lag keeps coming."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.procs import clean_env, free_port, http_get, process, python_module, wait_for
from tests.support.samples import find, value

pytestmark = pytest.mark.e2e

ORDERS_PROD = "alikafka_post-cn-demo0001"


def test_the_demo_shows_a_stopped_group_losing_messages(tmp_path: Path) -> None:
    port = free_port()
    env = clean_env(ALIKAFKA_EXPORTER_RETENTION__REFRESH="10s", ALIKAFKA_EXPORTER_POLL__INTERVAL="5s")
    with process(python_module("exporter", "--demo", "--web.listen-address", f"127.0.0.1:{port}"), env,
                 tmp_path / "exporter.log"):
        def losing() -> str | None:
            status, body = http_get(f"http://127.0.0.1:{port}/metrics")
            text = body.decode() if status == 200 else ""
            lost = find(text, "alikafka_consumergroup_lost_messages", instance_id=ORDERS_PROD, group="email-sender")
            return text if lost and all(s.value > 0 for s in lost) else None

        text = wait_for(losing, 90, "lost messages for the demo's email-sender")
    stopped = {"instance_id": ORDERS_PROD, "group": "email-sender"}
    assert value(text, "alikafka_consumergroup_retention_margin_seconds", **stopped) == 0
    healthy = {"instance_id": ORDERS_PROD, "group": "orders-consumer"}
    assert all(s.value == 0 for s in find(text, "alikafka_consumergroup_lost_messages", **healthy))
    assert 0 < value(text, "alikafka_consumergroup_retention_margin_seconds", **healthy) <= 72 * 3600
    assert value(text, "alikafka_instance_retention_seconds", instance_id=ORDERS_PROD) == 72 * 3600
    assert len(find(text, "alikafka_consumergroup_up")) == 31
    assert find(text, "alikafka_topic_partition_earliest_offset", instance_id=ORDERS_PROD, topic="orders")
