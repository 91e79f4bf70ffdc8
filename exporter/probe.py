"""``--probe``: one call of each action a configuration uses, reported for the person setting it up.

It answers the first questions about a real account: which credentials were found, and whether the
endpoint, signature, clock and RAM policy let each action through with an answer of the expected shape.
Each call is one attempt without retry, so the report shows the first answer. The report is meant for a
ticket: field names and list sizes, never values, secrets or names the configuration does not hold.
"""

from __future__ import annotations

import re
import textwrap
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from exporter.app import Plan
from exporter.cloud.accounts import open_client
from exporter.cloud.client import AlikafkaClient, ApiResponse
from exporter.cloud.credentials import CredentialProvider, Credentials, CredentialsError
from exporter.cloud.decoding import lookup
from exporter.cloud.errors import CLOCK_SKEW_CODES, ApiError
from exporter.cloud.models import (
    ConsumerProgress,
    InstanceInfo,
    ParseError,
    as_list,
    parse_consumer_list,
    parse_consumer_progress,
    parse_instance_list,
)
from exporter.cloud.stats import ApiStats
from exporter.config.settings import DEFAULT_ACCOUNT, Settings, Target
from exporter.logs import Redactor
from exporter.targets.pair import Pair

Outcome = Literal["ok", "failed", "skipped"]
T = TypeVar("T")

# The RAM action each call needs, from each API's "authorization information" table:
# https://www.alibabacloud.com/help/en/message-queue-for-apache-kafka/latest/getconsumerprogress (ListGroup),
# https://www.alibabacloud.com/help/en/apsaramq-for-kafka/api-gettopicstatus (ListTopic). No public page
# seen names GetInstanceList's action; ListInstance is the family's pattern, so the report says it is a guess.
RAM_ACTIONS = {
    "GetConsumerProgress": "alikafka:ListGroup",
    "GetConsumerList": "alikafka:ListGroup",
    "GetTopicStatus": "alikafka:ListTopic",
    "GetInstanceList": "alikafka:ListInstance",
}
UNCONFIRMED_RAM_ACTIONS = frozenset({"GetInstanceList"})

_SIGNATURES = {"v3": "v3 (ACS3-HMAC-SHA256)", "v1": "v1 (HMAC-SHA1)"}
_LABEL_WIDTH = 13
_WIDTH = 118
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]{0,63}")
_ENUM_VALUE = re.compile(r"[A-Za-z0-9_.-]{1,32}")
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_MAX_SHAPE_LINES = 14
_MAX_SHAPE_DEPTH = 8
_MAX_KEYS = 60  # an object with more keys is a map whose keys are values (names), not fields
_SAMPLE = 1000  # instance rows whose status codes are counted
_CLOCK_WINDOW = 900.0  # the gateway's timestamp tolerance, seconds


@dataclass
class Step:
    """One block of the report: a title, whether it worked, and labelled lines."""

    title: str
    outcome: Outcome = "ok"
    rows: list[tuple[str, str]] = field(default_factory=list)

    def add(self, label: str, value: str) -> None:
        """Append a line (a value may span several lines)."""
        self.rows.append((label, value))

    def fail(self, fix: str) -> None:
        """Mark the step failed with what to do about it."""
        self.outcome = "failed"
        self.add("fix", fix)


@dataclass
class Report:
    """The whole probe: a heading and one step per credential resolution or API call."""

    heading: str
    steps: list[Step]

    @property
    def exit_code(self) -> int:
        """0 when every step worked (or was rightly skipped), else 1."""
        return 1 if any(s.outcome == "failed" for s in self.steps) else 0

    def render(self) -> str:
        """Plain text, one block per step, labels aligned; ends with a one-line result."""
        lines = [self.heading, ""]
        for step in self.steps:
            lines.append(f"{step.title:<24}{step.outcome.upper()}")
            for label, value in step.rows:
                lines += _wrap(label, value)
            lines.append("")
        failed = [s.title for s in self.steps if s.outcome == "failed"]
        calls = [s for s in self.steps if not s.title.startswith("credentials") and s.outcome != "skipped"]
        if failed:
            lines.append(f"result: FAILED ({', '.join(failed)}): see the fix lines above; exit 1")
        else:
            lines.append(f"result: OK, credentials and {len(calls)} call{'s' if len(calls) != 1 else ''} worked; "
                         "exit 0")
        return "\n".join(lines) + "\n"


