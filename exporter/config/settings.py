"""Configuration: one frozen, validated Settings object built from file, environment and flags.

Precedence is command line > environment > config file > defaults. The layers are read separately and
merged, so every problem is reported as one line naming the key and the layer it came from, before
anything starts. The environment comes from an explicit mapping, never ``os.environ`` at import time,
which keeps tests hermetic. Secrets never live here: credentials are configured as file paths only.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import BaseSettings, EnvSettingsSource, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings.exceptions import SettingsError

from exporter.config.errors import ConfigError
from exporter.config.types import Duration, OptionalPath, Size

ENV_PREFIX = "ALIKAFKA_EXPORTER_"
CONFIG_FILE_ENV = ENV_PREFIX + "CONFIG_FILE"
_FROZEN = ConfigDict(frozen=True, extra="forbid")


_URL = r"https?://[^/?#\s]+(/[^?#\s]*)?"  # a URL with a host and no query
# The STS and ECS metadata checks, here once: the settings apply them to their keys, the credential
# providers to the same values given through the SDKs' environment variables.
STS_REGION = r"[a-z0-9-]+"  # a region ID such as cn-hangzhou
ROLE_SESSION_NAME = r"[A-Za-z0-9.@_-]{2,64}"  # STS AssumeRoleWithOIDC's RoleSessionName
METADATA_ENDPOINT = "http://100.100.100.200"  # the ECS metadata service, link-local on every ECS host


def sts_url(value: str) -> str | None:
    """An STS endpoint given as a host (meaning https://) or an http(s) URL, as a URL; None when it is neither."""
    url = value if "://" in value else f"https://{value}"
    return url if re.fullmatch(_URL, url) else None


class ApiSettings(BaseModel):
    """How to reach and call the alikafka OpenAPI."""

    model_config = _FROZEN

    region: str | None = None
    network: Literal["public", "vpc"] = "public"
    endpoint: str = ""
    signature: Literal["v3", "v1"] = "v3"
    timeout: Annotated[Duration, Field(gt=0, le=300)] = 10.0
    max_retries: Annotated[int, Field(ge=0, le=10)] = 3
    max_qps: Annotated[float, Field(gt=0, le=1000)] = 3.0
    max_concurrency: Annotated[int, Field(ge=1, le=256)] = 4
    hide_last_timestamp: bool = False
    # The most an answer may hold (after decompression); 64 KiB to 256 MiB. A GetConsumerProgress answer
    # takes about 300 bytes per partition, so 4 MiB holds some 14,000 partitions.
    max_response_size: Annotated[Size, Field(ge=64 * 1024, le=256 * 1024 * 1024)] = 4 * 1024 * 1024

    @field_validator("endpoint")
    @classmethod
    def _check_endpoint(cls, value: str) -> str:
        value = value.strip()
        if value and not re.fullmatch(_URL, value):
            raise ValueError("must be an http:// or https:// URL with a host and no query")
        return value

    def endpoint_for(self, region: str) -> str:
        """The URL calls for ``region`` go to: the override, else the public or VPC endpoint."""
        if self.endpoint:
            return self.endpoint
        host = "alikafka-vpc" if self.network == "vpc" else "alikafka"
        return f"https://{host}.{region}.aliyuncs.com/"


class CredentialsSettings(BaseModel):
    """Mounted secret files (step 1 of the chain) and how to reach STS (RRSA) and the ECS metadata service."""

    model_config = _FROZEN

    access_key_id_file: OptionalPath = None
    access_key_secret_file: Annotated[OptionalPath, Field(validate_default=True)] = None
    security_token_file: OptionalPath = None
    sts_endpoint: str = ""  # host or URL; else ALIBABA_CLOUD_STS_ENDPOINT, else from sts_region
    sts_region: Annotated[str, Field(pattern=rf"^({STS_REGION})?$")] = ""
    sts_network: Literal["public", "vpc"] = "public"
    role_session_name: Annotated[str, Field(pattern=rf"^({ROLE_SESSION_NAME})?$")] = ""
    duration_seconds: Annotated[int, Field(ge=900, le=43200)] = 3600
    metadata_endpoint: str = METADATA_ENDPOINT
    refresh_margin: Annotated[Duration, Field(ge=0, le=3600)] = 300.0

    @field_validator("sts_endpoint")
    @classmethod
    def _sts_url(cls, value: str) -> str:
        value = value.strip()
        if value and sts_url(value) is None:
            raise ValueError("must be a host name (sts.cn-hangzhou.aliyuncs.com) or an http(s) URL without a query")
        return value

    @field_validator("metadata_endpoint")
    @classmethod
    def _metadata_url(cls, value: str) -> str:
        value = value.strip()
        if not re.fullmatch(_URL, value):
            raise ValueError("must be an http:// or https:// URL, e.g. http://100.100.100.200")
        return value

    @field_validator("access_key_secret_file")
    @classmethod
    def _pair(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if (value is None) != (info.data.get("access_key_id_file") is None):
            raise ValueError("access_key_id_file and access_key_secret_file must be set together")
        return value

    @field_validator("security_token_file")
    @classmethod
    def _token(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is not None and info.data.get("access_key_secret_file") is None:
            raise ValueError("needs access_key_id_file and access_key_secret_file too")
        return value


# An account's name: it becomes the value of the ``account`` label, so lower-case letters, digits, ``_`` and ``-``.
ACCOUNT_NAME = r"[a-z0-9][a-z0-9_-]{0,62}"
DEFAULT_ACCOUNT = "default"  # the top-level credentials and api.max_qps: targets without an account use them
# A RAM role's ARN, as STS AssumeRole takes it (acs:ram::<account id>:role/<role name>):
# https://www.alibabacloud.com/help/en/ram/developer-reference/api-sts-2015-04-01-assumerole
ROLE_ARN = r"acs:ram::\d+:role/[A-Za-z0-9._-]{1,64}"


class AccountSettings(BaseModel):
    """One Alibaba Cloud account: its credential chain, an optional role to assume, and its own API budget."""

    model_config = _FROZEN

    credentials: CredentialsSettings = CredentialsSettings()
    role_arn: Annotated[str, Field(pattern=rf"^({ROLE_ARN})?$")] = ""
    max_qps: Annotated[float, Field(gt=0, le=1000)] | None = None  # None: api.max_qps
    max_concurrency: Annotated[int, Field(ge=1, le=256)] | None = None  # None: api.max_concurrency


class PollSettings(BaseModel):
    """The schedule."""

    model_config = _FROZEN

    interval: Annotated[Duration, Field(ge=1)] = 60.0
    stale_after: Duration = 180.0
    # How the API budget is spent when it cannot poll every pair every interval (docs/scaling.md).
    schedule: Literal["adaptive", "uniform"] = "adaptive"
    # Under adaptive, the longest a pair may wait between polls. Checked against interval only when set:
    # left at its default under a longer interval, the interval is the bound (see longest_wait).
    max_interval: Annotated[Duration, Field(le=7 * 86400)] = 600.0

    @field_validator("stale_after", "max_interval")
    @classmethod
    def _after_interval(cls, value: float, info: ValidationInfo) -> float:
        interval = info.data.get("interval")
        if interval is not None and value < interval:
            raise ValueError(f"must be at least poll.interval ({interval:g}s)")
        return value

    @property
    def longest_wait(self) -> float:
        """``max_interval``, or ``interval`` when that is longer (possible only with max_interval left unset)."""
        return max(self.max_interval, self.interval)


def _regex(value: str | None) -> str | None:
    if value:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
    return value or None


# Label names a target's ``labels`` may not take: the exporter's own label names on the series those labels
# are added to (every pair-derived family, the compat families of kafka_exporter and kafka-lag-exporter, and
# alikafka_instance_info), the names Prometheus gives its own meaning (``instance`` and ``job`` are the scrape
# target's, ``le`` and ``quantile`` belong to histograms and summaries) and every name starting with ``__``,
# which Prometheus reserves. The metrics layer writes these names; they are listed here because a target's
# labels are checked against them when the configuration is loaded (a test keeps both lists in step).
EXPORTER_LABELS = frozenset({
    "instance_id", "group", "topic", "partition", "state", "status", "member_id", "client_id", "client_ip",
    "consumergroup", "cluster_name", "member_host", "consumer_id", "name", "region", "series", "spec_type",
})
PROMETHEUS_LABELS = frozenset({"instance", "job", "le", "quantile"})
LABEL_NAME = r"[a-zA-Z_][a-zA-Z0-9_]*"  # the Prometheus data model's label name syntax


def _label_name(name: str) -> str:
    if not re.fullmatch(LABEL_NAME, name):
        raise ValueError("not a Prometheus label name (letters, digits and _, not starting with a digit)")
    if name.startswith("__"):
        raise ValueError("names starting with __ are reserved by Prometheus")
    if name in PROMETHEUS_LABELS:
        raise ValueError(f"{name} is a label Prometheus sets or gives a meaning of its own")
    if name in EXPORTER_LABELS:
        raise ValueError(f"{name} is one of the exporter's own labels")
    return name


def _label_value(value: str) -> str:
    if not value:
        raise ValueError("must not be empty (Prometheus treats an empty label as no label)")
    return value


TargetLabels = dict[Annotated[str, AfterValidator(_label_name)], Annotated[str, AfterValidator(_label_value)]]


class ThresholdSettings(BaseModel):
    """Default alert thresholds, exported per pair so alert rules and dashboards read them (docs/configuration.md)."""

    model_config = _FROZEN

    lag_seconds: Annotated[Duration, Field(gt=0, le=365 * 86400)] = 600.0
    lag: Annotated[int, Field(ge=0)] = 0  # messages; 0 = not set (the series is absent)

    def over(self, target: TargetThresholds) -> ThresholdSettings:
        """These defaults with the keys a target sets replaced."""
        return self.model_copy(update=target.model_dump(exclude_none=True))


class TargetThresholds(BaseModel):
    """A target's own thresholds; a key left out takes the top-level ``thresholds`` value."""

    model_config = _FROZEN

    lag_seconds: Annotated[Duration, Field(gt=0, le=365 * 86400)] | None = None
    lag: Annotated[int, Field(ge=0)] | None = None  # 0: no message threshold for this target's pairs


class Target(BaseModel):
    """An instance (or every running instance of a region) and its consumer groups (or all of them)."""

    model_config = _FROZEN

    instance_id: Annotated[str, Field(min_length=1, pattern=r"^\S+$")] | None = None
    instances: Annotated[Literal["all"] | None, Field(validate_default=True)] = None
    region: str | None = None
    groups: list[str] | str  # names, or "all" to list them through the API
    group_allow: str | None = None  # regular expression a group name must match (re.search)
    group_deny: str | None = None  # regular expression that excludes a group name
    labels: TargetLabels = {}  # added to every series of this target's pairs
    thresholds: TargetThresholds = TargetThresholds()
    account: str | None = None  # a name in accounts; None: the top-level credentials (account "default")

    @field_validator("groups")
    @classmethod
    def _unique(cls, groups: list[str] | str) -> list[str] | str:
        if isinstance(groups, str):
            if groups != "all":
                raise ValueError("must be a list of consumer group names, or all")
            return groups
        if not groups:
            raise ValueError("must not be empty (list group names, or write all)")
        if not all(groups):
            raise ValueError("group names must not be empty")
        seen: set[str] = set()
        dupes = sorted({g for g in groups if g in seen or seen.add(g)})  # type: ignore[func-returns-value]
        if dupes:
            raise ValueError(f"listed twice: {', '.join(dupes)}")
        return groups

    @field_validator("group_allow", "group_deny")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        return _regex(value)

    @field_validator("instances")
    @classmethod
    def _one_of(cls, value: str | None, info: ValidationInfo) -> str | None:
        if (value is None) == (info.data.get("instance_id") is None):
            raise ValueError("give either instance_id or instances: all")
        return value

    @property
    def discovered(self) -> bool:
        """Whether this target needs the API to know its pairs."""
        return self.instances == "all" or self.groups == "all"


class DiscoverySettings(BaseModel):
    """How often ``groups: all`` and ``instances: all`` targets are listed again."""

    model_config = _FROZEN

    refresh: Annotated[Duration, Field(ge=10, le=86400)] = 300.0
    page_size: Annotated[int, Field(ge=1, le=1000)] = 100


def _compat_list(value: Any) -> Any:
    """``metrics.compat`` as a list: a single name (the old form, or one environment variable) becomes a
    list of it, ``none`` an empty one; a comma-separated string is split; repeated names count once."""
    if isinstance(value, str) and value.strip().startswith("["):  # a JSON list, from the environment
        try:
            value = json.loads(value)
        except ValueError:
            raise ValueError("not a JSON list; write kafka_exporter,kafka_lag_exporter or a JSON list") from None
    if isinstance(value, str):
        value = [] if value.strip() in ("", "none") else [v.strip() for v in value.split(",")]
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return tuple(dict.fromkeys(value))
    return value  # anything else: the type check names it


class MetricsSettings(BaseModel):
    """What to export."""

    model_config = _FROZEN

    granularity: Literal["partition", "topic", "group"] = "partition"
    member_labels: bool = False
    # Also export another exporter's names (migration): a list; one name alone and "none" are still accepted.
    compat: Annotated[tuple[Literal["kafka_exporter", "kafka_lag_exporter"], ...],
                      NoDecode, BeforeValidator(_compat_list)] = ()
    # Most pair series served; 0 = no limit. Over it, detail is shed newest pair first (docs/reliability.md).
    max_series: Annotated[int, Field(ge=0)] = 1_000_000


class ReloadSettings(BaseModel):
    """How often the config file is checked for a change (SIGHUP reloads at any time)."""

    model_config = _FROZEN

    watch_interval: Annotated[Duration, Field(le=3600)] = 5.0  # 0: only SIGHUP reloads


# The exporter's fixed routes. The web layer serves them; they are defined here because
# web.telemetry_path, the one route the settings choose, may not take any of them.
INDEX_PATH = "/"
HEALTH_PATH = "/healthz"
READY_PATH = "/readyz"
RESERVED_PATHS = (INDEX_PATH, HEALTH_PATH, READY_PATH)


class WebSettings(BaseModel):
    """Where and how to serve."""

    model_config = _FROZEN

    listen_address: str = ":9897"
    telemetry_path: str = "/metrics"
    config_file: OptionalPath = None

    @field_validator("listen_address")
    @classmethod
    def _address(cls, value: str) -> str:
        match = re.fullmatch(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]*):(\d{1,5})", value.strip())
        if not match or int(match.group(2)) > 65535:
            raise ValueError("must be HOST:PORT, e.g. :9897, 0.0.0.0:9897 or [::1]:9897")
        return value.strip()

    @field_validator("telemetry_path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/") or value in RESERVED_PATHS or re.search(r"[\s?#]", value):
            raise ValueError(f"must start with / and not be {', '.join(RESERVED_PATHS)} (the exporter's own routes)")
        return value

    @property
    def host(self) -> str:
        """The host part (empty: every interface)."""
        return self.listen_address.rsplit(":", 1)[0].strip("[]")

    @property
    def port(self) -> int:
        """The port part."""
        return int(self.listen_address.rsplit(":", 1)[1])


class LagSettings(BaseModel):
    """Time-lag estimation and status evaluation (docs/lag.md)."""

    model_config = _FROZEN

    history: Annotated[Duration, Field(ge=60, le=7 * 86400)] = 3600.0
    max_points: Annotated[int, Field(ge=2, le=100_000)] = 32
    max_age: Annotated[Duration, Field(gt=0)] = 72 * 3600.0
    status_window: Annotated[int, Field(ge=2, le=1000)] = 10
    status_min_polls: Annotated[int, Field(ge=1)] = 3
    status_min_span: Annotated[Duration, Field(ge=0, le=86400)] = 60.0
    lagging_min_rise: Annotated[Duration, Field(gt=0)] = 10.0

    @field_validator("status_min_polls")
    @classmethod
    def _within_window(cls, value: int, info: ValidationInfo) -> int:
        window = info.data.get("status_window")
        if window is not None and value > window:
            raise ValueError(f"must not exceed lag.status_window ({window})")
        return value


class RetentionSettings(BaseModel):
    """Earliest retained offsets of the polled topics (GetTopicStatus, RAM action alikafka:ListTopic), for lost
    messages and retention margins; each topic once every ``refresh``, inside the API rate limit."""

    model_config = _FROZEN

    enabled: bool = True
    refresh: Annotated[Duration, Field(ge=10, le=86400)] = 300.0


class LogSettings(BaseModel):
    """Log level and line format."""

    model_config = _FROZEN

    level: Annotated[Literal["debug", "info", "warning", "error"], BeforeValidator(
        lambda v: v.lower() if isinstance(v, str) else v)] = "info"
    format: Literal["logfmt", "json"] = "logfmt"


class Settings(BaseSettings):
    """The whole configuration, validated once and passed down."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", frozen=True
    )

    api: ApiSettings = ApiSettings()
    credentials: CredentialsSettings = CredentialsSettings()
    poll: PollSettings = PollSettings()
    targets: list[Target] = []
    thresholds: ThresholdSettings = ThresholdSettings()
    accounts: dict[str, AccountSettings] = {}
    metrics: MetricsSettings = MetricsSettings()
    discovery: DiscoverySettings = DiscoverySettings()
    shard: Annotated[str, Field(pattern=r"^\d+/\d+$")] = "0/1"
    lag: LagSettings = LagSettings()
    retention: RetentionSettings = RetentionSettings()
    web: WebSettings = WebSettings()
    log: LogSettings = LogSettings()
    reload: ReloadSettings = ReloadSettings()
    demo: bool = False

    @field_validator("accounts")
    @classmethod
    def _account_names(cls, accounts: dict[str, AccountSettings]) -> dict[str, AccountSettings]:
        bad = [name for name in accounts if not re.fullmatch(ACCOUNT_NAME, name)]
        if bad:
            raise ValueError(f"account names must be 1-63 lower-case letters, digits, _ or - (a label value), "
                             f"got {', '.join(repr(b) for b in bad)}")
        if DEFAULT_ACCOUNT in accounts:
            raise ValueError(f"{DEFAULT_ACCOUNT!r} names the top-level credentials; give this account another name")
        return accounts

    def account_of(self, target: Target) -> str:
        """The name of the account ``target`` is polled with (``default``: the top-level credentials)."""
        return target.account or DEFAULT_ACCOUNT

    def account_limits(self, name: str) -> tuple[float, int]:
        """The account's ``max_qps`` and ``max_concurrency`` (api's where the account sets none)."""
        account = self.accounts.get(name)
        qps = account.max_qps if account is not None and account.max_qps is not None else self.api.max_qps
        concurrency = (account.max_concurrency if account is not None and account.max_concurrency is not None
                       else self.api.max_concurrency)
        return qps, concurrency

    @property
    def used_accounts(self) -> tuple[str, ...]:
        """The accounts some target is polled with, ``default`` first when used (it is without targets)."""
        names = dict.fromkeys(self.account_of(t) for t in self.targets) or {DEFAULT_ACCOUNT: None}
        return tuple(sorted(names, key=lambda n: (n != DEFAULT_ACCOUNT, n)))

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Only the merged layers handed in by :func:`load_settings`; nothing is read implicitly."""
        return (init_settings,)


class _MappingEnvSource(EnvSettingsSource):
    """pydantic-settings' environment source, reading a given mapping instead of os.environ."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(Settings, case_sensitive=False, env_prefix=ENV_PREFIX, env_nested_delimiter="__")

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return {k.lower(): v for k, v in self._environ.items()}


# Flags that set a key, for naming the source of a bad value; the one place a flag's name is written
# (the command-line parser takes its setting flags from here).
FLAG_NAMES = {
    ("targets",): "--target",
    ("api", "region"): "--region",
    ("web", "listen_address"): "--web.listen-address",
    ("web", "telemetry_path"): "--web.telemetry-path",
    ("web", "config_file"): "--web.config.file",
    ("log", "level"): "--log.level",
    ("log", "format"): "--log.format",
    ("demo",): "--demo",
    ("shard",): "--shard",
}


def _read_file(path: Path) -> dict[str, Any]:
    where = f"config.file ({path})"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{where}: cannot read: {exc.strerror or type(exc).__name__}"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{where}: not UTF-8 text"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError([f"{where}: YAML syntax error{at}: {problem}"]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError([f"{where}: the top level must be a mapping of sections, not {type(data).__name__}"])
    odd = [key for key in data if not isinstance(key, str)]
    if odd:
        raise ConfigError([f"{where}: section names must be text, got {_value_text(key)}" for key in odd])
    return data


def _get(layer: Any, loc: tuple[int | str, ...]) -> tuple[bool, Any]:
    node = layer
    for part in loc:
        in_mapping = isinstance(node, Mapping) and part in node
        in_list = isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        if not (in_mapping or in_list):
            return False, None
        node = node[part]
    return True, node


def _printable(part: str) -> str:
    # A key with control characters, blank or with spaces around it is shown quoted, so it can be seen.
    return part if part.isprintable() and part and part == part.strip() else repr(part)


def _loc_text(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{_printable(part)}" if text else _printable(part))
    return text or "(top level)"


class _Layers:
    """The three layers, for telling where a value came from."""

    def __init__(self, flags: Mapping[str, Any], env: Mapping[str, Any], file: Mapping[str, Any],
                 file_path: Path | None) -> None:
        self.ordered = (("flag", flags), ("env", env), ("file", file))
        self.file_path = file_path

    def source(self, loc: tuple[int | str, ...]) -> str:
        for cut in range(len(loc), 0, -1):
            prefix = loc[:cut]
            for kind, layer in self.ordered:
                if _get(layer, prefix)[0]:
                    return self._describe(kind, prefix)
        return "default"

    def _describe(self, kind: str, loc: tuple[int | str, ...]) -> str:
        if kind == "file":
            return f"file {self.file_path}"
        named = tuple(p for p in loc if isinstance(p, str))
        if kind == "env":
            head = []
            for part in loc:
                if isinstance(part, int):
                    break
                head.append(_printable(str(part)))
            return "env " + ENV_PREFIX + "__".join(head).upper()
        for cut in range(len(named), 0, -1):
            if named[:cut] in FLAG_NAMES:
                return f"flag {FLAG_NAMES[named[:cut]]}"
        return "flag"


def _value_text(value: Any) -> str:
    # A long value is described, not cut: a cut secret (an STS or OIDC token runs to hundreds of
    # characters) would escape the log redactor, which only knows whole values.
    text = repr(value)
    return text if len(text) <= 60 else f"a {type(value).__name__} of {len(text)} characters"


def _problem(error: Mapping[str, Any], layers: _Layers) -> str:
    loc = tuple(error["loc"])
    if loc[-1:] == ("[key]",):  # a bad key of a mapping (a label name): the loc names the key itself
        loc = loc[:-1]
        return f"{_loc_text(loc)} ({layers.source(loc)}): {str(error['msg']).removeprefix('Value error, ')}"
    where = f"{_loc_text(loc)} ({layers.source(loc)})"
    if error["type"] == "extra_forbidden":
        return f"{where}: unknown key"
    if error["type"] == "missing":
        return f"{where}: required"
    message = str(error["msg"]).removeprefix("Value error, ")
    found, value = False, None
    for _, layer in layers.ordered:
        found, value = _get(layer, loc)
        if found:
            break
    shown = ""
    if found and not isinstance(value, dict | list) and repr(value) not in message:
        shown = f" (got {_value_text(value)})"
    return f"{where}: {message}{shown}"


def _deep_merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _deep_merge(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged


def _cross_checks(settings: Settings, layers: _Layers) -> list[str]:
    problems = []
    index_, count = (int(x) for x in settings.shard.split("/"))
    if not 0 <= index_ < count:
        problems.append(f"shard ({layers.source(('shard',))}): must be I/N with 0 <= I < N, got {settings.shard}")
    seen: set[tuple[str, str]] = set()
    for index, target in enumerate(settings.targets):
        if target.region is None and settings.api.region is None:
            loc: tuple[int | str, ...] = ("targets", index, "region")
            problems.append(f"{_loc_text(loc)} ({layers.source(loc)}): no region; set the target's region, "
                            f"api.region or {FLAG_NAMES['api', 'region']}")
        if target.account is not None and target.account not in settings.accounts:
            loc = ("targets", index, "account")
            known = ", ".join(sorted(settings.accounts)) or "none"
            problems.append(f"{_loc_text(loc)} ({layers.source(loc)}): no account {target.account!r} in accounts "
                            f"(defined: {known})")
        if target.instance_id is None or isinstance(target.groups, str):
            continue
        for group in target.groups:
            if (target.instance_id, group) in seen:
                loc = ("targets", index, "groups")
                problems.append(f"{_loc_text(loc)} ({layers.source(loc)}): {target.instance_id}/{group} "
                                "is already listed by an earlier target")
            seen.add((target.instance_id, group))
    return problems


# The settings naming a file that holds a secret (the AccessKey ID is not one).
SECRET_FILE_KEYS = (("credentials", "access_key_secret_file"), ("credentials", "security_token_file"))


def _secret_file_locs(merged: Mapping[str, Any]) -> list[tuple[str, ...]]:
    """:data:`SECRET_FILE_KEYS`, and the same keys under each account's credentials."""
    locs: list[tuple[str, ...]] = list(SECRET_FILE_KEYS)
    accounts = merged.get("accounts")
    if isinstance(accounts, Mapping):
        locs += [("accounts", name, *loc) for name in accounts if isinstance(name, str) for loc in SECRET_FILE_KEYS]
    return locs


def load_settings(flags: Mapping[str, Any], environ: Mapping[str, str], config_file: Path | None,
                  secret_file: Callable[[str], None] | None = None) -> Settings:
    """Read, merge and validate the layers; raises :class:`ConfigError` listing every problem.

    ``secret_file`` is shown the path in each of :data:`SECRET_FILE_KEYS` (top-level and per account) before anything is
    validated: the log redactor learns those secrets then, so a secret pasted into another key is
    hidden in the error that names that key.
    """
    file_data = _read_file(config_file) if config_file is not None else {}
    try:
        env_data = _MappingEnvSource(environ)()
    except SettingsError as exc:
        raise ConfigError([f"environment ({ENV_PREFIX}*): {exc}"]) from None
    layers = _Layers(flags, env_data, file_data, config_file)
    merged = _deep_merge(_deep_merge(file_data, env_data), flags)
    for loc in _secret_file_locs(merged):
        found, value = _get(merged, loc)
        if secret_file is not None and found and isinstance(value, str | Path) and str(value).strip():
            secret_file(str(value).strip())
    try:
        settings = Settings(**merged)
    except ValidationError as exc:
        raise ConfigError([_problem(e, layers) for e in exc.errors(include_url=False)]) from None
    problems = _cross_checks(settings, layers)
    if problems:
        raise ConfigError(problems)
    return settings
