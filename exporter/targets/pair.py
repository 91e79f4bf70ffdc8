"""One instance/consumer-group pair to poll: what the targets resolve to, and the key of every later stage."""

from __future__ import annotations

from dataclasses import dataclass

from exporter.config.settings import DEFAULT_ACCOUNT


@dataclass(frozen=True, slots=True, order=True)
class Pair:
    """One instance/consumer-group pair to poll, with the region its API calls go to and the account they use."""

    instance_id: str
    group: str
    region: str
    account: str = DEFAULT_ACCOUNT
