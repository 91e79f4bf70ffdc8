"""The accounts a process polls with: each one's credential provider and API budget, and the client they share.

The API's rate limit and permissions belong to an Alibaba Cloud account, so each account gets its own rate
limiter and concurrency limit; the HTTP session (and the transport the credential providers send through)
stays one per process. Without ``accounts`` in the configuration there is one account, ``default``: the
top-level credentials and ``api.max_qps``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from exporter.cloud.client import AlikafkaClient
from exporter.cloud.credentials import CredentialProvider
from exporter.cloud.ratelimit import RateLimiter
from exporter.cloud.stats import ApiStats
from exporter.cloud.transport import PlainTransport
from exporter.config.settings import DEFAULT_ACCOUNT, ApiSettings, Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Account:
    """One account: its name (the ``account`` label), credentials and budget."""

    name: str
    credentials: CredentialProvider
    max_qps: float
    max_concurrency: int


def accounts_of(settings: Settings, providers: Mapping[str, CredentialProvider]) -> tuple[Account, ...]:
    """The accounts of ``providers`` (by name, in their order) with their budgets from the settings."""
    return tuple(Account(name, provider, *settings.account_limits(name)) for name, provider in providers.items())


def single_account(api: ApiSettings, credentials: CredentialProvider) -> tuple[Account, ...]:
    """Today's one account: the top-level credentials and ``api.max_qps`` (the demo, and tests)."""
    return (Account(DEFAULT_ACCOUNT, credentials, api.max_qps, api.max_concurrency),)


def open_client(options: ApiSettings, accounts: Sequence[Account], stats: ApiStats,
                transport: PlainTransport) -> AlikafkaClient:
    """One client with a lane per account, each with a rate limiter of its own budget (not opened yet)."""
    if not accounts:
        raise ValueError("at least one account")
    limiters = {}
    for account in accounts:
        limiters[account.name] = limiter = RateLimiter(account.max_qps)
        if limiter.max_qps != account.max_qps:
            key = "api.max_qps" if account.name == DEFAULT_ACCOUNT else f"accounts.{account.name}.max_qps"
            log.warning(f"{key} is enforced rounded down to whole requests per second",
                        extra={"account": account.name, "max_qps": account.max_qps,
                               "enforced_qps": limiter.max_qps})
    first, *rest = accounts
    client = AlikafkaClient(options, first.credentials, limiters[first.name], stats, transport=transport,
                            account=first.name, max_concurrency=first.max_concurrency)
    for account in rest:
        client.add_account(account.name, account.credentials, limiters[account.name], account.max_concurrency)
    return client
