"""AccessKey credentials: where they come from, and how they stay fresh.

Providers hand out :class:`Credentials` that may expire; :class:`RefreshingProvider` is the base of the
STS-backed sources, refreshing ahead of expiry with one refresh in flight. Secret files are re-read when
they change, so a rotated Kubernetes Secret takes effect without a restart. Secret values live in
:class:`Secret`, whose ``str`` and ``repr`` never show them.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from exporter.config.secret_files import FileStamp, PermissionCheck, file_stamp, peek_secret_file

ENV_ID = "ALIBABA_CLOUD_ACCESS_KEY_ID"
ENV_SECRET = "ALIBABA_CLOUD_ACCESS_KEY_SECRET"  # noqa: S105 - a variable name, not a secret
ENV_TOKEN = "ALIBABA_CLOUD_SECURITY_TOKEN"  # noqa: S105 - a variable name, not a secret

log = logging.getLogger(__name__)


class Secret:
    """A string that refuses to be printed; call :meth:`reveal` where the value is needed."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret value, for signing only."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True, slots=True)
class Credentials:
    """One usable key pair, optionally an STS token and its expiry (epoch seconds)."""

    access_key_id: str
    access_key_secret: Secret = field(repr=False)
    security_token: Secret | None = field(default=None, repr=False)
    expiration: float | None = None


class CredentialsError(Exception):
    """No usable credentials; the message names where we looked, never a secret value."""


class CredentialProvider(Protocol):
    """Anything that yields current credentials; ``source`` names it for logs and --check-config."""

    @property
    def source(self) -> str:
        """A human-readable description of where the credentials come from."""
        ...

    async def get(self) -> Credentials:
        """Current credentials; raises :class:`CredentialsError` when none are usable."""
        ...


class StaticProvider:
    """Fixed credentials: the environment (read once, at start) or the demo simulator's key."""

    def __init__(self, credentials: Credentials, source: str) -> None:
        self._credentials = credentials
        self._source = source

    @property
    def source(self) -> str:
        """Where the fixed credentials came from."""
        return self._source

    async def get(self) -> Credentials:
        """The fixed credentials."""
        return self._credentials


class Learning:
    """A provider whose every new pair is first shown to ``learn`` (the log redactor).

    Keys that arrive while running (RRSA and ECS role refreshes, a rotated key file) are then kept out
    of logs as the start-up ones are: the redactor can only hide values it has seen. With each new
    pair, the current content of ``secret_files`` is learnt too: the RRSA OIDC token, which the
    kubelet rotates and the provider re-reads at every refresh.
    """

    def __init__(self, inner: CredentialProvider, learn: Callable[..., None],
                 secret_files: Iterable[str | Path | None] = ()) -> None:
        self._inner = inner
        self._learn = learn
        self._secret_files = tuple(f for f in secret_files if f)
        self._last: Credentials | None = None

    @property
    def source(self) -> str:
        """The wrapped provider's source."""
        return self._inner.source

    @property
    def inner(self) -> CredentialProvider:
        """The wrapped provider (the start-up warnings read where it fetches keys from)."""
        return self._inner

    async def get(self) -> Credentials:
        """The wrapped provider's credentials, learnt when they are new."""
        creds = await self._inner.get()
        if creds is not self._last:
            self._learn(creds.access_key_secret.reveal(),
                        creds.security_token.reveal() if creds.security_token is not None else None,
                        *(peek_secret_file(f) for f in self._secret_files))
            self._last = creds
        return creds


def _read_secret_file(path: Path, what: str) -> str:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise CredentialsError(f"cannot read {what} file {path}: {exc.strerror or type(exc).__name__}") from None
    except UnicodeDecodeError:
        raise CredentialsError(f"{what} file {path} is not UTF-8 text") from None
    if not text:
        raise CredentialsError(f"{what} file {path} is empty")
    return text


FILE_KEYS = ("access_key_id_file", "access_key_secret_file", "security_token_file")  # the settings, in order


