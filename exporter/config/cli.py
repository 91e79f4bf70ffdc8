"""Command-line flags, turned into a nested overrides mapping for the settings.

Flags follow Prometheus exporter habits (``--web.listen-address``). A malformed ``--target`` is a
configuration problem reported like any other (exit 2, one line naming it), not an argparse usage
error.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from exporter.config.settings import ConfigError


@dataclass(frozen=True)
class CliArgs:
    """What the command line asked for."""

    config_file: Path | None = None
    flags: dict[str, Any] = field(default_factory=dict)
    check_config: bool = False
    once: bool = False
    probe: bool = False
    demo: bool = False
    version: bool = False


class _Parser(argparse.ArgumentParser):
    """argparse reporting usage errors as configuration problems (exit 2, printed redacted by the caller)."""

    def error(self, message: str) -> NoReturn:
        """Raise instead of printing: a bad value given to a flag may be a pasted secret."""
        raise ConfigError([f"command line: {message} (see --help)"])


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; every flag defaults to None so only given flags override."""
    parser = _Parser(
        prog="alikafka-exporter",
        description="Prometheus exporter for consumer lag on Alibaba Cloud Message Queue for Apache Kafka.",
    )
    add = parser.add_argument
    add("--config.file", dest="config_file", metavar="PATH", help="YAML configuration file")
    add("--target", dest="targets", action="append", metavar="INSTANCE_ID=GROUP[,GROUP...]",
        help="an instance and its consumer groups to poll (repeatable)")
    add("--region", metavar="ID", help="default region of targets")
    add("--web.listen-address", dest="listen_address", metavar="ADDR", help="host:port to serve on (:9897)")
    add("--web.telemetry-path", dest="telemetry_path", metavar="PATH", help="metrics path (/metrics)")
    add("--web.config.file", dest="web_config_file", metavar="PATH", help="TLS and basic auth configuration")
    add("--log.level", dest="log_level", choices=["debug", "info", "warning", "error"], help="log level (info)")
    add("--log.format", dest="log_format", choices=["logfmt", "json"], help="log format (logfmt)")
    add("--shard", metavar="I/N", help="poll only shard I of N (a stable hash of instance and group)")
    add("--check-config", action="store_true", help="validate the configuration and credentials source, then exit")
    add("--once", action="store_true", help="poll every target once, print the metrics and exit")
    add("--probe", action="store_true",
        help="first contact with an account: make one call of each action the configuration uses, print what "
             "each answered and what to fix, exit 0 if all worked, else 1")
    add("--demo", action="store_true", help="run against the built-in simulated alikafka API")
    add("--version", action="store_true", help="print the version and exit")
    return parser


def _parse_targets(values: Sequence[str]) -> list[dict[str, Any]]:
    groups_by_instance: dict[str, list[str]] = {}
    problems = []
    for value in values:
        instance, sep, groups_text = value.partition("=")
        groups = [g.strip() for g in groups_text.split(",")]
        if not sep or not instance.strip() or not all(groups):
            problems.append(f"targets (flag --target {value!r}): expected INSTANCE_ID=GROUP[,GROUP...]")
            continue
        known = groups_by_instance.setdefault(instance.strip(), [])
        known.extend(g for g in groups if g not in known)
    if problems:
        raise ConfigError(problems)
    return [{"instance_id": i, "groups": g} for i, g in groups_by_instance.items()]


def parse_args(argv: Sequence[str]) -> CliArgs:
    """Parse ``argv``; raises :class:`ConfigError` for a malformed --target (argparse exits 2 on its own)."""
    ns = build_parser().parse_args(list(argv))
    if ns.probe and (ns.check_config or ns.once):
        raise ConfigError(["command line: --probe runs on its own, not with --check-config or --once"])
    flags: dict[str, Any] = {}

    def put(section: str, key: str, value: Any) -> None:
        if value is not None:
            flags.setdefault(section, {})[key] = value

    put("api", "region", ns.region)
    put("web", "listen_address", ns.listen_address)
    put("web", "telemetry_path", ns.telemetry_path)
    put("web", "config_file", ns.web_config_file)
    put("log", "level", ns.log_level)
    put("log", "format", ns.log_format)
    if ns.shard is not None:
        flags["shard"] = ns.shard
    if ns.targets:
        flags["targets"] = _parse_targets(ns.targets)
    if ns.demo:
        flags["demo"] = True
    return CliArgs(
        config_file=Path(ns.config_file) if ns.config_file else None,
        flags=flags,
        check_config=ns.check_config,
        once=ns.once,
        probe=ns.probe,
        demo=ns.demo,
        version=ns.version,
    )
