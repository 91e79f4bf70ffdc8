"""Which pairs to poll: configured ones, plus those ``groups: all`` and ``instances: all`` find.

``instances: all`` lists a region's serving instances (GetInstanceList), ``groups: all`` an instance's
consumer groups (GetConsumerList, filtered by ``group_allow``/``group_deny``), at start and every
``discovery.refresh``, under the polls' rate limit. A failed listing keeps what the last one found, so a
flaky listing never makes series vanish. ``--shard I/N`` keeps the pairs whose stable hash is in shard I.
Each pair carries its target's account, labels and thresholds (a pair two targets yield: the first target's);
each account's instances are listed with its own credentials and budget (it sees only its own).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Awaitable, Callable, Sequence
from functools import partial

from exporter.cloud.client import ApiCaller, caller_for, parsed
from exporter.cloud.errors import ApiError
from exporter.cloud.models import InstanceInfo, parse_consumer_list, parse_instance_list
from exporter.config.settings import DEFAULT_ACCOUNT, Settings, Target, ThresholdSettings
from exporter.logs import log_unexpected
from exporter.targets.pair import Pair

log = logging.getLogger(__name__)

# Most GetConsumerList pages one instance's listing asks for (at the default page size of 100,
# 50,000 groups: far above alikafka's group quotas), so a server that pages wrongly cannot spend
# the rate budget forever.
MAX_PAGES = 500


def in_shard(pair: Pair, shard: tuple[int, int]) -> bool:
    """Stable across processes and restarts (not Python's salted hash)."""
    index, count = shard
    if count <= 1:
        return True
    digest = hashlib.blake2b(f"{pair.instance_id}\x00{pair.group}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % count == index


def parse_shard(text: str) -> tuple[int, int]:
    """``"I/N"`` to ``(I, N)`` (validated by the settings)."""
    index, count = text.split("/")
    return int(index), int(count)


class Discovery:
    """Resolves targets to pairs, keeping the last good answer of every listing."""

    def __init__(self, client: ApiCaller | None, targets: Sequence[Target], default_region: str | None,
                 shard: tuple[int, int] = (0, 1), page_size: int = 100,
                 max_pages: int = MAX_PAGES,
                 on_instances: Callable[[str, Sequence[InstanceInfo], str], None] | None = None,
                 thresholds: ThresholdSettings | None = None) -> None:
        self._client = client
        self._thresholds = thresholds or ThresholdSettings()  # the defaults a target's own thresholds override
        self._on_instances = on_instances  # every GetInstanceList answer (region, instances, account)
        self._targets = targets
        self._default_region = default_region
        self._shard = shard
        self._page_size = page_size
        self._max_pages = max_pages
        self._last: dict[tuple[str, str], list[str]] = {}  # (what, where) -> names listed last time
        self._failing: dict[tuple[str, str], str] = {}
        self._capped: set[str] = set()  # instances whose listing hit MAX_PAGES (warned once)
        self._unknown_statuses: set[str] = set()  # undocumented instance states seen (logged once each)
        self._overridden: set[Pair] = set()  # pairs whose later target's labels were not used (logged once each)

    @classmethod
    def of(cls, settings: Settings, client: ApiCaller | None = None,
           on_instances: Callable[[str, Sequence[InstanceInfo], str], None] | None = None) -> Discovery:
        """The discovery the settings describe (targets, region, shard, page size); no client: no listing."""
        return cls(client, settings.targets, settings.api.region, parse_shard(settings.shard),
                   settings.discovery.page_size, on_instances=on_instances, thresholds=settings.thresholds)

    def adopt(self, earlier: Discovery) -> None:
        """Start from what an earlier discovery (before a reload) listed, so a failing listing keeps it."""
        self._last = dict(earlier._last)
        self._failing = dict(earlier._failing)

    @property
    def needed(self) -> bool:
        """Whether any target has to be listed through the API."""
        return any(t.discovered for t in self._targets)

    def static_pairs(self) -> tuple[Pair, ...]:
        """The pairs known without any API call (explicit instances and groups), in this shard."""
        pairs = []
        for target in self._targets:
            if target.instance_id is not None and not isinstance(target.groups, str):
                region = target.region or self._default_region or ""
                pairs += [self._pair(target, target.instance_id, g, region) for g in target.groups]
        return tuple(p for p in self._first_of_each(pairs) if in_shard(p, self._shard))

    def _first_of_each(self, pairs: list[Pair]) -> list[Pair]:
        """Each pair once, as the first target yielding it has it; a later target that would give it other
        labels or thresholds is logged (once per pair), since its are not used."""
        first: dict[Pair, Pair] = {}
        for pair in pairs:
            kept = first.setdefault(pair, pair)
            differs = (kept.labels, kept.thresholds) != (pair.labels, pair.thresholds)
            if differs and pair not in self._overridden and len(self._overridden) < 1000:  # bounded log state
                self._overridden.add(pair)
                log.info("a pair two targets yield takes the first target's labels and thresholds",
                         extra={"instance_id": pair.instance_id, "group": pair.group,
                                "labels": dict(kept.labels), "ignored_labels": dict(pair.labels)})
        return list(first)

    def _pair(self, target: Target, instance_id: str, group: str, region: str) -> Pair:
        """A pair of ``target``, with its labels and thresholds."""
        return Pair(instance_id, group, region, _account(target), tuple(sorted(target.labels.items())),
                    self._thresholds.over(target.thresholds))

    @property
    def instance_regions(self) -> frozenset[str]:
        """The regions whose instances are listed (``instances: all``): each listed once per :meth:`resolve`."""
        return frozenset(region for _, region in self.instance_scopes)

    @property
    def instance_scopes(self) -> frozenset[tuple[str, str]]:
        """The (account, region) pairs whose instances are listed: each listed once per :meth:`resolve`."""
        return frozenset((_account(t), t.region or self._default_region or "")
                         for t in self._targets if t.instance_id is None)

    async def resolve(self) -> tuple[Pair, ...]:
        """Every pair of every target in this shard, listing what must be listed (each listing once)."""
        pairs: list[Pair] = []
        # (account, region) -> its running instances, listed once for all its targets
        running: dict[tuple[str, str], list[str]] = {}
        for target in self._targets:
            region = target.region or self._default_region or ""
            account = _account(target)
            prefix = "" if account == DEFAULT_ACCOUNT else f"{account}:"  # log lines stay as they were without
            if target.instance_id is not None:
                instances = [target.instance_id]
            else:
                if (account, region) not in running:
                    running[account, region] = await self._listed(
                        "instances", prefix + region, partial(self._running_instances, region, account))
                instances = running[account, region]
            for instance_id in instances:
                if isinstance(target.groups, str):
                    names = await self._listed("groups", f"{prefix}{region}/{instance_id}",
                                               partial(self._groups, region, instance_id, account))
                    names = [n for n in names if _wanted(n, target)]
                else:
                    names = list(target.groups)
                pairs += [self._pair(target, instance_id, name, region) for name in names]
        return tuple(p for p in self._first_of_each(pairs) if in_shard(p, self._shard))

    async def _listed(self, what: str, where: str, lister: Callable[[], Awaitable[list[str]]]) -> list[str]:
        key = (what, where)
        try:
            names = await lister()
        except ApiError as exc:
            if self._failing.get(key) != exc.code:
                log.warning("discovery listing failed; keeping what it found last time",
                            extra={"listing": what, "where": where, "code": exc.code,
                                   "request_id": exc.request_id or "", "error": str(exc)})
            self._failing[key] = exc.code
            return self._last.get(key, [])
        except Exception as exc:  # noqa: BLE001 - a bug, or an answer nothing foresaw: only this listing fails
            if self._failing.get(key) != "internal_error":
                log_unexpected(log, "discovery listing failed unexpectedly; keeping what it found last time", exc,
                               {"listing": what, "where": where, "code": "internal_error"})
            self._failing[key] = "internal_error"
            return self._last.get(key, [])
        if self._failing.pop(key, None) is not None:
            log.info("discovery listing recovered", extra={"listing": what, "where": where})
        if sorted(names) != sorted(self._last.get(key, [])):
            log.info("discovery found a change", extra={"listing": what, "where": where, "count": len(names)})
        self._last[key] = names
        return names

    def _api(self, account: str) -> ApiCaller:
        assert self._client is not None, "listing needs a client"
        return caller_for(self._client, account)

    async def _running_instances(self, region: str, account: str = DEFAULT_ACCOUNT) -> list[str]:
        response = await self._api(account).call("GetInstanceList", region, {"RegionId": region})
        listed = parsed(response, parse_instance_list)
        if self._on_instances is not None:
            self._on_instances(region, listed, account)
        for info in listed:
            new = info.unknown_status and info.unknown_status not in self._unknown_statuses
            if new and len(self._unknown_statuses) < 64:  # bounded: a hostile list cannot grow it for ever
                self._unknown_statuses.add(info.unknown_status)
                log.info("instance status not in the documented list; the instance is kept as serving",
                         extra={"instance_id": info.instance_id, "region": region, "status": info.unknown_status})
        left_out = {i.instance_id: i.status for i in listed if not i.serving}
        if left_out:
            log.debug("instances that cannot serve are not polled", extra={"region": region, "instances": left_out})
        return [i.instance_id for i in listed if i.serving]

    async def _groups(self, region: str, instance_id: str, account: str = DEFAULT_ACCOUNT) -> list[str]:
        """Every group of the instance, page by page, ending however the server pages.

        It ends at an empty page, at the reported ``Total``, at a short page when there is no total,
        and at a page that adds no name not seen yet: a server that ignores ``CurrentPage`` (older
        API versions had no paging) answers every page with the same groups, and would otherwise be
        asked for pages forever, each spending the rate budget. ``max_pages`` bounds the rest.
        """
        names: dict[str, None] = {}
        for page in range(1, self._max_pages + 1):
            params = {"RegionId": region, "InstanceId": instance_id, "CurrentPage": str(page),
                      "PageSize": str(self._page_size)}
            response = await self._api(account).call("GetConsumerList", region, params)
            listed, total = parsed(response, parse_consumer_list)
            before = len(names)
            names.update(dict.fromkeys(listed))
            if (not listed or len(names) == before or (total is not None and len(names) >= total)
                    or (total is None and len(listed) < self._page_size)):
                self._capped.discard(instance_id)
                return list(names)
        if instance_id not in self._capped:
            self._capped.add(instance_id)
            log.warning("group listing stopped at the page cap; groups beyond it are not polled",
                        extra={"instance_id": instance_id, "region": region, "pages": self._max_pages,
                               "page_size": self._page_size, "groups": len(names)})
        return list(names)


def _account(target: Target) -> str:
    return target.account or DEFAULT_ACCOUNT


def _wanted(name: str, target: Target) -> bool:
    if target.group_allow and not re.search(target.group_allow, name):
        return False
    return not (target.group_deny and re.search(target.group_deny, name))
