"""Secrets never leave the process: every error path, at debug level, with a distinctive secret and STS token.

The exporter runs as a real process (its stderr is what an operator's log collector sees) against a
simulator in this test process. Each path is driven for real: unknown key, wrong secret (v1 and v3,
whose gateway answer echoes a string to sign holding the token), wrong token, refused connections,
broken answers, bad configuration values (a secret pasted into the wrong field), ``--check-config``,
``--once``, a reload of a bad file, and the pages. Neither the secret nor the token may appear in
stdout, stderr, ``/``, ``/metrics`` or ``/readyz``.
"""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

from exporter import logs
from exporter.cloud.credentials import Credentials, FileProvider, Learning, RefreshingProvider, Secret
from exporter.config.secret_files import loose_permissions
from exporter.demo import SimulatorThread
from exporter.simulator import Scenario, Simulator
from tests.support.procs import clean_env, free_port, http_get, process, python_module, wait_for
from tests.support.samples import value
from tests.support.webserve import make_pki, write_config

SECRET = "Qz9sEcReT-AccessKey-7Hk2Lm4Np"
TOKEN = "Wx3StSToKeN-CAIS-5Rt8Yu1Io"
OK_ID, WRONG_SECRET_ID, TOKEN_ID = "LTAI-secret-ok", "LTAI-secret-other", "LTAI-secret-token"
INSTANCE = "alikafka_post-cn-secret01"
FAULTY = {"g500": "http_500", "ghtml": "html", "gtrunc": "truncated", "gfalse": "success_false",
          "gnone": "not_found", "gslow": "timeout"}
SCENARIO = {
    "seed": 9,
    "instances": [{"instance_id": INSTANCE, "region": "cn-hangzhou",
                   "topics": [{"name": "t", "partitions": 2, "rate": 2}],
                   "groups": [{"name": g, "topics": ["t"]} for g in ["good", *FAULTY]]}],
    "faults": [{"kind": kind, "group": group, "delay": 3} for group, kind in FAULTY.items()],
}


@pytest.fixture(scope="module")
def sim_url() -> str:
    simulator = Simulator(
        Scenario.from_dict(SCENARIO),
        {OK_ID: SECRET, WRONG_SECRET_ID: "not-the-one-the-exporter-has", TOKEN_ID: SECRET},
        security_tokens={OK_ID: TOKEN, WRONG_SECRET_ID: TOKEN, TOKEN_ID: "some-other-sts-token"},
    )
    simulator.set_qps_limit("GetConsumerProgress", 1000)
    return SimulatorThread(simulator).start()


def env(url: str, key_id: str = OK_ID, **extra: str) -> dict[str, str]:
    settings = {"ALIKAFKA_EXPORTER_API__ENDPOINT": url, "ALIKAFKA_EXPORTER_API__TIMEOUT": "1s",
                "ALIKAFKA_EXPORTER_API__MAX_RETRIES": "1", "ALIKAFKA_EXPORTER_LOG__LEVEL": "debug", **extra}
    return clean_env(ALIBABA_CLOUD_ACCESS_KEY_ID=key_id, ALIBABA_CLOUD_ACCESS_KEY_SECRET=SECRET,
                     ALIBABA_CLOUD_SECURITY_TOKEN=TOKEN, **settings)


def run(args: list[str], environ: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "exporter", *args], env=environ, capture_output=True, text=True,
                          timeout=60, check=False)


def assert_clean(*texts: str) -> None:
    for text in texts:
        assert SECRET not in text, "the AccessKey secret leaked:\n" + text[-2000:]
        assert TOKEN not in text, "the STS token leaked:\n" + text[-2000:]
        assert SECRET[:12] not in text and TOKEN[:12] not in text  # not even a prefix


TARGET = ["--target", f"{INSTANCE}=good", "--region", "cn-hangzhou"]


