"""``alikafka-simulator``: serve the simulated alikafka API on its own, for tests, benchmarks and SDKs.

Key pairs come from ``--access-key ID:SECRET`` (repeatable) or ``ALIKAFKA_SIMULATOR_ACCESS_KEYS``
(``id1:secret1,id2:secret2``). With neither, a pair is generated: its ID is logged and its secret
written to a file readable only by the owner, whose path is logged; the secret itself never is.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import secrets
import signal
import sys
import tempfile
from collections.abc import Sequence

from aiohttp import web

from exporter import logs
from exporter.simulator import Scenario, ScenarioError, Simulator, build_app

log = logging.getLogger("exporter.simulator")
KEYS_ENV = "ALIKAFKA_SIMULATOR_ACCESS_KEYS"


def _parse_keys(values: Sequence[str]) -> dict[str, str]:
    keys = {}
    for value in values:
        key_id, sep, secret = value.partition(":")
        if not sep or not key_id or not secret:
            raise ValueError(f"access key must be ID:SECRET, got {key_id or '(empty)'}:...")
        keys[key_id] = secret
    return keys


def _parse_listen(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"--listen must be HOST:PORT, got {value!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def _generated_key() -> dict[str, str]:
    key_id = "LTAI5tSim" + secrets.token_hex(6)
    secret = secrets.token_urlsafe(24)
    fd, path = tempfile.mkstemp(prefix="alikafka-simulator-", suffix=".secret")
    with os.fdopen(fd, "w") as handle:  # mkstemp creates the file with mode 0600
        handle.write(secret + "\n")
    log.warning("generated an access key", extra={"access_key_id": key_id, "secret_file": path})
    return {key_id: secret}


async def _serve(sim: Simulator, host: str, port: int) -> None:
    runner = web.AppRunner(build_app(sim), access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    log.info("simulator listening", extra={"address": f"{host}:{port}", "scenario": sim.scenario.name,
                                           "pairs": len(sim.pairs())})
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await runner.cleanup()
    log.info("simulator stopped")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the simulator; exit 0 on SIGTERM/SIGINT, 2 on bad arguments or scenario."""
    parser = argparse.ArgumentParser(prog="alikafka-simulator", description="Simulated alikafka OpenAPI.")
    parser.add_argument("--listen", default="127.0.0.1:9898", help="HOST:PORT (default 127.0.0.1:9898)")
    parser.add_argument("--scenario", default="builtin:demo", help="a scenario file or builtin:NAME")
    parser.add_argument("--access-key", action="append", default=[], metavar="ID:SECRET")
    parser.add_argument("--seed", type=int, default=None, help="override the scenario's seed")
    parser.add_argument("--qps-limit", action="append", default=[], metavar="ACTION=QPS",
                        help="account-wide limit of one action (GetConsumerProgress defaults to 3)")
    parser.add_argument("--log.level", dest="log_level", default="info", choices=["debug", "info", "warning", "error"])
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    logs.configure(args.log_level, "logfmt")
    try:
        host, port = _parse_listen(args.listen)
        scenario = Scenario.load(args.scenario)
        env_keys = [k for k in os.environ.get(KEYS_ENV, "").split(",") if k.strip()]
        keys = _parse_keys(args.access_key or env_keys) or _generated_key()
        limits = [limit.partition("=") for limit in args.qps_limit]
        if any(not sep or not action for action, sep, _ in limits):
            raise ValueError("--qps-limit must be ACTION=QPS")
        sim = Simulator(scenario, keys, seed=args.seed)
        for action, _, qps in limits:
            sim.set_qps_limit(action, float(qps))
    except (ValueError, ScenarioError) as exc:
        for line in str(exc).splitlines():
            print(f"alikafka-simulator: {line}", file=sys.stderr)
        return 2
    asyncio.run(_serve(sim, host, port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
