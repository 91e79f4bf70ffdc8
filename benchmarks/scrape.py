"""Scrape cost at scale: the exporter's /metrics against two baselines, tiers S, M, L (and XL).

Run: ``.venv/bin/python -m benchmarks.scrape`` (``make bench-scrape``); ``--tiers S,M,L,XL`` to choose.

For each tier the simulator's ``scale-*`` scenario is polled in-process (every pair once, through the
exporter's parser, analyzer and exposition, under the shipped default ``metrics.max_series`` unless
``--max-series`` says otherwise), then each implementation serves the result from its own process while
``wrk`` (10 connections, 2 threads, 5 s, ``Accept-Encoding: gzip`` like Prometheus) scrapes it:

- ``static``: the same gzipped bytes returned from memory by a bare aiohttp handler (the floor);
- ``ours``: the exporter's web app over its exposition, which does not change during the load;
- ``ours-live``: the same, while new poll answers keep arriving during the load at ``--poll-qps`` (the
  rate limit's pace): every poll changes the exposition, so the first scrape after it joins every stored
  member again, as in a running exporter;
- ``naive``: a straightforward prometheus_client exporter: GaugeVec set on each poll,
  ``generate_latest`` and gzip on each scrape.

Reported: scrape latency p50/p99, CPU seconds per scrape of the server process (with ``ours-live``,
taking in the polls is included), its RSS, and the CPU cost of taking in one polled response (parse,
analyze, render the pair's lines once and store them as gzip members).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import json
import re
import resource
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from typing import Any

from aiohttp import web

from exporter.cloud.models import ConsumerProgress, parse_consumer_progress
from exporter.cloud.stats import ApiStats
from exporter.config.settings import MetricsSettings, WebSettings
from exporter.metrics.exposition import Exposition, decompress
from exporter.metrics.self_metrics import TailCollector
from exporter.polling.analysis import Analyzer
from exporter.polling.snapshot import Board, PairState
from exporter.simulator import Scenario, Simulator
from exporter.targets.pair import Pair
from exporter.web.routes import make_app
from tests.support.procs import cpu_seconds, machine, rss_mb

TIERS = {"S": "scale-s", "M": "scale-m", "L": "scale-l", "XL": "scale-xl"}
INSTANCE = "alikafka_post-cn-scale0001"
# The shipped defaults, read from the settings model so the benchmark follows them.
DEFAULT_MAX_SERIES = MetricsSettings().max_series
# Polls a second fed to ``ours-live`` by default: the pace of the cycle benchmark's rate limit (the shipped
# api.max_qps default is ApiSettings().max_qps, a gentler load).
DEFAULT_POLL_QPS = 20.0


def answers(tier: str, forever: bool = False) -> None:
    """Print every pair's answer body, one JSON line each (run as a child, so the simulator's own memory
    for a million partitions is not counted in the server's RSS). ``forever``: round after round, at the
    simulator's clock (real time), so offsets move and each answer differs from the pair's previous one;
    the reader sets the pace (the pipe blocks)."""
    sim = Simulator(Scenario.builtin(TIERS[tier]), {"k": "s"})
    params = {"RegionId": "cn-hangzhou", "InstanceId": INSTANCE}
    out = sys.stdout
    with contextlib.suppress(BrokenPipeError):
        while True:
            for _, region, group in sim.pairs():
                body = sim.handle("GetConsumerProgress", {**params, "ConsumerId": group}, "k")
                out.write(json.dumps({"region": region, "group": group, "body": body}, separators=(",", ":")) + "\n")
                if forever:
                    out.flush()
            out.flush()
            if not forever:
                return


def _poll_all(tier: str) -> Iterator[tuple[Pair, ConsumerProgress]]:
    """Every pair's answer, one at a time, as the exporter receives them (never all at once): decoded
    from JSON and parsed here, answered by a simulator in a child process."""
    child = subprocess.Popen([sys.executable, "-m", "benchmarks.scrape", "answers", tier], stdout=subprocess.PIPE)
    assert child.stdout is not None
    try:
        for line in child.stdout:
            answer = json.loads(line)
            yield Pair(INSTANCE, answer["group"], answer["region"]), parse_consumer_progress(answer["body"])
    finally:
        child.stdout.close()
        child.wait(60)


# A scrape every this many polls while building (one every 5 s at 20 qps): rendering after every poll
# would cost O(pairs) each time, O(pairs^2) in all, which the exporter never does (it renders per scrape).
SCRAPE_EVERY = 100


# Rounds of earlier polls, a minute apart, put in every partition's offset history before its answer is
# taken in: the histories a long-running exporter holds (past ``lag.max_points`` they stay that size), so
# the RSS measured is that of a steady state, not of a first round.
HISTORY_ROUNDS = 40


def _warm(analyzer: Analyzer, pair: Pair, progress: ConsumerProgress, now: float, rounds: int) -> None:
    for topic in progress.topics:
        for p in topic.partitions:
            if p.broker_offset is not None:
                key = (pair.instance_id, topic.topic, p.partition)
                for back in range(rounds, 0, -1):
                    analyzer.estimator.observe(key, max(0, p.broker_offset - 60 * back), now - 60.0 * back)


def _build(tier: str, max_series: int, history_rounds: int = 0,
           ) -> tuple[Exposition, Board, dict[Pair, PairState], float, Analyzer]:
    """Feed every pair's answer through analyzer and exposition, timing the cost per poll (the history
    rounds put in first are not part of it)."""
    now = time.time()
    board = Board()
    exposition = Exposition(MetricsSettings(max_series=max_series), board, TailCollector(board, ApiStats(), guard=True))
    analyzer = Analyzer()
    states: dict[Pair, PairState] = {}
    started = time.process_time()
    for count, (pair, progress) in enumerate(_poll_all(tier), 1):
        if history_rounds:
            warming = time.process_time()
            _warm(analyzer, pair, progress, now, history_rounds)
            started += time.process_time() - warming
        insight = analyzer.observe(pair.instance_id, pair.group, progress, now)
        states[pair] = PairState(pair, progress, True, now, now, None, 1, insight)
        board.put(states[pair])
        if count % SCRAPE_EVERY == 0:
            exposition.render().gzipped()  # scrapes in between: their share of the cost is counted
    return exposition, board, states, (time.process_time() - started) / len(states), analyzer


async def _feed(tier: str, qps: float, board: Board, states: dict[Pair, PairState],
                analyzer: Analyzer, counter: list[int]) -> None:
    """Take in new answers at ``qps`` on the server's event loop, as the poller does at the rate limit:
    each changes the pair's lines, so the next scrape joins the stored members again."""
    child = await asyncio.create_subprocess_exec(sys.executable, "-m", "benchmarks.scrape", "answers", tier,
                                                 "forever", stdout=subprocess.PIPE, limit=1 << 20)
    assert child.stdout is not None
    loop = asyncio.get_running_loop()
    due = loop.time()
    try:
        while True:
            due = max(due + 1 / qps, loop.time() - 1)  # a virtual schedule: late wake-ups catch up a second
            await asyncio.sleep(max(0.0, due - loop.time()))
            answer = json.loads(await child.stdout.readline())
            pair = Pair(INSTANCE, answer["group"], answer["region"])
            progress = parse_consumer_progress(answer["body"])
            now = time.time()
            insight = analyzer.observe(pair.instance_id, pair.group, progress, now)
            previous = states[pair]
            states[pair] = PairState(pair, progress, True, now, now, None, previous.polls + 1, insight)
            board.put(states[pair])
            counter[0] += 1
    finally:
        with contextlib.suppress(ProcessLookupError):
            child.kill()
        await child.wait()


