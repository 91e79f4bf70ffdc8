"""Cardinality guard: metrics.max_series sheds the newest pairs' detail, level by level, never their core."""

from __future__ import annotations

import logging
import random
import subprocess
from types import MappingProxyType

import pytest

from exporter.cloud.stats import ApiStats
from exporter.config.settings import MetricsSettings
from exporter.metrics import exposition as exposition_module
from exporter.metrics.exposition import Exposition
from exporter.metrics.self_metrics import TailCollector
from exporter.metrics.shared import TopicKey
from exporter.polling.analysis import Insight
from exporter.polling.snapshot import Board, PairState
from exporter.targets.pair import Pair
from tests.support.fakes import progress
from tests.support.samples import find, has, value

OPTS = MetricsSettings(max_series=0)
CORE = ("alikafka_consumergroup_up{", "alikafka_consumergroup_last_success_timestamp_seconds{",
        "alikafka_consumergroup_group_lag{", "alikafka_consumergroup_max_lag_seconds{",
        "alikafka_consumergroup_lag_seconds_threshold{")


def state(pair: Pair, partitions: int, topic: str = "t") -> PairState:
    data = progress({topic: {p: (100 + p, 90) for p in range(partitions)}})
    lags = MappingProxyType({(topic, p): 5.0 for p in range(partitions)})
    return PairState(pair, data, True, 1.0, 1.0, None, 3, Insight(lags, "ok"))


def built(max_series: int, states: list[PairState], options: MetricsSettings = OPTS) -> tuple[Exposition, Board]:
    """An exposition following a board that holds ``states``, and the board (to write more)."""
    board = Board.holding(states)
    tail = TailCollector(board, ApiStats(), "t", "3", guard=True)
    return Exposition(options.model_copy(update={"max_series": max_series}), board, tail), board


def build(max_series: int, states: list[PairState], options: MetricsSettings = OPTS) -> Exposition:
    return built(max_series, states, options)[0]


def pair_lines(text: str) -> list[str]:
    return [line for line in text.splitlines()
            if line and not line.startswith(("#", "alikafka_exporter_", "alikafka_instance_info"))]


A, B, C = Pair("i", "a-old", "r"), Pair("i", "b-mid", "r"), Pair("i", "c-new", "r")


def test_unlimited_serves_everything_and_counts_it() -> None:
    """max_series 0: nothing is dropped; the series gauge counts the pair lines; no limit sample."""
    text = build(0, [state(A, 10), state(B, 10)]).render().body.decode()
    assert value(text, "alikafka_exporter_series") == len(pair_lines(text))
    assert value(text, "alikafka_exporter_series_dropped") == 0
    assert not has(text, "alikafka_exporter_series_limit")
    assert value(text, "alikafka_exporter_series_limited_groups", dropped="partition") == 0.0


def test_newest_pair_loses_its_partition_level_first(caplog: pytest.LogCaptureFixture) -> None:
    """Just over budget: only the newest pair degrades to topic level; the older ones keep everything."""
    full = len(pair_lines(build(0, [state(A, 10), state(B, 10), state(C, 10)]).render().body.decode()))
    with caplog.at_level(logging.WARNING, logger="exporter.metrics.exposition"):
        exposition = build(full - 5, [state(A, 10), state(B, 10), state(C, 10)])
        text = exposition.render().body.decode()
        exposition.render(openmetrics=True)
    lines = pair_lines(text)
    assert len(lines) <= full - 5 and value(text, "alikafka_exporter_series") == len(lines)
    assert value(text, "alikafka_exporter_series_dropped") == full - len(lines)
    assert value(text, "alikafka_exporter_series_limit") == full - 5
    assert value(text, "alikafka_exporter_series_limited_groups", dropped="partition") == 1.0
    assert not has(text, "alikafka_consumergroup_lag", group="c-new")
    assert has(text, "alikafka_consumergroup_topic_lag", group="c-new")
    for group in ("a-old", "b-mid"):
        assert len(find(text, "alikafka_consumergroup_lag", group=group)) == 10
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "series limit applies" in warnings[0].getMessage()  # once, not per render


