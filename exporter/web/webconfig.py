"""The ``--web.config.file``: TLS, client certificates and basic auth, in the exporter-toolkit format.

The same keys as the Prometheus exporter-toolkit's, so one file serves this exporter and the Go exporters
beside it. It is validated once at start-up, every problem reported as ``web.config.file: KEY: problem``
(exit 2). Where Python's ``ssl`` cannot do what Go's ``crypto/tls`` does, the key is refused with a reason
rather than accepted and ignored.
"""

from __future__ import annotations

import re
import ssl
from collections.abc import Mapping
from functools import cached_property, partial
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from exporter.config.errors import ConfigError
from exporter.config.types import Duration
from exporter.web.tls import CertificateReloader, TlsError

PREFIX = "web.config.file"
_STRICT = ConfigDict(frozen=True, extra="forbid")

ClientAuth = Literal["NoClientCert", "RequestClientCert", "RequireAnyClientCert", "RequireClientCert",
                     "VerifyClientCertIfGiven", "RequireAndVerifyClientCert"]
TlsVersionName = Literal["TLS10", "TLS11", "TLS12", "TLS13"]
TLS_VERSIONS = {"TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1,
                "TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}

# Go's crypto/tls names (tls.CipherSuites(), which the toolkit accepts) and OpenSSL's for the same suite.
# The TLS 1.3 suites are always on with TLS 1.3 and cannot be chosen, in Go and in Python alike.
TLS13_SUITES = frozenset({"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"})
CIPHERS = {
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
}
# The headers the toolkit lets a config add, with the values it accepts (None: any value).
HEADERS: Mapping[str, tuple[str, ...] | None] = {
    "Content-Security-Policy": None,
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-Content-Type-Options": ("nosniff",),
    "X-XSS-Protection": None,
    "Strict-Transport-Security": None,
}
# How to make a hash, named in the error for anything else (the example file's placeholder included).
HASH_COMMAND = "htpasswd -nBC 10 \"\" | tr -d ':\\n'"
_BCRYPT = re.compile(r"\$2[abxy]?\$(\d\d)\$[./A-Za-z0-9]{53}")
_UNVERIFIED = ("RequestClientCert", "RequireAnyClientCert", "RequireClientCert")


class TlsServerConfig(BaseModel):
    """``tls_server_config``: TLS is on when any certificate or client-auth key is set."""

    model_config = _STRICT

    cert_file: Path | None = None
    key_file: Path | None = None
    cert: str | None = None
    key: SecretStr | None = None
    client_ca_file: Path | None = None
    client_ca: str | None = None
    client_auth_type: ClientAuth | None = None
    client_allowed_sans: list[str] | None = None
    min_version: TlsVersionName = "TLS12"
    max_version: TlsVersionName = "TLS13"
    cipher_suites: list[str] = Field(default_factory=list)
    prefer_server_cipher_suites: bool = True
    curve_preferences: list[str] = Field(default_factory=list)

    @field_validator("cert_file", "key_file", "client_ca_file", mode="before")
    @classmethod
    def _no_empty_path(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("cert", "key")
    @classmethod
    def _no_inline(cls, value: Any) -> Any:
        if value:
            raise ValueError("inline certificates and keys are not supported; use cert_file and key_file")
        return value

    @field_validator("client_auth_type")
    @classmethod
    def _verifiable(cls, value: str | None) -> str | None:
        if value in _UNVERIFIED:
            raise ValueError(f"{value} is not supported: Python's ssl cannot accept a client certificate "
                             "without verifying it; use VerifyClientCertIfGiven or RequireAndVerifyClientCert "
                             "with client_ca_file")
        return value

    @field_validator("cipher_suites")
    @classmethod
    def _ciphers(cls, value: list[str]) -> list[str]:
        unknown = [name for name in value if name not in CIPHERS and name not in TLS13_SUITES]
        if unknown:
            raise ValueError(f"unknown cipher suite {unknown[0]!r}; use Go's names, e.g. "
                             "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256")
        return value

    @field_validator("curve_preferences")
    @classmethod
    def _curves(cls, value: list[str]) -> list[str]:
        if value:
            raise ValueError("not supported: Python's ssl cannot set a curve preference list; remove the key")
        return value

    @field_validator("client_allowed_sans")
    @classmethod
    def _sans(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not value:
            raise ValueError("must list at least one name")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> TlsServerConfig:
        if not self.enabled:
            return self
        missing = [key for key, val in (("cert_file", self.cert_file), ("key_file", self.key_file)) if val is None]
        if missing:
            raise ValueError(f"@{missing[0]}: required when TLS is configured (set cert_file and key_file)")
        if TLS_VERSIONS[self.min_version] > TLS_VERSIONS[self.max_version]:
            raise ValueError(f"@min_version: {self.min_version} is above max_version {self.max_version}")
        has_ca = self.client_ca_file is not None or self.client_ca is not None
        if has_ca and self.auth == "NoClientCert":
            raise ValueError("@client_auth_type: is NoClientCert but client_ca_file is set; set client_auth_type "
                             "to VerifyClientCertIfGiven or RequireAndVerifyClientCert")
        if self.auth != "NoClientCert" and not has_ca:
            raise ValueError(f"@client_ca_file: required with client_auth_type {self.auth}")
        if self.client_allowed_sans is not None and self.auth != "RequireAndVerifyClientCert":
            raise ValueError("@client_allowed_sans: requires client_auth_type RequireAndVerifyClientCert")
        return self

    @property
    def enabled(self) -> bool:
        """Whether to serve TLS (the toolkit's rule: any certificate or client-auth key set)."""
        return any(v is not None for v in (self.cert_file, self.key_file, self.client_ca_file, self.client_ca,
                                           self.client_auth_type))

    @property
    def auth(self) -> str:
        """The client certificate policy in effect."""
        return self.client_auth_type or "NoClientCert"

    @cached_property
    def certificates(self) -> CertificateReloader:
        """The files loaded into a server context, reloaded when they change; raises :class:`TlsError`.

        Built (the files read) on first use, by :func:`load`'s check, and kept: serving starts from
        that context rather than reading the files a second time. A ``model_copy`` carries it over, so
        take it only from the final (resolved) config.
        """
        assert self.cert_file is not None
        assert self.key_file is not None
        return CertificateReloader(partial(ssl_context, self), self.cert_file, self.key_file, self.client_ca_file)

    def resolved(self, base: Path) -> TlsServerConfig:
        """Relative file paths joined with ``base`` (the config file's directory)."""
        update = {k: base / p for k in ("cert_file", "key_file", "client_ca_file")
                  if (p := getattr(self, k)) is not None and not p.is_absolute()}
        return self.model_copy(update=update)


class HttpServerConfig(BaseModel):
    """``http_server_config``: extra response headers; ``http2`` is accepted, HTTP/1.1 is served."""

    model_config = _STRICT

    http2: bool = True
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if name not in HEADERS:
                raise ValueError(f"header {name!r} cannot be configured; allowed: {', '.join(HEADERS)}")
            allowed = HEADERS[name]
            if allowed is not None and text and text.lower() not in allowed:
                raise ValueError(f"header {name}: must be one of {', '.join(allowed)}, got {text!r}")
        return {k: v for k, v in value.items() if v}  # blank means unset, as in the toolkit


class RateLimitConfig(BaseModel):
    """``rate_limit``: a token bucket over all requests; 0 interval disables it."""

    model_config = _STRICT

    interval: Duration = 0.0
    burst: Annotated[int, Field(ge=0)] = 0

    @model_validator(mode="after")
    def _burst(self) -> RateLimitConfig:
        if self.interval > 0 and self.burst < 1:
            raise ValueError("@burst: must be at least 1 when interval is set (0 would refuse every request)")
        return self


class WebConfig(BaseModel):
    """The whole file."""

    model_config = _STRICT

    tls_server_config: TlsServerConfig = Field(default_factory=TlsServerConfig)
    http_server_config: HttpServerConfig = Field(default_factory=HttpServerConfig)
    basic_auth_users: dict[str, SecretStr] = Field(default_factory=dict)
    rate_limit: RateLimitConfig = Field(default_factory=RateLimitConfig)

    @field_validator("tls_server_config", "http_server_config", "rate_limit", "basic_auth_users", mode="before")
    @classmethod
    def _null_is_empty(cls, value: Any) -> Any:
        return {} if value is None else value

    @field_validator("basic_auth_users")
    @classmethod
    def _hashes(cls, value: dict[str, SecretStr]) -> dict[str, SecretStr]:
        for user, secret in value.items():
            match = _BCRYPT.fullmatch(secret.get_secret_value())
            if not match:
                raise ValueError(f"user {user!r}: not a bcrypt hash (make one with: {HASH_COMMAND})")
            if not 4 <= int(match.group(1)) <= 31:
                raise ValueError(f"user {user!r}: bcrypt cost must be between 4 and 31")
            if ":" in user:
                raise ValueError(f"user {user!r}: a user name cannot contain ':'")
        return value


def _loc(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


def _problem(error: Mapping[str, Any]) -> str:
    loc = _loc(tuple(error["loc"]))
    if error["type"] == "extra_forbidden":
        return f"{PREFIX}: {loc}: unknown key"
    message = str(error["msg"]).removeprefix("Value error, ")
    if message.startswith("@"):  # a cross-field check naming its key: "@key: problem"
        key, _, message = message[1:].partition(": ")
        loc = f"{loc}.{key}" if loc != "(top level)" else key
    return f"{PREFIX}: {loc}: {message}"


def load(path: Path) -> WebConfig:
    """Read and validate the file, its certificates and keys; raises :class:`ConfigError`."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError([f"{PREFIX}: cannot read {path}: {exc.strerror}"]) from None
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{PREFIX}: {path} is not valid YAML: {str(exc).splitlines()[0]}"]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([f"{PREFIX}: {path}: must be a mapping of keys"])
    try:
        config = WebConfig(**data)
    except ValidationError as exc:
        raise ConfigError([_problem(e) for e in exc.errors(include_url=False)]) from None
    tls = config.tls_server_config.resolved(path.parent)
    config = config.model_copy(update={"tls_server_config": tls})
    if tls.enabled:
        problems = [f"{PREFIX}: tls_server_config.{key}: file not found ({p})"
                    for key in ("cert_file", "key_file", "client_ca_file")
                    if (p := getattr(tls, key)) is not None and not p.is_file()]
        if problems:
            raise ConfigError(problems)
        try:
            _ = tls.certificates  # the files read here, once: serving uses this context
        except TlsError as exc:
            raise ConfigError([f"{PREFIX}: tls_server_config.{exc.key}: {exc}"]) from None
    return config


def _ssl_reason(exc: ssl.SSLError | OSError) -> str:
    if isinstance(exc, ssl.SSLError):
        return exc.reason or str(exc)
    return exc.strerror or str(exc)


def ssl_context(tls: TlsServerConfig) -> ssl.SSLContext:
    """A server context for ``tls``: certificate, key, client CA, versions and ciphers applied.

    Raises :class:`TlsError` naming the key at fault. Reads the files every time it is called.
    """
    assert tls.cert_file is not None
    assert tls.key_file is not None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = TLS_VERSIONS[tls.min_version]
    context.maximum_version = TLS_VERSIONS[tls.max_version]
    if tls.prefer_server_cipher_suites:
        context.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    else:
        context.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    context.set_alpn_protocols(["http/1.1"])
    chosen = {name: CIPHERS[name] for name in tls.cipher_suites if name in CIPHERS}  # TLS 1.3 names are not
    for name, openssl_name in chosen.items():
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).set_ciphers(openssl_name)
        except ssl.SSLError:
            raise TlsError("cipher_suites", f"{name} is not available in this OpenSSL build") from None
    if chosen:
        context.set_ciphers(":".join(chosen.values()))
    try:
        context.load_cert_chain(tls.cert_file, tls.key_file)
    except ssl.SSLError as exc:
        raise TlsError("cert_file", f"cannot load the certificate and key_file ({_ssl_reason(exc)})") from None
    except OSError as exc:
        raise TlsError("cert_file", f"cannot read the certificate or key ({_ssl_reason(exc)})") from None
    if tls.auth != "NoClientCert":
        try:
            if tls.client_ca_file is not None:
                context.load_verify_locations(cafile=tls.client_ca_file)
            if tls.client_ca is not None:
                context.load_verify_locations(cadata=tls.client_ca)
        except (ssl.SSLError, OSError) as exc:
            raise TlsError("client_ca_file", f"no usable CA certificate ({_ssl_reason(exc)})") from None
        context.verify_mode = ssl.CERT_REQUIRED if tls.auth == "RequireAndVerifyClientCert" else ssl.CERT_OPTIONAL
    return context
