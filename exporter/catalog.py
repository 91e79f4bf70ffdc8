"""The instance catalog: names, series and editions of the polled instances, for ``alikafka_instance_info``.

One GetInstanceList call per region of the configured targets, at start and then every
``refresh`` seconds, through the same client (so the same rate limit) as the polls. The answer is
descriptive only: when the call fails (for example a RAM policy without ``alikafka:ListInstance``)
the last known catalog stays, the failure is logged once, and lag polling is unaffected.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Protocol

from exporter.client import ApiResponse
from exporter.errors import ApiError, MalformedResponseError
from exporter.models import InstanceInfo, ParseError, parse_instance_list
from exporter.snapshot import Pair

log = logging.getLogger(__name__)

REFRESH_SECONDS = 600.0


class ApiCaller(Protocol):
    """The slice of the client the catalog needs."""

    async def call(self, action: str, region: str, params: Mapping[str, str]) -> ApiResponse: ...


class InstanceCatalog:
    """Instance attributes by id for the instances being polled; ``version`` grows on each change."""

    def __init__(self, client: ApiCaller, regions: Iterable[str], instance_ids: Iterable[str],
                 refresh: float = REFRESH_SECONDS) -> None:
        self._client = client
        self._regions = tuple(sorted(set(regions)))
        self._wanted = frozenset(instance_ids)
        self._refresh = refresh
        self._failing: dict[str, str] = {}
        self.instances: Mapping[str, InstanceInfo] = MappingProxyType({})
        self.version = 0

    def track(self, pairs: Iterable[Pair]) -> None:
        """Describe these pairs' instances from now on (discovery changed them)."""
        pairs = list(pairs)
        self._regions = tuple(sorted({p.region for p in pairs} | set(self._regions)))
        self._wanted = frozenset(p.instance_id for p in pairs)

    async def refresh_once(self) -> None:
        """Ask every region once; keep a region's last answer when its call fails."""
        found = dict(self.instances)
        for region in self._regions:
            try:
                response = await self._client.call("GetInstanceList", region, {"RegionId": region})
                listed = parse_instance_list(response.body)
            except ParseError as exc:
                self._failed(region, MalformedResponseError("malformed_response", str(exc)))
                continue
            except ApiError as exc:
                self._failed(region, exc)
                continue
            if self._failing.pop(region, None) is not None:
                log.info("instance list recovered", extra={"region": region})
            for stale in [i for i, info in found.items() if info.region == region]:
                del found[stale]
            found.update({i.instance_id: i for i in listed if i.instance_id in self._wanted})
        if found != dict(self.instances):
            self.instances = MappingProxyType(found)
            self.version += 1

    def _failed(self, region: str, exc: ApiError) -> None:
        fields = {"region": region, "action": "GetInstanceList", "code": exc.code,
                  "request_id": exc.request_id or "", "error": exc.message}
        if self._failing.get(region) != exc.code:
            log.warning("instance list failed; alikafka_instance_info keeps its last values", extra=fields)
        self._failing[region] = exc.code

    async def run(self) -> None:
        """Refresh forever (until cancelled)."""
        while True:
            await self.refresh_once()
            await asyncio.sleep(self._refresh)