def _wrap(label: str, value: str) -> list[str]:
    first = f"  {label:<{_LABEL_WIDTH}}"
    indent = " " * len(first)
    out: list[str] = []
    for n, text in enumerate(value.splitlines() or [""]):
        head = first if n == 0 else indent
        out += textwrap.wrap(text, _WIDTH, initial_indent=head, subsequent_indent=indent + "  ",
                             break_long_words=False, break_on_hyphens=False) or [head.rstrip()]
    return out


@dataclass
class _Answer:
    response: ApiResponse | None = None
    error: ApiError | None = None
    unexpected: str | None = None  # the type of an exception the client should have turned into an ApiError
    latency: float | None = None
    skew: float | None = None


async def run_probe(settings: Settings, plan: Plan, *, demo: bool = False) -> Report:
    """Resolve the credentials and make one call of each action the configuration uses."""
    heading = (f"alikafka-exporter --probe: one call of each action this configuration uses "
               f"(one attempt each, no retry, timeout {settings.api.timeout:g}s)")
    if demo:
        heading += "\n(demo mode: against the built-in simulated alikafka API, with a generated key)"
    stats = ApiStats()
    # The plan's API options are the settings' (the demo's too), here with retries off: a probe shows the
    # first answer, not the one a retry got.
    options = settings.api.model_copy(update={"max_retries": 0})
    async with open_client(options, plan.all_accounts, stats, plan.transport) as client:
        prober = _Prober(settings, plan, client, stats)
        steps = await prober.run()
    return Report(heading, [prober.masked(step) for step in steps])


