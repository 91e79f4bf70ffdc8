"""Structured logging on stderr, as logfmt (the default) or one JSON object per line.

Call sites use stdlib logging with a constant message and fields in ``extra=``. Every line passes a
:class:`Redactor` last, which masks the secret values it knows wherever they turn up: a net under the rule
that secrets are never logged. aiohttp's per-request tracebacks are shortened to one line, and so is an
unexpected exception (:func:`log_unexpected`), with the traceback only at debug level.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterable, Mapping
from typing import Any, Literal, TextIO

# Attributes every LogRecord has; anything else on a record came from ``extra=``.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
        "level": record.levelname.lower(),
        "logger": record.name,
        "msg": record.getMessage(),
    }
    for key, value in vars(record).items():
        if key not in _STANDARD and not key.startswith("_"):
            fields[key] = value
    if record.exc_info and record.exc_info[0] is not None:
        fields["exc"] = logging.Formatter().formatException(record.exc_info)
    return fields


def _logfmt_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if text == "" or any(c in text for c in ' ="\\\n\t'):
        return json.dumps(text)
    return text


class LogfmtFormatter(logging.Formatter):
    """``ts=... level=info logger=... msg="..." key=value``."""

    def format(self, record: logging.LogRecord) -> str:
        """One logfmt line."""
        return " ".join(f"{k}={_logfmt_value(v)}" for k, v in _fields(record).items())


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        """One JSON line."""
        return json.dumps(_fields(record), default=str)


class Redactor:
    """Replaces known secret values with ``***`` in text (as written and as JSON-escaped)."""

    MIN_LENGTH = 6  # shorter values would blank out ordinary words
    # Refreshed STS keys arrive every hour or so for as long as the process runs: the newest this many
    # values are known (an expired key is also worth less to anyone reading a log).
    MAX_SECRETS = 64

    def __init__(self, secrets: Iterable[str | None] = ()) -> None:
        self._secrets: dict[str, None] = {}  # in the order learnt, the oldest first
        self._longest_first: tuple[str, ...] = ()  # the order replacements are tried in, kept by add()
        self.add(*secrets)

    def add(self, *secrets: str | None) -> None:
        """Know these values too (None and short values are ignored)."""
        for secret in secrets:
            if secret and len(secret) >= self.MIN_LENGTH:
                for form in (secret, json.dumps(secret)[1:-1]):
                    self._secrets.pop(form, None)
                    self._secrets[form] = None
        while len(self._secrets) > self.MAX_SECRETS:
            del self._secrets[next(iter(self._secrets))]
        self._longest_first = tuple(sorted(self._secrets, key=len, reverse=True))

    def __call__(self, text: str) -> str:
        """``text`` with every known secret replaced."""
        for secret in self._longest_first:
            if secret in text:
                text = text.replace(secret, "***")
        return text


class _Redacting(logging.Formatter):
    def __init__(self, inner: logging.Formatter, redactor: Redactor) -> None:
        super().__init__()
        self.inner = inner
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        return self.redactor(self.inner.format(record))


def _formatter(fmt: str) -> logging.Formatter:
    return JsonFormatter() if fmt == "json" else LogfmtFormatter()


def configure(
    level: str = "info", fmt: Literal["logfmt", "json"] = "logfmt", stream: TextIO | None = None,
    redactor: Redactor | None = None,
) -> None:
    """Install the formatter on the root logger (replacing earlier handlers)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(_Redacting(_formatter(fmt), redactor or Redactor()))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    _set_level(level)


def reconfigure(level: str, fmt: Literal["logfmt", "json"]) -> None:
    """Change level and format in place (a config reload), keeping the handlers and their redactor."""
    for handler in logging.getLogger().handlers:
        if isinstance(handler.formatter, _Redacting):
            handler.formatter.inner = _formatter(fmt)
    _set_level(level)


def _set_level(level: str) -> None:
    logging.getLogger().setLevel(level.upper())
    numeric = logging.getLevelName(level.upper())
    # aiohttp logs every request at info; keep that for debug runs only.
    logging.getLogger("aiohttp.access").setLevel(logging.DEBUG if numeric <= logging.DEBUG else logging.WARNING)


def describe(exc: BaseException) -> str:
    """``Type: message`` on one line, cut to 300 characters."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return " ".join(text.split())[:300]


def log_unexpected(logger: logging.Logger, message: str, exc: BaseException, fields: Mapping[str, Any]) -> None:
    """One error line with the exception described; its traceback only when ``logger`` logs debug."""
    logger.error(message, extra={**fields, "error": describe(exc)},
                 exc_info=exc if logger.isEnabledFor(logging.DEBUG) else None)
