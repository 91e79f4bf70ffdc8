"""A real Prometheus scraping ``alikafka-exporter --demo``: where dashboard and alert PromQL is evaluated.

The demo polls the built-in scenario (31 pairs in three instances, among them lagging, stalled,
stopped and rebalancing groups) through the in-process simulator, whose flow control allows 3
GetConsumerProgress calls a second, so a full pass takes about 11 s whatever the interval. Prometheus
scrapes every second. ``demo_stack`` returns once every pair has been polled and Prometheus holds a
few scrapes of the result, so ``rate()`` over a short window has two samples.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.procs import clean_env, free_port, http_get, process, python_module, wait_for


class PromError(ValueError):
    """Prometheus answered a query with an error."""


@dataclass(frozen=True)
class DemoPrometheus:
    """Ports of the running exporter and Prometheus, and query helpers."""

    exporter_port: int
    prom_port: int

    def _api(self, path: str, params: Sequence[tuple[str, str]]) -> Any:
        url = f"http://127.0.0.1:{self.prom_port}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        status, body = http_get(url, timeout=10)
        try:
            data = json.loads(body)
        except ValueError:
            raise PromError(f"{path} {params}: HTTP {status}: {body[:300]!r}") from None
        if status != 200 or data.get("status") != "success":
            raise PromError(f"{path} {params}: {data.get('errorType')}: {data.get('error')}")
        return data["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """Instant query now; the result vector (or a one-element list for a scalar)."""
        data = self._api("query", [("query", expr)])
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        return list(data["result"])

    def query_range(self, expr: str, seconds: float, step: float = 1.0) -> list[dict[str, Any]]:
        """Range query over the last ``seconds``."""
        end = time.time()
        data = self._api("query_range", [("query", expr), ("start", f"{end - seconds:.3f}"),
                                         ("end", f"{end:.3f}"), ("step", f"{step:g}")])
        return list(data["result"])

    def label_values(self, label: str, match: str | None = None) -> list[str]:
        """What Grafana's ``label_values(match, label)`` asks Prometheus."""
        params = [("match[]", match)] if match else []
        return list(self._api(f"label/{urllib.parse.quote(label)}/values", params))

    def rules(self) -> list[dict[str, Any]]:
        """Every loaded rule with its health and last error."""
        return [rule for group in self._api("rules", [])["groups"] for rule in group["rules"]]


@contextmanager
def demo_stack(workdir: Path, prometheus_bin: str, rule_files: Sequence[Path] = (),
               exporter_env: Mapping[str, str] | None = None,
               target_labels: Mapping[str, str] | None = None) -> Iterator[DemoPrometheus]:
    """Run the exporter in demo mode and a Prometheus scraping it (and evaluating ``rule_files``).

    ``exporter_env`` adds to the exporter's environment (``ALIKAFKA_EXPORTER_METRICS__COMPAT``, say);
    ``target_labels`` are the scrape target's labels, as service discovery would give them (``namespace``).
    """
    exp_port, prom_port = free_port(), free_port()
    exp_cmd = python_module("exporter", "--demo", "--web.listen-address", f"127.0.0.1:{exp_port}")
    # 1 s asks for polls as fast as the rate limit allows (the schedule stretches to about 11 s); a message
    # threshold, so the threshold series the boards draw and the rules read are there (the time one always is)
    exp_env = clean_env(ALIKAFKA_EXPORTER_POLL__INTERVAL="1s", ALIKAFKA_EXPORTER_THRESHOLDS__LAG="100000",
                        **(exporter_env or {}))
    rules = "".join(f"  - {path}\n" for path in rule_files)
    config = workdir / "prometheus.yml"
    config.write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        + (f"rule_files:\n{rules}" if rules else "")
        + f"scrape_configs:\n  - job_name: alikafka\n    static_configs: [{{targets: ['127.0.0.1:{exp_port}']"
        + (f", labels: {json.dumps(dict(target_labels))}" if target_labels else "") + "}]\n")
    prom_cmd = [prometheus_bin, f"--config.file={config}", f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address=127.0.0.1:{prom_port}"]
    with ExitStack() as stack:
        procs = {"exporter": stack.enter_context(process(exp_cmd, exp_env, workdir / "exporter.log")),
                 "prometheus": stack.enter_context(process(prom_cmd, clean_env(), workdir / "prometheus.log"))}
        demo = DemoPrometheus(exp_port, prom_port)

        def ready() -> bool | None:
            for name, proc in procs.items():  # a crash fails at once, with its log
                if proc.poll() is not None:
                    log = (workdir / f"{name}.log").read_text(errors="replace")[-2000:]
                    raise AssertionError(f"{name} exited with {proc.returncode}:\n{log}")
            return True if http_get(f"http://127.0.0.1:{exp_port}/readyz")[0] == 200 else None

        wait_for(ready, 60, "the demo exporter to poll every pair")
        # the first complete pass scraped, and a few scrapes of it (two samples for every short rate window)
        wait_for(lambda: demo.query("count_over_time(alikafka_exporter_poll_cycle_duration_seconds[1m]) >= 4")
                 or None, 60, "Prometheus to scrape the first complete poll cycle")
        yield demo
