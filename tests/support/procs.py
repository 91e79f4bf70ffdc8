"""Process helpers for tests and benchmarks that run the exporter, the simulator and Prometheus as processes.

Ports, a clean environment, start and stop, HTTP GET, waiting, a Prometheus query, and a process's CPU and RSS
read from ``/proc`` (user + system time from ``/proc/PID/stat``, ``VmRSS``) so that every benchmark measures a
process the same way. Linux only; the benchmarks import this module too.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without cloud credentials or exporter settings, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALIBABA_CLOUD_", "ALIKAFKA_"))}
    env.update(extra)
    return env


def accepts(port: int) -> bool:
    """Whether something listens on 127.0.0.1:``port`` (a TCP connect, nothing sent: fine for a TLS port)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_for(check: Callable[[], T | None], timeout: float, what: str) -> T:
    """Poll ``check`` until it returns a value (not None); fail with ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
        except (OSError, ValueError) as exc:
            last_error, value = exc, None
        if value is not None:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what} (last error: {last_error!r})")


@contextmanager
def process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run a process with output to ``log``; terminate it (then kill) on exit."""
    with log.open("wb") as out:
        proc = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def prom_query(port: int, query: str) -> list[dict[str, Any]]:
    url = f"http://127.0.0.1:{port}/api/v1/query?query={urllib.parse.quote(query)}"
    status, body = http_get(url)
    data = json.loads(body)
    if status != 200 or data.get("status") != "success":
        raise AssertionError(f"query {query!r} failed: {body[:300]!r}")
    return list(data["data"]["result"])


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has spent, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    """The process's resident set size in MiB; NaN when it has none (an exited process not yet reaped)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def machine(command: str) -> str:
    """The line above a benchmark's table: machine, cores, Python, date and the command run."""
    return (f"Machine: {os.uname().machine}, {os.cpu_count()} cores, Python {sys.version.split()[0]}; "
            f"date {time.strftime('%Y-%m-%d')}; command: {command}")
