"""``metrics.compat: kafka_exporter``: kafka_exporter's names for the same data, off by default.

A golden file pins the compat families (UPDATE_GOLDEN=1 rewrites it); the values must equal the native
families' so a migrated dashboard shows the same numbers; shared series (per partition or topic) stay
one series however many groups read the topic; promtool finds nothing but kafka_exporter's own `_sum`
names; and a real Prometheus scraping a demo exporter answers kafka_exporter-style queries.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Literal

import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families

from exporter.cloud.stats import ApiStats
from exporter.config.errors import ConfigError
from exporter.config.settings import MetricsSettings, load_settings
from exporter.metrics.exposition import Exposition, render_states
from exporter.metrics.families import families
from exporter.metrics.self_metrics import TailCollector
from exporter.polling.snapshot import Board, PairState, Snapshot
from exporter.targets.pair import Pair
from tests.support.fakes import board_of, progress
from tests.support.procs import clean_env, free_port, process, prom_query, python_module, wait_for
from tests.support.samples import samples, series
from tests.support.tools import FIXTURES, ROOT
from tests.unit.metrics.test_render import sample_snapshot, sample_stats

GOLDEN = FIXTURES / "golden-compat.prom"
COMPAT = {"kafka_consumergroup_lag", "kafka_consumergroup_current_offset", "kafka_consumergroup_lag_sum",
          "kafka_consumergroup_current_offset_sum", "kafka_consumergroup_members",
          "kafka_topic_partition_current_offset", "kafka_topic_partitions"}
# promtool's lint for any gauge whose name ends in _sum; kafka_exporter's names do, by design.
SUM_LINT = 'non-histogram and non-summary metrics should not have "_sum" suffix'
Granularity = Literal["partition", "topic", "group"]


def options(granularity: Granularity = "partition", compat: bool = True) -> MetricsSettings:
    return MetricsSettings(granularity=granularity, compat=("kafka_exporter",) if compat else (), max_series=0)


def render(opts: MetricsSettings, snapshot: Snapshot | None = None, *, openmetrics: bool = False) -> str:
    snap = snapshot or sample_snapshot()
    tail = TailCollector(board_of(snap), sample_stats(), "0.1.0", "3.11.7")
    return render_states(snap.pairs.values(), opts, tail, openmetrics=openmetrics).decode()


def renamed(series: dict[frozenset[tuple[str, str]], float]) -> dict[frozenset[tuple[str, str]], float]:
    """Native labels under kafka_exporter's names: group becomes consumergroup."""
    return {frozenset(("consumergroup" if k == "group" else k, v) for k, v in labels): value
            for labels, value in series.items()}


def compat_blocks(text: str) -> str:
    """Only the compat families' HELP, TYPE and sample lines."""
    keep = []
    for line in text.splitlines(keepends=True):
        name = line.split()[2] if line.startswith("#") else line.split("{")[0]
        if name in COMPAT:
            keep.append(line)
    return "".join(keep)


def test_compat_golden() -> None:
    """The compat families of the fixed snapshot match tests/support/fixtures/golden-compat.prom."""
    text = compat_blocks(render(options()))
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN.write_text(text)
    assert text == GOLDEN.read_text()


def test_off_by_default() -> None:
    """Without metrics.compat nothing of kafka_exporter's is exported; the setting defaults to none."""
    assert not {f.name for f in families(MetricsSettings())} & COMPAT
    assert "kafka_consumergroup" not in render(options(compat=False)).replace("alikafka_consumergroup", "")
    settings = load_settings({"targets": [{"instance_id": "i-1", "groups": ["g"], "region": "r"}]}, {}, None)
    assert settings.metrics.compat == ()
    env = {"ALIKAFKA_EXPORTER_METRICS__COMPAT": "kafka_exporter"}
    assert load_settings({"targets": [{"instance_id": "i-1", "groups": ["g"], "region": "r"}]}, env, None).metrics.compat \
        == ("kafka_exporter",)


