"""The instance catalog: names, series and editions of the polled instances, for ``alikafka_instance_info``.

It calls GetInstanceList only for the regions discovery does not already list (it reuses discovery's
answers), at start and every ``discovery.refresh``, through the same client and rate limit as the polls.
It is descriptive only: a failing call (say, a RAM policy without ``alikafka:ListInstance``) keeps the
last answer and never affects lag polling. With several accounts, each account's instances of a region are
listed with its own credentials (a region is a "scope" of one account: an account sees only its instances).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType

from exporter.cloud.client import ApiCaller, caller_for, parsed
from exporter.cloud.errors import ApiError
from exporter.cloud.models import InstanceInfo, parse_instance_list
from exporter.config.settings import DEFAULT_ACCOUNT
from exporter.logs import log_unexpected
from exporter.targets.pair import Pair

log = logging.getLogger(__name__)

Scope = tuple[str, str]  # (account, region): one GetInstanceList answer


def _scope(where: str | Scope) -> Scope:
    """A region of the default account, or an (account, region) scope, as a scope."""
    return where if isinstance(where, tuple) else (DEFAULT_ACCOUNT, where)


def _fields(scope: Scope) -> dict[str, str]:
    account, region = scope
    return {"region": region} if account == DEFAULT_ACCOUNT else {"region": region, "account": account}


class InstanceCatalog:
    """Instance attributes by id for the instances being polled; ``version`` grows on each change."""

    def __init__(self, client: ApiCaller, regions: Iterable[str | Scope], instance_ids: Iterable[str],
                 refresh: float, fed: Iterable[str | Scope] = ()) -> None:
        """``regions`` and ``fed`` are regions of the default account or (account, region) scopes."""
        self._client = client
        self._regions = frozenset(_scope(r) for r in regions)
        self._wanted = frozenset(instance_ids)
        self._refresh = refresh
        self._fed = frozenset(_scope(r) for r in fed)  # scopes discovery lists: described from its answers
        self._listed: dict[Scope, Mapping[str, InstanceInfo]] = {}  # scope -> its last good answer, by id
        self._failing: dict[Scope, str] = {}
        self._wake = asyncio.Event()
        self.instances: Mapping[str, InstanceInfo] = MappingProxyType({})
        self.version = 0

    @property
    def own_regions(self) -> tuple[Scope, ...]:
        """The (account, region) scopes the catalog lists itself (the polled pairs' that discovery does not list)."""
        return tuple(sorted(self._regions - self._fed))

    def configure(self, refresh: float, fed: Iterable[str | Scope]) -> None:
        """Follow a reloaded configuration: its ``discovery.refresh`` and the regions discovery lists."""
        self._refresh = refresh
        self._fed = frozenset(_scope(r) for r in fed)
        self._wake.set()

    def track(self, pairs: Iterable[Pair]) -> None:
        """Describe these pairs' instances, in these pairs' regions only, from now on."""
        pairs = list(pairs)
        self._regions = frozenset((p.account, p.region) for p in pairs)
        self._wanted = frozenset(p.instance_id for p in pairs)
        for region in [r for r in self._listed if r not in self._regions]:
            del self._listed[region]
            self._failing.pop(region, None)
        if any(r not in self._listed for r in self.own_regions):
            self._wake.set()  # a new region of our own: list it now, not a whole refresh later
        self._publish()

    def observe(self, region: str, listed: Sequence[InstanceInfo], account: str = DEFAULT_ACCOUNT) -> None:
        """A GetInstanceList answer discovery got: the account's instances of the region as of now."""
        self._listed[account, region] = {i.instance_id: i for i in listed}
        self._publish()

    async def refresh_once(self, *, missing_only: bool = False) -> None:
        """Ask each region of our own once (or only those never answered); a failing one keeps its last answer."""
        for scope in self.own_regions:
            if missing_only and scope in self._listed:
                continue
            account, region = scope
            try:
                response = await caller_for(self._client, account).call("GetInstanceList", region,
                                                                        {"RegionId": region})
                listed = parsed(response, parse_instance_list)
            except ApiError as exc:
                self._failed(scope, exc)
                continue
            except Exception as exc:  # noqa: BLE001 - a bug, or an answer nobody foresaw: keep the last list
                if self._failing.get(scope) != "internal_error":
                    log_unexpected(log, "instance list failed unexpectedly; alikafka_instance_info keeps its last "
                                   "values", exc, {**_fields(scope), "action": "GetInstanceList",
                                                   "code": "internal_error"})
                self._failing[scope] = "internal_error"
                continue
            if self._failing.pop(scope, None) is not None:
                log.info("instance list recovered", extra=_fields(scope))
            if scope in self._regions:  # not removed while the call was out
                self._listed[scope] = {i.instance_id: i for i in listed}
        self._publish()

    def _publish(self) -> None:
        found = {i: info for region in sorted(self._regions) for i, info in self._listed.get(region, {}).items()
                 if i in self._wanted}
        if found != dict(self.instances):
            self.instances = MappingProxyType(found)
            self.version += 1

    def _failed(self, scope: Scope, exc: ApiError) -> None:
        fields = {**_fields(scope), "action": "GetInstanceList", "code": exc.code,
                  "request_id": exc.request_id or "", "error": exc.message}
        if self._failing.get(scope) != exc.code:
            log.warning("instance list failed; alikafka_instance_info keeps its last values", extra=fields)
        self._failing[scope] = exc.code

    async def run(self) -> None:
        """List our own regions every ``refresh`` seconds, and a new one at once (until cancelled)."""
        last_full = -math.inf
        while True:
            self._wake.clear()
            started = time.monotonic()
            full = started >= last_full + self._refresh
            await self.refresh_once(missing_only=not full)
            if full:
                last_full = started
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.0, last_full + self._refresh - time.monotonic()))
