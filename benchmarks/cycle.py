"""Full-cycle time against the rate-limit floor, and throttling, over a sustained run.

Run: ``.venv/bin/python -m benchmarks.cycle [--tier M] [--qps 20] [--seconds 300]`` (``make bench-cycle``).

The simulator (its own process) serves a ``scale-*`` scenario with GetConsumerProgress limited to
``--qps`` per second; the exporter (its own process) polls every pair with ``api.max_qps`` equal to that
limit and a 1 s configured interval, so the schedule is bound by the rate limit. Every few seconds the
exporter's /metrics is read, gzip-encoded as Prometheus asks for it (a plain read of a large exposition
makes the exporter decompress it on its event loop, a load no real scraper adds). At the end the report
gives the floor ``pairs / qps``, the effective interval the exporter chose, the measured cycle durations,
the throttling answers it got (target: none), the CPU time it spent per polled response and its RSS.
"""

from __future__ import annotations

import argparse
import gzip
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from tests.support.procs import clean_env, cpu_seconds, free_port, machine, rss_mb
from tests.support.samples import get

REQUESTS = "alikafka_exporter_api_requests_total"
TIERS = {"S": ("scale-s", 10), "M": ("scale-m", 500), "L": ("scale-l", 2000), "XL": ("scale-xl", 10_000)}


def main(argv: list[str] | None = None) -> int:
    """Run the simulator and the exporter, watch, report a markdown table."""
    parser = argparse.ArgumentParser(description="cycle time and throttling benchmark")
    parser.add_argument("--tier", default="M", choices=sorted(TIERS))
    parser.add_argument("--qps", type=float, default=20.0)
    parser.add_argument("--seconds", type=int, default=300)
    parser.add_argument("--trace", action="store_true", help="print polls/s and the cycle gauge every read")
    args = parser.parse_args(argv)
    scenario, pairs = TIERS[args.tier]
    sim_port, exp_port = free_port(), free_port()
    env = clean_env()
    groups = ",".join(f"gen-g{i:05d}" for i in range(pairs))
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "config.yaml"
        config.write_text(
            f"api: {{endpoint: 'http://127.0.0.1:{sim_port}/', region: cn-hangzhou, max_qps: {args.qps}, "
            f"max_concurrency: 16}}\npoll: {{interval: 1s, stale_after: 3600s}}\n"
            # the polling path alone against its floor; retention's GetTopicStatus share is docs/scaling.md's
            "retention: {enabled: false}\n"
            f"targets: [{{instance_id: alikafka_post-cn-scale0001, groups: [{groups}]}}]\n")
        sim = subprocess.Popen([sys.executable, "-m", "exporter.simulator", "--listen", f"127.0.0.1:{sim_port}",
                                "--scenario", f"builtin:{scenario}", "--access-key", "AK:SK",
                                "--qps-limit", f"GetConsumerProgress={args.qps}", "--log.level", "warning"],
                               env=env)
        time.sleep(2)
        exporter = subprocess.Popen(
            [sys.executable, "-m", "exporter", "--config.file", str(config), "--web.listen-address",
             f"127.0.0.1:{exp_port}", "--log.level", "warning"],
            env={**env, "ALIBABA_CLOUD_ACCESS_KEY_ID": "AK", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "SK"})
        cycles: list[float] = []
        text = ""
        last_ok, last_at = 0.0, time.monotonic()
        try:
            started = time.monotonic()
            while time.monotonic() - started < args.seconds:
                time.sleep(5)
                request = urllib.request.Request(f"http://127.0.0.1:{exp_port}/metrics",
                                                 headers={"Accept-Encoding": "gzip"})
                with urllib.request.urlopen(request, timeout=30) as response:
                    body = response.read()
                    if response.headers.get("Content-Encoding") == "gzip":
                        body = gzip.decompress(body)  # every member, as Prometheus reads them
                # Only the exporter's own families are read; they come last. Searching the whole text
                # (50 MB at tier L) would cost this process more CPU than the exporter spends polling.
                text = body[max(body.find(b"# HELP alikafka_exporter_"), 0):].decode()
                cycle = get(text, "alikafka_exporter_poll_cycle_duration_seconds")
                if args.trace:
                    ok_now = get(text, REQUESTS, action="GetConsumerProgress", code="200") or 0
                    rate = (ok_now - last_ok) / (time.monotonic() - last_at)
                    print(f"t={time.monotonic() - started:6.1f}s polls/s={rate:5.2f} "
                          f"cycle={cycle}", file=sys.stderr, flush=True)
                    last_ok, last_at = ok_now, time.monotonic()
                if cycle is not None and (not cycles or cycle != cycles[-1]):
                    cycles.append(cycle)
            cpu, rss = cpu_seconds(exporter.pid), rss_mb(exporter.pid)
        finally:
            exporter.terminate()
            sim.terminate()
            exporter.wait(10)
            sim.wait(10)
    ok = get(text, REQUESTS, action="GetConsumerProgress", code="200") or 0
    throttled = get(text, REQUESTS, action="GetConsumerProgress", code="Throttling.User") or 0
    effective = get(text, "alikafka_exporter_effective_poll_interval_seconds")
    duration_sum = get(text, "alikafka_exporter_api_request_duration_seconds_sum", action="GetConsumerProgress")
    duration_count = get(text, "alikafka_exporter_api_request_duration_seconds_count", action="GetConsumerProgress")
    latency_ms = 1000 * (duration_sum or 0) / max(duration_count or 0, 1)
    floor = pairs / args.qps
    complete = cycles[1:] or cycles  # the first pass runs at the limiter's pace from a cold start
    print(machine(f"python -m benchmarks.cycle --tier {args.tier} --qps {args.qps:g} --seconds {args.seconds}")
          + "\n")
    print("| tier | pairs | qps (limit = max_qps) | floor s | effective interval s | cycles | cycle median s | "
          "cycle max s | median / floor | throttled | polls | mean request ms | CPU ms/poll | RSS MB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    median = statistics.median(complete) if complete else float("nan")
    print(f"| {args.tier} | {pairs} | {args.qps:g} | {floor:.1f} | {effective or float('nan'):.1f} | "
          f"{len(complete)} | {median:.1f} | {max(complete, default=float('nan')):.1f} | {median / floor:.3f} | "
          f"{throttled:.0f} | {ok:.0f} | {latency_ms:.1f} | {1000 * cpu / max(ok, 1):.2f} | {rss:.0f} |")
    return 0 if throttled == 0 and median <= floor * 1.05 else 1


if __name__ == "__main__":
    sys.exit(main())