class _Prober:
    def __init__(self, settings: Settings, plan: Plan, client: AlikafkaClient, stats: ApiStats) -> None:
        self._settings = settings
        self._plan = plan
        self._client = client
        self._stats = stats
        self._secrets = Redactor()
        # Every account's credentials are resolved and shown; each call is made with the account of the
        # target or pair it is about.
        self._providers = {a.name: a.credentials for a in plan.all_accounts}
        self._hidden: dict[str, str] = {}  # listed (not configured) names -> how the report calls them
        self._configured = {p.instance_id for p in plan.pairs} | {p.group for p in plan.pairs}
        for target in plan.targets:
            self._configured |= {target.instance_id} if target.instance_id else set()
            self._configured |= set(target.groups) if not isinstance(target.groups, str) else set()

    # --- the plan ------------------------------------------------------------------------------
    async def run(self) -> list[Step]:
        """Every step, in order; a step that needs what a failed one would have given is skipped."""
        steps: list[Step] = []
        resolved = True
        for name, provider in self._providers.items():
            title = "credentials" if len(self._providers) == 1 else f"credentials {name}"
            step, creds = await self._credentials(title, provider)
            steps.append(step)
            resolved = resolved and creds is not None
        groups_target = next((t for t in self._plan.targets if t.groups == "all"), None)
        if not resolved:
            steps += [_skipped(a, "needs credentials") for a in self._actions(groups_target)]
            return steps
        pair, why_none = await self._listings(steps, groups_target)
        if pair is None:
            if any(s.outcome == "failed" for s in steps):
                steps.append(_skipped("GetConsumerProgress", f"{why_none}: see the failure above"))
            else:
                step = Step("GetConsumerProgress")
                step.fail(f"{why_none}, so the exporter would export nothing: check the targets' regions, "
                          "group_allow/group_deny and that the instances are serving")
                steps.append(step)
            steps.append(_skipped("GetTopicStatus", "needs a topic from GetConsumerProgress"))
            return steps
        step, progress = await self._consumer_progress(pair, bool(self._plan.pairs))
        steps.append(step)
        if progress is None:
            steps.append(_skipped("GetTopicStatus", "needs a topic from GetConsumerProgress: see the failure above"))
        elif not progress.topics:
            steps.append(_skipped("GetTopicStatus", "the group has no topic with committed offsets yet, so there "
                                                    "is no topic to ask about; run the probe again once it has"))
        else:
            steps.append(await self._topic_status(pair, progress))
        return steps

    async def _listings(self, steps: list[Step], groups_target: Target | None) -> tuple[Pair | None, str]:
        """GetInstanceList and, for ``groups: all``, GetConsumerList; the pair to poll, or why there is none."""
        first = self._plan.pairs[0] if self._plan.pairs else None
        listing_target = next((t for t in self._plan.targets if t.instances == "all"), None)
        if groups_target is not None and groups_target.instance_id is None:
            listing_target = groups_target  # its instances come from the listing
        if first is None and listing_target is None and groups_target is None:
            steps.append(_skipped("GetInstanceList", "no pair to describe"))
            return None, "this shard (--shard) has no pair to poll"
        # The instances: all listing, else the catalog's own call for the first pair's region.
        serving: list[str] | None = None
        if listing_target is not None:
            step, serving = await self._instance_list(self._region(listing_target), None, _account(listing_target))
        else:
            known = first.instance_id if first is not None else groups_target.instance_id if groups_target else None
            region = first.region if first is not None else self._region(groups_target)
            account = first.account if first is not None else _account(groups_target)
            step, _ = await self._instance_list(region, known or "", account)
        steps.append(step)
        if groups_target is not None:
            step, listed = await self._consumer_list(groups_target, serving, step.outcome)
            steps.append(step)
            if first is None and listed:
                return Pair(listed[0][0], listed[0][1], self._region(groups_target), _account(groups_target)), ""
            return first, ("the group listing gave no group to poll" if step.outcome != "skipped"
                           else "needs the group listing")
        if first is None and listing_target is not None:
            return self._listed_pair(listing_target, serving)
        return first, "no pair to poll"

    def _listed_pair(self, target: Target, serving: list[str] | None) -> tuple[Pair | None, str]:
        """The first serving instance with the first configured group of an ``instances: all`` target."""
        if serving is None:
            return None, "needs the instance listing"
        if serving and not isinstance(target.groups, str):
            return Pair(serving[0], target.groups[0], self._region(target), _account(target)), ""
        return None, "the instance listing gave no serving instance"

    def _actions(self, groups_target: Target | None) -> list[str]:
        actions = ["GetInstanceList"]
        if groups_target is not None:
            actions.append("GetConsumerList")
        return [*actions, "GetConsumerProgress", "GetTopicStatus"]

    def _region(self, target: Target | None) -> str:
        region = (target.region if target is not None else None) or self._settings.api.region
        return region or ""

    # --- the steps -----------------------------------------------------------------------------
    async def _credentials(self, title: str, provider: CredentialProvider) -> tuple[Step, Credentials | None]:
        step = Step(title)
        started = time.monotonic()
        try:
            creds = await provider.get()
        except CredentialsError as exc:
            step.add("source", provider.source)
            step.add("error", str(exc))
            step.fail(_credentials_fix(provider.source))
            return step, None
        self._secrets.add(creds.access_key_secret.reveal(),
                          creds.security_token.reveal() if creds.security_token is not None else None)
        step.add("source", provider.source)
        step.add("access key", _mask_key(creds.access_key_id))
        token = "yes (STS credentials)" if creds.security_token is not None else "no"
        if creds.expiration is not None:
            token += f", expires in {max(0.0, creds.expiration - time.time()) / 60:.0f} min"
        step.add("STS token", token)
        step.add("latency", _ms(time.monotonic() - started))
        return step, creds

    async def _instance_list(self, region: str, known: str | None,
                             account: str = DEFAULT_ACCOUNT) -> tuple[Step, list[str] | None]:
        """The ``instances: all`` listing (``known`` None), or the catalog's call describing ``known``."""
        step = Step("GetInstanceList")
        why = "instances: all" if known is None else "instance names and editions for alikafka_instance_info"
        step.add("request", f"region {region}: {why}")
        answer = await self._call(step, "GetInstanceList", region, {"RegionId": region}, account)
        if answer.response is None:
            if known is not None and answer.error is not None and answer.error.kind == "forbidden":
                step.add("note", "lag polling works without this call; only alikafka_instance_info needs it")
            return step, None
        listed = _parsed(step, parse_instance_list, answer.response.body)
        if listed is None:
            return step, None
        serving = [i.instance_id for i in listed if i.serving]
        step.add("found", f"{len(listed)} instance{'s' if len(listed) != 1 else ''}, {len(serving)} serving "
                          f"(as discovery counts them){_status_values(answer.response.body)}")
        if known is not None:
            step.add("configured", _instance_state(known, region, listed))
        for n, instance_id in enumerate(serving, 1):
            self._hide(instance_id, f"<serving instance {n} of the list>")
        return step, serving

    async def _consumer_list(self, target: Target, serving: list[str] | None,
                             listing: Outcome) -> tuple[Step, list[tuple[str, str]]]:
        region = self._region(target)
        if target.instance_id is not None:
            instance = target.instance_id
        elif serving:
            instance = serving[0]
        else:
            why = "needs a serving instance from GetInstanceList"
            return _skipped("GetConsumerList", why if listing != "ok" else why + " (it listed none)"), []
        step = Step("GetConsumerList")
        size = self._settings.discovery.page_size
        step.add("request", f"instance {self._name(instance)} in {region}, page 1 of up to {size} groups "
                            "(groups: all)")
        params = {"RegionId": region, "InstanceId": instance, "CurrentPage": "1", "PageSize": str(size)}
        answer = await self._call(step, "GetConsumerList", region, params, _account(target))
        if answer.response is None:
            return step, []
        page = _parsed(step, parse_consumer_list, answer.response.body)
        if page is None:
            return step, []
        names, total = page
        wanted = [n for n in names if _wanted(n, target)]
        found = f"{len(names)} group{'s' if len(names) != 1 else ''} on page 1"
        found += f" (Total {total})" if total is not None else " (no Total in the answer)"
        if target.group_allow or target.group_deny:
            found += f", {len(wanted)} kept by group_allow/group_deny"
        step.add("found", found)
        for n, name in enumerate(wanted, 1):
            self._hide(name, f"<group {n} of the list>")
        return step, [(instance, name) for name in wanted]

    async def _consumer_progress(self, pair: Pair, configured: bool) -> tuple[Step, ConsumerProgress | None]:
        step = Step("GetConsumerProgress")
        which = "the first configured pair" if configured else "the first pair the listings found"
        step.add("request", f"instance {self._name(pair.instance_id)}, group {self._name(pair.group)} "
                            f"in {pair.region} ({which})")
        params = {"RegionId": pair.region, "InstanceId": pair.instance_id, "ConsumerId": pair.group}
        if self._settings.api.hide_last_timestamp:
            params["HideLastTimestamp"] = "true"
        answer = await self._call(step, "GetConsumerProgress", pair.region, params, pair.account)
        if answer.response is None:
            return step, None
        progress = _parsed(step, parse_consumer_progress, answer.response.body)
        if progress is None:
            return step, None
        partitions = sum(len(t.partitions) for t in progress.topics)
        step.add("found", f"{len(progress.topics)} topic{'s' if len(progress.topics) != 1 else ''}, {partitions} "
                          f"partition{'s' if partitions != 1 else ''}, {len(progress.member_ids)} "
                          f"member{'s' if len(progress.member_ids) != 1 else ''}, state {progress.state}")
        for n, topic in enumerate(progress.topics, 1):
            self._hide(topic.topic, f"<topic {n} of the answer>")
        return step, progress

    async def _topic_status(self, pair: Pair, progress: ConsumerProgress) -> Step:
        step = Step("GetTopicStatus")
        topic = progress.topics[0].topic
        step.add("request", f"topic 1 of {len(progress.topics)} in GetConsumerProgress's answer (not named here), "
                            f"instance {self._name(pair.instance_id)} in {pair.region}")
        params = {"RegionId": pair.region, "InstanceId": pair.instance_id, "Topic": topic}
        answer = await self._call(step, "GetTopicStatus", pair.region, params, pair.account)
        if answer.response is not None:
            status = lookup(answer.response.body, "TopicStatus")
            try:
                table = as_list(lookup(status, "OffsetTable") if isinstance(status, Mapping) else None, "OffsetTable")
            except ParseError:
                table = []
            step.add("found", f"{len(table)} partition{'s' if len(table) != 1 else ''} in TopicStatus.OffsetTable")
        step.add("note", "GetTopicStatus gives the earliest retained offsets (RAM action alikafka:ListTopic); "
                         "lag polling does not need it")
        return step

    # --- one call --------------------------------------------------------------------------------
    async def _call(self, step: Step, action: str, region: str, params: Mapping[str, str],
                    account: str = DEFAULT_ACCOUNT) -> _Answer:
        """One attempt of ``action`` with ``account``'s credentials; fills in the call's lines, and the fix when it
        failed."""
        if len(self._providers) > 1:
            step.add("account", account)
        step.add("endpoint", self._settings.api.endpoint_for(region))
        step.add("signature", _SIGNATURES.get(self._settings.api.signature, self._settings.api.signature))
        answer = _Answer()
        before = self._duration(action)
        self._client.clock_offset = None  # measured again from this answer's Date header
        try:
            answer.response = await self._client.call(action, region, params, account=account)
        except ApiError as exc:
            answer.error = exc
        except Exception as unexpected:  # noqa: BLE001 - a probe reports whatever happened, never dies of it
            answer.unexpected = type(unexpected).__name__
        after = self._duration(action)
        answer.latency = after - before if after > before else None
        answer.skew = self._client.clock_offset
        if answer.response is not None:
            step.add("HTTP status", "200")
            step.add("code", "none (success)")
            step.add("RequestId", answer.response.request_id or "none in the answer")
        elif answer.error is not None:
            error = answer.error
            step.add("HTTP status", str(error.http_status) if error.http_status is not None else "none (no answer)")
            step.add("code", error.code)
            step.add("RequestId", error.request_id or "none in the answer")
        else:
            step.add("HTTP status", "unknown")
            step.add("code", f"unexpected error ({answer.unexpected})")
        step.add("latency", _ms(answer.latency) if answer.latency is not None else "not measured (no request sent)")
        no_answer = answer.error is not None and answer.error.http_status is None
        step.add("clock skew", "not measured (no answer)" if no_answer else _skew(answer.skew))
        if answer.response is not None:
            step.add("answer", "\n".join(answer_shape(answer.response.body)))
        elif answer.error is not None:
            if answer.error.message:
                step.add("message", self._message(answer.error.message))
            provider = self._providers.get(account)
            step.fail(fix_for(action, answer.error, self._settings, provider.source if provider is not None else ""))
        else:
            step.fail(f"the client failed in an unexpected way ({answer.unexpected}): report it, with this output, "
                      "to the exporter's maintainers")
        return answer

    def _duration(self, action: str) -> float:
        histogram = self._stats.durations.get(action)
        return histogram.sum if histogram is not None else 0.0

    # --- what may be shown -------------------------------------------------------------------------
    def _hide(self, name: str, placeholder: str) -> None:
        if name not in self._configured and name not in self._hidden:
            self._hidden[name] = placeholder

    def _name(self, name: str) -> str:
        return self._hidden.get(name, name)

    def _message(self, text: str) -> str:
        # The client has already cut the string to sign a SignatureDoesNotMatch message echoes.
        for name, placeholder in sorted(self._hidden.items(), key=lambda kv: -len(kv[0])):
            if len(name) >= 3:
                text = text.replace(name, placeholder)
        return text[:300]

    def masked(self, step: Step) -> Step:
        """The step with every known secret value replaced by ``***``."""
        step.rows = [(label, self._secrets(value)) for label, value in step.rows]
        return step


