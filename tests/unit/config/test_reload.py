"""Live reload in process: which keys are live, invalid files, content-hash watching, the parts' reconfigure."""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from types import MappingProxyType

import pytest

from exporter.cloud.stats import ApiStats
from exporter.config.errors import ConfigError
from exporter.config.reload import Reloader, digest, split_changes
from exporter.config.settings import MetricsSettings, Settings, load_settings
from exporter.metrics.exposition import Exposition
from exporter.metrics.self_metrics import TailCollector
from exporter.polling.analysis import Insight
from exporter.polling.poller import Poller
from exporter.polling.snapshot import Board, PairState
from exporter.targets.live import LiveTargets
from exporter.targets.pair import Pair
from tests.support.fakes import Clock, FakeSource, progress
from tests.support.samples import has, value

BASE = """
api: {region: cn-hangzhou}
targets:
  - instance_id: alikafka_post-cn-a
    groups: [orders, billing]
poll: {interval: 30s}
"""


def load(path: Path) -> Settings:
    return load_settings({}, {}, path)


def test_live_and_restart_only_keys_are_told_apart(tmp_path: Path) -> None:
    """Targets, poll, metrics and log apply; the listen address, API transport and lag keys wait for a restart."""
    path = tmp_path / "c.yaml"
    path.write_text(BASE)
    old = load(path)
    path.write_text(BASE.replace("[orders, billing]", "[orders, refunds]").replace("30s", "10s")
                    + "metrics: {granularity: topic, max_series: 500}\nlog: {level: debug}\n"
                    + "web: {listen_address: ':9999'}\nlag: {history: 2h}\n"
                    + "api: {region: cn-hangzhou, max_qps: 9, timeout: 3s}\n")
    effective, live, waiting = split_changes(old, load(path))
    assert live == ["log.level", "metrics.granularity", "metrics.max_series", "poll.interval", "targets"]
    assert waiting == ["api.max_qps", "api.timeout", "lag.history", "web.listen_address"]
    assert effective.web.listen_address == ":9897" and effective.api.max_qps == 3.0 and effective.lag.history == 3600
    assert effective.poll.interval == 10 and effective.metrics.granularity == "topic"
    assert [t.groups for t in effective.targets] == [["orders", "refunds"]]
    assert split_changes(effective, effective)[1:] == ([], [])


def test_digest_follows_content_not_the_file(tmp_path: Path) -> None:
    """A rewrite with the same bytes is no change; a symlink swap to other content is; a missing file is None."""
    (tmp_path / "v1").mkdir()
    (tmp_path / "v2").mkdir()
    (tmp_path / "v1" / "c.yaml").write_text(BASE)
    (tmp_path / "v2" / "c.yaml").write_text(BASE + "\n# changed\n")
    (tmp_path / "..data").symlink_to("v1")
    path = tmp_path / "c.yaml"
    path.symlink_to("..data/c.yaml")
    first = digest(path)
    (tmp_path / "v1" / "c.yaml").write_text(BASE)
    assert digest(path) == first
    (tmp_path / "tmp").symlink_to("v2")
    os.replace(tmp_path / "tmp", tmp_path / "..data")
    assert digest(path) not in (first, None)
    assert digest(tmp_path / "missing.yaml") is None
    assert digest(None) is None


def _reloader(path: Path, applied: list[tuple[Settings, Settings]], **kw: float) -> Reloader:
    clock = Clock(1000.0)
    reloader = Reloader(lambda: load(path), load(path), lambda old, new: applied.append((old, new)), path,
                        clock=clock, settle=0.01)
    clock.now = 2000.0
    return reloader


