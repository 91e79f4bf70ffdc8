"""Live reload: SIGHUP, or a change of the config file's content, applies a new configuration.

The file is watched by the SHA-256 of its bytes, not its mtime, so an editor's rewrite, a ``mv`` and a
Kubernetes ConfigMap swap are all seen, and a change is applied only once two reads agree. A new
configuration is validated as at start-up, and an invalid one changes nothing. A valid one is applied in
place (pairs that stay keep their history); keys only a restart can change keep their running values,
and the log names them.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exporter.config.errors import ConfigError
from exporter.config.settings import Settings
from exporter.logs import log_unexpected

log = logging.getLogger(__name__)

# Keys applied only at start-up: a section name (all of it) or a section and its keys.
RESTART_ONLY: Mapping[str, tuple[str, ...] | None] = {
    "api": ("network", "endpoint", "signature", "timeout", "max_retries", "max_qps", "max_concurrency",
            "hide_last_timestamp"),
    "credentials": None,
    "accounts": None,  # each account's credentials, role and budget are built once, at start
    "lag": None,
    "web": None,
    "demo": None,
}
SETTLE_SECONDS = 0.2


def digest(path: Path | None) -> str | None:
    """SHA-256 of the file's bytes (through symlinks); None when there is no file or it cannot be read."""
    if path is None:
        return None
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


def _flat(settings: Settings) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for section, value in settings.model_dump().items():
        if isinstance(value, dict):
            out.update({f"{section}.{k}": v for k, v in value.items()})
        else:
            out[section] = value
    return out


def _restart_only(key: str) -> bool:
    section, _, name = key.partition(".")
    if section not in RESTART_ONLY:
        return False
    keys = RESTART_ONLY[section]
    return keys is None or name in keys


def changed_keys(old: Settings, new: Settings) -> list[str]:
    """Dotted keys whose value differs (``targets`` as one key)."""
    before, after = _flat(old), _flat(new)
    return sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))


def split_changes(old: Settings, new: Settings) -> tuple[Settings, list[str], list[str]]:
    """The settings to run with (``new``, restart-only keys kept from ``old``), the live and the waiting keys."""
    changed = changed_keys(old, new)
    waiting = [k for k in changed if _restart_only(k)]
    update: dict[str, Any] = {}
    for section, keys in RESTART_ONLY.items():
        if keys is None:
            update[section] = getattr(old, section)
        else:
            kept = {k: getattr(getattr(old, section), k) for k in keys}
            update[section] = getattr(new, section).model_copy(update=kept)
    return new.model_copy(update=update), [k for k in changed if k not in waiting], waiting


@dataclass(slots=True)
class ReloadStatus:
    """What the exporter's own metrics say about configuration loads; ``version`` grows on each."""

    successful: bool = True
    last_success: float | None = None
    version: int = 0


class Reloader:
    """Loads the configuration again on request or on a content change, and hands it to ``apply``."""

    def __init__(
        self,
        load: Callable[[], Settings],
        current: Settings,
        apply: Callable[[Settings, Settings], None],
        path: Path | None,
        *,
        clock: Callable[[], float] = time.time,
        settle: float = SETTLE_SECONDS,
        status: ReloadStatus | None = None,
    ) -> None:
        self._load = load
        self._apply = apply
        self._path = path
        self._clock = clock
        self._settle = settle
        self.settings = current
        self.status = status or ReloadStatus()
        self.status.last_success = clock()  # the start-up load
        self._hash = digest(path)
        self._wanted = asyncio.Event()

    def request(self) -> None:
        """Reload soon (the SIGHUP handler)."""
        self._wanted.set()

    def reload(self, reason: str) -> bool:
        """Load and apply now; False (and the old configuration kept) when the new one is invalid."""
        try:
            new = self._load()
        except ConfigError as exc:
            for problem in exc.problems:
                log.error("config reload failed; keeping the running configuration",  # noqa: TRY400 - no traceback
                          extra={"reason": reason, "problem": problem})
            return self._done(ok=False)
        effective, live, waiting = split_changes(self.settings, new)
        if waiting:
            log.warning("config change needs a restart to take effect; the running values are kept",
                        extra={"keys": ",".join(waiting)})
        try:
            self._apply(self.settings, effective)
        except Exception as exc:  # noqa: BLE001 - a bug in applying must not stop the exporter
            log_unexpected(log, "config reload could not be applied", exc, {"reason": reason})
            return self._done(ok=False)
        self.settings = effective
        log.info("configuration reloaded", extra={"reason": reason, "changed": ",".join(live) or "nothing"})
        return self._done(ok=True)

    def _done(self, *, ok: bool) -> bool:
        self.status.successful = ok
        if ok:
            self.status.last_success = self._clock()
        self.status.version += 1
        return ok

    async def _settled(self, current: str | None) -> str | None:
        """The file's digest once two reads ``settle`` seconds apart agree (at most a few tries), from ``current``."""
        for _ in range(10):
            await asyncio.sleep(self._settle)
            again = digest(self._path)
            if again == current:
                break
            current = again
        return current

    async def run(self) -> None:
        """Watch for SIGHUP and file changes until cancelled."""
        while True:
            interval = self.settings.reload.watch_interval
            timeout = interval if interval > 0 and self._path is not None else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wanted.wait(), timeout)
            if self._wanted.is_set():
                self._wanted.clear()
                self._hash = digest(self._path)
                self.reload("signal")
            elif (seen := digest(self._path)) != self._hash:
                self._hash = await self._settled(seen)
                self.reload("file changed")
