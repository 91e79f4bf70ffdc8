"""The exposition: golden file, promtool lint, granularity, absence rules and label contract."""

from __future__ import annotations

import math
import os
import re
import subprocess
from types import MappingProxyType

from exporter.cloud.models import InstanceInfo, RebalanceInfo
from exporter.cloud.stats import ApiStats
from exporter.config.reload import ReloadStatus
from exporter.config.settings import MetricsSettings, ThresholdSettings
from exporter.metrics.exposition import Exposition, render_states
from exporter.metrics.self_metrics import TailCollector
from exporter.polling.analysis import Insight, TimeLags
from exporter.polling.rates import GroupRates
from exporter.polling.snapshot import PairState, PollError, PriorityView, Snapshot
from exporter.targets.pair import Pair
from tests.support.fakes import Catalog, board_of, progress
from tests.support.samples import find, has, samples, value
from tests.support.tools import FIXTURES, ROOT

GOLDEN = FIXTURES / "golden.prom"
DOC = ROOT / "docs" / "metrics.md"
NOW = 1_800_000_000.0

# its target sets its own thresholds; the other pairs have the defaults (600 s, no message threshold)
ORDERS = Pair("alikafka_post-cn-a", "orders-consumer", "cn-hangzhou",
              thresholds=ThresholdSettings(lag_seconds=300.0, lag=1000))
BILLING = Pair("alikafka_post-cn-a", "billing", "cn-hangzhou")
GONE = Pair("alikafka_post-cn-b", "ghost", "cn-shanghai")
NEVER = Pair("alikafka_post-cn-b", "new", "cn-shanghai")


def sample_snapshot() -> Snapshot:
    orders = progress(
        {"orders": {0: (100, 90), 1: (50, None), 2: (70, 75)}, "refunds": {0: (9, 9)}},
        members=("m-1", "m-2"),
        rebalance=RebalanceInfo(7, 1_799_999_000.0, 1.25, True, "join"),
    )
    billing = progress({"orders": {0: (101, 20)}}, state="empty", members=(), last_ts_ms=None)
    err = PollError("Throttling.User", "Request was denied due to user flow control.", "throttled", "RID-1")
    states = {
        ORDERS: PairState(ORDERS, orders, True, NOW, NOW, None, 3,
                          Insight(MappingProxyType({("orders", 0): 12.5, ("orders", 2): 0.0, ("refunds", 0): 0.0}),
                                  "ok", GroupRates(MappingProxyType({"orders": 12.5, "refunds": 0.0}),
                                                   MappingProxyType({"orders": 13.0, "refunds": 0.0}), 4.0),
                                  TimeLags({("orders", 0): 0.0, ("orders", 2): 0.0, ("refunds", 0): 0.0}.items()),
                                  259_187.5, MappingProxyType({"orders": {0: 40, 1: 40, 2: 40}, "refunds": {0: 0}}))),
        BILLING: PairState(BILLING, billing, False, NOW, NOW - 60, err, 3,
                           Insight(MappingProxyType({("orders", 0): 840.0}), "stalled",
                                   GroupRates(MappingProxyType({"orders": 0.0}), MappingProxyType({"orders": 13.5})),
                                   TimeLags({("orders", 0): 20.0}.items()), 0.0,
                                   MappingProxyType({"orders": {0: 40, 1: 40, 2: 40}}))),
        GONE: PairState(GONE, None, False, NOW, NOW - 600, err, 9),
        NEVER: PairState(NEVER),
    }
    schedule = (PriorityView("new", 1, None, 12.0), PriorityView("hot", 1, 60.0, 30.0),
                PriorityView("active", 2, 240.0, 200.0), PriorityView("quiet", 0, 855.0, None))
    return Snapshot(MappingProxyType(states), 5, 2.5, 60.0, schedule=schedule)


def sample_stats() -> ApiStats:
    stats = ApiStats()
    stats.observe("GetConsumerProgress", "200", 0.04)
    stats.observe("GetConsumerProgress", "200", 0.3)
    stats.observe("GetConsumerProgress", "Throttling.User", 0.02)
    stats.observe("GetConsumerProgress", "timeout", 10.0)
    stats.observe("GetConsumerProgress", "200", 0.1, account="prod")  # a second account: its own series
    return stats


