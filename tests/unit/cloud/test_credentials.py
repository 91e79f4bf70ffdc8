"""The credentials chain: files (re-read on change), environment, refresh ahead of expiry, no leaks."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from exporter.cloud.credential_chain import default_chain
from exporter.cloud.credentials import (
    Credentials,
    CredentialsError,
    FileProvider,
    RefreshingProvider,
    Secret,
    StaticProvider,
)
from tests.support.fakes import Clock


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


async def test_files_win_and_are_reread_when_they_change(tmp_path: Path) -> None:
    """Mounted secret files take precedence over env, and a rotated secret is picked up."""
    id_file = write(tmp_path / "id", "AKID1\n")
    secret_file = write(tmp_path / "secret", "s3cret-one\n")
    provider = default_chain(id_file, secret_file, None, {"ALIBABA_CLOUD_ACCESS_KEY_ID": "env",
                                                          "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "envsecret"})
    assert isinstance(provider, FileProvider)
    first = await provider.get()
    assert (first.access_key_id, first.access_key_secret.reveal(), first.security_token) == ("AKID1", "s3cret-one",
                                                                                             None)
    # Kubernetes swaps the files via a symlink: a new inode
    new_secret = write(tmp_path / "secret.new", "s3cret-two")
    os.replace(new_secret, secret_file)
    assert (await provider.get()).access_key_secret.reveal() == "s3cret-two"
    assert "s3cret" not in provider.source


async def test_security_token_file(tmp_path: Path) -> None:
    """An STS token file is read with the keys."""
    provider = FileProvider(write(tmp_path / "i", "STS.ID"), write(tmp_path / "s", "sec"), write(tmp_path / "t", "tok"))
    creds = await provider.get()
    assert creds.security_token is not None and creds.security_token.reveal() == "tok"


async def test_missing_or_empty_files_are_clear_errors(tmp_path: Path) -> None:
    """Unreadable or empty key files name the file, never a value."""
    with pytest.raises(CredentialsError, match="cannot read"):
        await FileProvider(tmp_path / "nope", tmp_path / "nope2", None).get()
    with pytest.raises(CredentialsError, match="is empty"):
        await FileProvider(write(tmp_path / "i", "ID"), write(tmp_path / "s", "  \n"), None).get()


async def test_environment_with_sts_token() -> None:
    """ALIBABA_CLOUD_* variables, including the STS token."""
    env = {"ALIBABA_CLOUD_ACCESS_KEY_ID": "AK", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "SK",
           "ALIBABA_CLOUD_SECURITY_TOKEN": "TOKEN"}
    provider = default_chain(None, None, None, env)
    creds = await provider.get()
    assert creds.security_token == Secret("TOKEN")
    assert "ALIBABA_CLOUD_SECURITY_TOKEN" in provider.source and "TOKEN," not in provider.source


def test_nothing_configured_names_where_it_looked() -> None:
    """No source at all, or half a key pair, is a clear error."""
    no_ecs = {"ALIBABA_CLOUD_ECS_METADATA_DISABLED": "true"}
    with pytest.raises(CredentialsError, match=r"ALIBABA_CLOUD_ACCESS_KEY_ID.*RRSA.*ECS_METADATA_DISABLED"):
        default_chain(None, None, None, no_ecs)
    with pytest.raises(CredentialsError, match="ALIBABA_CLOUD_ACCESS_KEY_SECRET is not set"):
        default_chain(None, None, None, {"ALIBABA_CLOUD_ACCESS_KEY_ID": "AK"})


def test_secrets_do_not_print() -> None:
    """Secret and Credentials reprs hide values."""
    creds = Credentials("AK", Secret("hunter2"), Secret("tok3n"))
    assert "hunter2" not in repr(creds) and "tok3n" not in repr(creds) and "hunter2" not in str(creds.access_key_secret)
    assert "hunter2" not in f"{creds}"


class CountingSTS(RefreshingProvider):
    """A refreshing provider whose fetch hands out numbered credentials valid for an hour."""

    def __init__(self, clock: Clock) -> None:
        super().__init__(refresh_margin=300, clock=clock)
        self.clock = clock
        self.fetches = 0
        self.fail = False

    @property
    def source(self) -> str:
        return "test STS"

    async def fetch(self) -> Credentials:
        if self.fail:
            raise CredentialsError("sts down")
        self.fetches += 1
        return Credentials(f"STS.{self.fetches}", Secret("s"), Secret("t"), expiration=self.clock.now + 3600)


async def test_refreshing_provider_refreshes_before_expiry_and_rides_out_failures() -> None:
    """Cached until 5 min before expiry; a failed refresh keeps unexpired credentials."""
    clock = Clock(1000.0)
    sts = CountingSTS(clock)
    assert (await sts.get()).access_key_id == "STS.1"
    clock.now += 3000
    assert (await sts.get()).access_key_id == "STS.1"
    clock.now += 400  # inside the refresh margin
    assert (await sts.get()).access_key_id == "STS.2"
    clock.now += 3400
    sts.fail = True
    assert (await sts.get()).access_key_id == "STS.2"  # refresh failed, still valid
    clock.now += 300
    with pytest.raises(CredentialsError):
        await sts.get()


async def test_static_provider() -> None:
    """Static credentials (demo) come back unchanged."""
    creds = Credentials("AK", Secret("SK"))
    assert await StaticProvider(creds, "demo").get() is creds