def test_tight_budget_keeps_every_pairs_core() -> None:
    """A budget smaller than the cores: every pair is down to its core, which stays in full."""
    states = [state(Pair("i", f"g{n}", "r"), 20) for n in range(6)]
    text = build(3, states).render().body.decode()
    lines = pair_lines(text)
    assert all(line.startswith(CORE) for line in lines), [x for x in lines if not x.startswith(CORE)][:3]
    for family in CORE:
        assert sum(1 for line in lines if line.startswith(family)) == 6
    assert value(text, "alikafka_exporter_series_limited_groups", dropped="group") == 6.0


def test_end_offset_stays_while_a_full_pair_reads_the_partition() -> None:
    """The newest pair carried the shared end offsets (lowest name); shed, another reader carries them."""
    old, new = Pair("i", "z-old", "r"), Pair("i", "a-new", "r")
    full = build(0, [state(old, 2), state(new, 2)]).render().body.decode()
    budget = len(pair_lines(full)) - 1
    exposition = build(budget, [state(old, 2), state(new, 2)])
    text = exposition.render().body.decode()
    assert value(text, "alikafka_topic_partition_end_offset", instance_id="i", partition="0", topic="t") == 100
    assert len(pair_lines(text)) == value(text, "alikafka_exporter_series") <= budget
    # both shed: the end offsets go too, and the count still matches
    text = build(12, [state(old, 2), state(new, 2)]).render().body.decode()
    assert not has(text, "alikafka_topic_partition_end_offset")
    assert len(pair_lines(text)) == value(text, "alikafka_exporter_series")


def test_limit_lifts_when_pairs_leave(caplog: pytest.LogCaptureFixture) -> None:
    """Removing pairs brings the total under budget: everything is back, and it is logged."""
    single = len(pair_lines(build(0, [state(A, 10)]).render().body.decode()))
    exposition, board = built(single + 5, [state(A, 10), state(B, 10), state(C, 10)])
    assert value(exposition.render().body.decode(), "alikafka_exporter_series_dropped") > 0
    board.remove(B)
    board.remove(C)
    with caplog.at_level(logging.INFO, logger="exporter.metrics.exposition"):
        text = exposition.render().body.decode()
    assert value(text, "alikafka_exporter_series_dropped") == 0
    assert len(find(text, "alikafka_consumergroup_lag")) == 10
    assert any("no longer applies" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("options", [OPTS, MetricsSettings(compat="kafka_exporter", member_labels=True, max_series=0)])
def test_random_updates_respect_the_budget_and_stay_deterministic(options: MetricsSettings) -> None:
    """Random updates and removals: served count equals the gauge, within budget (or only cores), repeatable.

    With the kafka_exporter compat families there are shared series at the topic level too.
    """
    def run() -> list[str]:
        rng = random.Random(4)
        pairs = [Pair("i", f"g{n:02d}", "r") for n in range(30)]
        exposition, board = built(400, [], options)
        bodies = []
        for step in range(300):
            pair = rng.choice(pairs)
            if rng.random() < 0.1:
                board.remove(pair)
            else:
                board.put(state(pair, rng.randrange(1, 12), rng.choice(["t", "u"])))
            if step % 25 == 0:
                text = exposition.render().body.decode()
                lines = pair_lines(text)
                assert len(lines) == value(text, "alikafka_exporter_series")
                assert len(lines) <= 400 or all(line.startswith(CORE) for line in lines)
                bodies.append(text)
        return bodies

    assert run() == run()


def test_limited_exposition_passes_promtool(promtool: str) -> None:
    """A shed exposition with the guard's own families is lint-clean."""
    body = build(50, [state(A, 10), state(B, 10), state(C, 10)]).render().body
    result = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, check=False)
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()


