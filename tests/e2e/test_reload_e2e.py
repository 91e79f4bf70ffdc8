"""Live reload end to end: a running exporter process, a real simulator, a config file that changes under it.

A scraper thread reads /metrics every 0.2 s for the whole run, so "no gap" means no scrape in which the
unchanged pair's series were missing, and its last-success time never went back.
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.procs import clean_env, free_port, http_get, process, python_module, wait_for
from tests.support.samples import samples

pytestmark = pytest.mark.e2e

INSTANCE = "alikafka_post-cn-reload01"
SCENARIO = f"""
seed: 5
instances:
  - instance_id: {INSTANCE}
    region: cn-hangzhou
    topics:
      - {{name: events, partitions: 2, rate: 5}}
    groups:
      - {{name: keep, topics: [events], delay: 1, members: 1}}
      - {{name: gone, topics: [events], delay: 1, members: 1}}
      - {{name: fresh, topics: [events], delay: 1, members: 1}}
      - {{name: later, topics: [events], delay: 1, members: 1}}
"""
KEY = ("LTAI-reload", "reload-secret-value-77")


def config(groups: list[str], extra: str = "") -> str:
    return (f"targets:\n  - instance_id: {INSTANCE}\n    groups: [{', '.join(groups)}]\n"
            "poll: {interval: 1s, stale_after: 10s}\n"
            "lag: {status_min_polls: 2, status_min_span: 0s}\n"
            "reload: {watch_interval: 1s}\n" + extra)


def scraped(text: str) -> dict[str, float]:
    """Each sample's value by its series as the exposition writes it (name, then labels in name order)."""
    return {s.name + ("{" + ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items())) + "}" if s.labels else ""):
            s.value for s in samples(text)}


def series(group: str, family: str = "alikafka_consumergroup_up") -> str:
    return f'{family}{{group="{group}",instance_id="{INSTANCE}"}}'


