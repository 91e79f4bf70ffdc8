"""logfmt and JSON log lines carry the message and the structured fields."""

from __future__ import annotations

import io
import json
import logging

import pytest

from exporter import logs


@pytest.fixture(autouse=True)
def restore_root() -> None:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield  # type: ignore[misc]
    root.handlers[:] = handlers
    root.setLevel(level)


def test_logfmt_line_with_fields_and_quoting() -> None:
    """Fields from extra= become keys; values with spaces or quotes are quoted."""
    out = io.StringIO()
    logs.configure("info", "logfmt", out)
    logging.getLogger("exporter.polling.poller").warning(
        "poll failed", extra={"instance_id": "i-1", "code": "Throttling.User", "error": 'said "no" twice'})
    line = out.getvalue().strip()
    assert line.startswith("ts=") and " level=warning logger=exporter.polling.poller " in line
    assert 'msg="poll failed"' in line and "code=Throttling.User" in line
    assert 'error="said \\"no\\" twice"' in line
    assert "\n" not in line


def test_json_lines_and_level_filter() -> None:
    """JSON format emits one object per line; debug lines are dropped at info."""
    out = io.StringIO()
    logs.configure("info", "json", out)
    log = logging.getLogger("exporter.test")
    log.debug("hidden")
    log.info("listening", extra={"address": ":9897", "targets": 3})
    (record,) = [json.loads(line) for line in out.getvalue().splitlines()]
    assert record["msg"] == "listening" and record["targets"] == 3 and record["level"] == "info"


def test_exceptions_are_one_json_value() -> None:
    """A traceback stays inside one JSON line."""
    out = io.StringIO()
    logs.configure("debug", "json", out)
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("x").exception("failed")
    (record,) = [json.loads(line) for line in out.getvalue().splitlines()]
    assert "ValueError: boom" in record["exc"]
