"""--check-config names the poll schedule, and says when the budget cannot keep poll.max_interval."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ENV = {"ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAI-check", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "secret-5b1e"}


def check_config(groups: int, env: dict[str, str] | None = None) -> str:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("ALIBABA_CLOUD_", "ALIKAFKA_EXPORTER_"))}
    target = "alikafka_post-cn-1=" + ",".join(f"g{i}" for i in range(groups))
    result = subprocess.run([sys.executable, "-m", "exporter", "--check-config", "--target", target, "--region",
                             "cn-beijing"], env={**base, **ENV, **(env or {})},
                            capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    return next(line for line in result.stdout.splitlines() if line.startswith("schedule:"))


def test_adaptive_within_reach() -> None:
    assert check_config(400) == "schedule: adaptive, no pair waits longer than 600s"


def test_a_budget_that_cannot_keep_max_interval_is_named_with_the_fix() -> None:
    """2,000 pairs at 3 qps take 680 s a round: the default 10 minutes cannot be kept."""
    line = check_config(2000)
    assert "2000 pairs take 680s a round" in line and "quiet pairs will wait up to 931s" in line
    assert "set poll.max_interval to 931s or more" in line


def test_uniform() -> None:
    assert check_config(2000, {"ALIKAFKA_EXPORTER_POLL__SCHEDULE": "uniform"}) == "schedule: uniform (round robin)"


def test_each_account_is_judged_on_its_own_budget(tmp_path: Path) -> None:
    """prod: 2,000 groups at 3 qps cannot keep max_interval; staging: 100 groups at 3 qps are polled every
    interval. The warning names prod alone, and each account's line says how its own budget schedules it
    (one schedule over the sum judged 2,100 pairs at 6 qps instead)."""
    files = []
    for name in ("prod", "staging"):
        for suffix, text in (("id", f"LTAI5t{name}0001"), ("secret", f"{name}-secret-5b1e")):
            path = tmp_path / f"{name}.{suffix}"
            path.write_text(text)
            path.chmod(0o400)
        files.append(f"{{access_key_id_file: {tmp_path}/{name}.id, access_key_secret_file: {tmp_path}/{name}.secret}}")
    config = tmp_path / "c.yaml"
    config.write_text(f"""
api: {{region: cn-beijing}}
accounts:
  prod: {{credentials: {files[0]}, max_qps: 3}}
  staging: {{credentials: {files[1]}, max_qps: 3}}
targets:
  - {{instance_id: alikafka_post-cn-1, account: prod, groups: [{", ".join(f"g{i}" for i in range(2000))}]}}
  - {{instance_id: alikafka_post-cn-2, account: staging, groups: [{", ".join(f"s{i}" for i in range(100))}]}}
""")
    base = {k: v for k, v in os.environ.items() if not k.startswith(("ALIBABA_CLOUD_", "ALIKAFKA_EXPORTER_"))}
    result = subprocess.run([sys.executable, "-m", "exporter", "--check-config", "--config.file", str(config)],
                            env=base, capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    schedule = next(line for line in lines if line.startswith("schedule:"))
    assert "account prod at max_qps 3, 2000 pairs take 680s a round" in schedule and "staging" not in schedule
    assert any(line.startswith("  prod: ") and line.endswith("2000 listed pairs, a round takes 680s on its budget")
               for line in lines), lines
    assert any(line.startswith("  staging: ") and line.endswith("100 listed pairs, each polled every 60s")
               for line in lines), lines