@pytest.mark.parametrize(("key_id", "signature", "code"), [
    ("LTAI-nobody", "v3", "InvalidAccessKeyId.NotFound"),
    (WRONG_SECRET_ID, "v1", "SignatureDoesNotMatch"),
    (WRONG_SECRET_ID, "v3", "SignatureDoesNotMatch"),
    (TOKEN_ID, "v3", "InvalidSecurityToken"),
    (TOKEN_ID, "v1", "InvalidSecurityToken"),
])
def test_refused_credentials_in_once_mode(sim_url: str, key_id: str, signature: str, code: str) -> None:
    """--once with refused credentials exits 1; the code is named, the secret and token are not."""
    result = run([*TARGET, "--once"], env(sim_url, key_id, ALIKAFKA_EXPORTER_API__SIGNATURE=signature))
    assert result.returncode == 1, result.stderr
    assert code in result.stderr
    assert_clean(result.stdout, result.stderr)


def test_network_errors_in_once_mode() -> None:
    """Nothing listening: connection errors at debug level, retried, reported without the URL's query."""
    url = f"http://127.0.0.1:{free_port()}/"
    result = run([*TARGET, "--once"], env(url, ALIKAFKA_EXPORTER_API__SIGNATURE="v1"))
    assert result.returncode == 1 and "connection_error" in result.stderr
    assert_clean(result.stdout, result.stderr)


def test_secret_in_the_wrong_fields_is_not_echoed(sim_url: str, tmp_path: Path) -> None:
    """Bad values that are the secret or the token: each problem named (exit 2), none of them shown."""
    config = tmp_path / "c.yaml"
    config.write_text(f"lag: {{history: {SECRET}}}\ncredentials: {{access_key_secret: {SECRET}}}\n"
                      f"metrics: {{granularity: {TOKEN}}}\n")
    result = run(["--config.file", str(config), "--target", SECRET, "--check-config"],
                 env(sim_url, ALIKAFKA_EXPORTER_POLL__INTERVAL=SECRET,
                     ALIKAFKA_EXPORTER_API__ENDPOINT=f"https://example.com/?token={TOKEN}"))
    assert result.returncode == 2
    assert "targets (flag --target" in result.stderr
    assert_clean(result.stdout, result.stderr)
    result = run([*TARGET, "--log.level", SECRET], env(sim_url))
    assert result.returncode == 2 and "--log.level" in result.stderr
    assert_clean(result.stdout, result.stderr)
    config.write_text(f"lag: {{history: {SECRET}}}\ncredentials: {{access_key_secret: {SECRET}}}\n"
                      f"metrics: {{granularity: {TOKEN}}}\nshard: {TOKEN}\n")
    result = run(["--config.file", str(config), *TARGET, "--check-config"],
                 env(sim_url, ALIKAFKA_EXPORTER_POLL__INTERVAL=SECRET, ALIKAFKA_EXPORTER_API__ENDPOINT=f"https://h/?{SECRET}"))
    assert result.returncode == 2
    for key in ("lag.history", "credentials.access_key_secret", "metrics.granularity", "shard", "api.endpoint",
                "poll.interval"):
        assert f"{key} (" in result.stderr, key
    assert_clean(result.stdout, result.stderr)


def test_secret_pasted_as_a_key_file_path(sim_url: str, tmp_path: Path) -> None:
    """The secret where the path of its file belongs: the error says the file cannot be read, not its name."""
    config = tmp_path / "c.yaml"
    config.write_text(f"credentials: {{access_key_id_file: {tmp_path / 'id'}, access_key_secret_file: {SECRET}}}\n")
    (tmp_path / "id").write_text(OK_ID)
    result = run(["--config.file", str(config), *TARGET, "--check-config"], env(sim_url))
    assert result.returncode == 2 and "credentials" in result.stderr
    assert_clean(result.stdout, result.stderr)


