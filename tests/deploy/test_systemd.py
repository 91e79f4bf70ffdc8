"""deploy/systemd/alikafka-exporter.service, checked by systemd's own tools without booting systemd.

`systemd-analyze verify` exits 0 even on unknown keys and unparsable values (it only warns), so a
clean unit is one with no output at all; the last test shows that criterion catches a typo.
Booting the unit under a real systemd is tests/deploy/test_container.py's job.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.tools import ROOT, find_tool

pytestmark = pytest.mark.e2e

UNIT = ROOT / "deploy" / "systemd" / "alikafka-exporter.service"
NAME = UNIT.name
MAX_EXPOSURE = 1.5  # systemd-analyze security: 0 (locked down) to 10 (unprotected); under 2 is "OK"


@pytest.fixture(scope="module")
def systemd_analyze() -> str:
    return find_tool("systemd-analyze")


def make_root(tmp_path: Path, unit_text: str) -> Path:
    """A file-system root holding systemd's own units, this unit and stand-ins for its commands."""
    root = tmp_path / "root"
    shutil.copytree("/lib/systemd/system", root / "lib" / "systemd" / "system", symlinks=True)
    for command in ("opt/alikafka-exporter/bin/alikafka-exporter", "bin/kill"):  # ExecStart=, ExecReload=
        exe = root / command
        exe.parent.mkdir(parents=True, exist_ok=True)
        exe.write_text("#!/bin/sh\n")
        exe.chmod(0o755)
    units = root / "etc" / "systemd" / "system"
    units.mkdir(parents=True)
    (units / NAME).write_text(unit_text)
    return root


def analyze(systemd_analyze: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([systemd_analyze, *args], capture_output=True, text=True, timeout=60, check=False)


def test_unit_verifies_without_a_warning(systemd_analyze: str, tmp_path: Path) -> None:
    root = make_root(tmp_path, UNIT.read_text())
    proc = analyze(systemd_analyze, "verify", f"--root={root}", NAME)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout + proc.stderr == ""


def test_unit_sandbox_exposure_is_low(systemd_analyze: str, tmp_path: Path) -> None:
    root = make_root(tmp_path, UNIT.read_text())
    proc = analyze(systemd_analyze, "security", "--offline=yes", f"--root={root}", "--no-pager", NAME)
    assert proc.returncode == 0, proc.stderr
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d)", proc.stdout)
    assert match, proc.stdout[-2000:]
    assert float(match.group(1)) <= MAX_EXPOSURE, proc.stdout
    passed = {line.split()[1] for line in proc.stdout.splitlines() if line.startswith("✓")}
    for setting in ("User=/DynamicUser=", "NoNewPrivileges=", "CapabilityBoundingSet=~CAP_SYS_ADMIN",
                    "ProtectSystem=", "ProtectHome=", "PrivateTmp=", "SystemCallFilter=~@privileged"):
        assert setting in passed, f"{setting} not satisfied:\n{proc.stdout}"


def test_verify_criterion_catches_a_typo(systemd_analyze: str, tmp_path: Path) -> None:
    """The 'no output' rule above is what makes verify fail on a mistyped or invalid setting."""
    broken = UNIT.read_text().replace("ProtectSystem=strict", "ProtectSystm=strict")
    assert broken != UNIT.read_text()
    root = make_root(tmp_path, broken)
    proc = analyze(systemd_analyze, "verify", f"--root={root}", NAME)
    assert "Unknown key" in proc.stdout + proc.stderr


def service_settings(text: str) -> dict[str, list[str]]:
    """The [Service] section's assignments, every value of a key in order (systemd's last one wins)."""
    settings: dict[str, list[str]] = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line
            continue
        if section == "[Service]":
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    return settings


def test_unit_forbids_core_dumps(systemd_analyze: str, tmp_path: Path) -> None:
    """LimitCORE=0: a crash writes no core file holding the AccessKey secret; the unit still verifies cleanly."""
    assert service_settings(UNIT.read_text()).get("LimitCORE", [""])[-1] == "0"
    root = make_root(tmp_path, UNIT.read_text())
    proc = analyze(systemd_analyze, "verify", f"--root={root}", NAME)
    assert proc.returncode == 0 and proc.stdout + proc.stderr == "", proc.stdout + proc.stderr
