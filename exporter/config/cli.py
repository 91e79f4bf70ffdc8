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

from exporter.config.errors import ConfigError
from exporter.config.settings import FLAG_NAMES


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


# How each flag that sets a setting parses, in --help order, keyed by the settings path it sets; its
# name is FLAG_NAMES's (the settings name a flag in their errors), so a flag is spelled once.
_SETTING_FLAGS: dict[tuple[str, ...], dict[str, Any]] = {
    ("targets",): {"action": "append", "metavar": "INSTANCE_ID=GROUP[,GROUP...]",
                   "help": "an instance and its consumer groups to poll (repeatable)"},
    ("api", "region"): {"metavar": "ID", "help": "default region of targets"},
    ("web", "listen_address"): {"metavar": "ADDR", "help": "host:port to serve on (:9897)"},
    ("web", "telemetry_path"): {"metavar": "PATH", "help": "metrics path (/metrics)"},
    ("web", "config_file"): {"metavar": "PATH", "help": "TLS and basic auth configuration"},
    ("log", "level"): {"choices": ["debug", "info", "warning", "error"], "help": "log level (info)"},
    ("log", "format"): {"choices": ["logfmt", "json"], "help": "log format (logfmt)"},
    ("shard",): {"metavar": "I/N", "help": "poll only shard I of N (a stable hash of instance and group)"},
}
_DEMO = ("demo",)  # a mode (CliArgs.demo) and a setting: listed with the modes in --help


def _dest(path: tuple[str, ...]) -> str:
    return "_".join(path)


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
    for path, options in _SETTING_FLAGS.items():
        add(FLAG_NAMES[path], dest=_dest(path), **options)
    add("--check-config", action="store_true", help="validate the configuration and credentials source, then exit")
    add("--once", action="store_true", help="poll every target once, print the metrics and exit")
    add("--probe", action="store_true",
        help="first contact with an account: make one call of each action the configuration uses, print what "
             "each answered and what to fix, exit 0 if all worked, else 1")
    add(FLAG_NAMES[_DEMO], dest=_dest(_DEMO), action="store_true",
        help="run against the built-in simulated alikafka API")
    add("--version", action="store_true", help="print the version and exit")
    return parser


def _parse_targets(values: Sequence[str]) -> list[dict[str, Any]]:
    groups_by_instance: dict[str, list[str]] = {}
    problems = []
    for value in values:
        instance, sep, groups_text = value.partition("=")
        groups = [g.strip() for g in groups_text.split(",")]
        if not sep or not instance.strip() or not all(groups):
            problems.append(f"targets (flag {FLAG_NAMES['targets',]} {value!r}): expected INSTANCE_ID=GROUP[,GROUP...]")
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

    for path in (*_SETTING_FLAGS, _DEMO):
        value = getattr(ns, _dest(path))
        if value is None or value is False:
            continue  # not given: only given flags override
        if path == ("targets",):
            value = _parse_targets(value)
        *sections, key = path
        branch = flags
        for section in sections:
            branch = branch.setdefault(section, {})
        branch[key] = value
    return CliArgs(
        config_file=Path(ns.config_file) if ns.config_file else None,
        flags=flags,
        check_config=ns.check_config,
        once=ns.once,
        probe=ns.probe,
        demo=ns.demo,
        version=ns.version,
    )
