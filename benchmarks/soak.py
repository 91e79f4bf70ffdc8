"""Fault soak: the exporter against a misbehaving simulator for a bounded time, scraped all along.

Run: ``.venv/bin/python -m benchmarks.soak --seconds 600`` (``make soak DURATION=600``); the short form
(``--seconds 40``) runs in CI as ``tests/e2e/test_soak.py``.

The simulator (its own process) serves ``scale-s`` (10 groups x 10 partitions) and the exporter (its
own process) polls those groups plus one that does not exist, every 2 s, while three scraper threads
read ``/metrics`` back to back. Faults, through the simulator's ``/_sim/faults``:

- from the start, on every request with small probabilities: 500, 503, timeouts (longer than
  ``api.timeout``), slow answers, connection resets, HTML 502 pages, truncated bodies, throttling,
  expired STS tokens, a gateway clock 20 minutes off (refused by the signature check), answers sent
  in two pieces 0.3 s apart, redirects to another origin and gzip bombs (64 MiB once decompressed);
- at a fifth of the run, one group (``gen-g00009``) starts failing for good with 500s: a retry
  storm on that pair;
- at half the run a burst of throttling answers to every call, at 60% bursts of expired tokens and
  clock skew.

Credentials really expire (``--credentials rrsa``, the default): the exporter gets its keys from the
simulator's STS through RRSA (``ALIBABA_CLOUD_ROLE_ARN``, ``..._OIDC_PROVIDER_ARN``, ``..._OIDC_TOKEN_FILE``)
and the simulator caps their lifetime (``--sts-lifetime``, by default the run's length / 2.5 within
20-60 s), so they are refreshed several times while the faults above run; the gateway refuses a key
once it has expired. At 40% of the run STS is down for four requests (one whole refresh, with its
retries, fails; the current keys must carry the polls until the next attempt). ``--credentials
static`` uses a fixed AccessKey pair instead.

Checked, and reported with the numbers: the exporter stays up; its RSS grows less than 10% after the
warm-up (the first quarter); every healthy pair's last success stays younger than ``poll.stale_after``;
the failing pair shows ``up 0`` and its data is dropped after ``stale_after`` (not before), the missing
group has ``up 0`` and no data; counters (``*_total``, histogram buckets, counts and sums) never
decrease between two scrapes of one scraper; no traceback and no error line in the log; the log stays
under ``LOG_LINES_PER_MINUTE`` (a retry storm must not flood it). With RRSA also: STS issued keys at
least ``max(3, seconds / lifetime)`` times (refreshes happened), the outage's 503s were all served,
the gateway never refused a really expired key, no poll failed for want of credentials, and neither
the OIDC token nor any issued secret or security token appears in the log. Exit status 0 when every
check holds.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from exporter.metrics.exposition import decompress
from tests.support.procs import clean_env, free_port, machine, rss_mb
from tests.support.samples import find, get, has, samples

INSTANCE = "alikafka_post-cn-scale0001"
HEALTHY = tuple(f"gen-g{i:05d}" for i in range(9))
FAILING = "gen-g00009"  # fails for good from a fifth of the run
MISSING = "gen-missing"  # never existed: BIZ_SUBSCRIPTION_NOT_FOUND from the first poll
INTERVAL = 2.0
STALE_AFTER = 15.0
API_TIMEOUT = 1.5
MAX_RETRIES = 2
LOG_LINES_PER_MINUTE = 120  # failures and recoveries of pairs, never one line per retried attempt
RSS_GROWTH_LIMIT = 0.10
SCRAPERS = 3
MONOTONIC = ("counter", "histogram", "summary")  # family types whose samples never decrease
SCRAPE_PAUSE = 0.05  # between one scraper's scrapes: continuous, without taking a whole core
ROLE = "acs:ram::1234567890123456:role/alikafka-exporter"
OIDC_PROVIDER = "acs:ram::1234567890123456:oidc-provider/ack-rrsa-soak"
STS_OUTAGE = 4  # 503s at 40% of the run: one refresh's three attempts, then the first retry's first

# Standing transient faults on every call: (kind, probability, delay).
TRANSIENT = (
    ("http_500", 0.03, 0.0), ("http_503", 0.03, 0.0), ("timeout", 0.01, API_TIMEOUT + 0.5),
    ("latency", 0.05, 0.4), ("reset", 0.02, 0.0), ("html", 0.02, 0.0), ("truncated", 0.01, 0.0),
    ("throttle", 0.02, 0.0), ("token_expired", 0.005, 0.0), ("clock_skew", 0.005, -1200.0),
    ("deep_nesting", 0.01, 0.0), ("invalid_utf8", 0.01, 0.0),
    # Hostile networks: answers in two writes 0.3 s apart, a 307 to another origin, a gzip body expanding to 64 MiB.
    ("slow_body", 0.05, 0.3), ("redirect", 0.01, 0.0), ("gzip_bomb", 0.01, 0.0),
)


@dataclass
class Result:
    """What a soak measured, and which checks failed."""

    seconds: float
    polls_ok: float = 0.0
    polls_failed: float = 0.0
    poll_codes: dict[str, float] = field(default_factory=dict)  # GetConsumerProgress attempts by code, at the end
    scrapes: int = 0
    scrape_errors: int = 0
    scrape_ms: list[float] = field(default_factory=list)
    rss_mb: list[tuple[float, float]] = field(default_factory=list)  # (elapsed, MB)
    counter_decreases: list[str] = field(default_factory=list)
    healthy_max_age: float = 0.0
    failing_fault_at: float | None = None
    failing_up0_after: float | None = None
    failing_gone_after: float | None = None
    missing_up0: bool = False
    missing_had_data: bool = False
    log_lines: int = 0
    log_bad: list[str] = field(default_factory=list)
    alive: bool = True
    credentials: str = "static"
    sts_lifetime: float | None = None
    sts_issued: int = 0  # AssumeRoleWithOIDC answered with keys, by the simulator's count
    sts_codes: dict[str, int] = field(default_factory=dict)
    sts_counted: float = 0.0  # the exporter's own api_requests_total{action="AssumeRoleWithOIDC",code="200"}
    expired_key_refusals: int = 0  # the gateway refused a really expired key
    credentials_failures: int = 0  # log lines of polls failing for want of credentials
    secrets_in_log: int = 0
    failures: list[str] = field(default_factory=list)

    @property
    def rss_growth(self) -> float:
        """Largest RSS after the warm-up over the RSS when the warm-up ended, less one."""
        warm = [mb for at, mb in self.rss_mb if at >= self.seconds / 4]
        return max(warm) / warm[0] - 1 if warm else 0.0

    @property
    def log_per_minute(self) -> float:
        """Log lines per minute over the run."""
        return self.log_lines * 60 / self.seconds

    @property
    def ok(self) -> bool:
        """Every check held."""
        return not self.failures


def _get(url: str, gzip: bool = False, timeout: float = 10.0) -> str:
    request = urllib.request.Request(url, headers={"Accept-Encoding": "gzip"} if gzip else {})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        data: bytes = response.read()
        if response.headers.get("Content-Encoding") == "gzip":
            data = decompress(data)  # every member, not only the first
    return data.decode()


def _fault(sim_url: str, **rule: object) -> None:
    request = urllib.request.Request(f"{sim_url}_sim/faults", data=json.dumps(rule).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        response.read()


class _Scraper(threading.Thread):
    """Reads /metrics back to back; records latency, errors and counters going backwards."""

    def __init__(self, url: str, gzip: bool, result: Result, lock: threading.Lock, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.url, self.gzip, self.result, self.lock, self.stop = url, gzip, result, lock, stop

    def run(self) -> None:
        last: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        while not self.stop.is_set():
            started = time.perf_counter()
            try:
                text = _get(self.url, self.gzip)
                elapsed = (time.perf_counter() - started) * 1000  # the scrape, not the parsing below
                parsed = samples(text)
            except Exception as exc:  # any failed scrape is a finding
                with self.lock:
                    self.result.scrape_errors += 1
                    self.result.failures.append(f"scrape failed: {type(exc).__name__}: {exc}")
                time.sleep(0.5)
                continue
            now = {s.key: s.value for s in parsed if s.type in MONOTONIC}
            decreases = [f"{name}{dict(labels)}: {last[(name, labels)]} -> {value}"
                         for (name, labels), value in now.items()
                         if (name, labels) in last and value < last[(name, labels)]]
            last = now
            time.sleep(SCRAPE_PAUSE)
            with self.lock:
                self.result.scrapes += 1
                self.result.scrape_ms.append(elapsed)
                self.result.counter_decreases.extend(decreases)


def _config(path: Path, sim_port: int) -> None:
    groups = ", ".join([*HEALTHY, FAILING, MISSING])
    path.write_text(
        f"api: {{endpoint: 'http://127.0.0.1:{sim_port}/', region: cn-hangzhou, max_qps: 20, max_concurrency: 4, "
        f"timeout: {API_TIMEOUT}s, max_retries: {MAX_RETRIES}}}\n"
        f"credentials: {{sts_endpoint: 'http://127.0.0.1:{sim_port}/sts/', role_session_name: soak}}\n"
        f"poll: {{interval: {INTERVAL:g}s, stale_after: {STALE_AFTER:g}s}}\n"
        f"targets: [{{instance_id: {INSTANCE}, groups: [{groups}]}}]\n")


def default_lifetime(seconds: float) -> float:
    """STS lifetime for a run: short enough for several refreshes, long enough to ride out an STS outage.

    Credentials living under twice ``credentials.refresh_margin`` are refreshed half-way through; a
    failed refresh (up to 1.5 s of attempts) is retried 5 s later (``RefreshingProvider.retry_pause``):
    from 20 s up, that retry comes at least 3.5 s before the expiry; at 13 s it would come at it.
    """
    return min(60.0, max(20.0, seconds / 2.5))


def _sts_state(sim_url: str, secrets: bool = False) -> dict[str, object]:
    with urllib.request.urlopen(f"{sim_url}_sim/sts{'?secrets=1' if secrets else ''}", timeout=5) as response:
        data: dict[str, object] = json.loads(response.read())
    return data


def _sts_outage(sim_url: str, count: int) -> None:
    request = urllib.request.Request(f"{sim_url}_sim/sts", data=json.dumps({"unavailable": count}).encode(),
                                     method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=5) as response:
        response.read()


def _check_pairs(text: str, elapsed: float, result: Result) -> None:
    now = time.time()
    for group in HEALTHY:
        stamp = get(text, "alikafka_consumergroup_last_success_timestamp_seconds", group=group, instance_id=INSTANCE)
        if stamp is None:
            if elapsed > 3 * INTERVAL + API_TIMEOUT * (MAX_RETRIES + 1):
                result.failures.append(f"{group}: no successful poll by {elapsed:.0f}s")
            continue
        age = now - stamp
        result.healthy_max_age = max(result.healthy_max_age, age)
        if age >= STALE_AFTER:
            result.failures.append(f"{group}: last success {age:.1f}s ago at {elapsed:.0f}s (stale_after "
                                   f"{STALE_AFTER:g}s)")
    up = get(text, "alikafka_consumergroup_up", group=FAILING, instance_id=INSTANCE)
    has_lag = has(text, "alikafka_consumergroup_lag", group=FAILING)
    if result.failing_fault_at is not None:
        since = elapsed - result.failing_fault_at
        if up == 0 and result.failing_up0_after is None:
            result.failing_up0_after = since
        if up == 0 and not has_lag and result.failing_gone_after is None:
            result.failing_gone_after = since
    missing_up = get(text, "alikafka_consumergroup_up", group=MISSING, instance_id=INSTANCE)
    result.missing_up0 = result.missing_up0 or missing_up == 0
    if missing_up == 1 or has(text, "alikafka_consumergroup_lag", group=MISSING):
        result.missing_had_data = True


def _judge(result: Result, log: str, secrets: list[str]) -> None:
    lines = log.splitlines()
    result.log_lines = len(lines)
    result.log_bad = [line for line in lines if "Traceback" in line or "level=error" in line][:5]
    result.credentials_failures = sum("credentials_unavailable" in line for line in lines)
    result.secrets_in_log = sum(1 for secret in secrets if secret and secret in log)
    checks = [
        (result.alive, "the exporter process exited"),
        (result.scrape_errors == 0, f"{result.scrape_errors} scrapes failed"),
        (not result.counter_decreases, f"counters decreased: {result.counter_decreases[:3]}"),
        (result.rss_growth < RSS_GROWTH_LIMIT, f"RSS grew {100 * result.rss_growth:.1f}% after the warm-up"),
        (result.failing_up0_after is not None, f"{FAILING} never showed up 0"),
        (result.failing_gone_after is not None, f"{FAILING}'s data was never dropped"),
        (result.failing_gone_after is None or result.failing_gone_after >= STALE_AFTER - INTERVAL,
         f"{FAILING}'s data was dropped after {result.failing_gone_after}s, before stale_after"),
        (result.failing_gone_after is None
         or result.failing_gone_after <= STALE_AFTER + 3 * INTERVAL + API_TIMEOUT * (MAX_RETRIES + 1) + 2,
         f"{FAILING}'s data was dropped only after {result.failing_gone_after}s"),
        (result.missing_up0 and not result.missing_had_data, f"{MISSING} should have up 0 and no data"),
        (not result.log_bad, f"error or traceback in the log: {result.log_bad}"),
        (result.log_per_minute <= LOG_LINES_PER_MINUTE, f"{result.log_per_minute:.0f} log lines per minute"),
        (result.secrets_in_log == 0, f"{result.secrets_in_log} secrets or tokens appear in the log"),
    ]
    if result.credentials == "rrsa":
        assert result.sts_lifetime is not None
        wanted = max(3, int(result.seconds / result.sts_lifetime))
        checks += [
            (result.sts_issued >= wanted, f"STS issued keys {result.sts_issued} times, fewer than {wanted}"),
            (result.sts_codes.get("ServiceUnavailable", 0) == STS_OUTAGE,
             f"the STS outage was not served whole: {result.sts_codes}"),
            (result.sts_counted >= 1, "the exporter's api_requests_total does not count AssumeRoleWithOIDC"),
            (result.expired_key_refusals == 0,
             f"the gateway refused {result.expired_key_refusals} requests signed with an expired key"),
            (result.credentials_failures == 0, f"{result.credentials_failures} polls failed without credentials"),
        ]
    result.failures.extend(message for ok, message in checks if not ok)


def run(seconds: float, *, credentials: str = "rrsa", sts_lifetime: float | None = None, verbose: bool = False,
        keep_log: Path | None = None) -> Result:
    """Run one soak of ``seconds`` and return what it measured (``result.ok``: every check held).

    ``credentials``: ``rrsa`` (keys from the simulator's STS, living ``sts_lifetime`` seconds, by
    default :func:`default_lifetime`) or ``static`` (a fixed AccessKey pair).
    """
    if credentials not in ("rrsa", "static"):
        raise ValueError(f"credentials must be rrsa or static, got {credentials!r}")
    sim_port, exp_port = free_port(), free_port()
    sim_url, metrics = f"http://127.0.0.1:{sim_port}/", f"http://127.0.0.1:{exp_port}/metrics"
    env = clean_env()
    result = Result(seconds, credentials=credentials)
    lock, stop = threading.Lock(), threading.Event()
    secrets = ["SK"]
    with tempfile.TemporaryDirectory() as tmp:
        config, log_path = Path(tmp) / "config.yaml", Path(tmp) / "exporter.log"
        token_file = Path(tmp) / "oidc-token"
        _config(config, sim_port)
        sim_args = [sys.executable, "-m", "exporter.simulator", "--listen", f"127.0.0.1:{sim_port}",
                    "--scenario", "builtin:scale-s", "--access-key", "AK:SK", "--seed", "11",
                    "--qps-limit", "GetConsumerProgress=20", "--log.level", "warning"]
        exporter_env = {**env, "ALIBABA_CLOUD_ACCESS_KEY_ID": "AK", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "SK"}
        if credentials == "rrsa":
            result.sts_lifetime = sts_lifetime or default_lifetime(seconds)
            sim_args += ["--sts", f"{ROLE}={OIDC_PROVIDER}", "--oidc-token-file", str(token_file),
                         "--sts-lifetime", f"{result.sts_lifetime:g}"]
            exporter_env = {**env, "ALIBABA_CLOUD_ROLE_ARN": ROLE, "ALIBABA_CLOUD_OIDC_PROVIDER_ARN": OIDC_PROVIDER,
                            "ALIBABA_CLOUD_OIDC_TOKEN_FILE": str(token_file),
                            "ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true"}
        sim = subprocess.Popen(sim_args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with log_path.open("w") as log_file:
            exporter = None
            scrapers: list[_Scraper] = []
            try:
                _wait_for(sim_url + "_sim/truth")
                for kind, probability, delay in TRANSIENT:
                    _fault(sim_url, kind=kind, probability=probability, delay=delay)
                exporter = subprocess.Popen(
                    [sys.executable, "-m", "exporter", "--config.file", str(config), "--web.listen-address",
                     f"127.0.0.1:{exp_port}", "--log.level", "info"],
                    env=exporter_env, stdout=log_file, stderr=subprocess.STDOUT)
                _wait_for(metrics)
                scrapers = [_Scraper(metrics, n % 2 == 0, result, lock, stop) for n in range(SCRAPERS)]
                for scraper in scrapers:
                    scraper.start()
                _watch(seconds, sim_url, metrics, exporter, result, lock, verbose)
            finally:
                stop.set()
                for scraper in scrapers:  # a scrape in flight must finish before the exporter stops
                    scraper.join(10)
                if exporter is not None:
                    result.alive = result.alive and exporter.poll() is None
                    exporter.terminate()
                    exporter.wait(15)
                if credentials == "rrsa" and sim.poll() is None:
                    _read_sts(sim_url, result, secrets, token_file)
                sim.terminate()
                sim.wait(15)
        log = log_path.read_text()
        if keep_log is not None:
            keep_log.write_text(log)
        _judge(result, log, secrets)
    return result


def _read_sts(sim_url: str, result: Result, secrets: list[str], token_file: Path) -> None:
    """The simulator's account of STS, and every secret it handed out (to look for in the log)."""
    state = _sts_state(sim_url, secrets=True)
    result.sts_issued = int(str(state["issued"]))
    codes = state["codes"]
    result.sts_codes = {str(k): int(v) for k, v in codes.items()} if isinstance(codes, dict) else {}
    result.expired_key_refusals = int(str(state["expired_key_refusals"]))
    issued = state.get("secrets")
    if isinstance(issued, list):
        secrets.extend(str(s) for s in issued)
    with contextlib.suppress(OSError):
        secrets.append(token_file.read_text().strip())


