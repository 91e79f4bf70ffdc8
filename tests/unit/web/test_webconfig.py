"""The --web.config.file parser: the exporter-toolkit keys, every problem named, exit 2 from the CLI."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import bcrypt
import pytest
import trustme
import yaml

from exporter.config.errors import ConfigError
from exporter.web import webconfig
from tests.support.tools import ROOT
from tests.support.webserve import hash_password, make_pki, write_config


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as err:
        webconfig.load(path)
    return err.value.problems


def test_full_toolkit_file_is_accepted(tmp_path: Path) -> None:
    """Every supported key of the toolkit format parses; relative paths are relative to the file."""
    pki = make_pki(tmp_path)
    config = webconfig.load(write_config(tmp_path / "web.yml", {
        "tls_server_config": {"cert_file": "server.crt", "key_file": "server.key", "client_ca_file": "ca.crt",
                              "client_auth_type": "RequireAndVerifyClientCert", "min_version": "TLS12",
                              "max_version": "TLS13", "prefer_server_cipher_suites": False,
                              "cipher_suites": ["TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256", "TLS_AES_128_GCM_SHA256"],
                              "client_allowed_sans": ["scraper.example"]},
        "http_server_config": {"http2": False, "headers": {"X-Frame-Options": "deny", "Content-Security-Policy": ""}},
        "basic_auth_users": {"prometheus": hash_password("pw")},
        "rate_limit": {"interval": "100ms", "burst": 5},
    }))
    tls = config.tls_server_config
    assert tls.enabled and tls.cert_file == pki.cert_file and tls.client_ca_file == pki.ca_file
    assert config.http_server_config.headers == {"X-Frame-Options": "deny"}  # blank means unset
    assert config.rate_limit.interval == pytest.approx(0.1)
    assert "pw" not in repr(config) and "$2" not in repr(config)  # hashes are secrets too
    context = webconfig.ssl_context(tls)
    names = {c["name"] for c in context.get_ciphers() if c["protocol"] == "TLSv1.2"}
    assert names == {"ECDHE-RSA-AES128-GCM-SHA256"}


@pytest.mark.parametrize("text", ["", "{}", "tls_server_config:\nbasic_auth_users:\n"])
def test_empty_file_means_plain_http_without_auth(tmp_path: Path, text: str) -> None:
    (tmp_path / "web.yml").write_text(text)
    config = webconfig.load(tmp_path / "web.yml")
    assert not config.tls_server_config.enabled and not config.basic_auth_users


@pytest.mark.parametrize(("data", "expected"), [
    ({"tls_server_config": {"cert_file": "nope.crt", "key_file": "server.key"}},
     "web.config.file: tls_server_config.cert_file: file not found"),
    ({"tls_server_config": {"cert_file": "server.crt", "key_file": "gone.key"}},
     "web.config.file: tls_server_config.key_file: file not found"),
    ({"tls_server_config": {"cert_file": "server.crt"}},
     "web.config.file: tls_server_config.key_file: required when TLS is configured"),
    ({"tls_server_config": {"cert_file": "server.crt", "key_file": "server.key", "client_auth_type": "Sometimes"}},
     "web.config.file: tls_server_config.client_auth_type: Input should be"),
    ({"tls_server_config": {"cert_file": "server.crt", "key_file": "server.key",
                            "client_auth_type": "RequireAnyClientCert", "client_ca_file": "ca.crt"}},
     "tls_server_config.client_auth_type: RequireAnyClientCert is not supported"),
    ({"tls_server_config": {"cert_file": "server.crt", "key_file": "server.key",
                            "client_auth_type": "RequireAndVerifyClientCert"}},
     "web.config.file: tls_server_config.client_ca_file: required with client_auth_type RequireAndVerifyClientCert"),
    ({"tls_server_config": {"cert_file": "server.crt", "key_file": "server.key", "client_ca_file": "ca.crt"}},
     "web.config.file: tls_server_config.client_auth_type: is NoClientCert but client_ca_file is set"),
    ({"tls_server_config": {"cert_file": "server.crt", "key_file": "server.key", "min_version": "TLS14"}},
     "web.config.file: tls_server_config.min_version: Input should be"),
    ({"tls_server_config": {"cert_file": "server.crt", "key_file": "server.key", "min_version": "TLS13",
                            "max_version": "TLS12"}},
     "web.config.file: tls_server_config.min_version: TLS13 is above max_version TLS12"),
    ({"tls_server_config": {"cert_file": "server.crt", "key_file": "server.key",
                            "cipher_suites": ["TLS_RSA_WITH_RC4_128_SHA"]}},
     "web.config.file: tls_server_config.cipher_suites: unknown cipher suite 'TLS_RSA_WITH_RC4_128_SHA'"),
    ({"tls_server_config": {"cert_file": "server.crt", "key_file": "server.key", "curve_preferences": ["X25519"]}},
     "tls_server_config.curve_preferences: not supported"),
    ({"tls_server_config": {"cert_file": "server.crt", "key_file": "server.key", "client_allowed_sans": ["a"]}},
     "web.config.file: tls_server_config.client_allowed_sans: requires client_auth_type RequireAndVerifyClientCert"),
    ({"tls_server_config": {"cert": "-----BEGIN CERTIFICATE-----", "key_file": "server.key"}},
     "tls_server_config.cert: inline certificates"),
    ({"tls_server_config": {"cert_file": "server.crt", "key_file": "server.key", "certfile": "x"}},
     "web.config.file: tls_server_config.certfile: unknown key"),
    ({"tls": {}}, "web.config.file: tls: unknown key"),
    ({"http_server_config": {"headers": {"Server": "x"}}},
     "web.config.file: http_server_config.headers: header 'Server' cannot be configured"),
    ({"http_server_config": {"headers": {"X-Content-Type-Options": "sniff"}}},
     "header X-Content-Type-Options: must be one of nosniff"),
    ({"http_server_config": {"http2": "maybe"}}, "web.config.file: http_server_config.http2: Input should be"),
    ({"basic_auth_users": {"alice": "plain-password"}},
     "web.config.file: basic_auth_users: user 'alice': not a bcrypt hash"),
    ({"basic_auth_users": ["alice"]}, "web.config.file: basic_auth_users: Input should be a valid dictionary"),
    ({"rate_limit": {"interval": "1s"}}, "web.config.file: rate_limit.burst: must be at least 1"),
    ({"rate_limit": {"interval": "soon", "burst": 1}}, "web.config.file: rate_limit.interval: invalid duration"),
])
def test_bad_values_name_the_key(tmp_path: Path, data: dict[str, object], expected: str) -> None:
    make_pki(tmp_path)
    found = problems(write_config(tmp_path / "web.yml", data))
    assert any(expected in p for p in found), found


def test_mismatched_key_and_bad_ca_are_named(tmp_path: Path) -> None:
    """A certificate with someone else's key, and a CA file with no certificate, fail at start-up."""
    pki = make_pki(tmp_path)
    trustme.CA().issue_cert("127.0.0.1").private_key_pem.write_to_path(str(pki.key_file))
    found = problems(write_config(tmp_path / "web.yml", {
        "tls_server_config": {"cert_file": "server.crt", "key_file": "server.key"}}))
    assert found == ["web.config.file: tls_server_config.cert_file: cannot load the certificate and key_file "
                     "(KEY_VALUES_MISMATCH)"]
    pki.issue_server()
    pki.ca_file.write_text("not a certificate\n")
    found = problems(write_config(tmp_path / "web.yml", {
        "tls_server_config": {"cert_file": "server.crt", "key_file": "server.key", "client_ca_file": "ca.crt",
                              "client_auth_type": "VerifyClientCertIfGiven"}}))
    assert len(found) == 1 and found[0].startswith("web.config.file: tls_server_config.client_ca_file: no usable CA")