def _ours(tier: str, max_series: int, poll_qps: float = 0.0, history_rounds: int = HISTORY_ROUNDS,
          ) -> tuple[web.Application, float, int]:
    exposition, board, states, per_poll, analyzer = _build(tier, max_series, history_rounds)
    app = make_app(exposition, board, WebSettings())
    app["analyzer"] = analyzer  # the offset histories stay alive, as in the exporter
    exposition.version += 1  # a change since the last render: the next one starts from the stored members
    started = time.perf_counter()
    exposition.render().gzipped()
    app["render_ms"] = 1000 * (time.perf_counter() - started)
    counter = [0]

    async def polls(_: web.Request) -> web.Response:
        return web.Response(text=str(counter[0]))

    app.router.add_get("/bench/polls", polls)  # the benchmark's own route: polls taken in so far
    if poll_qps > 0:
        async def feeding(_: web.Application) -> AsyncIterator[None]:
            task = asyncio.create_task(_feed(tier, poll_qps, board, states, analyzer, counter))
            yield
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        app.cleanup_ctx.append(feeding)
    return app, per_poll, 0  # lines are counted by the measuring process, so as not to inflate this one's RSS


def _static(tier: str, max_series: int) -> tuple[web.Application, float, int]:
    exposition, _, _, _, _ = _build(tier, max_series)
    payload = exposition.render().gzipped()
    lines = 0  # counted by the measuring process

    async def handler(_: web.Request) -> web.Response:
        return web.Response(body=payload, headers={"Content-Encoding": "gzip", "Content-Type": "text/plain"})

    app = web.Application()
    app.router.add_get("/metrics", handler)
    return app, 0.0, lines


