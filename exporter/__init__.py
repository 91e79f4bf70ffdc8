"""alikafka-exporter: Prometheus metrics for consumer lag on Alibaba Cloud Message Queue for Apache Kafka.

``__version__`` is the installed distribution's version, read from its package metadata. The build
writes that version from the git tag (hatch-vcs), so ``--version``, ``alikafka_exporter_build_info``
and the User-Agent tell which release is running; there is no literal here to forget to bump. Run from
a source tree that was never installed, there is no metadata and the version says so.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("alikafka-exporter")
except PackageNotFoundError:  # a bare source tree on sys.path, not installed
    __version__ = "0+unknown"