def test_unreadable_and_invalid_yaml(tmp_path: Path) -> None:
    assert problems(tmp_path / "missing.yml")[0].startswith("web.config.file: cannot read")
    (tmp_path / "bad.yml").write_text("tls_server_config: [\n")
    assert "is not valid YAML" in problems(tmp_path / "bad.yml")[0]
    (tmp_path / "list.yml").write_text("- a\n")
    assert "must be a mapping" in problems(tmp_path / "list.yml")[0]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALIBABA_CLOUD_", "ALIKAFKA_EXPORTER_"))}
    env.update({"ALIBABA_CLOUD_ACCESS_KEY_ID": "AK", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "secret-9d1"})
    return subprocess.run([sys.executable, "-m", "exporter", "--target", "i=g", "--region", "r", *args],
                          env=env, capture_output=True, text=True, timeout=30, check=False)


def test_cli_exits_2_naming_the_key_and_check_config_summarises(tmp_path: Path) -> None:
    """The real command: a bad file exits 2 with one line per problem; a good one shows in --check-config."""
    make_pki(tmp_path)
    bad = write_config(tmp_path / "bad.yml", {"tls_server_config": {"cert_file": "nope.crt", "key_file": "nope.key"},
                                              "basic_auth_users": {"u": "x"}})
    result = run("--web.config.file", str(bad))
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "alikafka-exporter: config error: web.config.file: basic_auth_users: user 'u': not a bcrypt hash "
        "(make one with: htpasswd -nBC 10 \"\" | tr -d ':\\n')"]
    only_files = write_config(tmp_path / "files.yml", {"tls_server_config": {"cert_file": "nope.crt",
                                                                             "key_file": "server.key"}})
    result = run("--web.config.file", str(only_files))
    assert result.returncode == 2
    assert "web.config.file: tls_server_config.cert_file: file not found" in result.stderr
    good = write_config(tmp_path / "good.yml", {
        "tls_server_config": {"cert_file": "server.crt", "key_file": "server.key"},
        "basic_auth_users": {"prometheus": hash_password("pw")}})
    result = run("--web.config.file", str(good), "--check-config")
    assert result.returncode == 0, result.stderr
    assert "web config: TLS TLS12-TLS13, client certificates NoClientCert, basic auth for 1 user" in result.stdout