def render(options: MetricsSettings | None = None, snapshot: Snapshot | None = None) -> str:
    options = options or MetricsSettings(max_series=0)
    instances = {"alikafka_post-cn-a": InstanceInfo("alikafka_post-cn-a", "orders-prod", "cn-hangzhou", "v3",
                                                    "professional", True, retention_seconds=259_200.0)}
    snap = snapshot or sample_snapshot()
    tail = TailCollector(board_of(snap), sample_stats(), "0.1.0", "3.11.7", catalog=Catalog(instances))
    return render_states(snap.pairs.values(), options, tail).decode()


def families(text: str) -> set[str]:
    return {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE")}


def test_golden_exposition() -> None:
    """The whole exposition of a fixed snapshot matches tests/support/fixtures/golden.prom (UPDATE_GOLDEN=1 rewrites)."""
    text = render(MetricsSettings(member_labels=True, max_series=0))
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()


def test_golden_file_passes_promtool(promtool: str) -> None:
    """promtool check metrics finds no problem in the golden exposition."""
    result = subprocess.run([promtool, "check", "metrics"], input=GOLDEN.read_bytes(), capture_output=True,
                            check=False)
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()


def test_absent_values_are_absent_not_sentinels() -> None:
    """No NaN, no negative values, no -1; uncommitted partitions have no lag series."""
    text = render()
    assert all(not math.isnan(s.value) and s.value >= 0 for s in samples(text))
    orders = {"group": "orders-consumer", "instance_id": "alikafka_post-cn-a"}
    assert not has(text, "alikafka_consumergroup_lag", **orders, partition="1")
    # consumer ahead of the broker offset (non-atomic read) clamps to 0
    assert value(text, "alikafka_consumergroup_lag", **orders, partition="2", topic="orders") == 0
    # billing has no LastTimestamp: no timestamp series for it
    assert not [s for s in samples(text)
                if s.name.endswith("last_consumed_timestamp_seconds") and s.labels.get("group") == "billing"]


def test_stale_and_pending_pairs_export_only_health() -> None:
    """A stale pair keeps up 0, its last success time and its threshold; a never-polled pair exports nothing."""
    text = render()
    assert value(text, "alikafka_consumergroup_up", group="ghost", instance_id="alikafka_post-cn-b") == 0
    ghost = {s.name for s in samples(text) if s.labels.get("group") == "ghost"}
    assert ghost == {"alikafka_consumergroup_up", "alikafka_consumergroup_last_success_timestamp_seconds",
                     "alikafka_consumergroup_lag_seconds_threshold"}
    assert not [s for s in samples(text) if s.labels.get("group") == "new"]
    assert value(text, "alikafka_exporter_targets", state="stale") == 1
    assert value(text, "alikafka_exporter_targets", state="failing") == 1


def test_end_offset_is_one_series_per_partition() -> None:
    """Two groups reading orders/0 give one end-offset series with the highest value."""
    text = render()
    found = find(text, "alikafka_topic_partition_end_offset", instance_id="alikafka_post-cn-a", partition="0",
                 topic="orders")
    assert [(dict(s.labels), s.value) for s in found] == [
        ({"instance_id": "alikafka_post-cn-a", "partition": "0", "topic": "orders"}, 101)]


def test_granularity_trims_levels() -> None:
    """topic drops partition families; group keeps only group-level ones."""
    full = families(render())
    topic = families(render(MetricsSettings(granularity="topic", max_series=0)))
    group = families(render(MetricsSettings(granularity="group", max_series=0)))
    partition_only = {"alikafka_consumergroup_lag", "alikafka_consumergroup_current_offset",
                      "alikafka_topic_partition_end_offset", "alikafka_consumergroup_last_consumed_timestamp_seconds"}
    topic_level = {"alikafka_consumergroup_topic_lag", "alikafka_consumergroup_topic_last_consumed_timestamp_seconds"}
    assert partition_only <= full
    assert not partition_only & topic and topic_level <= topic
    assert not (partition_only | topic_level) & group
    assert "alikafka_consumergroup_group_lag" in group


def test_member_labels_are_opt_in() -> None:
    """partition_assignment_info appears only with member_labels."""
    assert "partition_assignment_info" not in render()
    assert 'member_id="m-2"' in render(MetricsSettings(member_labels=True, max_series=0))


def test_no_forbidden_labels() -> None:
    """Data families never carry region, instance or job; no sample has a timestamp."""
    text = render(MetricsSettings(member_labels=True, max_series=0))
    for line in text.splitlines():
        if line.startswith(("#", "alikafka_instance_info")) or not line:  # the info family has region by contract
            continue
        assert "region=" not in line and 'instance="' not in line and "job=" not in line
        assert len(line.rsplit("}", 1)[-1].split()) == 1 if "}" in line else len(line.split()) == 2


FULL_SERIES = 88  # pair-derived series of sample_snapshot() with member labels; one less makes the guard shed


def render_every_family() -> str:
    """An exposition with every family in it: member labels, a series budget (the cardinality guard's own
    families), a configuration reload time and a clock skew, besides what :func:`render` gives."""
    options = MetricsSettings(member_labels=True, max_series=FULL_SERIES - 1)
    instances = {"alikafka_post-cn-a": InstanceInfo("alikafka_post-cn-a", "orders-prod", "cn-hangzhou", "v3",
                                                    "professional", True, retention_seconds=259_200.0)}
    snap = sample_snapshot()
    stats = sample_stats()
    stats.observe_clock(1.0)
    stats.task_started("poller")
    stats.task_restarted("catalog")
    board = board_of(snap)
    tail = TailCollector(board, stats, "0.1.0", "3.11.7", catalog=Catalog(instances),
                         reload=ReloadStatus(last_success=NOW), guard=True)
    return Exposition(options, board, tail).render().body.decode()


def served_families(text: str) -> set[str]:
    """Families with at least one sample (a ``# TYPE`` line alone does not count)."""
    names = {line.split()[2]: line.split()[3] for line in text.splitlines() if line.startswith("# TYPE")}
    served = {s.name for s in samples(text)}
    suffixes = {"histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count")}
    return {name for name, kind in names.items()
            if any(name + suffix in served for suffix in ("", *suffixes.get(kind, ())))}