def _parsed(step: Step, parse: Callable[[Any], T], body: Mapping[str, Any]) -> T | None:
    """``parse(body)``, or None with the step failed: the exporter could not read this answer."""
    try:
        return parse(body)
    except ParseError as exc:
        detail = _unquoted(str(exc))
    except (ValueError, TypeError, RecursionError) as exc:  # a hostile answer the parser did not foresee
        detail = type(exc).__name__
    step.fail(f"the answer does not parse as the exporter reads it ({detail}): report it with the RequestId "
              "and the shape above")
    return None


def _account(target: Target | None) -> str:
    return (target.account if target is not None else None) or DEFAULT_ACCOUNT


def _skipped(title: str, why: str) -> Step:
    step = Step(title, "skipped")
    step.add("why", why)
    return step


def _wanted(name: str, target: Target) -> bool:
    """Whether discovery keeps a listed group (the same test as the exporter's discovery)."""
    if target.group_allow and not re.search(target.group_allow, name):
        return False
    return not (target.group_deny and re.search(target.group_deny, name))


def _instance_state(instance_id: str, region: str, listed: Sequence[InstanceInfo]) -> str:
    found = next((i for i in listed if i.instance_id == instance_id), None)
    if found is None:
        return (f"{instance_id} is not in {region}'s list: check the instance id and its region "
                "(the RAM policy may also hide it)")
    state = f" ({found.status})" if found.status else ""
    if found.serving:
        return f"{instance_id} is listed, serving{state}"
    return f"{instance_id} is listed, not serving{state}: its lag cannot be read until it serves again"