def test_example_file_is_valid(tmp_path: Path) -> None:
    """examples/web-config.yaml parses and loads once its certificate paths point at real files."""
    make_pki(tmp_path)
    data = yaml.safe_load((ROOT / "examples" / "web-config.yaml").read_text())
    tls = data["tls_server_config"]
    assert tls["cert_file"].startswith("/etc/alikafka-exporter/")
    tls.update(cert_file="server.crt", key_file="server.key", client_ca_file="ca.crt")
    # The example's user carries a placeholder that verifies nothing: refused, saying how to make a hash.
    with pytest.raises(ConfigError) as refused:
        webconfig.load(write_config(tmp_path / "web.yml", data))
    assert refused.value.problems == [
        "web.config.file: basic_auth_users: user 'prometheus': not a bcrypt hash "
        "(make one with: htpasswd -nBC 10 \"\" | tr -d ':\\n')"]
    data["basic_auth_users"]["prometheus"] = hash_password("change-me")
    config = webconfig.load(write_config(tmp_path / "web.yml", data))
    assert config.tls_server_config.auth == "RequireAndVerifyClientCert"
    assert list(config.basic_auth_users) == ["prometheus"]
    assert bcrypt.checkpw(b"change-me", config.basic_auth_users["prometheus"].get_secret_value().encode())


def test_no_bcrypt_hash_in_examples_or_docs() -> None:
    """Nothing shipped carries a working hash someone could copy with its (guessable) password."""
    shipped = [*(ROOT / "examples").rglob("*.y*ml"), *(ROOT / "deploy").rglob("*.y*ml"), *(ROOT / "docs").glob("*.md"),
               ROOT / "README.md"]
    found = {str(p.relative_to(ROOT)) for p in shipped if re.search(r"\$2[abxy]?\$\d\d\$[./A-Za-z0-9]{53}", p.read_text())}
    assert not found