def test_check_config_and_a_good_once(sim_url: str) -> None:
    """The summary names the source only; a successful --once at debug level prints metrics, no secret."""
    check = run([*TARGET, "--check-config"], env(sim_url, ALIKAFKA_EXPORTER_API__ENDPOINT=f"{sim_url}{SECRET}/"))
    assert check.returncode == 0 and "credentials: " in check.stdout and "endpoint cn-hangzhou: " in check.stdout
    once = run([*TARGET, "--once"], env(sim_url, ALIKAFKA_EXPORTER_API__SIGNATURE="v1"))
    assert once.returncode == 0, once.stderr
    assert "alikafka_consumergroup_up" in once.stdout
    assert_clean(check.stdout, check.stderr, once.stdout, once.stderr)


def test_serving_with_api_errors_pages_and_a_bad_reload(sim_url: str, tmp_path: Path) -> None:
    """A running exporter whose groups hit every kind of API error; pages, metrics and logs stay clean."""
    port = free_port()
    config = tmp_path / "c.yaml"
    groups = ", ".join(["good", *FAULTY])
    config.write_text(f"targets: [{{instance_id: {INSTANCE}, groups: [{groups}]}}]\napi: {{region: cn-hangzhou}}\n"
                      "poll: {interval: 2s}\n")
    log = tmp_path / "exporter.log"
    base = f"http://127.0.0.1:{port}"
    cmd = python_module("exporter", "--config.file", str(config), "--web.listen-address", f"127.0.0.1:{port}")
    with process(cmd, env(sim_url), log) as exporter:
        wait_for(lambda: True if http_get(base + "/readyz", timeout=5)[0] == 200 else None, 30, "readiness")
        pages = [http_get(base + path, timeout=5)[1].decode() for path in ("/", "/metrics", "/readyz", "/healthz")]
        assert "SignatureDoesNotMatch" not in pages[0] and "BIZ_SUBSCRIPTION_NOT_FOUND" in pages[0]
        config.write_text(config.read_text() + f"poll: {{interval: {SECRET}}}\n")  # a bad reload
        exporter.send_signal(signal.SIGHUP)
        wait_for(lambda: True if "config reload failed" in log.read_text() else None, 10, "the failed reload")
        pages.append(http_get(base + "/metrics", timeout=5)[1].decode())
        assert value(pages[-1], "alikafka_exporter_config_last_reload_successful") == 0
        exporter.send_signal(signal.SIGTERM)
        assert exporter.wait(timeout=5) == 0
    text = log.read_text()
    assert "level=debug" in text and "poll failed" in text
    assert_clean(text, *pages)


def test_redactor_scrubs_log_lines_in_both_formats_and_tracebacks() -> None:
    """The net under it all: known values vanish from fields, messages and tracebacks, also JSON-escaped."""
    quoted = 'q"uo\\ted-' + SECRET
    root = logging.getLogger()
    saved, level = root.handlers[:], root.level
    stream = io.StringIO()
    try:
        logs.configure("debug", "json", stream, redactor=logs.Redactor([quoted, TOKEN, "short"]))
        log = logging.getLogger("exporter.test")
        try:
            raise ValueError(f"bad value {quoted}")
        except ValueError:
            log.exception("failed", extra={"token": TOKEN, "value": quoted})
        logs.reconfigure("debug", "logfmt")
        log.debug("again %s", TOKEN, extra={"value": quoted})
        log.info("a short word stays: short")
    finally:
        root.handlers[:] = saved
        root.setLevel(level)
    out = stream.getvalue()
    assert out.count("***") >= 5 and "Traceback" in out and "short word stays: short" in out
    assert_clean(out)
    assert "uo\\\\ted" not in out and 'uo\\ted' not in out