def undocumented(doc: str, emitted: set[str]) -> list[str]:
    """What docs/metrics.md (``doc``) lacks for the ``emitted`` families: a heading, a sample, or the reverse."""
    problems = [f"{family}: no heading" for family in emitted if f"### `{family}`" not in doc]
    problems += [f"{family}: no sample" for family in emitted
                 if not re.search(rf"^{family}(_bucket|_sum|_count)?[{{ ]", doc, re.MULTILINE)]
    documented = {line.split("`")[1] for line in doc.splitlines() if line.startswith("### `")}
    problems += [f"{family}: documented, never emitted" for family in documented - emitted]
    return sorted(problems)


def test_every_family_is_documented_with_a_sample() -> None:
    """docs/metrics.md has a heading and an exposition sample for every family the exporter emits, and
    documents none it does not emit, so every documented family is emitted and checked here."""
    text = render_every_family()
    emitted = served_families(text)
    assert families(text) == emitted, "a family has no sample in this exposition: give the test data for it"
    assert {"alikafka_exporter_series", "alikafka_exporter_series_limit", "alikafka_exporter_series_dropped",
            "alikafka_exporter_series_limited_groups"} <= emitted
    assert value(text, "alikafka_exporter_series_limited_groups", dropped="partition") >= 1
    assert undocumented(DOC.read_text(), emitted) == []


def test_docs_check_catches_a_missing_family() -> None:
    """The check fails when one family's section is missing from the docs."""
    doc = DOC.read_text()
    start = doc.index("### `alikafka_exporter_series_limit`")
    trimmed = doc[:start] + doc[doc.index("### ", start + 4):]
    assert undocumented(trimmed, served_families(render_every_family())) == [
        "alikafka_exporter_series_limit: no heading", "alikafka_exporter_series_limit: no sample"]