def test_churn_does_not_repeat_the_warning(caplog: pytest.LogCaptureFixture) -> None:
    """Ephemeral groups coming and going over budget: one warning at the start, another only after
    GUARD_LOG_EVERY with the counts of then, one info line when the limit stops applying."""
    now = [0.0]
    single = len(pair_lines(build(0, [state(A, 10)]).render().body.decode()))
    board = Board.holding((state(A, 10), state(B, 10)))
    tail = TailCollector(board, ApiStats(), "t", "3", guard=True)
    exposition = Exposition(MetricsSettings(max_series=2 * single + 5), board, tail, clock=lambda: now[0])
    with caplog.at_level(logging.INFO, logger="exporter.metrics.exposition"):
        limited_seen = set()
        for n in range(40):  # one poll every 5 s: a new ephemeral group, an old one gone, a varying size
            now[0] += 5
            board.put(state(Pair("i", f"eph-{n}", "r"), 5 + n % 7))
            if n >= 2:
                board.remove(Pair("i", f"eph-{n - 2}", "r"))
            text = exposition.render().body.decode()
            limited_seen.add(value(text, "alikafka_exporter_series_dropped"))
        assert len(limited_seen) > 3  # the counts really churned
        messages = [r.getMessage() for r in caplog.records]
        assert messages == ["series limit applies: the newest pairs' detail is left out"]
        now[0] += exposition_module.GUARD_LOG_EVERY
        board.put(state(Pair("i", "eph-late", "r"), 3))
        exposition.render()
        assert [r.getMessage() for r in caplog.records][1:] == ["series limit still applies, its counts changed"]
        assert caplog.records[-1].__dict__["applies_for_s"] == now[0] - 5  # since the first render over budget
        for pair in [p for p in exposition._entries if p not in (A, B)]:
            board.remove(pair)
        exposition.render()
        exposition.render()
    assert [r.getMessage() for r in caplog.records][2:] == ["series limit no longer applies"]


def reference_plan(exposition: Exposition) -> dict[Pair, int]:
    """The guard's plan made from scratch, straight from the documented rule, for comparison."""
    entries, steps = exposition._entries, exposition._steps
    readers: dict[tuple[TopicKey, int | None], int] = {}  # shared series -> how many pairs read it
    for entry in entries.values():
        for key, values in entry.offsets.items():
            for partition in values:
                readers[key, partition] = readers.get((key, partition), 0) + 1
    total = sum(e.series for e in entries.values()) + len(readers)
    shed: dict[Pair, int] = {}
    if not exposition._max_series or total <= exposition._max_series:
        return shed
    for step in (1, 2, 3):
        for pair in sorted(entries, key=lambda p: -exposition._seen[p]):
            if total <= exposition._max_series:
                return shed
            total -= sum(count for name, count in entries[pair].counts.items() if steps.get(name) == step)
            shed[pair] = step
            for key, values in entries[pair].offsets.items():
                if steps.get(key[0]) == step:
                    for partition in values:
                        readers[key, partition] -= 1
                        total -= readers[key, partition] == 0
    return shed


@pytest.mark.parametrize("options", [OPTS, MetricsSettings(compat="kafka_exporter", member_labels=True, max_series=0)])
def test_plan_kept_across_updates_matches_one_made_from_scratch(options: MetricsSettings) -> None:
    """Random polls (same shape or not), new pairs and removals: the plan the exposition keeps between
    changes equals one made from scratch, and its body equals that of an exposition fed the same states
    fresh in the same first-seen order."""
    rng = random.Random(11)
    pairs = [Pair("i", f"g{n:02d}", "r") for n in range(40)]
    exposition, board = built(700, [], options)
    current: dict[Pair, PairState] = {}
    plans = set()
    for step in range(400):
        pair = rng.choice(pairs)
        if rng.random() < 0.1:
            board.remove(pair)
            current.pop(pair, None)
        elif pair in current and rng.random() < 0.5:  # same partitions: values only, or fewer time lags known
            old = current[pair]
            assert old.insight is not None
            lags = old.insight.time_lags
            if rng.random() < 0.5:
                lags = MappingProxyType({k: v for k, v in lags.items() if rng.random() < 0.7})
            current[pair] = PairState(pair, old.progress, True, 2.0, 2.0, None, old.polls + 1,
                                      Insight(lags, "ok"))
            board.put(current[pair])
        else:
            current[pair] = state(pair, rng.randrange(1, 12), rng.choice(["t", "u", "v"]))
            board.put(current[pair])
        if step % 3 == 0:
            text = exposition.render().body.decode()
            assert exposition._shed == reference_plan(exposition), step
            plans.add(tuple(sorted(exposition._shed.items())))
            if step % 30 == 0:
                fresh = build(700, sorted(current.values(), key=lambda s: exposition._seen[s.pair]), options)
                assert fresh.render().body.decode() == text, step
    assert len(plans) > 10  # the plan really moved