class Scraper(threading.Thread):
    """Scrapes every 0.2 s; records every scrape's samples."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.scrapes: list[dict[str, float]] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            try:
                status, body = http_get(self.url)
            except OSError:  # the exporter is gone (the test is ending)
                status, body = 0, b""
            if status == 200:
                self.scrapes.append(scraped(body.decode()))
            time.sleep(0.2)

    def latest(self) -> dict[str, float]:
        return self.scrapes[-1] if self.scrapes else {}


def test_reload_keeps_unchanged_pairs_and_applies_the_rest(tmp_path: Path) -> None:
    """SIGHUP and a ConfigMap-style symlink swap reload; an invalid file keeps the old targets polled."""
    scenario = tmp_path / "scenario.yaml"
    scenario.write_text(SCENARIO)
    # The Kubernetes ConfigMap layout: config.yaml -> ..data/config.yaml, ..data -> a versioned directory.
    for version, groups in (("v1", ["keep", "gone"]), ("v2", ["keep", "fresh"])):
        (tmp_path / version).mkdir()
        (tmp_path / version / "config.yaml").write_text(config(groups))
    (tmp_path / "..data").symlink_to("v1")
    cfg = tmp_path / "config.yaml"
    cfg.symlink_to("..data/config.yaml")

    sim_port, exp_port = free_port(), free_port()
    sim_cmd = python_module("exporter.simulator", "--listen", f"127.0.0.1:{sim_port}", "--scenario", str(scenario),
                            "--access-key", f"{KEY[0]}:{KEY[1]}")
    exp_cmd = python_module("exporter", "--config.file", str(cfg), "--region", "cn-hangzhou",
                            "--web.listen-address", f"127.0.0.1:{exp_port}")
    exp_env = clean_env(ALIBABA_CLOUD_ACCESS_KEY_ID=KEY[0], ALIBABA_CLOUD_ACCESS_KEY_SECRET=KEY[1],
                        ALIKAFKA_EXPORTER_API__ENDPOINT=f"http://127.0.0.1:{sim_port}/")
    metrics = f"http://127.0.0.1:{exp_port}/metrics"
    scraper = Scraper(metrics)

    def until(check: Callable[[dict[str, float]], bool], what: str, timeout: float = 20) -> dict[str, float]:
        def met() -> dict[str, float] | None:
            latest = scraper.latest()
            return latest if check(latest) else None
        return wait_for(met, timeout, what)

    with process(sim_cmd, clean_env(), tmp_path / "sim.log"), \
            process(exp_cmd, exp_env, tmp_path / "exporter.log") as exporter, contextlib.ExitStack() as stop:
        stop.callback(scraper.done.set)
        wait_for(lambda: True if http_get(f"http://127.0.0.1:{exp_port}/readyz")[0] == 200 else None, 30,
                 "exporter readiness")
        scraper.start()
        keep_status = series("keep", "alikafka_consumergroup_status").replace("}", ',status="unknown"}')
        before = until(lambda m: m.get(keep_status) == 0.0, "the kept group's status to be known")
        reload_ts = before["alikafka_exporter_config_last_reload_success_timestamp_seconds"]
        assert series("gone") in before and series("fresh") not in before
        assert before["alikafka_exporter_config_last_reload_successful"] == 1.0

        # 1. a new file and SIGHUP: gone goes, fresh comes, keep keeps everything
        (tmp_path / "..data.tmp").symlink_to("v2")
        os.replace(tmp_path / "..data.tmp", tmp_path / "..data")  # the atomic swap kubelet does
        exporter.send_signal(signal.SIGHUP)
        after = until(lambda m: series("fresh") in m and series("gone") not in m, "the reload to apply")
        assert after["alikafka_exporter_config_last_reload_success_timestamp_seconds"] > reload_ts
        assert after.get(keep_status) == 0.0  # the status window survived: not back to unknown

        # 2. an invalid file (and a secret-free problem line naming the key): old targets still polled
        (tmp_path / "v2" / "config.yaml").write_text(config(["keep", "fresh"], "metrics: {granularity: atoms}\n"))
        exporter.send_signal(signal.SIGHUP)
        failed = until(lambda m: m.get("alikafka_exporter_config_last_reload_successful") == 0.0, "the failed reload")
        stamp = failed[series("keep", "alikafka_consumergroup_last_success_timestamp_seconds")]
        until(lambda m: m.get(series("keep", "alikafka_consumergroup_last_success_timestamp_seconds"), 0) > stamp,
              "the old configuration to keep polling")
        assert series("fresh") in scraper.latest()

        # 3. no signal: the watcher sees the content change (a rename over the file, as editors do)
        staged = tmp_path / "v2" / "config.new"
        # a budget a little under what three pairs need: the newest (later) is the one to shed
        two = failed["alikafka_exporter_series"]
        budget = int(two + (two - 2) / 2) - 3  # each pair's share, besides the 2 shared end offsets
        staged.write_text(config(["keep", "fresh", "later"], f"api: {{timeout: 5s}}\nmetrics: {{max_series: {budget}}}\n"))
        os.replace(staged, tmp_path / "v2" / "config.yaml")
        limited = until(lambda m: series("later") in m and m.get("alikafka_exporter_series_dropped", 0) > 0
                        and m.get("alikafka_exporter_config_last_reload_successful") == 1.0, "the watcher to reload")
        assert limited["alikafka_exporter_series_limit"] == budget  # metrics keys apply live
        lag = 'alikafka_consumergroup_lag{{group="{}",instance_id="' + INSTANCE + '",partition="0",topic="events"}}'
        assert lag.format("keep") in limited and lag.format("fresh") in limited
        assert lag.format("later") not in limited  # the newest pair sheds first

        scraper.done.set()
        scraper.join(timeout=5)
        exporter.send_signal(signal.SIGTERM)
        assert exporter.wait(timeout=5) == 0

    keep_up = series("keep")
    keep_last = series("keep", "alikafka_consumergroup_last_success_timestamp_seconds")
    first = next(i for i, s in enumerate(scraper.scrapes) if keep_up in s)
    assert all(keep_up in s and keep_last in s for s in scraper.scrapes[first:]), "the kept pair had a gap"
    stamps = [s[keep_last] for s in scraper.scrapes[first:]]
    assert stamps == sorted(stamps), "the kept pair's last success went back"
    assert len(scraper.scrapes) > 10

    log = (tmp_path / "exporter.log").read_text()
    assert "metrics.granularity" in log and "config reload failed" in log
    assert "needs a restart" in log and "api.timeout" in log
    assert 'reason="file changed"' in log and "reason=signal" in log
    assert KEY[1] not in log
