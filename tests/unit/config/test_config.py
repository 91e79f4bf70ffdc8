"""Configuration: defaults, precedence, durations, validation messages naming key and source."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from exporter.config.cli import parse_args
from exporter.config.errors import ConfigError
from exporter.config.settings import Settings, load_settings
from exporter.config.types import parse_duration
from tests.support.tools import ROOT

TARGET = {"instance_id": "alikafka_post-cn-x", "groups": ["g1"]}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    return path


def problems(flags: dict[str, Any] | None = None, env: dict[str, str] | None = None,
             path: Path | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_settings(flags or {}, env or {}, path)
    return info.value.problems


def test_defaults_match_the_contract() -> None:
    """Every default of contract section 3."""
    s = load_settings({}, {}, None)
    assert (s.api.network, s.api.signature, s.api.timeout, s.api.max_retries, s.api.max_qps,
            s.api.max_concurrency, s.api.hide_last_timestamp) == ("public", "v3", 10.0, 3, 3.0, 4, False)
    assert (s.poll.interval, s.poll.stale_after) == (60.0, 180.0)
    assert (s.metrics.granularity, s.metrics.member_labels) == ("partition", False)
    assert (s.web.listen_address, s.web.host, s.web.port, s.web.telemetry_path) == (":9897", "", 9897, "/metrics")
    assert (s.log.level, s.log.format) == ("info", "logfmt")


def test_precedence_flag_over_env_over_file(tmp_path: Path) -> None:
    """Command line > environment > config file > defaults, key by key."""
    path = write(tmp_path, "api: {region: cn-file, max_qps: 2, timeout: 5s}\npoll: {interval: 30s}\n"
                           "web: {listen_address: ':1111'}\n")
    env = {"ALIKAFKA_EXPORTER_API__MAX_QPS": "4", "ALIKAFKA_EXPORTER_WEB__LISTEN_ADDRESS": ":2222"}
    s = load_settings({"web": {"listen_address": "127.0.0.1:3333"}}, env, path)
    assert s.api.region == "cn-file"  # file only
    assert s.api.max_qps == 4.0  # env beats file
    assert s.api.timeout == 5.0 and s.poll.interval == 30.0
    assert (s.web.host, s.web.port) == ("127.0.0.1", 3333)  # flag beats env and file


def test_targets_from_env_json_and_flags_replace_file(tmp_path: Path) -> None:
    """Targets can come as JSON in the environment; --target replaces the file's list."""
    env = {"ALIKAFKA_EXPORTER_TARGETS": '[{"instance_id": "i-env", "region": "cn-x", "groups": ["a"]}]'}
    assert load_settings({}, env, None).targets[0].instance_id == "i-env"
    path = write(tmp_path, "api: {region: r}\ntargets: [{instance_id: i-file, groups: [a]}]\n")
    args = parse_args(["--target", "i-flag=a,b", "--target", "i-flag=b,c"])
    s = load_settings(args.flags, {}, path)
    assert [(t.instance_id, t.groups) for t in s.targets] == [("i-flag", ["a", "b", "c"])]


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("30s", 30), ("5m", 300), ("1h", 3600), ("1m30s", 90), ("1.5s", 1.5), ("45", 45), (7, 7),
     (2.5, 2.5)],
)
def test_durations(text: Any, seconds: float) -> None:
    """Go-style strings and plain numbers of seconds."""
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("bad", ["", "soon", "5 minutes", "-3s", "-1", "1d", "nan", "inf", True, None, [1]])
def test_bad_durations(bad: Any) -> None:
    """Anything else is refused with the accepted forms in the message."""
    with pytest.raises(ValueError, match="duration"):
        parse_duration(bad)


@given(st.integers(min_value=0, max_value=10**9))
def test_duration_round_trip(ms: int) -> None:
    """h/m/s/ms decomposition of any number of milliseconds parses back exactly."""
    h, rest = divmod(ms, 3_600_000)
    m, rest = divmod(rest, 60_000)
    s, milli = divmod(rest, 1000)
    text = f"{h}h{m}m{s}s{milli}ms"
    assert parse_duration(text) == pytest.approx(ms / 1000)