def _status_values(body: Mapping[str, Any]) -> str:
    """How often each status code occurs in a GetInstanceList answer (codes, not names: safe to show)."""
    try:
        rows = as_list(lookup(body, "InstanceList"), "InstanceVO")
    except ParseError:
        return ""
    parts = []
    for name in ("ServiceStatus", "ViewInstanceStatusCode"):
        counts: dict[str, int] = {}
        for row in rows[:_SAMPLE]:
            value = row.get(name) if isinstance(row, Mapping) else None
            if value is not None:
                text = str(value)
                key = text if _ENUM_VALUE.fullmatch(text) else "other"
                counts[key] = counts.get(key, 0) + 1
        if counts:
            parts.append(f"{name} " + ", ".join(f"{k} x{v}" for k, v in sorted(counts.items())))
    return "; " + "; ".join(parts) if parts else ""


def answer_shape(body: Mapping[str, Any]) -> list[str]:
    """The answer's structure: for each object path, its field names, and the size of each list.

    Only names the API uses as field names are shown; values never are. A key with a null value is
    marked ``=null``; a list shows its size in brackets (all items of a nested list together); an object
    with more keys than a record has is a map keyed by values, shown by its size only. A wrapper object
    (one key holding a list or an object) gets no line of its own: the path of its content names it.
    """
    lines: list[str] = []
    _walk("", [body], 0, lines)
    if len(lines) > _MAX_SHAPE_LINES:
        lines[_MAX_SHAPE_LINES - 1:] = [f"... and {len(lines) - _MAX_SHAPE_LINES + 1} more objects"]
    return lines