def _naive(tier: str, max_series: int) -> tuple[web.Application, float, int]:
    """A prometheus_client exporter of the core families (it has no cardinality guard: ``max_series`` unused)."""
    from prometheus_client import CollectorRegistry, Gauge  # noqa: PLC0415
    from prometheus_client.exposition import generate_latest  # noqa: PLC0415

    registry = CollectorRegistry()
    labels = ["instance_id", "group", "topic", "partition"]
    lag = Gauge("alikafka_consumergroup_lag", "lag", labels, registry=registry)
    current = Gauge("alikafka_consumergroup_current_offset", "offset", labels, registry=registry)
    stamp = Gauge("alikafka_consumergroup_last_consumed_timestamp_seconds", "ts", labels, registry=registry)
    end = Gauge("alikafka_topic_partition_end_offset", "end", ["instance_id", "topic", "partition"],
                registry=registry)
    group_lag = Gauge("alikafka_consumergroup_group_lag", "group lag", ["instance_id", "group"], registry=registry)
    started = time.process_time()
    count = 0
    for pair, progress in _poll_all(tier):
        count += 1
        for topic in progress.topics:
            for p in topic.partitions:
                values = (pair.instance_id, pair.group, topic.topic, str(p.partition))
                lag.labels(*values).set(p.lag or 0)
                current.labels(*values).set(p.consumer_offset or 0)
                if p.last_timestamp_ms:
                    stamp.labels(*values).set(p.last_timestamp_ms / 1000)
                end.labels(pair.instance_id, topic.topic, str(p.partition)).set(p.broker_offset or 0)
        group_lag.labels(pair.instance_id, pair.group).set(progress.total_diff or 0)
    per_poll = (time.process_time() - started) / count

    async def handler(request: web.Request) -> web.Response:
        body = generate_latest(registry)
        if "gzip" in request.headers.get("Accept-Encoding", ""):
            return web.Response(body=gzip.compress(body), headers={"Content-Encoding": "gzip",
                                                                    "Content-Type": "text/plain"})
        return web.Response(body=body)

    app = web.Application()
    app.router.add_get("/metrics", handler)
    return app, per_poll, generate_latest(registry).count(b"\n")


