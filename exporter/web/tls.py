"""TLS while serving: the server context rebuilt when its certificate files change, the context
asyncio wraps each new connection with, and the ``client_allowed_sans`` check.

The web config file's schema (and the building of one context from it, which loading the file
runs as a check) lives in ``webconfig``; this module only knows files and contexts.
"""

from __future__ import annotations

import ipaddress
import logging
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from exporter.config.secret_files import FileStamp, PermissionCheck, file_stamp

log = logging.getLogger(__name__)


class TlsError(Exception):
    """A TLS setting that cannot be applied; ``key`` names it."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


def _stat_key(paths: tuple[Path, ...]) -> tuple[FileStamp, ...]:
    keys = []
    for path in paths:
        try:
            keys.append(file_stamp(path))
        except OSError:
            keys.append((0, 0, 0, 0))
    return tuple(keys)


class CertificateReloader:
    """Hands out the server context, rebuilt when the certificate, key or client CA files change.

    Checked on every new connection (three ``stat`` calls). A change that does not load (for
    instance a certificate replaced before its key) keeps the previous context serving and logs one
    warning per distinct file state; the next good state is picked up on the next connection.
    Kubernetes Secret updates (a symlink swap) change the inode and are seen like any replacement.
    The key file is checked for permissions that let other users read it, when first loaded and
    when a changed one loads (a warning, see :class:`exporter.config.secret_files.PermissionCheck`).
    """

    def __init__(self, build: Callable[[], ssl.SSLContext], cert_file: Path, key_file: Path,
                 client_ca_file: Path | None = None) -> None:
        self._build = build
        self._cert_file, self._key_file = cert_file, key_file
        self._paths = tuple(p for p in (cert_file, key_file, client_ca_file) if p is not None)
        self._key = _stat_key(self._paths)
        self._context = build()
        self._failed: tuple[FileStamp, ...] | None = None
        self._permissions = PermissionCheck()
        self._check_key_file()

    def _check_key_file(self) -> None:
        self._permissions.check("web.config.file: tls_server_config.key_file", self._key_file)

    def current(self) -> ssl.SSLContext:
        """The context for a new connection, reloading first when the files changed."""
        key = _stat_key(self._paths)
        if key in (self._key, self._failed):
            return self._context
        try:
            context = self._build()
        except TlsError as exc:
            self._failed = key
            log.warning("TLS certificate reload failed; still serving the previous certificate",
                        extra={"key": f"tls_server_config.{exc.key}", "error": str(exc)})
            return self._context
        self._context, self._key, self._failed = context, key, None
        log.info("TLS certificate reloaded", extra={"cert_file": str(self._cert_file)})
        self._check_key_file()
        return self._context


class ReloadingContext(ssl.SSLContext):
    """An SSLContext for ``loop.create_server`` whose connections use the reloader's current context.

    asyncio wraps each accepted connection with ``wrap_bio``; delegating it is what makes a reload
    apply to new connections while open ones keep the context they started with.
    """

    reloader: CertificateReloader

    def __new__(cls, reloader: CertificateReloader) -> ReloadingContext:
        """A context that only delegates (no __init__: SSLContext is set up in __new__)."""
        self = super().__new__(cls, ssl.PROTOCOL_TLS_SERVER)
        self.reloader = reloader
        return self

    def wrap_bio(self, incoming: ssl.MemoryBIO, outgoing: ssl.MemoryBIO, server_side: bool = False,
                 server_hostname: str | bytes | None = None, session: ssl.SSLSession | None = None) -> ssl.SSLObject:
        """Wrap with the current (possibly reloaded) context."""
        return self.reloader.current().wrap_bio(incoming, outgoing, server_side, server_hostname, session)


@dataclass(frozen=True, slots=True)
class SanPolicy:
    """``client_allowed_sans``: a verified client certificate must carry one of these names."""

    allowed: frozenset[str]

    @staticmethod
    def _normal(kind: str, value: str) -> str:
        value = value.strip()
        if kind == "IP Address":
            try:
                return str(ipaddress.ip_address(value))
            except ValueError:
                return value
        return value

    @classmethod
    def of(cls, names: list[str]) -> SanPolicy:
        """The policy for the configured names."""
        return cls(frozenset(cls._normal("IP Address", n) for n in names))

    def allows(self, peercert: Mapping[str, Any] | None) -> bool:
        """Whether a verified peer certificate (``getpeercert()``) has an allowed SAN."""
        if not peercert:
            return False
        return any(self._normal(kind, value) in self.allowed for kind, value in peercert.get("subjectAltName", ()))