def test_bad_compat_value_names_the_key(tmp_path: Path) -> None:
    """An unknown compat value is a config error naming metrics.compat and the file."""
    path = tmp_path / "c.yaml"
    path.write_text("metrics:\n  compat: burrow\ntargets: [{instance_id: i-1, groups: [g]}]\n")
    with pytest.raises(ConfigError) as info:
        load_settings({}, {}, path)
    assert any(p.startswith(f"metrics.compat[0] (file {path})") and "kafka_exporter" in p for p in info.value.problems), \
        info.value.problems


def test_values_equal_the_native_families() -> None:
    """Every compat series carries the native value; sums equal the sums of the partition series."""
    text = render(options())
    assert series(text, "kafka_consumergroup_lag") == renamed(series(text, "alikafka_consumergroup_lag"))
    assert series(text, "kafka_consumergroup_current_offset") == renamed(
        series(text, "alikafka_consumergroup_current_offset"))
    assert series(text, "kafka_consumergroup_members") == renamed(series(text, "alikafka_consumergroup_members"))
    assert series(text, "kafka_topic_partition_current_offset") == series(text, "alikafka_topic_partition_end_offset")
    for family in ("lag", "current_offset"):
        summed: dict[frozenset[tuple[str, str]], float] = {}
        for labels, value in series(text, f"kafka_consumergroup_{family}").items():
            key = frozenset(kv for kv in labels if kv[0] != "partition")
            summed[key] = summed.get(key, 0.0) + value
        assert series(text, f"kafka_consumergroup_{family}_sum") == summed
    partitions = series(text, "kafka_topic_partitions")
    assert partitions[frozenset({("instance_id", "alikafka_post-cn-a"), ("topic", "orders")})] == 3
    # a partition without a committed offset has no series (kafka_exporter would say -1)
    assert all(s.value >= 0 for s in samples(text) if s.name.startswith("kafka_"))


def test_shared_series_are_one_per_topic_and_partition() -> None:
    """Two groups reading one topic give one partition count and one end offset per partition, the highest."""
    a, b = Pair("i-1", "a", "r"), Pair("i-1", "b", "r")
    opts = options()
    board = Board()
    exposition = Exposition(opts, board, TailCollector(board, ApiStats(), "0.1.0", "3.11.7"))
    board.put(PairState(a, progress({"t": {0: (10, 5)}}), True, 1.0, 1.0, None, 1))
    board.put(PairState(b, progress({"t": {0: (12, 5), 1: (4, 4)}}), True, 1.0, 1.0, None, 1))
    text = exposition.render().body.decode()
    assert series(text, "kafka_topic_partitions") == {frozenset({("instance_id", "i-1"), ("topic", "t")}): 2.0}
    assert series(text, "kafka_topic_partition_current_offset") == {
        frozenset({("instance_id", "i-1"), ("topic", "t"), ("partition", "0")}): 12.0,
        frozenset({("instance_id", "i-1"), ("topic", "t"), ("partition", "1")}): 4.0}
    board.remove(b)
    text = exposition.render().body.decode()
    assert series(text, "kafka_topic_partitions") == {frozenset({("instance_id", "i-1"), ("topic", "t")}): 1.0}
    assert list(series(text, "kafka_topic_partition_current_offset").values()) == [10.0]


@pytest.mark.parametrize(("granularity", "expected"), [
    ("partition", COMPAT),
    ("topic", {"kafka_consumergroup_lag_sum", "kafka_consumergroup_current_offset_sum", "kafka_topic_partitions",
               "kafka_consumergroup_members"}),
    ("group", {"kafka_consumergroup_members"}),
])
def test_granularity_trims_compat_families(granularity: Granularity, expected: set[str]) -> None:
    """metrics.granularity applies to the compat families at their level, declared and rendered."""
    opts = options(granularity)
    assert {f.name for f in families(opts)} & COMPAT == expected
    text = render(opts)
    assert {name for name in COMPAT if series(text, name)} == expected


def test_openmetrics_parses_with_compat() -> None:
    """The OpenMetrics body (what Prometheus asks for) parses, with each compat family once."""
    parsed = [f.name for f in text_string_to_metric_families(render(options(), openmetrics=True))]
    assert sorted(n for n in parsed if n in COMPAT) == sorted(COMPAT)