def _walk(path: str, objects: Sequence[Mapping[str, Any]], depth: int, lines: list[str]) -> None:
    keys: dict[str, None] = {}
    for obj in objects:
        keys.update(dict.fromkeys(k for k in obj if isinstance(k, str)))
    label = path or "(top)"
    if len(keys) > _MAX_KEYS:
        lines.append(f"{label}: a map of {len(keys)} keys")
        return
    shown, children, leaves = _fields(path, objects, keys)
    wrapper = len(shown) == 1 and len(children) + len(leaves) == 1 and path != ""
    if not wrapper:
        lines.append(f"{label}: {', '.join(shown) if shown else 'no fields'}")
    lines += leaves
    if depth >= _MAX_SHAPE_DEPTH:
        if children:
            lines.append(f"{label}: {len(children)} nested objects not shown (deeper than {_MAX_SHAPE_DEPTH})")
        return
    for child, records in children:
        if len(lines) > _MAX_SHAPE_LINES:
            return
        _walk(child, records, depth + 1, lines)


def _fields(path: str, objects: Sequence[Mapping[str, Any]], keys: Iterable[str]
            ) -> tuple[list[str], list[tuple[str, list[Mapping[str, Any]]]], list[str]]:
    """The field names to show, the objects below (by path) and the lists of plain values (with sizes)."""
    shown: list[str] = []
    odd = 0
    children: list[tuple[str, list[Mapping[str, Any]]]] = []
    leaves: list[str] = []
    for key in keys:
        if not _NAME.fullmatch(key):
            odd += 1
            continue
        values = [obj[key] for obj in objects if key in obj]
        shown.append(f"{key}=null" if all(v is None for v in values) else key)
        child = f"{path}.{key}" if path else key
        nested = [v for v in values if isinstance(v, Mapping)]
        if nested:
            children.append((child, nested))
        items = [item for v in values if isinstance(v, list) for item in v]
        if any(isinstance(v, list) for v in values):
            records = [i for i in items if isinstance(i, Mapping)]
            if records:
                children.append((f"{child}[{len(items)}]", records))
            else:
                kinds = sorted({_kind(i) for i in items})
                leaves.append(f"{child}[{len(items)}]" + (f" of {', '.join(kinds)}" if kinds else ""))
    if odd:
        shown.append(f"+{odd} other key{'s' if odd != 1 else ''}")
    return shown, children, leaves


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "booleans"
    if isinstance(value, int | float):
        return "numbers"
    return "text" if isinstance(value, str) else "lists"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def _skew(offset: float | None) -> str:
    if offset is None:
        return "not measured (no Date header in the answer)"
    if abs(offset) < 1:
        return "none measurable (under 1 s; the Date header counts whole seconds)"
    way = "ahead of" if offset > 0 else "behind"
    text = f"local clock {abs(offset):.0f} s {way} the API server (from its Date header)"
    if abs(offset) > _CLOCK_WINDOW:
        text += ": over the gateway's 15-minute window, every signed call is refused; synchronise the clock (NTP)"
    elif abs(offset) >= 60:
        text += ": synchronise the clock (NTP) before it reaches the gateway's 15-minute window"
    return text


