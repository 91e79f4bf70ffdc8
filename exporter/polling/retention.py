"""Retention: the earliest retained offset of every polled topic, and what it means for each group.

Each topic read by a polled group gets one GetTopicStatus call every ``retention.refresh`` through its account's
client and rate limit: asked soon when new, then in its own slot of the refresh. With the instance's retention
(MsgRetain, from the catalog), each poll gets the group's lost messages (``max(0, earliest - committed)``) and
retention margin.
A refused permission (RAM action ``alikafka:ListTopic``) is logged once with the action to grant; a failing call
keeps the last answer, and lag export never depends on any of this.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from types import MappingProxyType
from typing import Protocol

from exporter.cloud.errors import ApiError
from exporter.cloud.models import ConsumerProgress, TopicStatus
from exporter.config.settings import RetentionSettings
from exporter.logs import log_unexpected

log = logging.getLogger(__name__)

ACTION = "GetTopicStatus"
RAM_ACTION = "alikafka:ListTopic"  # https://www.alibabacloud.com/help/en/apsaramq-for-kafka/api-gettopicstatus
SYNC_EVERY = 5.0  # seconds between looks at which topics the polled groups read, at least...
SYNC_SHARE = 0.05  # ...this share of a refresh (15 s at 5m): each look walks every pair's topics
FIRST_SYNC = 1.0  # seconds between looks while no topic is known yet (the first polls are coming in)
FIRST_ROUND_GAP = 2.0  # new topics' first calls at most this far apart, so earliest offsets come soon after start
TopicRef = tuple[str, str, str, str]  # region, instance id, topic, account (whose credentials and limit it uses)
Earliest = Mapping[int, int]  # partition -> earliest retained offset


class TopicStatusSource(Protocol):
    """What the refresher needs of the API client (:class:`~exporter.cloud.client.AlikafkaClient` has it)."""

    async def get_topic_status(self, region: str, instance_id: str, topic: str, *,
                               account: str | None = None) -> tuple[TopicStatus, str | None]: ...


class RetentionView(Protocol):
    """What a poll's analysis reads: earliest retained offsets by topic, and each instance's retention."""

    def earliest(self, instance_id: str, topic: str) -> Earliest | None: ...

    def retention_seconds(self, instance_id: str) -> float | None: ...


def lost_messages(progress: ConsumerProgress, earliest: Callable[[str], Earliest | None]) -> dict[tuple[str, int], int]:
    """Messages deleted before the group read them, by (topic, partition): ``max(0, earliest - committed)``,
    for the partitions with both a committed offset and a known earliest offset."""
    lost: dict[tuple[str, int], int] = {}
    for topic in progress.topics:
        first = earliest(topic.topic)
        if first is None:
            continue
        for p in topic.partitions:
            start = first.get(p.partition)
            if start is not None and p.consumer_offset is not None:
                lost[(topic.topic, p.partition)] = max(0, start - p.consumer_offset)
    return lost


def retention_margin(retention: float | None, max_time_lag: float | None, losing: bool) -> float | None:
    """Seconds until the group's oldest unread message is deleted if it makes no progress: retention minus its
    max time lag, at least 0; 0 while messages are being lost; None when either number is unknown."""
    if losing:
        return 0.0
    if retention is None or max_time_lag is None or not math.isfinite(max_time_lag):
        return None
    return max(0.0, retention - max_time_lag)


class RetentionRefresher:
    """Earliest retained offsets of the polled topics, refreshed one topic at a time (a supervised worker)."""

    def __init__(
        self,
        client: TopicStatusSource,
        options: RetentionSettings,
        topics: Callable[[], Iterable[TopicRef]],
        retention_of: Callable[[str], float | None] = lambda _: None,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] | None = None,
    ) -> None:
        """``topics`` lists the (region, instance, topic, account) the polled groups read; ``retention_of`` gives an
        instance's retention in seconds (from the instance catalog)."""
        self._client = client
        self._options = options
        self._topics = topics
        self._retention_of = retention_of
        self._clock = clock
        self._sleep = sleep
        self._due: list[tuple[float, TopicRef]] = []  # heap; an entry is current while _slots agrees
        self._slots: dict[TopicRef, float] = {}
        self._second: dict[TopicRef, float] = {}  # a new topic's slot in the refresh, for its second call
        self._earliest: dict[tuple[str, str], Earliest] = {}
        self._denied: dict[str, float] = {}  # instance -> when the last refused call (or probe) was made
        self._failing: dict[TopicRef, str] = {}  # topic -> code of its last failure, for logging changes only
        self._denied_logged = False
        self._synced = -math.inf  # when the topics were last looked at
        self._wake = asyncio.Event()
        self.version = 0

    # --- the view a poll reads ----------------------------------------------------------
    def earliest(self, instance_id: str, topic: str) -> Earliest | None:
        """The topic's earliest retained offsets by partition, as last answered; None when never answered."""
        return self._earliest.get((instance_id, topic))

    def retention_seconds(self, instance_id: str) -> float | None:
        """The instance's message retention in seconds (MsgRetain), when the catalog knows it."""
        return self._retention_of(instance_id) if self._options.enabled else None

    def topic_count(self) -> int:
        """How many topics are being refreshed."""
        return len(self._slots)

    # --- control -----------------------------------------------------------------------
    def configure(self, options: RetentionSettings) -> None:
        """Follow a reloaded configuration (``retention.enabled``, ``retention.refresh``)."""
        if options == self._options:
            return
        self._options = options
        self._slots.clear()
        self._second.clear()
        self._due.clear()
        self._synced = -math.inf
        if not options.enabled and self._earliest:
            self._earliest.clear()
            self.version += 1
        self._wake.set()

    def sync(self) -> None:
        """Track the topics the polled groups read now, and drop the others. New ones are first asked soon (at
        most :data:`FIRST_ROUND_GAP` apart) and from their second call on in slots spread evenly over a refresh."""
        if not self._options.enabled:
            return
        wanted = set(self._topics())
        for ref in [r for r in self._slots if r not in wanted]:
            del self._slots[ref]
            self._second.pop(ref, None)
            self._failing.pop(ref, None)
            if self._earliest.pop((ref[1], ref[2]), None) is not None:
                self.version += 1
        new = sorted(wanted - self._slots.keys())
        now = self._clock()
        refresh = self._options.refresh
        spread = refresh / len(new) if new else 0.0
        for index, ref in enumerate(new):  # soon, then each in its own slot of the refresh from the second round
            self._schedule(ref, now + index * min(spread, FIRST_ROUND_GAP))
            self._second[ref] = now + refresh + index * spread

    def _schedule(self, ref: TopicRef, at: float) -> None:
        self._slots[ref] = at
        heapq.heappush(self._due, (at, ref))

    async def refresh_once(self) -> None:
        """Ask for every tracked topic once, now (``--once`` and tests)."""
        self.sync()
        for ref in sorted(self._slots):
            await self._refresh(ref)

    async def run(self) -> None:
        """Refresh each topic when its slot comes, and look for new topics every few seconds (until cancelled)."""
        while True:
            self._wake.clear()
            every = max(SYNC_EVERY, SYNC_SHARE * self._options.refresh) if self._slots else FIRST_SYNC
            if self._clock() - self._synced >= every:
                self.sync()
                self._synced = self._clock()
            now = self._clock()
            while self._due and self._due[0][0] <= now:
                at, ref = heapq.heappop(self._due)
                if self._slots.get(ref) != at:
                    continue  # rescheduled or no longer tracked
                await self._refresh(ref)
                if ref in self._slots:
                    second = self._second.pop(ref, None)
                    self._schedule(ref, max(second if second is not None else at + self._options.refresh,
                                            self._clock()))
            wait = every if not self._due else min(every, max(0.0, self._due[0][0] - self._clock()))
            if self._sleep is not None:
                await self._sleep(wait)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), wait)

    # --- one call ----------------------------------------------------------------------
    async def _refresh(self, ref: TopicRef) -> None:
        region, instance_id, topic, account = ref
        refused = self._denied.get(instance_id)
        now = self._clock()
        if refused is not None and now - refused < self._options.refresh:
            return  # the instance refuses: one of its topics a refresh asks whether that changed
        try:
            status, _ = await self._client.get_topic_status(region, instance_id, topic, account=account)
        except ApiError as exc:
            self._failed(ref, exc)
            return
        except Exception as exc:  # noqa: BLE001 - a bug, or an answer nobody foresaw: keep the last offsets
            if self._failing.get(ref) != "internal_error":
                log_unexpected(log, "topic status failed unexpectedly; its earliest offsets keep their last values",
                               exc, {"instance_id": instance_id, "topic": topic, "action": ACTION,
                                     "code": "internal_error"})
            self._failing[ref] = "internal_error"
            return
        if self._denied.pop(instance_id, None) is not None:
            log.info("topic status allowed again", extra={"instance_id": instance_id, "action": ACTION})
        if self._failing.pop(ref, None) is not None:
            log.info("topic status recovered", extra={"instance_id": instance_id, "topic": topic})
        if ref not in self._slots:
            return  # dropped while the call was out
        earliest = MappingProxyType(status.earliest())
        key = (instance_id, topic)
        if self._earliest.get(key) != earliest:
            self._earliest[key] = earliest
            self.version += 1

    def _failed(self, ref: TopicRef, exc: ApiError) -> None:
        _, instance_id, topic, account = ref
        fields = {"instance_id": instance_id, "topic": topic, "account": account, "action": ACTION, "code": exc.code,
                  "request_id": exc.request_id or "", "error": exc.message}
        if exc.kind == "forbidden":
            self._denied[instance_id] = self._clock()
            if not self._denied_logged:
                self._denied_logged = True
                log.warning(f"GetTopicStatus is not allowed: grant the RAM action {RAM_ACTION} to see earliest "
                            "offsets, lost messages and retention margins; lag export carries on",
                            extra={**fields, "grant": RAM_ACTION})
            return
        # a topic that is gone retains nothing any more
        if exc.kind == "not_found" and self._earliest.pop((instance_id, topic), None) is not None:
            self.version += 1
        if self._failing.get(ref) != exc.code:
            log.warning("topic status failed; its earliest offsets keep their last values", extra=fields)
        self._failing[ref] = exc.code