async def test_refreshed_keys_are_learnt_by_the_redactor() -> None:
    """Keys that arrive while running (an STS refresh) are hidden in logs as the start-up ones are."""
    now = [1000.0]
    issued: list[str] = []

    class Rotating(RefreshingProvider):
        @property
        def source(self) -> str:
            return "rotating test keys"

        async def fetch(self) -> Credentials:
            issued.append(f"{SECRET}-{len(issued)}")
            return Credentials("LTAI-test", Secret(issued[-1]), Secret(f"{TOKEN}-{len(issued)}"), now[0] + 3600)

    redactor = logs.Redactor()
    provider = Learning(Rotating(refresh_margin=300, clock=lambda: now[0]), redactor.add)
    first = await provider.get()
    now[0] += 3500  # inside the refresh margin: new keys
    second = await provider.get()
    assert first.access_key_secret != second.access_key_secret and len(issued) == 2
    line = redactor(f"signed with {issued[0]} then {issued[1]} token {TOKEN}-2")
    assert issued[0] not in line and issued[1] not in line and f"{TOKEN}-2" not in line
    assert provider.source == "rotating test keys"


def test_redactor_keeps_the_newest_values() -> None:
    """Learning a key an hour for months stays bounded; the newest values are the ones kept."""
    redactor = logs.Redactor()
    for n in range(1000):
        redactor.add(f"{SECRET}-{n:04d}")
    assert len(redactor._secrets) == logs.Redactor.MAX_SECRETS
    assert redactor(f"{SECRET}-0999") == "***" and redactor(f"{SECRET}-0000") != "***"


FILE_SECRET = "Fs7SeCrEt-FromAFile-9Jd3Kw"
FILE_TOKEN = "Ft4StSfIlE-CAIS-2Vb6Nm8Qa"
OIDC_TOKEN = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6bW9uaXRvcmluZzpsYWcifQ.c2lnbmF0dXJl"


def assert_none_of(secrets: tuple[str, ...], *texts: str) -> None:
    for text in texts:
        for secret in secrets:
            assert secret not in text and secret[:12] not in text, f"{secret[:4]}... leaked:\n{text[-2000:]}"


@pytest.mark.parametrize("where", ["api.endpoint", "targets[0].instance_id", "poll.interval", "lag.history"])
def test_file_secret_pasted_into_another_key_is_not_echoed(tmp_path: Path, where: str) -> None:
    """The content of the secret or token file, pasted into another key: exit 2 naming the key, never the value."""
    (tmp_path / "id").write_text(OK_ID)
    (tmp_path / "secret").write_text(FILE_SECRET + "\n")
    (tmp_path / "token").write_text(FILE_TOKEN)
    for name in ("id", "secret", "token"):
        (tmp_path / name).chmod(0o600)
    for pasted in (FILE_SECRET, FILE_TOKEN):
        section, key = ("targets", "instance_id") if where.startswith("targets") else where.split(".")
        body: dict[str, object] = {
            "credentials": {"access_key_id_file": str(tmp_path / "id"), "access_key_secret_file": str(tmp_path / "secret"),
                            "security_token_file": str(tmp_path / "token")},
            "api": {"region": "cn-hangzhou"},
            "targets": [{"instance_id": INSTANCE, "groups": ["good"]}]}
        if section == "targets":
            body["targets"] = [{"instance_id": pasted + " x", "groups": ["good"]}]
        else:
            body.setdefault(section, {})[key] = pasted  # type: ignore[index]
        config = tmp_path / "c.yaml"
        config.write_text(yaml.safe_dump(body))
        result = run(["--config.file", str(config), "--check-config"], clean_env())
        assert result.returncode == 2, (where, result.stdout, result.stderr)
        assert f"{where} (file " in result.stderr, result.stderr
        assert_none_of((FILE_SECRET, FILE_TOKEN), result.stdout, result.stderr)


