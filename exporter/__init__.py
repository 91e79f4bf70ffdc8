"""alikafka-exporter: Prometheus metrics for consumer lag on Alibaba Cloud Message Queue for Apache Kafka."""

from __future__ import annotations

__version__ = "0.1.0"
