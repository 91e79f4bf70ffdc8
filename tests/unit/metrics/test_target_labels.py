"""Labels and thresholds per target: validated once, carried by the pair, on every series of its pairs.

``targets[].labels`` are checked when the configuration loads (a bad name exits 2 naming it); every series
rendered for a labelled pair carries them, the native families, the end offsets and both compat families'
alike; the thresholds are two gauges per pair; a pair two targets yield takes the first target's; and a
reload that changes them keeps the pair's history.
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import MappingProxyType

import pytest

from exporter.cloud.models import InstanceInfo
from exporter.cloud.stats import ApiStats
from exporter.config.errors import ConfigError
from exporter.config.settings import EXPORTER_LABELS, MetricsSettings, Target, ThresholdSettings, load_settings
from exporter.metrics.exposition import Exposition, render_states
from exporter.metrics.self_metrics import TailCollector
from exporter.polling.analysis import Insight
from exporter.polling.poller import Poller
from exporter.polling.snapshot import Board, PairState, Snapshot
from exporter.targets.discovery import Discovery
from exporter.targets.pair import Pair
from tests.support.fakes import Catalog, FakeSource, board_of, progress
from tests.support.samples import find, get, samples, series

EVERYTHING = MetricsSettings(member_labels=True, compat=("kafka_exporter", "kafka_lag_exporter"), max_series=0)
TEAM = (("env", "prod"), ("team", "payments"))
LABELLED = Pair("i-1", "orders", "r", labels=TEAM, thresholds=ThresholdSettings(lag_seconds=300.0, lag=5000))
PLAIN = Pair("i-1", "billing", "r")
# the pair-derived families' instance and group labels, native and compat
OWNER = {"instance_id", "cluster_name"}


def state(pair: Pair, topic: str = "t") -> PairState:
    data = progress({topic: {0: (100, 90), 1: (50, 50)}}, members=("m-1",))
    return PairState(pair, data, True, 1.0, 1.0, None, 3,
                     Insight(MappingProxyType({(topic, 0): 12.0, (topic, 1): 0.0}), "ok"))


def render(*states: PairState, options: MetricsSettings = EVERYTHING) -> str:
    snap = Snapshot(MappingProxyType({s.pair: s for s in states}))
    instances = {"i-1": InstanceInfo("i-1", "orders-prod", "r", "v3", "professional", True)}
    tail = TailCollector(board_of(snap), ApiStats(), "0.1.0", "3.11.7", catalog=Catalog(instances))
    return render_states(states, options, tail).decode()


def load(labels: object, tmp_path: Path) -> list[str]:
    path = tmp_path / "c.yaml"
    path.write_text(f"targets: [{{instance_id: i-1, region: r, groups: [g], labels: {labels}}}]\n")
    with pytest.raises(ConfigError) as info:
        load_settings({}, {}, path)
    return info.value.problems


# --- configuration -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("labels", "key", "reason"), [
    ("{Team-X: a}", "Team-X", "not a Prometheus label name"),
    ("{9lives: a}", "9lives", "not a Prometheus label name"),
    ("{__meta_team: a}", "__meta_team", "reserved by Prometheus"),
    ("{instance: a}", "instance", "Prometheus sets"),
    ("{job: a}", "job", "Prometheus sets"),
    ("{le: a}", "le", "Prometheus sets"),
    ("{group: a}", "group", "exporter's own labels"),
    ("{topic: a}", "topic", "exporter's own labels"),
    ("{cluster_name: a}", "cluster_name", "exporter's own labels"),
    ("{consumergroup: a}", "consumergroup", "exporter's own labels"),
    ("{team: ''}", "team", "must not be empty"),
])
def test_a_bad_label_is_a_config_error_naming_it(labels: str, key: str, reason: str, tmp_path: Path) -> None:
    problems = load(labels, tmp_path)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"targets[0].labels.{key} (file {tmp_path / 'c.yaml'}): "), problems
    assert reason in problems[0]


def test_a_bad_label_exits_2_naming_the_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from exporter.__main__ import main  # noqa: PLC0415 - the entry point, as a user runs it

    config = tmp_path / "config.yaml"
    config.write_text("targets: [{instance_id: i-1, region: r, groups: [g], labels: {instance_id: x}}]\n")
    assert main(["--config.file", str(config), "--check-config"]) == 2
    assert "targets[0].labels.instance_id" in capsys.readouterr().err


def test_label_values_are_any_text_and_thresholds_override_per_key(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text('thresholds: {lag_seconds: 15m, lag: 200}\n'
                    'targets:\n'
                    '  - {instance_id: i-1, region: r, groups: [a], labels: {team: "Payments \\"EU\\" / 2"},'
                    ' thresholds: {lag_seconds: 2m}}\n'
                    '  - {instance_id: i-1, region: r, groups: [b], thresholds: {lag: 0}}\n'
                    '  - {instance_id: i-1, region: r, groups: [c]}\n')
    settings = load_settings({}, {}, path)
    a, b, c = Discovery.of(settings).static_pairs()
    assert a.labels == (("team", 'Payments "EU" / 2'),)
    assert (a.thresholds.lag_seconds, a.thresholds.lag) == (120.0, 200)
    assert (b.thresholds.lag_seconds, b.thresholds.lag) == (900.0, 0)  # lag 0: none for this target
    assert (c.thresholds.lag_seconds, c.thresholds.lag) == (900.0, 200)
    assert c.labels == ()
    assert load_settings({}, {}, None).thresholds == ThresholdSettings(lag_seconds=600.0, lag=0)
    env = {"ALIKAFKA_EXPORTER_THRESHOLDS__LAG_SECONDS": "45s"}
    assert load_settings({}, env, None).thresholds.lag_seconds == 45.0


def test_the_reserved_names_cover_every_label_the_exporter_writes() -> None:
    """Every label name of a pair-derived family (all compat families, member labels) and of instance info
    is in EXPORTER_LABELS, so a target label can never collide with one: the two lists cannot drift."""
    text = render(state(PLAIN))
    written = {name for s in samples(text) if s.name.startswith(("alikafka_consumergroup", "alikafka_topic",
                                                                  "alikafka_instance", "kafka_"))
               for name in s.labels}
    assert {"cluster_name", "member_host", "consumer_id", "consumergroup", "spec_type"} <= written
    assert written <= EXPORTER_LABELS, written - EXPORTER_LABELS


# --- rendering ---------------------------------------------------------------------------------------

def test_every_series_of_a_labelled_pair_carries_its_labels() -> None:
    text = render(state(LABELLED), state(PLAIN))
    mine = [s for s in samples(text) if s.labels.get("group", s.labels.get("consumergroup")) == "orders"]
    families = {s.name for s in mine}
    assert {"alikafka_consumergroup_lag", "alikafka_consumergroup_status", "alikafka_consumergroup_up",
            "alikafka_consumergroup_lag_seconds_threshold", "kafka_consumergroup_lag_sum",
            "kafka_consumergroup_group_lag", "kafka_consumergroup_group_max_lag_seconds"} <= families
    assert all(dict(TEAM).items() <= s.labels.items() for s in mine), [s for s in mine if "team" not in s.labels]
    theirs = [s for s in samples(text) if s.labels.get("group", s.labels.get("consumergroup")) == "billing"]
    assert theirs and not any("team" in s.labels or "env" in s.labels for s in theirs)
    # instance info and the exporter's own families belong to no one target
    assert not [s for s in samples(text) if s.name.startswith(("alikafka_instance", "alikafka_exporter"))
                and "team" in s.labels]
    # the labels sit with the family's own, sorted, in one well-formed line
    assert ('alikafka_consumergroup_lag{env="prod",group="orders",instance_id="i-1",partition="0",team="payments",'
            'topic="t"} 10.0\n') in text


def test_end_offsets_are_shared_within_a_label_set_only() -> None:
    """Two groups of one label set share an end offset; a group with other labels has its own, with them."""
    same = Pair("i-1", "refunds", "r", labels=TEAM)
    text = render(state(LABELLED), state(same), state(PLAIN))
    for family, owner in (("alikafka_topic_partition_end_offset", "instance_id"),
                          ("kafka_topic_partition_current_offset", "instance_id"),
                          ("kafka_partition_latest_offset", "cluster_name")):
        found = series(text, family)
        assert found == {
            frozenset({(owner, "i-1"), ("topic", "t"), ("partition", "0"), *TEAM}): 100.0,
            frozenset({(owner, "i-1"), ("topic", "t"), ("partition", "1"), *TEAM}): 50.0,
            frozenset({(owner, "i-1"), ("topic", "t"), ("partition", "0")}): 100.0,
            frozenset({(owner, "i-1"), ("topic", "t"), ("partition", "1")}): 50.0,
        }, family
    assert len(find(text, "kafka_topic_partitions", topic="t")) == 2


def test_thresholds_are_two_gauges_per_pair_the_message_one_only_when_set() -> None:
    failing = PairState(Pair("i-1", "down", "r"), None, False, 1.0, None, None, 2)
    text = render(state(LABELLED), state(PLAIN), failing)
    assert get(text, "alikafka_consumergroup_lag_seconds_threshold", group="orders", team="payments") == 300
    assert get(text, "alikafka_consumergroup_lag_threshold", group="orders", team="payments") == 5000
    assert get(text, "alikafka_consumergroup_lag_seconds_threshold", group="billing") == 600
    assert get(text, "alikafka_consumergroup_lag_threshold", group="billing") is None
    # configuration, not data: a pair whose polls fail has its threshold beside its up 0
    assert get(text, "alikafka_consumergroup_lag_seconds_threshold", group="down") == 600
    for granularity in ("topic", "group"):
        opts = MetricsSettings(granularity=granularity, max_series=0)
        assert get(render(state(LABELLED), options=opts), "alikafka_consumergroup_lag_threshold") == 5000


def test_the_series_limit_never_sheds_the_thresholds() -> None:
    text_full = render(state(LABELLED), state(PLAIN), options=MetricsSettings(max_series=0))
    board = Board.holding([state(LABELLED), state(PLAIN)])
    text = Exposition(MetricsSettings(max_series=2), board, TailCollector(board, ApiStats(), "t", "3")).render().body
    text = text.decode()
    for family in ("alikafka_consumergroup_lag_seconds_threshold", "alikafka_consumergroup_lag_threshold"):
        assert series(text, family) == series(text_full, family)
    assert not find(text, "alikafka_consumergroup_lag")


# --- targets and reload ------------------------------------------------------------------------------

def test_a_pair_two_targets_yield_takes_the_first_targets_labels_and_thresholds(
        caplog: pytest.LogCaptureFixture) -> None:
    first = Target(instance_id="i-1", region="r", groups=["a", "b"], labels={"team": "one"},
                   thresholds={"lag_seconds": 60})
    second = Target(instance_id="i-1", region="r", groups=["b", "c"], labels={"team": "two"})
    discovery = Discovery(None, [first, second], None)
    with caplog.at_level(logging.INFO, logger="exporter.targets.discovery"):
        pairs = discovery.static_pairs()
        discovery.static_pairs()
    assert [(p.group, dict(p.labels)["team"], p.thresholds.lag_seconds) for p in pairs] == [
        ("a", "one", 60.0), ("b", "one", 60.0), ("c", "two", 600.0)]
    said = [r for r in caplog.records if "first target's labels" in r.getMessage()]
    assert len(said) == 1 and said[0].group == "b" and said[0].ignored_labels == {"team": "two"}  # type: ignore[attr-defined]


async def test_new_labels_reach_a_pair_at_once_and_its_history_stays() -> None:
    """A reload that relabels a pair is not a new pair: its series carry the new labels at once (no poll
    needed, the old ones are gone), and its poll count and status window go on."""
    source = FakeSource(lambda i, g: progress({"t": {0: (100, 90)}}))
    before = Pair("i-1", "orders", "r", labels=(("team", "old"),))
    board = Board()
    poller = Poller(source, [before], interval=30, stale_after=90, board=board)
    exposition = Exposition(EVERYTHING, board, TailCollector(board, ApiStats(), "t", "3"))
    await poller.poll_once()
    assert find(exposition.render().body, "alikafka_consumergroup_up", team="old")
    after = Pair("i-1", "orders", "r", labels=(("team", "new"),), thresholds=ThresholdSettings(lag_seconds=60.0))
    poller.set_pairs([after])
    text = exposition.render().body.decode()
    assert {s.labels.get("team") for s in samples(text) if s.labels.get("group") == "orders"} == {"new"}
    assert get(text, "alikafka_consumergroup_lag_seconds_threshold", team="new") == 60
    assert poller.snapshot.pairs[after].polls == 1  # not polled again for it
    await poller.poll_once()
    polled = poller.snapshot.pairs[after]
    assert polled.polls == 2 and polled.pair.labels == (("team", "new"),)
    assert {s.labels.get("team") for s in samples(exposition.render().body) if s.labels.get("group") == "orders"} \
        == {"new"}
