"""Where things are: the repository root, the shared test fixtures, and the external tools tests run.

Tools (promtool, Prometheus, curl, ...) come from ``.tools/`` (scripts/install-tools.sh) or PATH. Under
``CI=true`` a missing tool fails the test that needs it instead of skipping it, so CI cannot go green by
silently not testing.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
TOOLS = ROOT / ".tools" / "prometheus" / "usr" / "bin"


def find_tool(name: str) -> str:
    """The path of ``name`` from .tools/ or PATH; skip (fail under CI) when it is missing."""
    local = TOOLS / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if found:
        return found
    message = f"{name} not found: run scripts/install-tools.sh (make test does)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)