def test_invalid_file_keeps_the_old_configuration_and_names_each_key(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Every problem is logged naming its key; nothing is applied; status 0, then 1 with a new time after a fix."""
    path = tmp_path / "c.yaml"
    path.write_text(BASE)
    applied: list[tuple[Settings, Settings]] = []
    reloader = _reloader(path, applied)
    assert reloader.status.successful and reloader.status.last_success == 1000.0
    path.write_text(BASE.replace("30s", "soon") + "metrics: {granularity: atoms}\nbogus: 1\n")
    with caplog.at_level(logging.ERROR, logger="exporter.config.reload"):
        assert not reloader.reload("signal")
    problems = [r.problem for r in caplog.records if hasattr(r, "problem")]  # type: ignore[attr-defined]
    assert len(problems) == 3
    assert any(p.startswith("poll.interval (file ") for p in problems)
    assert any(p.startswith("metrics.granularity (file ") for p in problems)
    assert any(p.startswith("bogus (file ") and "unknown key" in p for p in problems)
    assert applied == [] and not reloader.status.successful and reloader.status.last_success == 1000.0
    assert reloader.settings.poll.interval == 30
    path.write_text(BASE.replace("30s", "20s"))
    assert reloader.reload("signal")
    assert reloader.status.successful and reloader.status.last_success == 2000.0
    assert applied[-1][1].poll.interval == 20 and reloader.settings.poll.interval == 20


def test_a_load_that_raises_config_error_for_other_reasons_is_a_failed_reload(tmp_path: Path) -> None:
    """The loader's own checks (no targets left) fail the reload like a schema error."""
    path = tmp_path / "c.yaml"
    path.write_text(BASE)

    def no_targets() -> Settings:
        raise ConfigError(["targets (default): no targets configured"])

    reloader = Reloader(no_targets, load(path), lambda old, new: None, path)
    assert not reloader.reload("signal") and reloader.status.version == 1


async def test_watcher_reloads_on_content_change_once_and_on_request(tmp_path: Path) -> None:
    """The watch loop reloads after a content change (once, not every check) and on request (SIGHUP)."""
    path = tmp_path / "c.yaml"
    path.write_text(BASE + "reload: {watch_interval: 0.05}\n")
    applied: list[tuple[Settings, Settings]] = []
    reloader = _reloader(path, applied)
    task = asyncio.create_task(reloader.run())
    try:
        await asyncio.sleep(0.2)
        assert applied == []  # nothing changed
        path.write_text(BASE.replace("30s", "15s") + "reload: {watch_interval: 0.05}\n")
        for _ in range(100):
            if applied:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.3)
        assert len(applied) == 1 and applied[0][1].poll.interval == 15
        path.write_text("targets: [")  # invalid: tried once, not every check
        await asyncio.sleep(0.4)
        assert not reloader.status.successful
        version = reloader.status.version
        await asyncio.sleep(0.3)
        assert reloader.status.version == version
        path.write_text(BASE.replace("30s", "15s") + "reload: {watch_interval: 0.05}\n")
        await asyncio.sleep(0.4)
        assert reloader.status.successful
        reloader.request()
        await asyncio.sleep(0.1)
        assert reloader.status.version == version + 2
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


def _state(pair: Pair, polls: int = 1) -> PairState:
    data = progress({"t": {0: (100, 90), 1: (50, 40)}})
    return PairState(pair, data, True, 1.0, 1.0, None, polls, Insight(MappingProxyType({("t", 0): 3.0}), "ok"))


def test_exposition_reconfigure_renders_again_under_new_options() -> None:
    """A granularity change re-renders every pair from its latest state; no poll is needed."""
    board = Board()
    exposition = Exposition(MetricsSettings(max_series=0), board, TailCollector(board, ApiStats(), "t", "3"))
    a, b = Pair("i", "a", "r"), Pair("i", "b", "r")
    for s in (_state(a), _state(b)):
        board.put(s)
    assert has(exposition.render().body, "alikafka_consumergroup_lag", group="a")
    exposition.reconfigure(MetricsSettings(granularity="group", max_series=0))
    text = exposition.render().body.decode()
    assert not has(text, "alikafka_consumergroup_lag") and not has(text, "alikafka_consumergroup_topic_lag")
    assert value(text, "alikafka_consumergroup_group_lag", group="b", instance_id="i") == 20
    exposition.reconfigure(MetricsSettings(max_series=0))
    assert value(exposition.render().body, "alikafka_consumergroup_lag", group="a", instance_id="i", partition="1",
                 topic="t") == 10


async def test_poller_reconfigure_changes_the_schedule_and_keeps_state() -> None:
    """A new interval applies to the running schedule; pairs that stay keep their state and lag history."""
    source = FakeSource(lambda i, g: progress({"t": {0: (100, 90)}}))
    a, b = Pair("i", "a", "r"), Pair("i", "b", "r")
    poller = Poller(source, [a, b], interval=30, stale_after=90)
    await poller.poll_once()
    kept = poller.snapshot.pairs[a]
    poller.reconfigure(interval=1, stale_after=5)
    assert poller.snapshot.effective_interval == 1
    poller.set_pairs([a, Pair("i", "c", "r")])
    assert poller.snapshot.pairs[a] is kept and b not in poller.snapshot.pairs
    task = asyncio.create_task(poller.run())
    await asyncio.sleep(1.3)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert poller.snapshot.pairs[a].polls >= 2  # polled at the new 1 s pace, not once per 30 s


async def test_live_targets_apply_static_pairs_at_once(tmp_path: Path) -> None:
    """Explicit targets go straight to apply; a region change makes new pairs (old ones leave)."""
    path = tmp_path / "c.yaml"
    path.write_text(BASE)
    seen: list[tuple[Pair, ...]] = []
    targets = LiveTargets(None, load(path), seen.append)
    path.write_text(BASE.replace("cn-hangzhou", "cn-shanghai"))
    targets.configure(load(path))
    assert seen == [(Pair("alikafka_post-cn-a", "orders", "cn-shanghai"),
                     Pair("alikafka_post-cn-a", "billing", "cn-shanghai"))]