def test_oidc_token_pasted_into_a_key_is_not_echoed(tmp_path: Path) -> None:
    """The RRSA OIDC token (ALIBABA_CLOUD_OIDC_TOKEN_FILE's content) in a bad value is not shown either."""
    (tmp_path / "oidc").write_text(OIDC_TOKEN + "\n")
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"api": {"region": "cn-hangzhou", "endpoint": OIDC_TOKEN},
                                      "targets": [{"instance_id": INSTANCE, "groups": [OIDC_TOKEN[:40]]}],
                                      "lag": {"history": OIDC_TOKEN}}))
    environ = clean_env(ALIBABA_CLOUD_ROLE_ARN="acs:ram::1:role/lag",
                        ALIBABA_CLOUD_OIDC_PROVIDER_ARN="acs:ram::1:oidc-provider/ack-rrsa-c1",
                        ALIBABA_CLOUD_OIDC_TOKEN_FILE=str(tmp_path / "oidc"))
    result = run(["--config.file", str(config), "--check-config"], environ)
    assert result.returncode == 2 and "api.endpoint (file " in result.stderr and "lag.history (file " in result.stderr
    assert_none_of((OIDC_TOKEN,), result.stdout, result.stderr)


async def test_a_refreshed_oidc_token_is_learnt_with_the_credentials(tmp_path: Path) -> None:
    """The kubelet rotates the token file; the new token is learnt when the credentials it bought arrive."""
    token_file = tmp_path / "oidc"
    token_file.write_text("first-oidc-token-value")
    now = [1000.0]

    class Rotating(RefreshingProvider):
        source = "test"

        async def fetch(self) -> Credentials:
            return Credentials("LTAI-r", Secret(f"key-{now[0]}-secret"), None, now[0] + 900)

    redactor = logs.Redactor()
    provider = Learning(Rotating(refresh_margin=300, clock=lambda: now[0]), redactor.add, (token_file, None))
    await provider.get()
    token_file.write_text("second-oidc-token-value")
    now[0] += 700
    await provider.get()
    assert redactor("first-oidc-token-value second-oidc-token-value") == "*** ***"


def _key_files(directory: Path, mode: int) -> tuple[Path, Path]:
    (directory / "id").write_text(OK_ID)
    (directory / "secret").write_text(FILE_SECRET)
    for name in ("id", "secret"):
        (directory / name).chmod(mode)
    return directory / "id", directory / "secret"


def test_check_config_warns_about_key_files_other_users_can_read(tmp_path: Path) -> None:
    """0644 key files (Kubernetes' default Secret mode): a warning per file, saying how to fix it; 0600: none."""
    id_file, secret_file = _key_files(tmp_path, 0o644)
    environ = clean_env(ALIKAFKA_EXPORTER_CREDENTIALS__ACCESS_KEY_ID_FILE=str(id_file),
                        ALIKAFKA_EXPORTER_CREDENTIALS__ACCESS_KEY_SECRET_FILE=str(secret_file))
    result = run([*TARGET, "--check-config"], environ)
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "secret file is readable by other users" in line]
    assert len(warnings) == 2, result.stderr
    assert "key=credentials.access_key_id_file" in warnings[0] and "key=credentials.access_key_secret_file" in warnings[1]
    assert all("0644" in line and "defaultMode: 0400" in line for line in warnings)
    assert_none_of((FILE_SECRET,), result.stdout, result.stderr)
    for path in (id_file, secret_file):
        path.chmod(0o600)
    result = run([*TARGET, "--check-config"], environ)
    assert result.returncode == 0 and "readable by other users" not in result.stderr, result.stderr


def test_the_mode_of_a_symlinks_target_counts(tmp_path: Path) -> None:
    """Kubernetes mounts Secret keys as symlinks (mode 0777 themselves): the file they point at is judged."""
    data = tmp_path / "..2026_12_07" / "secret"
    data.parent.mkdir()
    data.write_text(FILE_SECRET)
    link = tmp_path / "secret"
    link.symlink_to(data)
    data.chmod(0o600)
    assert loose_permissions(link) is None
    data.chmod(0o644)
    assert loose_permissions(link) == "mode 0644 lets every user read it"


