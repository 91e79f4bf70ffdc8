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
import ssl
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

from aiohttp import web

from exporter import logs
from exporter.simulator import Scenario, ScenarioError, Simulator, build_app
from exporter.simulator.imds import MetadataService, add_metadata_routes
from exporter.simulator.sts import StsService, add_sts_controls, add_sts_routes

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


def _accounts(sim: Simulator, values: Sequence[str]) -> None:
    """``--account NAME=ID:SECRET@INSTANCE[,INSTANCE...]``: an account owning its key and instances."""
    for value in values:
        name, sep, rest = value.partition("=")
        key, at, instances = rest.rpartition("@")
        if not sep or not name or not at or not instances:
            raise ValueError(f"--account must be NAME=ID:SECRET@INSTANCE[,INSTANCE...], got {name or '(empty)'}=...")
        sim.add_account(name, _parse_keys([key]), [i for i in instances.split(",") if i])


def _assumable_roles(sts: StsService, values: Sequence[str]) -> None:
    """``--assume-role ROLE_ARN=ACCOUNT:KEY_ID[,KEY_ID...]``: the keys that may assume a role of that account."""
    for value in values:
        role, sep, rest = value.partition("=")
        account, colon, keys = rest.partition(":")
        if not sep or not role or not colon or not account or not keys:
            raise ValueError("--assume-role must be ROLE_ARN=ACCOUNT:KEY_ID[,KEY_ID...]")
        sts.add_assumable_role(role, account, {k for k in keys.split(",") if k})


def _credential_services(sim: Simulator, args: argparse.Namespace) -> Callable[[web.Application], None]:
    """STS at /sts/ (its controls at /_sim/sts) and the ECS metadata service under /ecs-metadata, when asked for."""
    sts = None
    if args.sts or args.assume_role:
        sts = StsService(sim, session_lifetime=args.sts_lifetime)
        for pair in args.sts:
            role, sep, provider = pair.partition("=")
            if not sep or not role or not provider:
                raise ValueError("--sts must be ROLE_ARN=OIDC_PROVIDER_ARN")
            sts.add_role(role, provider)
        _assumable_roles(sts, args.assume_role)
    if args.oidc_token_file:
        if sts is None:
            raise ValueError("--oidc-token-file needs --sts")
        Path(args.oidc_token_file).write_text(sts.issue_oidc_token(lifetime=86400) + "\n", encoding="utf-8")
    metadata = MetadataService(sim, args.ecs_role, require_token=args.imds_token_required) if args.ecs_role else None

    def mount(app: web.Application) -> None:
        if sts is not None:
            add_sts_routes(app, sts, "/sts/")
            add_sts_controls(app, sts)
        if metadata is not None:
            add_metadata_routes(app, metadata, "/ecs-metadata")

    return mount


def _tls(cert: str, key: str) -> ssl.SSLContext | None:
    """A server context from ``--tls-cert``/``--tls-key`` (both or neither), else None (plain HTTP)."""
    if bool(cert) != bool(key):
        raise ValueError("--tls-cert and --tls-key go together")
    if not cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(cert, key)
    except ssl.SSLError as exc:
        raise ValueError(f"cannot load --tls-cert/--tls-key: {exc.reason or exc}") from None
    return context


async def _serve(sim: Simulator, host: str, port: int, mount: Callable[[web.Application], None],
                 args: argparse.Namespace, tls: ssl.SSLContext | None) -> None:
    app = build_app(sim, write_pieces=args.write_pieces, piece_pause=args.piece_pause)
    mount(app)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    await web.TCPSite(runner, host, port, ssl_context=tls).start()
    log.info("simulator listening", extra={"address": f"{host}:{port}", "tls": tls is not None,
                                           "scenario": sim.scenario.name, "pairs": len(sim.pairs()),
                                           "write_pieces": args.write_pieces, "strict_signing": sim.auth.strict})
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
    parser.add_argument("--sts", action="append", default=[], metavar="ROLE_ARN=OIDC_PROVIDER_ARN",
                        help="serve STS AssumeRoleWithOIDC at /sts/ for this role (repeatable)")
    parser.add_argument("--assume-role", action="append", default=[], metavar="ROLE_ARN=ACCOUNT:KEY_ID[,KEY_ID]",
                        help="serve STS AssumeRole at /sts/: these keys may assume this role of ACCOUNT (repeatable)")
    parser.add_argument("--account", action="append", default=[], metavar="NAME=ID:SECRET@INSTANCE[,INSTANCE]",
                        help="another account: its key reaches only its instances, with its own flow control "
                             "(repeatable)")
    parser.add_argument("--oidc-token-file", default="", metavar="PATH",
                        help="write an OIDC token the simulated STS accepts (24 h) to PATH")
    parser.add_argument("--sts-lifetime", type=float, default=None, metavar="SECONDS",
                        help="cap the lifetime of issued STS credentials (test knob)")
    parser.add_argument("--ecs-role", default="", metavar="NAME",
                        help="serve the ECS metadata service under /ecs-metadata with this RAM role")
    parser.add_argument("--imds-token-required", action="store_true",
                        help="metadata service in security hardening mode (IMDSv2 token required)")
    parser.add_argument("--clock-offset", type=float, default=0.0, metavar="SECONDS",
                        help="run the gateway's clock this far ahead (negative: behind), to play clock skew")
    parser.add_argument("--write-pieces", type=int, default=1, metavar="N",
                        help="send every answer in N writes (a slow network; default 1)")
    parser.add_argument("--piece-pause", type=float, default=0.0, metavar="SECONDS",
                        help="pause between those writes (default 0)")
    parser.add_argument("--tls-cert", default="", metavar="PATH", help="serve HTTPS with this certificate chain")
    parser.add_argument("--tls-key", default="", metavar="PATH", help="and this private key")
    parser.add_argument("--lenient-signing", action="store_true",
                        help="accept a sent but unsigned content-type header (strict by default, as the V3 rules)")
    parser.add_argument("--log.level", dest="log_level", default="info", choices=["debug", "info", "warning", "error"])
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    logs.configure(args.log_level, "logfmt")
    try:
        host, port = _parse_listen(args.listen)
        scenario = Scenario.load(args.scenario)
        env_keys = [k for k in os.environ.get(KEYS_ENV, "").split(",") if k.strip()]
        keys = _parse_keys(args.access_key or env_keys) or ({} if args.account else _generated_key())
        limits = [limit.partition("=") for limit in args.qps_limit]
        if any(not sep or not action for action, sep, _ in limits):
            raise ValueError("--qps-limit must be ACTION=QPS")
        sim = Simulator(scenario, keys, seed=args.seed)
        sim.clock_offset = args.clock_offset
        _accounts(sim, args.account)
        sim.auth.strict = not args.lenient_signing
        if not 1 <= args.write_pieces <= 10_000 or not 0 <= args.piece_pause <= 600:
            raise ValueError("--write-pieces must be 1-10000 and --piece-pause 0-600 seconds")
        tls = _tls(args.tls_cert, args.tls_key)
        for action, _, qps in limits:
            sim.set_qps_limit(action, float(qps))
        mount = _credential_services(sim, args)
    except (ValueError, ScenarioError, OSError) as exc:
        for line in str(exc).splitlines():
            print(f"alikafka-simulator: {line}", file=sys.stderr)
        return 2
    asyncio.run(_serve(sim, host, port, mount, args, tls))
    return 0


if __name__ == "__main__":
    sys.exit(main())
