"""Command-line entry point: parse, validate, then run; exit 0 clean, 1 runtime failure, 2 bad config.

``--check-config``, ``--probe`` and ``--once`` take the same path as a serving start up to the plan, then
print their report instead of serving.

Configuration problems are printed one per line, naming the key and where it came from, before
anything starts. Nothing here prints a secret: credentials are reported by source only.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from exporter import __version__, app, logs
from exporter.cloud.accounts import Account, accounts_of
from exporter.cloud.credential_chain import account_providers
from exporter.cloud.credentials import ENV_SECRET, ENV_TOKEN, CredentialProvider, CredentialsError, Learning
from exporter.cloud.credentials_remote import ENV_OIDC_TOKEN_FILE
from exporter.cloud.transport import PlainTransport
from exporter.config.cli import parse_args
from exporter.config.errors import ConfigError
from exporter.config.secret_files import peek_secret_file
from exporter.config.settings import CONFIG_FILE_ENV, DEFAULT_ACCOUNT, Settings, load_settings
from exporter.probe import run_probe
from exporter.web import webconfig

EXIT_OK, EXIT_RUNTIME, EXIT_CONFIG = 0, 1, 2

log = logging.getLogger("exporter")


def _config_error(problems: Sequence[str], redact: logs.Redactor) -> int:
    for problem in problems:
        print(redact(f"alikafka-exporter: config error: {problem}"), file=sys.stderr)
    return EXIT_CONFIG


def _check_targets(settings: Settings) -> Settings:
    if not settings.targets:
        raise ConfigError(["targets (default): no targets configured; use --target INSTANCE_ID=GROUP, "
                           "a config file with targets, or --demo"])
    return settings


def _plan(settings: Settings,
          wrap: Callable[[CredentialProvider], CredentialProvider] = lambda provider: provider) -> app.Plan:
    pairs = app.plan_pairs(settings)
    _check_targets(settings)
    transport = PlainTransport()  # one, for the credential providers and the API client
    try:
        # Each account's chain counts its credential requests under its name on the one transport.
        providers = {name: provider for name in settings.used_accounts
                     for provider in account_providers(settings, os.environ, transport.for_account(name), wrap,
                                                       only=name).values()}
    except CredentialsError as exc:
        raise ConfigError([str(exc)]) from None  # names its key: credentials or accounts.NAME.credentials
    first = providers.get(DEFAULT_ACCOUNT) or next(iter(providers.values()))
    return app.Plan(pairs, settings.api, first, tuple(settings.targets), transport=transport,
                    accounts=accounts_of(settings, providers))


async def _resolve(accounts: Sequence[Account]) -> None:
    """Every account's credentials once (unreadable files, a refused STS request fail here, naming the key)."""
    for account in accounts:
        try:
            await account.credentials.get()
        except CredentialsError as exc:
            key = "credentials" if account.name == DEFAULT_ACCOUNT else f"accounts.{account.name}.credentials"
            raise ConfigError([f"{key}: {exc}"]) from None


def _run(settings: Settings, plan: app.Plan, *, check_config: bool, once: bool, probe: bool = False,
         reload: Callable[[], Settings] | None = None, config_file: Path | None = None,
         redact: Callable[[str], str] = str) -> int:
    if check_config:
        print(redact("\n".join(app.summary_lines(settings, plan))))
        return EXIT_OK
    if probe:
        report = asyncio.run(run_probe(settings, plan, demo=settings.demo))
        print(redact(report.render()), end="")
        return report.exit_code
    if once:
        return asyncio.run(app.run_once(settings, plan))
    return asyncio.run(app.serve(settings, plan, reload=reload, config_file=config_file))


def main(argv: Sequence[str] | None = None) -> int:
    """Run the exporter; returns the process exit code."""
    # Secret values from the environment and the files named there or in the config are never echoed, even
    # inside a config problem: they are learnt before the configuration is validated.
    redactor = logs.Redactor(os.environ.get(name) for name in (ENV_SECRET, ENV_TOKEN))
    oidc_token_file = os.environ.get(ENV_OIDC_TOKEN_FILE)
    redactor.add(peek_secret_file(oidc_token_file))
    learn_file = partial(_learn_file, redactor)
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
        if args.version:
            print(f"alikafka-exporter {__version__}")
            return EXIT_OK
        config_file = args.config_file or _env_path(os.environ.get(CONFIG_FILE_ENV))
        settings = load_settings(args.flags, os.environ, config_file, learn_file)
        logs.configure(settings.log.level, settings.log.format, redactor=redactor)
        reload = None
        if settings.demo:
            from exporter import demo  # noqa: PLC0415 - the simulator is loaded only when asked for

            settings, plan = demo.plan(settings)
        else:
            plan = _plan(settings, lambda provider: Learning(provider, redactor.add, (oidc_token_file,)))
            # Resolve once now so --check-config and start-up fail early on unreadable key files; --probe
            # resolves them itself and reports a failure as its first step (exit 1, not a config error).
            if not args.probe:
                asyncio.run(_resolve(plan.all_accounts))
            flags, environ = args.flags, dict(os.environ)
            reload = partial(_reload_settings, flags, environ, config_file, learn_file)
        if settings.web.config_file is not None:
            plan = dataclasses.replace(plan, web=webconfig.load(settings.web.config_file))
    except ConfigError as exc:
        return _config_error(exc.problems, redactor)
    except CredentialsError as exc:
        return _config_error([f"credentials: {exc}"], redactor)
    return _run(settings, plan, check_config=args.check_config, once=args.once, probe=args.probe, reload=reload,
                config_file=config_file, redact=redactor)


def _reload_settings(flags: dict[str, Any], environ: Mapping[str, str], config_file: Path | None,
                     learn_file: Callable[[str], None]) -> Settings:
    """The configuration again, from the same flags and environment and the file's current content."""
    return _check_targets(load_settings(flags, environ, config_file, learn_file))


def _learn_file(redactor: logs.Redactor, path: str) -> None:
    redactor.add(peek_secret_file(path))


def _env_path(value: str | None) -> Path | None:
    return Path(value) if value else None


if __name__ == "__main__":
    sys.exit(main())