def test_promtool_only_flags_kafka_exporters_sum_names(promtool: str) -> None:
    """promtool check metrics: no problem but the _sum lint on kafka_exporter's two names; clean without them."""
    text = render(options())
    result = subprocess.run([promtool, "check", "metrics"], input=text.encode(), capture_output=True, check=False)
    output = (result.stdout + result.stderr).decode().strip().splitlines()
    assert result.returncode == 3, output  # 3: lint findings only (1 would be a parse error)
    assert sorted(output) == [f"kafka_consumergroup_current_offset_sum {SUM_LINT}",
                              f"kafka_consumergroup_lag_sum {SUM_LINT}"]
    rest = "".join(line + "\n" for line in text.splitlines()
                   if "kafka_consumergroup_lag_sum" not in line and "kafka_consumergroup_current_offset_sum" not in line)
    clean = subprocess.run([promtool, "check", "metrics"], input=rest.encode(), capture_output=True, check=False)
    assert clean.returncode == 0, clean.stdout.decode() + clean.stderr.decode()


@pytest.mark.e2e
def test_prometheus_answers_kafka_exporter_queries(tmp_path: Path, prometheus_bin: str) -> None:
    """A real Prometheus scraping a demo exporter with compat on: kafka_exporter queries equal native ones."""
    exp_port, prom_port = free_port(), free_port()
    exp_cmd = python_module("exporter", "--demo", "--web.listen-address", f"127.0.0.1:{exp_port}")
    exp_env = clean_env(ALIKAFKA_EXPORTER_METRICS__COMPAT="kafka_exporter", ALIKAFKA_EXPORTER_POLL__INTERVAL="5s")
    config = tmp_path / "prometheus.yml"
    config.write_text("global: {scrape_interval: 1s}\n"
                      f"scrape_configs:\n  - job_name: x\n    static_configs: [{{targets: ['127.0.0.1:{exp_port}']}}]\n")
    prom_cmd = [prometheus_bin, f"--config.file={config}", f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{prom_port}"]
    with process(exp_cmd, exp_env, tmp_path / "exporter.log"), process(prom_cmd, clean_env(), tmp_path / "prom.log"):
        members = wait_for(
            lambda: prom_query(prom_port, 'kafka_consumergroup_members{consumergroup="email-sender"}') or None,
            60, "Prometheus to scrape the compat families")
        assert float(members[0]["value"][1]) == 0  # the demo's stopped group
        lag_sum = prom_query(prom_port, "kafka_consumergroup_lag_sum")
        scrape_ok = prom_query(prom_port, 'up{job="x"}')
        assert scrape_ok[0]["value"][1] == "1"
        assert {"consumergroup", "topic", "instance_id"} <= set(lag_sum[0]["metric"])
        by_hand = "sum by (instance_id, consumergroup, topic) (kafka_consumergroup_lag)"
        diff = prom_query(prom_port, f"{by_hand} - on (instance_id, consumergroup, topic) kafka_consumergroup_lag_sum")
        assert diff and all(float(r["value"][1]) == 0 for r in diff)
        native = prom_query(prom_port, 'count(alikafka_consumergroup_lag) - count(kafka_consumergroup_lag)')
        assert float(native[0]["value"][1]) == 0


def test_compat_families_are_documented() -> None:
    """docs/metrics.md's migration section has a table row and a sample for every compat family."""
    doc = (ROOT / "docs" / "metrics.md").read_text()
    section = doc.split("## Migrating from kafka_exporter", 1)[1].split("\n## ", 1)[0]
    for family in COMPAT:
        assert f"| `{family}` |" in section, f"{family} has no row"
        assert f"\n{family}{{" in section, f"{family} has no sample"
    assert "metrics.compat" in section
    golden = GOLDEN.read_text().splitlines()
    shown = [line for line in section.splitlines() if line.startswith("kafka_")]
    assert shown and all(line in golden for line in shown), "docs samples differ from the golden file"
