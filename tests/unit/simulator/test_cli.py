"""``alikafka-simulator`` as a process: keys from flags, env or generated; bad scenarios exit 2; clean stop."""

from __future__ import annotations

import re
import signal
import stat
import subprocess
from pathlib import Path

from tests.support.procs import clean_env, free_port, http_get, process, python_module, wait_for


def test_generated_key_is_written_not_logged(tmp_path: Path) -> None:
    """Without keys it generates one: logs the ID and a 0600 secret file, never the secret."""
    port = free_port()
    log = tmp_path / "sim.log"
    with process(python_module("exporter.simulator", "--listen", f"127.0.0.1:{port}", "--scenario",
                               "builtin:minimal"), clean_env(), log) as proc:
        wait_for(lambda: True if http_get(f"http://127.0.0.1:{port}/_sim/truth")[0] == 200 else None, 20,
                 "simulator")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
    text = log.read_text()
    match = re.search(r"secret_file=(\S+)", text)
    assert match, text
    secret_file = Path(match.group(1))
    secret = secret_file.read_text().strip()
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert secret not in text
    assert "access_key_id=LTAI5tSim" in text
    secret_file.unlink()


def test_keys_from_environment_and_truth(tmp_path: Path) -> None:
    """ALIKAFKA_SIMULATOR_ACCESS_KEYS configures keys; /_sim/truth answers for the scenario's groups."""
    port = free_port()
    env = clean_env(ALIKAFKA_SIMULATOR_ACCESS_KEYS="id1:secret1,id2:secret2")
    with process(python_module("exporter.simulator", "--listen", f"127.0.0.1:{port}", "--scenario",
                               "builtin:demo", "--seed", "3"), env, tmp_path / "sim.log"):
        url = f"http://127.0.0.1:{port}/_sim/truth?group=email-sender"
        wait_for(lambda: True if http_get(url)[0] == 200 else None, 20, "simulator")
        body = http_get(url)[1]
    assert b'"group": "email-sender"' in body
    assert "generated" not in (tmp_path / "sim.log").read_text()


def test_bad_arguments_exit_2(tmp_path: Path) -> None:
    """A bad scenario file, a bad key or a bad listen address exit 2 with the problem named."""
    bad = tmp_path / "s.yaml"
    bad.write_text("instances:\n  - instance_id: i\n    topics: [{name: t, partitions: 0}]\n")
    for args, needle in ((["--scenario", str(bad)], "instances.0.topics.0.partitions"),
                         (["--access-key", "nocolon"], "ID:SECRET"),
                         (["--listen", "nowhere"], "HOST:PORT"),
                         (["--scenario", "builtin:nope"], "no such scenario")):
        result = subprocess.run(python_module("exporter.simulator", *args), env=clean_env(), capture_output=True,
                                text=True, timeout=30, check=False)
        assert result.returncode == 2, (args, result.stderr)
        assert needle in result.stderr
