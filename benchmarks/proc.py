"""Process helpers the benchmarks share: ports, a process's CPU and RSS from /proc, environment, header.

The scrape, cycle and soak benchmarks each start the simulator and the exporter (or a baseline) as
their own processes and measure them from outside, so they need the same few helpers. They live here
once so that every benchmark measures a process the same way (CPU as user + system time from
``/proc/PID/stat``, RSS as ``VmRSS``) and prints the same machine line above its table. Linux only.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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


def clean_env() -> dict[str, str]:
    """This process's environment without cloud credentials or exporter settings, for a child to start from."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("ALIBABA_CLOUD_", "ALIKAFKA_"))}


def machine(command: str) -> str:
    """The line above a benchmark's table: machine, cores, Python, date and the command run."""
    return (f"Machine: {os.uname().machine}, {os.cpu_count()} cores, Python {sys.version.split()[0]}; "
            f"date {time.strftime('%Y-%m-%d')}; command: {command}")