def test_problems_name_key_and_source(tmp_path: Path) -> None:
    """One line per problem, each naming the key path and file, env variable or flag."""
    path = write(tmp_path, "poll:\n  intervall: 5\ntargets:\n  - instance_id: i-1\n    groups: []\n"
                           "api:\n  signature: v2\n")
    env = {"ALIKAFKA_EXPORTER_POLL__INTERVAL": "soon"}
    lines = problems({"log": {"format": "xml"}}, env, path)
    joined = "\n".join(lines)
    assert len(lines) == 5, joined
    assert f"poll.intervall (file {path}): unknown key" in joined
    assert "poll.interval (env ALIKAFKA_EXPORTER_POLL__INTERVAL): invalid duration 'soon'" in joined
    assert f"targets[0].groups (file {path})" in joined
    assert f"api.signature (file {path})" in joined and "'v2'" in joined
    assert "log.format (flag --log.format)" in joined


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        ({"poll": {"interval": "60s", "stale_after": "30s"}}, "poll.stale_after (flag): must be at least poll.interval"),
        ({"poll": {"interval": "0.5s"}}, "poll.interval (flag)"),
        ({"api": {"endpoint": "ftp://x"}}, "api.endpoint (flag): must be an http:// or https:// URL"),
        ({"api": {"max_concurrency": 0}}, "api.max_concurrency"),
        ({"api": {"max_retries": 11}}, "api.max_retries"),
        ({"web": {"telemetry_path": "/healthz"}}, "web.telemetry_path (flag --web.telemetry-path)"),
        ({"web": {"listen_address": ":99999"}}, "web.listen_address"),
        ({"credentials": {"access_key_id_file": "/x"}}, "credentials.access_key_secret_file (flag): access_key_id_file and access_key_secret_file"),
        ({"credentials": {"security_token_file": "/t"}}, "credentials.security_token_file"),
        ({"targets": [{"instance_id": "i", "groups": ["a", "a"]}], "api": {"region": "r"}}, "listed twice: a"),
        ({"targets": [{"instance_id": "has space", "groups": ["a"]}]}, "targets[0].instance_id"),
        ({"targets": [{"instance_id": "i", "groups": ["a"]}]}, "targets[0].region (flag --target): no region"),
        ({"targets": [{"instance_id": "i", "groups": ["a"]}, {"instance_id": "i", "groups": ["a"]}],
          "api": {"region": "r"}}, "targets[1].groups (flag --target): i/a is already listed"),
    ],
)
def test_validation_rules(flags: dict[str, Any], needle: str) -> None:
    """Each rule produces a line naming the key and the source."""
    assert any(needle in line for line in problems(flags)), problems(flags)


def test_yaml_problems(tmp_path: Path) -> None:
    """Syntax errors give line and column; a non-mapping top level and a missing file are clear."""
    bad = write(tmp_path, "api:\n  region: [unclosed\n")
    assert "YAML syntax error at line" in problems(path=bad)[0]
    listy = write(tmp_path, "- a\n- b\n")
    assert "top level must be a mapping" in problems(path=listy)[0]
    assert "cannot read" in problems(path=tmp_path / "missing.yaml")[0]


def test_bad_target_flag_is_a_config_error() -> None:
    """A --target without '=' or with an empty group is reported, not an argparse crash."""
    for value in ("no-equals", "=g", "i=", "i=a,,b"):
        with pytest.raises(ConfigError, match="expected INSTANCE_ID=GROUP"):
            parse_args(["--target", value])


def test_endpoints() -> None:
    """public, vpc and the override."""
    assert Settings().api.endpoint_for("cn-beijing") == "https://alikafka.cn-beijing.aliyuncs.com/"
    vpc = load_settings({"api": {"network": "vpc"}}, {}, None)
    assert vpc.api.endpoint_for("cn-beijing") == "https://alikafka-vpc.cn-beijing.aliyuncs.com/"
    own = load_settings({"api": {"endpoint": "http://127.0.0.1:8080/"}}, {}, None)
    assert own.api.endpoint_for("cn-beijing") == "http://127.0.0.1:8080/"


def test_environment_is_only_what_is_passed_in(monkeypatch: pytest.MonkeyPatch) -> None:
    """os.environ is not consulted by load_settings: the mapping given is the environment."""
    monkeypatch.setenv("ALIKAFKA_EXPORTER_POLL__INTERVAL", "5s")
    assert load_settings({}, {}, None).poll.interval == 60.0


def test_example_config_validates() -> None:
    """examples/config.yaml is a valid configuration."""
    path = ROOT / "examples" / "config.yaml"
    s = load_settings({}, {}, path)
    assert s.targets


@pytest.mark.parametrize(
    ("flags", "needle"),
    [
        ({"targets": [{"region": "r", "groups": "all"}]}, "targets[0].instances (flag --target): give either"),
        ({"targets": [{"instance_id": "i", "instances": "all", "region": "r", "groups": "all"}]},
         "give either instance_id or instances: all"),
        ({"targets": [{"instance_id": "i", "region": "r", "groups": "some"}]}, "must be a list of consumer group"),
        ({"targets": [{"instance_id": "i", "region": "r", "groups": "all", "group_allow": "("}]},
         "not a valid regular expression"),
        ({"shard": "3/3"}, "shard (flag --shard): must be I/N with 0 <= I < N"),
        ({"shard": "x"}, "shard (flag --shard)"),
    ],
)
def test_discovery_and_shard_rules(flags: dict[str, Any], needle: str) -> None:
    """Discovery targets and shards are validated with the key named."""
    joined = "\n".join(problems(flags))
    assert needle.replace("Value error, ", "") in joined, joined
