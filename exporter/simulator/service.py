"""The simulated alikafka service: actions, flow control and the record of requests served.

Answers are built on request from the workload at the current clock, in the documented JSON shape
(``Code`` int 200 on success; string codes on errors; lower-case ``state``; list wrappers). Flow control
is account-wide per action over sliding one-second windows (``Throttling.User`` with ``x-acs-retry-after``
in ms). Several accounts can be played (:meth:`Simulator.add_account`): each owns its instances and keys
and has its own windows; a key asking about another account's instance is refused as RAM refuses it.
"""

from __future__ import annotations

import random
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from exporter.simulator.auth import Authenticator, GatewayError, KeyPair
from exporter.simulator.faults import FaultRule
from exporter.simulator.retention import model_of
from exporter.simulator.retention import topic_status as retention_topic_status
from exporter.simulator.scenario import Scenario
from exporter.simulator.workload import INSTANCE_STATES, Group, Instance, PartitionTruth, truth

API_VERSION = "2019-09-16"
_ACCOUNT_PARAM = "\x00account"  # the caller's account, handed to an action with its parameters (never on the wire)
DEFAULT_QPS = {"GetConsumerProgress": 3.0}
OTHER_QPS = 100.0


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request the gateway saw."""

    at: float
    action: str
    params: Mapping[str, str]
    status: int
    code: str
    signature: str  # "v1", "v3" or "" when authentication failed
    access_key_id: str = ""  # the key that signed it ("" when authentication failed)
    account: str = ""  # that key's account


class Simulator:
    """The whole simulated service; the aiohttp app in :mod:`exporter.simulator.gateway` serves it."""

    def __init__(
        self,
        scenario: Scenario,
        access_keys: Mapping[str, str],
        *,
        seed: int | None = None,
        clock: Callable[[], float] = time.time,
        security_tokens: Mapping[str, str] | None = None,
        denied_actions: Mapping[str, frozenset[str]] | None = None,
    ) -> None:
        self.scenario = scenario
        self.clock = clock
        self.started = clock()
        self.instances: dict[str, Instance] = scenario.build(self.started, seed)
        tokens = security_tokens or {}
        denied = denied_actions or {}
        self.auth = Authenticator({
            key_id: KeyPair(secret, tokens.get(key_id), denied.get(key_id, frozenset()))
            for key_id, secret in access_keys.items()
        })
        self.rng = random.Random(scenario.spec.seed if seed is None else seed)  # noqa: S311 - simulation
        self.faults: list[FaultRule] = []
        self.retention = model_of((i.instance_id, i.msg_retain, i.segment_seconds) for i in scenario.spec.instances)
        for rule in scenario.faults():
            self.add_fault(rule)
        self.requests: list[RequestRecord] = []
        self.code_counts: dict[str, int] = {}  # every served request's code, unbounded (requests is trimmed)
        self.max_records = 100_000
        self._qps = dict(DEFAULT_QPS)
        self._windows: dict[tuple[str, str], deque[float]] = {}  # (account, action) -> recent admissions
        self.owners: dict[str, str] = {}  # instance id -> the account owning it (absent: the one default account)
        self.clock_offset = 0.0  # how far the gateway's clock runs ahead of the real one (negative: behind)

    def server_time(self) -> float:
        """The gateway's clock: what it checks request timestamps against and puts in ``Date``."""
        return self.clock() + self.clock_offset

    # --- control ---------------------------------------------------------------------------
    def add_fault(self, rule: FaultRule) -> None:
        """Start injecting a fault (``disk_full`` is no rule on answers: it starts deleting, see retention.py)."""
        if rule.kind == "disk_full":
            self.retention.disk_full(rule.instance_id, self.clock(), rule.delay)
            return
        self.faults.append(rule)

    def clear_faults(self) -> None:
        """Stop every fault (a disk that was full stops deleting; what it deleted stays deleted)."""
        self.faults.clear()
        self.retention.disk_cleared(self.clock())

    def earliest(self, instance_id: str, topic: str, partition: int, at: float | None = None) -> int | None:
        """The earliest retained offset of a partition now (or at ``at``); None for an unknown topic."""
        inst = self.instances[instance_id]
        found = inst.topic(topic)
        if found is None:
            return None
        return self.retention.earliest(instance_id, found.curve(partition), self.clock() if at is None else at)

    def add_account(self, name: str, keys: Mapping[str, str], instance_ids: Iterable[str]) -> None:
        """Play account ``name``: it owns ``instance_ids`` and the key pairs ``keys`` (id -> secret)."""
        for instance_id in instance_ids:
            if instance_id not in self.instances:
                raise ValueError(f"no instance {instance_id} in the scenario")
            self.owners[instance_id] = name
        for key_id, secret in keys.items():
            self.auth.keys[key_id] = KeyPair(secret, account=name)

    def account_of(self, key_id: str) -> str:
        """The account a key belongs to ("" for the one default account, or an unknown key)."""
        key = self.auth.keys.get(key_id)
        return key.account if key is not None else ""

    def set_qps_limit(self, action: str, qps: float) -> None:
        """Change the account-wide limit of one action."""
        self._qps[action] = qps

    def pairs(self) -> list[tuple[str, str, str]]:
        """Every (instance id, region, group) of the scenario, generated groups included."""
        return [(i.instance_id, i.region, g) for i in self.instances.values() for g in i.group_names()]

    def truth(self, instance_id: str, group: str, at: float | None = None) -> list[PartitionTruth]:
        """The true per-partition state of a group now (or at ``at``); empty once the group is deleted."""
        inst = self.instances[instance_id]
        found = inst.group(group)
        now = self.clock() if at is None else at
        if found is None or found.deleted <= now or found.never_committed is not None:
            return []
        return truth(inst, found, now)

    def record(self, action: str, params: Mapping[str, str], status: int, code: str, signature: str,
               access_key_id: str = "") -> None:
        """Remember a served request (bounded)."""
        if len(self.requests) >= self.max_records:
            del self.requests[: self.max_records // 2]
        self.code_counts[code] = self.code_counts.get(code, 0) + 1
        safe = {k: v for k, v in params.items() if k not in ("Signature", "SecurityToken")}
        self.requests.append(RequestRecord(self.clock(), action, safe, status, code, signature, access_key_id,
                                           self.account_of(access_key_id) if access_key_id else ""))

    # --- flow control ----------------------------------------------------------------------
    def admit(self, action: str, now: float, account: str = "") -> None:
        """Count a request against its account's limit of the action; raise Throttling.User when over it."""
        limit = max(1, int(self._qps.get(action, OTHER_QPS)))
        window = self._windows.setdefault((account, action), deque())
        while window and window[0] <= now - 1.0:
            window.popleft()
        if len(window) >= limit:
            retry_ms = max(1, int((window[0] + 1.0 - now) * 1000) + 1)
            raise GatewayError(400, "Throttling.User", "Request was denied due to user flow control.", retry_ms)
        window.append(now)

    # --- actions ---------------------------------------------------------------------------
    def handle(self, action: str, params: Mapping[str, str], key_id: str) -> dict[str, Any]:
        """Answer one authenticated, admitted request (a success body) or raise GatewayError."""
        if key_id in self.auth.keys and action in self.auth.keys[key_id].denied_actions:
            raise GatewayError(403, "Forbidden.RAM",
                               "User not authorized to operate on the specified resource, or this API doesn't "
                               "support RAM.")
        handler = _ACTIONS.get(action)
        if handler is None:
            raise GatewayError(404, "InvalidAction.NotFound", "Specified api is not found, please check your url "
                                                               "and method.")
        account = self.account_of(key_id)
        instance_id = params.get("InstanceId", "")
        if instance_id in self.instances and self.owners.get(instance_id, "") != account:
            # The key's account does not own the instance. A RAM policy that grants a user only some instances
            # (Resource acs:alikafka:*:*:instance/ID) refuses the others with the gateway's permission error,
            # Forbidden.RAM, HTTP 403 (the common code the client classifies as forbidden; Alibaba Cloud's
            # "Forbidden.RAM" troubleshooting entry: https://api.aliyun.com/troubleshoot?q=Forbidden.RAM).
            raise GatewayError(403, "Forbidden.RAM",
                               "User not authorized to operate on the specified resource, or this API doesn't "
                               "support RAM.")
        body = handler(self, {**params, _ACCOUNT_PARAM: account})
        return {"RequestId": new_request_id(), "Success": True, "Code": 200, "Message": "operation success.", **body}

    def _instance(self, params: Mapping[str, str]) -> Instance:
        region = _require(params, "RegionId")
        inst = self.instances.get(_require(params, "InstanceId"))
        # No public source shows the answer for an unknown instance id: INSTANCE_NOT_FOUND is the MQ (ONS)
        # OpenAPI error table's (https://www.alibabacloud.com/help/doc-detail/44425.htm); an instance that
        # cannot serve answers BIZ_INSTANCE_STATUS_ERROR, which Terraform's alikafka provider treats as
        # gone (aliyun/terraform-provider-alicloud alicloud/service_alicloud_alikafka.go).
        if inst is None or inst.region != region:
            raise GatewayError(400, "INSTANCE_NOT_FOUND", "The specified instance is not found.")
        if not inst.serving(self.clock()):
            raise GatewayError(400, "BIZ_INSTANCE_STATUS_ERROR", "The instance is not in service.")
        return inst

    def consumer_progress(self, params: Mapping[str, str]) -> dict[str, Any]:
        """GetConsumerProgress."""
        inst = self._instance(params)
        group = inst.group(_require(params, "ConsumerId"))
        if group is None or group.deleted <= self.clock():
            raise GatewayError(400, "BIZ_SUBSCRIPTION_NOT_FOUND", "The consumer group does not exist.")
        hide = params.get("HideLastTimestamp", "false").lower() == "true"
        if group.never_committed is not None:
            return empty_progress(group, self.clock())
        return {"ConsumerProgress": progress_body(inst, group, self.clock(), hide)}

    def consumer_list(self, params: Mapping[str, str]) -> dict[str, Any]:
        """GetConsumerList (paged)."""
        inst = self._instance(params)
        now = self.clock()
        names = [n for n in inst.group_names() if n not in inst.groups or inst.groups[n].deleted > now]
        if params.get("ConsumerId"):
            names = [n for n in names if n == params["ConsumerId"]]
        page, size, chunk = _page(params, names, default_size=100)
        rows = [{"ConsumerId": n, "InstanceId": inst.instance_id, "RegionId": inst.region, "Remark": "",
                 "AutomaticallyCreatedGroup": False, "CreateTime": int(self.started * 1000) - 86_400_000,
                 "Tags": {"TagVO": []}} for n in chunk]
        return {"ConsumerList": {"ConsumerVO": rows}, "Total": len(names), "CurrentPage": page, "PageSize": size}

    def instance_list(self, params: Mapping[str, str]) -> dict[str, Any]:
        """GetInstanceList (no paging, like the real action)."""
        region = _require(params, "RegionId")
        now = self.clock()
        rows = [{"InstanceId": i.instance_id, "Name": i.name, "RegionId": i.region, **_status_fields(i, now),
                 "SpecType": i.spec_type, "Series": i.series, "PaidType": 1, "DeployType": 5,
                 "UsedTopicCount": len(i.topic_names()), "UsedGroupCount": len(i.group_names()),
                 "MsgRetain": self.retention.of(i.instance_id).msg_retain}
                for i in self.instances.values()
                if i.region == region and self.owners.get(i.instance_id, "") == params.get(_ACCOUNT_PARAM, "")]
        return {"InstanceList": {"InstanceVO": rows}}

    def topic_list(self, params: Mapping[str, str]) -> dict[str, Any]:
        """GetTopicList (paged; CurrentPage and PageSize arrive as strings)."""
        inst = self._instance(params)
        now = self.clock()
        topics = [t for t in (inst.topic(n) for n in inst.topic_names()) if t is not None and t.exists(now)]
        names = [t.name for t in topics]
        page, size, chunk = _page(params, names, default_size=10)
        by_name = {t.name: t for t in topics}
        rows = [{"Topic": n, "PartitionNum": by_name[n].partition_count(now), "Status": 0, "StatusName": "Running",
                 "LocalTopic": by_name[n].local_storage, "CompactTopic": False, "Remark": ""} for n in chunk]
        return {"TopicList": {"TopicVO": rows}, "Total": len(names), "CurrentPage": page, "PageSize": size}

    def topic_status(self, params: Mapping[str, str]) -> dict[str, Any]:
        """GetTopicStatus."""
        inst = self._instance(params)
        now = self.clock()
        topic = inst.topic(_require(params, "Topic"))
        if topic is None or not topic.exists(now):
            raise GatewayError(400, "BIZ_TOPIC_NOT_FOUND", "The topic does not exist.")
        return {"TopicStatus": retention_topic_status(self.retention, inst, topic, now)}

def _status_fields(inst: Instance, now: float) -> dict[str, int]:
    """The instance's ViewInstanceStatusCode and deprecated ServiceStatus now, as far as its scenario sends them
    (a state the old field has no code for goes without it)."""
    view, service, _ = INSTANCE_STATES[inst.state_at(now)]
    fields = {}
    if inst.status_fields in ("both", "view"):
        fields["ViewInstanceStatusCode"] = view
    if inst.status_fields in ("both", "service") and service is not None:
        fields["ServiceStatus"] = service
    return fields


def empty_progress(group: Group, now: float) -> dict[str, Any]:
    """GetConsumerProgress's answer (without the envelope) for a group that never committed an offset."""
    state = group.state_at(now)
    shape = group.never_committed
    if shape == "absent":
        return {}
    if shape == "null":
        return {"ConsumerProgress": None}
    if shape == "empty_object":
        return {"ConsumerProgress": {}}
    progress: dict[str, Any] = {"TotalDiff": 0, "LastTimestamp": -1, "state": state,
                                "RebalanceInfoList": {"RebalanceInfoList": []}}
    if shape == "empty_list":
        progress["TopicList"] = {"TopicList": []}
    return {"ConsumerProgress": progress}


def new_request_id() -> str:
    """A RequestId in the service's format."""
    return str(uuid.uuid4()).upper()


def _require(params: Mapping[str, str], name: str) -> str:
    value = params.get(name, "")
    if not value:
        raise GatewayError(400, f"MissingParameter.{name}", f"The parameter {name} is required.")
    return value


def _page(params: Mapping[str, str], names: list[str], default_size: int) -> tuple[int, int, list[str]]:
    try:
        page = int(params.get("CurrentPage", "1"))
        size = int(params.get("PageSize", str(default_size)))
    except ValueError:
        raise GatewayError(400, "InvalidParameter", "CurrentPage and PageSize must be integers.") from None
    if page < 1 or not 1 <= size <= 10_000:
        raise GatewayError(400, "InvalidParameter", "CurrentPage or PageSize out of range.")
    return page, size, names[(page - 1) * size: page * size]


def progress_body(inst: Instance, group: Group, now: float, hide: bool) -> dict[str, Any]:
    """The ConsumerProgress object of one group at ``now``."""
    truths = truth(inst, group, now)
    members = group.members_at(now)
    topics: dict[str, list[dict[str, Any]]] = {}
    stamps: dict[str, int] = {}
    for index, t in enumerate(truths):
        stamp = -1
        topic = inst.topic(t.topic)
        no_stamp = hide or inst.serverless or (topic is not None and topic.local_storage)
        if not no_stamp and t.last_consumed_produce_time is not None:
            stamp = int(t.last_consumed_produce_time * 1000)
        member = members[index % len(members)] if members else ("", "", "")
        entry: dict[str, Any] = {
            "Partition": t.partition, "BrokerOffset": t.broker_offset, "ConsumerOffset": t.consumer_offset,
            "LastTimestamp": stamp, "Accumulate": t.lag,
            "MemberId": member[0], "ClientId": member[1], "ClientIp": member[2],
        }
        if group.missing_offsets and t.partition % 2 == 1:
            entry["ConsumerOffset"] = -1  # no usable committed offset: only Accumulate says the lag
            if t.partition % 4 == 3:
                del entry["BrokerOffset"]
        topics.setdefault(t.topic, []).append(entry)
        stamps[t.topic] = max(stamps.get(t.topic, -1), stamp)
    topic_list = [{"Topic": name, "TotalDiff": sum(p["Accumulate"] for p in parts), "LastTimestamp": stamps[name],
                   "OffsetList": {"OffsetList": parts}} for name, parts in topics.items()]
    rebalance = group.rebalance_at(now)
    records = [] if rebalance is None else [{
        "GroupId": group.name, "Generation": rebalance[0], "LastRebalanceTimestamp": int(rebalance[1] * 1000),
        "Reason": "membership changed", "RebalanceSuccess": rebalance[3],
        "RebalanceTimeConsuming": int(rebalance[2] * 1000),
    }]
    return {
        "TotalDiff": sum(t["TotalDiff"] for t in topic_list),
        "LastTimestamp": max(stamps.values(), default=-1),
        "state": group.state_at(now),
        "TopicList": {"TopicList": topic_list},
        "RebalanceInfoList": {"RebalanceInfoList": records},
    }


_ACTIONS: dict[str, Callable[[Simulator, Mapping[str, str]], dict[str, Any]]] = {
    "GetConsumerProgress": Simulator.consumer_progress,
    "GetConsumerList": Simulator.consumer_list,
    "GetInstanceList": Simulator.instance_list,
    "GetTopicList": Simulator.topic_list,
    "GetTopicStatus": Simulator.topic_status,
}
