"""The default credentials chain: the first configured source of secret files, environment, RRSA, ECS role.

It sits apart from the providers because it picks among the local ones and the remote ones (RRSA and
the ECS RAM role), which build on the local module's base class. Each configured account gets the same
chain from its own ``credentials`` section, and an ``AssumeRole`` on top when it names a ``role_arn``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path

from exporter.cloud.credentials import (
    ENV_ID,
    ENV_SECRET,
    ENV_TOKEN,
    CredentialProvider,
    Credentials,
    CredentialsError,
    FileProvider,
    Secret,
    StaticProvider,
)
from exporter.cloud.credentials_remote import (
    DEFAULT_SESSION_NAME,
    ENV_ROLE_SESSION_NAME,
    AssumeRoleProvider,
    remote_provider,
    sts_endpoint,
)
from exporter.cloud.transport import PlainTransport
from exporter.config.settings import DEFAULT_ACCOUNT, CredentialsSettings, Settings


def default_chain(
    id_file: Path | None,
    secret_file: Path | None,
    token_file: Path | None,
    environ: Mapping[str, str] = os.environ,
    remote: CredentialsSettings | None = None,
    transport: PlainTransport | None = None,
) -> CredentialProvider:
    """Resolve the first source of the default chain that is configured: files, env, RRSA, ECS.

    Raises :class:`CredentialsError` naming every place looked at when none is. The ECS step is
    "configured" unless ``ALIBABA_CLOUD_ECS_METADATA_DISABLED=true``; whether the metadata service
    answers is known at the first :meth:`~CredentialProvider.get`, whose error then names the rest.
    RRSA and the ECS role send their requests through ``transport``: give the API client the same one.
    """
    if id_file is not None and secret_file is not None:
        return FileProvider(id_file, secret_file, token_file)
    key_id = environ.get(ENV_ID, "").strip()
    secret = environ.get(ENV_SECRET, "").strip()
    if key_id and secret:
        token = environ.get(ENV_TOKEN, "").strip()
        creds = Credentials(key_id, Secret(secret), Secret(token) if token else None)
        source = f"environment ({ENV_ID}, {ENV_SECRET}{', ' + ENV_TOKEN if token else ''})"
        return StaticProvider(creds, source)
    if key_id or secret:
        missing = ENV_SECRET if key_id else ENV_ID
        raise CredentialsError(f"{missing} is not set while its partner is; set both")
    provider = remote_provider(environ, remote or CredentialsSettings(), transport)
    if provider is not None:
        return provider
    raise CredentialsError(
        "no credentials found: set credentials.access_key_id_file and credentials.access_key_secret_file, "
        f"or the environment variables {ENV_ID} and {ENV_SECRET}, or RRSA (ALIBABA_CLOUD_ROLE_ARN, "
        "ALIBABA_CLOUD_OIDC_PROVIDER_ARN, ALIBABA_CLOUD_OIDC_TOKEN_FILE); the ECS metadata service is skipped "
        "because ALIBABA_CLOUD_ECS_METADATA_DISABLED=true"
    )


def account_chain(
    options: CredentialsSettings,
    role_arn: str = "",
    environ: Mapping[str, str] = os.environ,
    transport: PlainTransport | None = None,
    wrap: Callable[[CredentialProvider], CredentialProvider] = lambda provider: provider,
) -> CredentialProvider:
    """One account's provider: the default chain of its ``credentials`` section, assuming ``role_arn`` with it.

    ``wrap`` is applied to the chain's provider and to the role's (the log redactor learns both keys).
    Raises :class:`CredentialsError` as :func:`default_chain` does.
    """
    base = wrap(default_chain(options.access_key_id_file, options.access_key_secret_file,
                              options.security_token_file, environ, options, transport))
    if not role_arn:
        return base
    session = options.role_session_name or environ.get(ENV_ROLE_SESSION_NAME, "").strip() or DEFAULT_SESSION_NAME
    return wrap(AssumeRoleProvider(base, role_arn, sts_endpoint=sts_endpoint(options, environ), session_name=session,
                                   duration_seconds=options.duration_seconds, refresh_margin=options.refresh_margin,
                                   transport=transport))


def account_providers(
    settings: Settings,
    environ: Mapping[str, str] = os.environ,
    transport: PlainTransport | None = None,
    wrap: Callable[[CredentialProvider], CredentialProvider] = lambda provider: provider,
    only: str | None = None,
) -> dict[str, CredentialProvider]:
    """The provider of every account a target uses (``default``: the top-level credentials), by name; with
    ``only``, of that account alone.

    Raises :class:`CredentialsError` whose message starts with the account's key (``credentials`` or
    ``accounts.NAME.credentials``).
    """
    providers: dict[str, CredentialProvider] = {}
    for name in settings.used_accounts if only is None else (only,):
        account = settings.accounts.get(name)
        try:
            if account is None or name == DEFAULT_ACCOUNT:
                providers[name] = account_chain(settings.credentials, "", environ, transport, wrap)
            else:
                providers[name] = account_chain(account.credentials, account.role_arn, environ, transport, wrap)
        except CredentialsError as exc:
            where = "credentials" if name == DEFAULT_ACCOUNT else f"accounts.{name}.credentials"
            raise CredentialsError(f"{where}: {exc}") from None
    return providers