def serve(impl: str, tier: str, port: int, max_series: int, poll_qps: float, history_rounds: int) -> None:
    """Build one implementation and serve it until killed."""
    if impl.startswith("ours"):
        app, per_poll, series = _ours(tier, max_series, poll_qps if impl == "ours-live" else 0.0, history_rounds)
    else:
        app, per_poll, series = {"static": _static, "naive": _naive}[impl](tier, max_series)
    print(f"ready per_poll={per_poll:.6f} lines={series} render_ms={app.get('render_ms', 0.0):.2f}", flush=True)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def _polls(port: int) -> int:
    """How many polls the server has taken in (``ours`` and ``ours-live`` serve this route)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/bench/polls", timeout=60) as response:
        return int(response.read())


def measure(impl: str, tier: str, port: int, seconds: int, max_series: int = DEFAULT_MAX_SERIES,
            poll_qps: float = DEFAULT_POLL_QPS, history_rounds: int = HISTORY_ROUNDS) -> dict[str, Any]:
    """Start a server, scrape it with wrk, collect latency, CPU per scrape, RSS and polls taken in."""
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.scrape", "serve", impl, tier, str(port),
                             str(max_series), str(poll_qps), str(history_rounds)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        ready = proc.stdout.readline()  # building XL takes minutes
        per_poll = float(re.search(r"per_poll=([\d.]+)", ready).group(1))  # type: ignore[union-attr]
        lines = int(re.search(r"lines=(\d+)", ready).group(1))  # type: ignore[union-attr]
        render_ms = float(re.search(r"render_ms=([\d.]+)", ready).group(1))  # type: ignore[union-attr]
        time.sleep(0.5)
        url = f"http://127.0.0.1:{port}/metrics"
        subprocess.run(["wrk", "-t1", "-c1", "-d1s", "-H", "Accept-Encoding: gzip", url], capture_output=True,
                       check=True)  # warm-up
        rss_idle = rss_mb(proc.pid)
        single = []
        for _ in range(3):  # one scrape at a time: what a lone Prometheus sees
            started = time.perf_counter()
            request = urllib.request.Request(url, headers={"Accept-Encoding": "gzip"})
            with urllib.request.urlopen(request, timeout=120) as response:
                payload = response.read()
            single.append((time.perf_counter() - started) * 1000)
            if not lines:
                lines = (decompress(payload) if response.headers.get("Content-Encoding") == "gzip"
                         else payload).count(b"\n")
        ours = impl.startswith("ours")  # a busy baseline would answer the route only after its backlog
        polls_before, cpu_before = _polls(port) if ours else None, cpu_seconds(proc.pid)
        out = subprocess.run(["wrk", "-t2", "-c10", f"-d{seconds}s", "--timeout", "60s", "--latency", "-H",
                              "Accept-Encoding: gzip", url], capture_output=True, text=True, check=True).stdout
        cpu = cpu_seconds(proc.pid) - cpu_before
        polls_after = _polls(port) if ours else None
        polled = polls_after - polls_before if polls_after is not None and polls_before is not None else None
        requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
        latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)\s*$", out, re.M))
        if len(latency) < 2:
            print(f"wrk output without a latency distribution:\n{out}", file=sys.stderr, flush=True)
        nan = float("nan")
        return {"p50": _ms(latency["50"]) if "50" in latency else nan,
                "p99": _ms(latency["99"]) if "99" in latency else nan, "requests": requests,
                "cpu_per_scrape_ms": 1000 * cpu / max(requests, 1), "rss_mb": rss_mb(proc.pid), "rss_idle": rss_idle,
                "per_poll_ms": per_poll * 1000, "lines": lines, "render_ms": render_ms, "single_ms": sorted(single)[1],
                "polls_per_s": polled / seconds if polled is not None else None}
    finally:
        proc.kill()  # a baseline busy rendering would take long to notice SIGTERM
        proc.wait(timeout=10)


def main(argv: list[str] | None = None) -> int:
    """Measure and print a markdown table with machine, date and command."""
    parser = argparse.ArgumentParser(description="scrape cost benchmark")
    parser.add_argument("--tiers", default="S,M,L")
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--impls", default="static,ours,ours-live,naive", help="which implementations to measure")
    parser.add_argument("--max-series", type=int, default=DEFAULT_MAX_SERIES,
                        help="the exposition's metrics.max_series (default: the shipped default; 0 = no guard)")
    parser.add_argument("--poll-qps", type=float, default=DEFAULT_POLL_QPS,
                        help="polls a second fed to ours-live during the load")
    parser.add_argument("--history-rounds", type=int, default=HISTORY_ROUNDS,
                        help="earlier polls put in each partition's offset history first (0: a first round)")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk is required: apt-get install -y wrk (make bench-scrape installs it when run as root)",
              file=sys.stderr)
        return 2
    resource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))
    command = " ".join(["python -m benchmarks.scrape", *(argv if argv is not None else sys.argv[1:])])
    print(f"{machine(command)}; metrics.max_series {args.max_series}; "
          f"ours-live fed {args.poll_qps:g} polls/s; ours with {args.history_rounds} rounds of offset history\n")
    print("| tier | lines | impl | single scrape ms | p50 ms | p99 ms | scrapes/s | CPU ms/scrape | "
          "RSS MB idle / loaded | CPU ms/poll | full render ms | polls/s under load |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    port = 19950
    for tier in args.tiers.split(","):
        results = {}
        for impl in args.impls.split(","):
            port += 1
            results[impl] = r = measure(impl, tier, port, args.seconds, args.max_series, args.poll_qps,
                                        args.history_rounds)
            polls = "" if r["polls_per_s"] is None else f"{r['polls_per_s']:.1f}"
            print(f"| {tier} | {r['lines']} | {impl} | {r['single_ms']:.1f} | {r['p50']:.2f} | {r['p99']:.2f} | "
                  f"{r['requests'] / args.seconds:.0f} | {r['cpu_per_scrape_ms']:.2f} | "
                  f"{r['rss_idle']:.0f} / {r['rss_mb']:.0f} | "
                  f"{r['per_poll_ms']:.2f} | {r['render_ms']:.1f} | {polls} |", flush=True)
        static = results.get("static")
        notes = [f"{impl}/static p50 {results[impl]['p50'] / static['p50']:.2f}x, p99 "
                 f"{results[impl]['p99'] / static['p99']:.2f}x" for impl in ("ours", "ours-live")
                 if static and impl in results]
        if "naive" in results and "ours" in results:
            ratio = results["naive"]["single_ms"] / results["ours"]["single_ms"]
            notes.append(f"naive/ours single scrape {ratio:.0f}x")
        if notes:
            print(f"| {tier} | | {'; '.join(notes)} | | | | | | | | | |", flush=True)
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "serve":
        serve(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6]), int(sys.argv[7]))
    elif len(sys.argv) > 1 and sys.argv[1] == "answers":
        answers(sys.argv[2], forever=sys.argv[3:] == ["forever"])
    else:
        sys.exit(main())