class FileProvider:
    """Key files mounted from a Kubernetes Secret; re-read when any of them changes.

    A change is detected by each file's stamp (device, inode, mtime, size), checked on every :meth:`get`: a
    ``stat`` per API call is negligible next to the HTTPS round trip, and Kubernetes swaps Secret
    volumes through a symlink, which changes the inode.
    """

    def __init__(self, id_file: Path, secret_file: Path, token_file: Path | None) -> None:
        self._files = (id_file, secret_file, token_file)
        self._stamp: tuple[FileStamp, ...] | None = None
        self._credentials: Credentials | None = None
        self._permissions = PermissionCheck()

    @property
    def source(self) -> str:
        """The configured file paths."""
        names = ", ".join(str(f) for f in self._files if f is not None)
        return f"files ({names})"

    def _stat(self) -> tuple[FileStamp, ...]:
        stamps = []
        for path in self._files:
            if path is None:
                continue
            try:
                stamps.append(file_stamp(path))
            except OSError as exc:
                raise CredentialsError(f"cannot read credentials file {path}: {exc.strerror}") from None
        return tuple(stamps)

    async def get(self) -> Credentials:
        """The credentials in the files, re-read if any file changed since the last call."""
        stamp = self._stat()
        if self._credentials is None or stamp != self._stamp:
            id_file, secret_file, token_file = self._files
            for key, path in zip(FILE_KEYS, self._files, strict=True):
                if path is not None:
                    self._permissions.check(f"credentials.{key}", path)
            token = _read_secret_file(token_file, "security token") if token_file else None
            self._credentials = Credentials(
                access_key_id=_read_secret_file(id_file, "AccessKey ID"),
                access_key_secret=Secret(_read_secret_file(secret_file, "AccessKey secret")),
                security_token=Secret(token) if token else None,
            )
            self._stamp = stamp
        return self._credentials


class RefreshingProvider(ABC):
    """Base for expiring credentials: cached, refreshed ahead of expiry.

    A refresh is due ``refresh_margin`` seconds before expiry, or half-way through the remaining
    lifetime for credentials that live shorter than twice the margin (so short-lived ones are not
    fetched on every call). One refresh runs at a time; while it runs, other callers keep getting
    the current credentials if those are still valid. When a refresh fails but the credentials
    have not expired yet, they keep being used and the next attempt waits a little (so a brief
    outage of the credential endpoint does not fail polls, nor is every poll slowed by it). Once
    they have expired, every call tries again and fails with a message saying so.
    """

    retry_pause = 5.0  # seconds between refresh attempts while the old credentials are still valid

    def __init__(self, refresh_margin: float = 300.0, clock: Callable[[], float] = time.time) -> None:
        self._margin = refresh_margin
        self._clock = clock
        self._cached: Credentials | None = None
        self._refresh_at = 0.0
        self._failing = False
        self._lock = asyncio.Lock()

    @property
    @abstractmethod
    def source(self) -> str:
        """Where the credentials come from."""

    @abstractmethod
    async def fetch(self) -> Credentials:
        """Obtain new credentials (with ``expiration`` set)."""

    def _valid(self, creds: Credentials | None, now: float) -> bool:
        return creds is not None and (creds.expiration is None or creds.expiration > now)

    def _schedule(self, creds: Credentials, now: float) -> None:
        if creds.expiration is None:
            self._refresh_at = math.inf
        else:
            remaining = creds.expiration - now
            self._refresh_at = creds.expiration - min(self._margin, max(0.0, remaining) / 2)

    async def get(self) -> Credentials:
        """Cached credentials, refreshed ahead of expiry."""
        now = self._clock()
        cached = self._cached
        if cached is not None and now < self._refresh_at:
            return cached
        if cached is not None and self._lock.locked() and self._valid(cached, now):
            return cached  # someone is refreshing; these still work meanwhile
        async with self._lock:
            now = self._clock()
            cached = self._cached
            if cached is not None and now < self._refresh_at:
                return cached
            try:
                fresh = await self.fetch()
            except CredentialsError as exc:
                now = self._clock()
                if cached is not None and self._valid(cached, now):
                    assert cached.expiration is not None
                    self._refresh_at = min(cached.expiration, now + self.retry_pause)
                    level = logging.DEBUG if self._failing else logging.WARNING  # once per outage
                    log.log(level, "credentials refresh failed; the current ones stay in use until they expire",
                            extra={"source": self.source, "expires_in_s": round(cached.expiration - now, 1),
                                   "error": str(exc)})
                    self._failing = True
                    return cached
                if cached is not None and cached.expiration is not None:
                    raise CredentialsError(f"{self.source}: credentials expired at {iso_utc(cached.expiration)} "
                                           f"and could not be refreshed: {exc}") from None
                raise
            if self._failing:
                log.info("credentials refresh recovered", extra={"source": self.source})
                self._failing = False
            self._cached = fresh
            self._schedule(fresh, self._clock())
            return fresh


def iso_utc(epoch: float) -> str:
    """``2026-12-01T09:00:00Z``: the API's timestamp format, and how expiry times are shown."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
