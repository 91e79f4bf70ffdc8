"""A faithful stand-in for the alikafka OpenAPI: the demo's data source and every test's upstream.

It authenticates like the real gateway (v1 and v3 signatures, timestamp window, nonces, STS
tokens), enforces per-action flow control, serves GetConsumerProgress and its sibling actions from
a workload whose true lag is known at every moment, and injects faults on demand.
"""

from __future__ import annotations

from exporter.simulator.faults import FaultRule
from exporter.simulator.gateway import build_app
from exporter.simulator.scenario import Scenario, ScenarioError
from exporter.simulator.service import Simulator

__all__ = ["FaultRule", "Scenario", "ScenarioError", "Simulator", "build_app"]
