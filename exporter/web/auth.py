"""HTTP basic auth against bcrypt hashes, as the exporter-toolkit's ``basic_auth_users`` stores them.

bcrypt is slow by design and Prometheus sends the same credentials on every scrape, so a success is cached
under a hash of (user, password, stored hash), never the password; failures are not cached. An unknown
user costs as much as a wrong password (names cannot be probed by timing), and checks run in at most
``parallel`` worker threads, so a flood of wrong passwords cannot stall the event loop.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
from collections import OrderedDict
from collections.abc import Mapping

import bcrypt
from pydantic import SecretStr

# bcrypt reads at most 72 bytes of a password. bcrypt 4 ignored the rest, so a longer password
# matched any password with the same first 72 bytes; bcrypt 5 raises ValueError instead
# (changelog of 5.0.0, https://github.com/pyca/bcrypt#changelog). A longer password never matches,
# whichever version is installed: checking only its prefix would accept passwords never set.
MAX_PASSWORD_BYTES = 72


def _verify(password: bytes, hashed: bytes) -> bool:
    if len(password) > MAX_PASSWORD_BYTES:
        return False
    try:
        return bcrypt.checkpw(password, hashed)
    except ValueError:  # a hash bcrypt cannot read (the config check lets only well-formed ones through)
        return False


def parse_basic(header: str | None) -> tuple[str, str] | None:
    """(user, password) from an ``Authorization: Basic ...`` header, or None when absent or malformed."""
    if not header:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


class BasicAuth:
    """Checks credentials; one instance per server, built from the validated web config."""

    def __init__(self, users: Mapping[str, SecretStr], *, cache_size: int = 256, parallel: int = 2) -> None:
        assert users, "basic auth needs at least one user"
        self._users = {name: secret.get_secret_value().encode() for name, secret in users.items()}
        # The costliest stored hash stands in for unknown users (its cost is in the hash's prefix).
        self._decoy = max(self._users.values(), key=lambda h: h.split(b"$")[2])
        self._ok: OrderedDict[bytes, None] = OrderedDict()
        self._cache_size = cache_size
        self._slots = asyncio.Semaphore(parallel)
        self._pending: dict[bytes, asyncio.Future[bool]] = {}
        self.bcrypt_checks = 0

    @staticmethod
    def _cache_key(user: str, password: str, hashed: bytes) -> bytes:
        digest = hashlib.sha256()
        for part in (user.encode(), password.encode(), hashed):
            digest.update(len(part).to_bytes(8, "big"))
            digest.update(part)
        return digest.digest()

    async def check(self, header: str | None) -> bool:
        """Whether the ``Authorization`` header carries a known user and the right password."""
        creds = parse_basic(header)
        if creds is None:
            return False
        user, password = creds
        stored = self._users.get(user)
        hashed = stored if stored is not None else self._decoy
        key = self._cache_key(user, password, hashed)
        if stored is not None and key in self._ok:
            self._ok.move_to_end(key)
            return True
        pending = self._pending.get(key)
        if pending is None:  # the first of several identical requests checks; the others wait for it
            pending = asyncio.ensure_future(self._bcrypt(password, hashed))
            self._pending[key] = pending
            pending.add_done_callback(lambda _: self._pending.pop(key, None))
        ok = await asyncio.shield(pending)
        if not ok or stored is None:
            return False
        self._ok[key] = None
        if len(self._ok) > self._cache_size:
            self._ok.popitem(last=False)
        return True

    async def _bcrypt(self, password: str, hashed: bytes) -> bool:
        async with self._slots:
            self.bcrypt_checks += 1
            return await asyncio.to_thread(_verify, password.encode(), hashed)
