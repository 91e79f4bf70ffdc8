"""--check-config names the poll schedule, and says when the budget cannot keep poll.max_interval."""

from __future__ import annotations

import os
import subprocess
import sys

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
