"""The live target set: the configured targets resolved to pairs, and again whenever a reload changes them.

Explicit pairs are known at once; ``groups: all`` and ``instances: all`` need a discovery loop, which a
reload replaces while keeping what the old loop had listed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence

from exporter.cloud.client import ApiCaller
from exporter.cloud.models import InstanceInfo
from exporter.config.settings import Settings
from exporter.targets.discovery import Discovery
from exporter.targets.pair import Pair


class LiveTargets:
    """Resolves the configured targets to pairs, again whenever a reload changes them.

    Explicit targets are applied at once; targets to list (``groups: all``, ``instances: all``) run a
    discovery loop that a reload replaces, carrying over what the old one had listed so a failing
    first listing after the reload keeps the pairs it knew.
    """

    def __init__(self, client: ApiCaller | None, settings: Settings, apply: Callable[[tuple[Pair, ...]], None],
                 on_instances: Callable[[str, Sequence[InstanceInfo], str], None] | None = None) -> None:
        self._client = client
        self._apply = apply
        self._on_instances = on_instances
        self._wake = asyncio.Event()
        self.discovery: Discovery | None = None
        self._set(settings)

    def _set(self, settings: Settings) -> None:
        discovery = Discovery.of(settings, self._client, self._on_instances)
        self._refresh = settings.discovery.refresh
        if discovery.needed:
            if self.discovery is not None:
                discovery.adopt(self.discovery)
            self.discovery = discovery
        else:
            self.discovery = None
            self._static = discovery.static_pairs()

    def configure(self, settings: Settings) -> None:
        """Use these targets from now on."""
        self._set(settings)
        if self.discovery is None:
            self._apply(self._static)
        self._wake.set()

    async def run(self) -> None:
        """List and apply every ``discovery.refresh`` while there are targets to list (until cancelled)."""
        while True:
            self._wake.clear()
            discovery = self.discovery
            if discovery is not None:
                pairs = await discovery.resolve()
                if discovery is self.discovery:  # not replaced while listing
                    self._apply(pairs)
            timeout = self._refresh if self.discovery is not None else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