def _mask_key(key_id: str) -> str:
    """Enough of the AccessKey ID to tell which key it is (as consoles show it), not the whole of it."""
    if len(key_id) < 12:
        return "*" * len(key_id)
    return f"{key_id[:4]}{'*' * (len(key_id) - 7)}{key_id[-3:]}"


def _unquoted(text: str) -> str:
    """A parser message without the values it quotes (names from the answer)."""
    return _QUOTED.sub("'...'", text)


def _credentials_fix(source: str) -> str:
    if source.startswith("files"):
        return ("check that the files exist, are readable by the exporter's user and each hold one value "
                "(credentials.access_key_id_file, access_key_secret_file, security_token_file)")
    if source.startswith("rrsa"):
        return ("check ALIBABA_CLOUD_ROLE_ARN and ALIBABA_CLOUD_OIDC_PROVIDER_ARN, that the token file exists (ACK's "
                "RRSA projects it), the role's trust policy, and that STS answers from here "
                "(credentials.sts_endpoint, sts_region, sts_network)")
    if source.startswith("ecs"):
        return ("the ECS metadata service gave no role credentials: on ECS, attach a RAM role to the instance; "
                "elsewhere set ALIBABA_CLOUD_ECS_METADATA_DISABLED=true and configure a key (files or environment)")
    return "check the credentials source named above"


def _network_hint(settings: Settings) -> str:
    api = settings.api
    if api.endpoint:
        return f"api.endpoint is set to {api.endpoint}: is that reachable from here?"
    if api.network == "vpc":
        return ("api.network is vpc: the alikafka-vpc endpoint answers only from inside an Alibaba Cloud VPC of "
                "the same region; elsewhere use api.network: public")
    return ("api.network is public: the public endpoint needs internet access; inside a VPC without it, "
            "use api.network: vpc")