async def test_permission_warning_once_per_file_and_again_when_it_changes(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Polls re-check the files; an unchanged file is not reported twice, a replaced (still open) one is."""
    caplog.set_level(logging.WARNING, logger="exporter.config.secret_files")
    id_file, secret_file = _key_files(tmp_path, 0o600)
    secret_file.chmod(0o640)
    provider = FileProvider(id_file, secret_file, None)

    def warned() -> list[str]:
        return [str(getattr(r, "key", "")) for r in caplog.records if r.getMessage().startswith("secret file is")]

    await provider.get()
    await provider.get()
    assert warned() == ["credentials.access_key_secret_file"]
    replacement = tmp_path / "secret.new"
    replacement.write_text(FILE_SECRET + "2")
    replacement.chmod(0o644)
    replacement.replace(secret_file)  # a rotated key: a new file in its place
    await provider.get()
    assert warned() == ["credentials.access_key_secret_file"] * 2
    fresh = tmp_path / "secret.fresh"
    fresh.write_text(FILE_SECRET + "3")
    fresh.chmod(0o400)
    fresh.replace(secret_file)
    await provider.get()
    assert len(warned()) == 2


def test_tls_key_file_other_users_can_read_is_warned_about(tmp_path: Path) -> None:
    """The web config's key_file gets the same check at start (shown by --check-config)."""
    pki = make_pki(tmp_path)
    web = write_config(tmp_path / "web.yml", {"tls_server_config": {"cert_file": "server.crt", "key_file": "server.key"}})
    pki.key_file.chmod(0o644)
    result = run([*TARGET, "--web.config.file", str(web), "--check-config"], env("http://127.0.0.1:1/"))
    assert result.returncode == 0, result.stderr
    assert "key=\"web.config.file: tls_server_config.key_file\"" in result.stderr
    assert "mode 0644 lets every user read it" in result.stderr
    pki.key_file.chmod(0o600)
    result = run([*TARGET, "--web.config.file", str(web), "--check-config"], env("http://127.0.0.1:1/"))
    assert result.returncode == 0 and "readable by other users" not in result.stderr


def _as_user(uid: int, gid: int, paths: list[str]) -> list[str | None]:
    """loose_permissions of each path as seen by a child process running as uid:gid (needs root)."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: drop to the user, answer on the pipe, exit without running pytest's cleanup
        try:
            os.setgroups([gid])
            os.setgid(gid)
            os.setuid(uid)
            os.write(write_end, json.dumps([loose_permissions(Path(p)) for p in paths]).encode())
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as answer:
        text = answer.read()
    os.waitpid(pid, 0)
    return list(json.loads(text))


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to run as another user")
def test_group_read_is_fine_when_it_is_how_the_process_reads_the_file() -> None:
    """As a pod with fsGroup sees a 0440 Secret (root:fsGroup): no warning; 0444, or a group it is not in: warning."""
    with tempfile.TemporaryDirectory() as name:
        directory = Path(name)
        directory.chmod(0o755)
        files = {}
        for label, owner, gid, mode in (("fsgroup-0440", 0, 65532, 0o440), ("fsgroup-0444", 0, 65532, 0o444),
                                        ("other-group-0440", 0, 65533, 0o440), ("owner-0640", 65532, 65532, 0o640)):
            path = directory / label
            path.write_text("x")
            os.chown(path, owner, gid)
            path.chmod(mode)
            files[label] = str(path)
        verdicts = dict(zip(files, _as_user(65532, 65532, list(files.values())), strict=True))
    assert verdicts["fsgroup-0440"] is None
    assert verdicts["fsgroup-0444"] == "mode 0444 lets every user read it"
    assert verdicts["other-group-0440"] == "mode 0440 lets group 65533 read it"
    assert verdicts["owner-0640"] == "mode 0640 lets group 65532 read it"  # its owner needs no group bit