def _wait_for(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            _get(url, timeout=2)
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
        else:
            return


def _watch(seconds: float, sim_url: str, metrics: str, exporter: subprocess.Popen[bytes], result: Result,
           lock: threading.Lock, verbose: bool) -> None:
    """The run's timeline: faults at their moments, a check of every pair and the RSS every second."""
    started = time.monotonic()
    events = [(0.2, "failing"), (0.4, "sts_outage"), (0.5, "throttle_burst"), (0.6, "auth_burst")]
    text = ""
    while (elapsed := time.monotonic() - started) < seconds:
        while events and elapsed >= events[0][0] * seconds:
            _, event = events.pop(0)
            if event == "failing":
                _fault(sim_url, kind="http_500", group=FAILING)
                result.failing_fault_at = elapsed
            elif event == "sts_outage":
                if result.credentials == "rrsa":
                    _sts_outage(sim_url, STS_OUTAGE)
            elif event == "throttle_burst":
                _fault(sim_url, kind="throttle", count=8)
            else:
                _fault(sim_url, kind="token_expired", count=4)
                _fault(sim_url, kind="clock_skew", count=4, delay=1200.0)
        if exporter.poll() is not None:
            result.alive = False
            return
        try:
            text = _get(metrics, timeout=10)
        except OSError as exc:
            with lock:
                result.scrape_errors += 1
                result.failures.append(f"monitor scrape failed: {exc}")
        else:
            with lock:
                _check_pairs(text, elapsed, result)
        result.rss_mb.append((elapsed, rss_mb(exporter.pid)))
        if verbose:
            print(f"t={elapsed:5.1f}s rss={result.rss_mb[-1][1]:.1f}MB scrapes={result.scrapes} "
                  f"failures={len(result.failures)}", file=sys.stderr, flush=True)
        time.sleep(1.0)
    for sample in find(text, "alikafka_exporter_api_requests_total") if text else []:
        labels, value = sample.labels, sample.value
        if (labels.get("action"), labels.get("code")) == ("AssumeRoleWithOIDC", "200"):  # any account
            result.sts_counted += value
        if labels.get("action") == "GetConsumerProgress":
            if labels.get("code") == "200":
                result.polls_ok += value
            else:
                result.polls_failed += value
            code = labels.get("code", "")
            result.poll_codes[code] = result.poll_codes.get(code, 0.0) + value


def report(result: Result, command: str) -> str:
    """A markdown table of one soak."""
    ms = sorted(result.scrape_ms) or [float("nan")]
    rss = [mb for _, mb in result.rss_mb] or [float("nan")]
    warm = [mb for at, mb in result.rss_mb if at >= result.seconds / 4] or [float("nan")]
    rows = [
        machine(command) + "\n",
        "| duration s | API attempts ok / failed | scrapes (errors) | scrape p50 / p99 ms | RSS MB warm / max "
        "(growth) | counter decreases | healthy max age s | failing: up 0 after / dropped after s | log lines "
        "(per min) | tracebacks, errors | verdict |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        f"| {result.seconds:.0f} | {result.polls_ok:.0f} / {result.polls_failed:.0f} | {result.scrapes} "
        f"({result.scrape_errors}) | {statistics.median(ms):.1f} / {ms[int(0.99 * (len(ms) - 1))]:.1f} | "
        f"{warm[0]:.0f} / {max(rss):.0f} ({100 * result.rss_growth:+.1f}%) | {len(result.counter_decreases)} | "
        f"{result.healthy_max_age:.1f} | {_fmt(result.failing_up0_after)} / {_fmt(result.failing_gone_after)} | "
        f"{result.log_lines} ({result.log_per_minute:.0f}) | {len(result.log_bad)} | "
        f"{'pass' if result.ok else 'FAIL'} |",
    ]
    rows.append("\nGetConsumerProgress attempts by code (the exporter's count): "
                + ", ".join(f"{code}: {n:.0f}" for code, n in sorted(result.poll_codes.items())))
    if result.credentials == "rrsa":
        rows += [
            "",
            "| credentials | STS lifetime s | STS keys issued (exporter counted) | STS answers by code | expired-key "
            "refusals | polls without credentials | secrets in log |",
            "|---|---|---|---|---|---|---|",
            f"| rrsa | {result.sts_lifetime:g} | {result.sts_issued} ({result.sts_counted:.0f}) | "
            f"{', '.join(f'{k}: {v}' for k, v in sorted(result.sts_codes.items()))} | {result.expired_key_refusals} | "
            f"{result.credentials_failures} | {result.secrets_in_log} |",
        ]
    if result.failures:
        rows.append("\nFailed checks:\n" + "\n".join(f"- {f}" for f in dict.fromkeys(result.failures)))
    return "\n".join(rows)


def _fmt(value: float | None) -> str:
    return "never" if value is None else f"{value:.1f}"


def main(argv: list[str] | None = None) -> int:
    """Run a soak, print its table, exit 0 when every check held."""
    parser = argparse.ArgumentParser(description="fault soak")
    parser.add_argument("--seconds", type=float, default=600.0)
    parser.add_argument("--verbose", action="store_true")
    parser.add_argument("--keep-log", type=Path, help="copy the exporter's log here")
    parser.add_argument("--credentials", choices=("rrsa", "static"), default="rrsa",
                        help="keys from the simulator's STS that expire (default), or a fixed AccessKey pair")
    parser.add_argument("--sts-lifetime", type=float, default=None, metavar="SECONDS",
                        help="lifetime of the STS keys (default: the run's length / 2.5, within 20-60 s)")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        result = run(args.seconds, credentials=args.credentials, sts_lifetime=args.sts_lifetime,
                     verbose=args.verbose, keep_log=args.keep_log)
        print(report(result, " ".join(["python -m benchmarks.soak", *(argv if argv is not None else sys.argv[1:])])))
        return 0 if result.ok else 1
    return 130


if __name__ == "__main__":
    sys.exit(main())