def fix_for(action: str, exc: ApiError, settings: Settings, source: str) -> str:  # noqa: PLR0911, PLR0912 - a rule each
    """What to do about a failed call, from its code, kind and HTTP status."""
    code, status = exc.code, exc.http_status
    if status is not None and 300 <= status < 400:
        return (f"the endpoint answered with a redirect (HTTP {status}), which a signed call never follows: "
                "api.endpoint (or api.region, api.network) points at the wrong place; use the alikafka endpoint "
                "of the instance's region")
    if code in CLOCK_SKEW_CODES:
        return ("the request's timestamp is more than 15 minutes off the server's: synchronise the local clock "
                "(NTP, chrony); the clock skew line shows by how much")
    if code.startswith("InvalidAccessKeyId"):
        if code.endswith("Inactive"):
            return "the AccessKey is disabled: enable it in the RAM console, or use another key"
        return (f"the AccessKey ID is not known: check the key from {source} (a typo, a deleted key, "
                "or a key of another account or site)")
    if code.startswith(("SignatureDoesNotMatch", "IncompleteSignature")) or code == "AUTH_SIGNATURE_CHECK_ERROR":
        return ("the signature does not match: the AccessKey secret is wrong (a stray space or newline, or the "
                "secret of another key), or a proxy between here and the endpoint changes the request "
                "(path, query or headers)")
    if code.startswith(("InvalidSecurityToken", "MissingSecurityToken")):
        return ("the STS token is missing, wrong or expired: an STS key needs its current token "
                "(credentials.security_token_file or ALIBABA_CLOUD_SECURITY_TOKEN); RRSA and the ECS role "
                "refresh theirs by themselves")
    if code == "AUTH_SERVICE_CHECK_ERROR":
        return "the Message Queue for Apache Kafka service is not activated for this account"
    if exc.kind == "forbidden":
        ram = RAM_ACTIONS.get(action, "")
        fix = f"this identity may not call {action}: grant the RAM action {ram} (resource *) to it"
        if action in UNCONFIRMED_RAM_ACTIONS:
            fix += (f" ({ram} is the family's pattern; no public page confirms the name: if granting it does not "
                    "help, look the RequestId up in the RAM console's access diagnostics)")
        return fix
    if exc.kind == "throttled":
        return ("the account's API rate limit was hit (every process and RAM user of the account counts): lower "
                "api.max_qps, across all exporters of the account")
    if exc.kind == "transport":
        if code == "timeout":
            return (f"no answer within api.timeout ({settings.api.timeout:g}s): check the endpoint and the network "
                    f"path; {_network_hint(settings)}; a proxy (HTTPS_PROXY) may hold the request; or raise "
                    "api.timeout")
        return (f"could not connect ({exc.message or code}): check the endpoint's host name (DNS), port and "
                f"firewalls, and any proxy; {_network_hint(settings)}")
    if code.startswith(("InvalidAction", "InvalidApi", "InvalidVersion")):
        return (f"the endpoint does not serve alikafka's {action} (version 2019-09-16): is api.endpoint an "
                "alikafka endpoint?")
    if code == "BIZ_INSTANCE_STATUS_ERROR":
        return "the instance is not running (expired, released or still deploying)"
    if exc.kind == "not_found":
        what = "topic" if action == "GetTopicStatus" else "group" if action == "GetConsumerProgress" else "instance"
        return (f"not found: check the instance id and its region (targets[].region or api.region; the endpoint "
                f"serves one region), and the {what} name")
    if exc.kind == "server":
        return "the service failed (HTTP 5xx or an internal error): try again later; a running exporter retries it"
    if exc.kind == "malformed":
        return ("the answer is not what the exporter reads: report it with the RequestId to the exporter's "
                "maintainers")
    if code == "credentials_unavailable":
        return "the credentials could not be obtained for this call: see the credentials step"
    if status is not None and status == 404:
        return "HTTP 404 from the endpoint: api.endpoint (or api.region) points at something that is not alikafka"
    return (f"the service refused the request ({code}): look the code and RequestId up at "
            "https://api.aliyun.com/troubleshoot")

