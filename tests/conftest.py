"""Shared fixtures: external tools (promtool, Prometheus) found or installed by scripts/install-tools.sh.

Under ``CI=true`` a missing tool fails the test that needs it instead of skipping it (see
``tests.support.tools.find_tool``).
"""

from __future__ import annotations

import pytest

from tests.support.tools import find_tool


@pytest.fixture(scope="session")
def promtool() -> str:
    """Path to promtool."""
    return find_tool("promtool")


@pytest.fixture(scope="session")
def prometheus_bin() -> str:
    """Path to the Prometheus server binary."""
    return find_tool("prometheus")
