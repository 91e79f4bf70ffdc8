"""TLS and access control with real clients: aiohttp and ssl from Python, curl and openssl when present.

Certificates come from a throwaway CA (trustme). Every test talks to the exporter's real app over
a real socket on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import signal
import ssl
import tomllib
from pathlib import Path
from typing import Any

import aiohttp
import bcrypt
import pytest
import trustme
from cryptography import x509  # trustme's own dependency
from packaging.requirements import Requirement  # pytest's own dependency
from pydantic import SecretStr

from exporter.web import webconfig
from exporter.web.auth import BasicAuth
from exporter.web.server import HttpLimits
from exporter.web.throttle import TokenBucket
from tests.support.procs import accepts, clean_env, free_port, process, prom_query, python_module, wait_for
from tests.support.tools import ROOT, find_tool
from tests.support.webserve import Pki, hash_password, make_pki, serve, write_config


def tls_config(pki: Pki, **tls: object) -> webconfig.WebConfig:
    return webconfig.load(write_config(pki.dir / "web.yml", {
        "tls_server_config": {"cert_file": "server.crt", "key_file": "server.key", **tls}}))


def basic(user: str, password: str) -> dict[str, str]:
    """An Authorization header for basic auth."""
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def get(url: str, context: ssl.SSLContext | bool = False, auth: dict[str, str] | None = None,
              headers: dict[str, str] | None = None) -> tuple[int, bytes, dict[str, str]]:
    async with aiohttp.ClientSession() as session, \
            session.get(url, ssl=context, headers={**(auth or {}), **(headers or {})}) as r:
        return r.status, await r.read(), dict(r.headers)


async def peer_serial(port: int, context: ssl.SSLContext) -> int:
    """The serial number of the certificate the server presents on a new connection."""
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context)
    try:
        der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
        return x509.load_der_x509_certificate(der).serial_number
    finally:
        writer.close()
        await writer.wait_closed()


def serial_of(leaf: trustme.LeafCert) -> int:
    return x509.load_pem_x509_certificate(leaf.cert_chain_pems[0].bytes()).serial_number


async def test_serves_tls_and_refuses_old_versions(tmp_path: Path) -> None:
    """HTTPS works with the configured CA; a client limited below min_version cannot connect."""
    pki = make_pki(tmp_path)
    async with serve(tls_config(pki, min_version="TLS13")) as served:
        status, body, _ = await get(served.url + "/metrics", pki.client_context())
        assert status == 200 and b"alikafka_consumergroup_lag" in body
        old = pki.client_context()
        old.maximum_version = ssl.TLSVersion.TLSv1_2
        with pytest.raises(aiohttp.ClientError):
            await get(served.url + "/metrics", old)
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await get(served.url + "/metrics", ssl.create_default_context())  # an untrusted CA


async def test_certificate_is_reloaded_when_files_change(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Replacing the files switches new connections to the new pair; a broken pair keeps the old one."""
    caplog.set_level(logging.INFO, logger="exporter")
    pki = make_pki(tmp_path)
    async with serve(tls_config(pki)) as served:
        client = pki.client_context()
        before = await peer_serial(served.port, client)
        leaf = pki.issue_server()
        after = await peer_serial(served.port, client)
        assert after != before and after == serial_of(leaf)
        assert any(r.getMessage() == "TLS certificate reloaded" for r in caplog.records)

        pki.cert_file.write_text("-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n")
        for _ in range(3):
            assert await peer_serial(served.port, client) == after  # still the last good pair
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "reload failed" in warnings[0].getMessage()
        assert warnings[0].key == "tls_server_config.cert_file"  # type: ignore[attr-defined]

        newest = pki.issue_server(trustme.CA())  # a pair from another CA: loads, but our client distrusts it
        with pytest.raises(ssl.SSLCertVerificationError):
            await peer_serial(served.port, client)
        assert await peer_serial(served.port, ssl._create_unverified_context()) == serial_of(newest)


async def test_start_up_reads_the_certificate_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Loading the web config and starting to serve read the pair once; a replaced pair is read again."""
    loads: list[Path] = []
    load_cert_chain = ssl.SSLContext.load_cert_chain

    def counting(self: ssl.SSLContext, certfile: Any, keyfile: Any = None, password: Any = None) -> None:
        loads.append(Path(certfile))
        load_cert_chain(self, certfile, keyfile, password)

    monkeypatch.setattr(ssl.SSLContext, "load_cert_chain", counting)
    pki = make_pki(tmp_path)
    async with serve(tls_config(pki)) as served:
        client = pki.client_context()
        await peer_serial(served.port, client)
        assert loads == [pki.cert_file]
        leaf = pki.issue_server()
        assert await peer_serial(served.port, client) == serial_of(leaf)
        assert loads == [pki.cert_file] * 2


async def test_client_certificate_required_and_verified(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """RequireAndVerifyClientCert: no certificate or one from another CA is refused quietly; ours is served."""
    caplog.set_level(logging.DEBUG)
    pki = make_pki(tmp_path)
    client_ca = trustme.CA()
    client_ca.cert_pem.write_to_path(str(tmp_path / "clients.crt"))
    good = client_ca.issue_cert("scraper@example.com")
    stranger = trustme.CA().issue_cert("scraper@example.com")
    async with serve(tls_config(pki, client_auth_type="RequireAndVerifyClientCert",
                                client_ca_file="clients.crt")) as served:
        status, _, _ = await get(served.url + "/metrics", pki.client_context(good))
        assert status == 200
        for cert in (None, stranger):
            with pytest.raises(aiohttp.ClientError):
                await get(served.url + "/metrics", pki.client_context(cert))
    assert [r for r in caplog.records if r.levelno > logging.DEBUG or r.exc_info] == []


async def test_client_certificate_verified_if_given(tmp_path: Path) -> None:
    """VerifyClientCertIfGiven: none is fine, a good one is fine, a bad one is refused."""
    pki = make_pki(tmp_path)
    good = pki.ca.issue_cert("scraper.example")
    async with serve(tls_config(pki, client_auth_type="VerifyClientCertIfGiven", client_ca_file="ca.crt")) as served:
        assert (await get(served.url + "/healthz", pki.client_context()))[0] == 200
        assert (await get(served.url + "/healthz", pki.client_context(good)))[0] == 200
        with pytest.raises(aiohttp.ClientError):
            await get(served.url + "/healthz", pki.client_context(trustme.CA().issue_cert("scraper.example")))


async def test_client_allowed_sans(tmp_path: Path) -> None:
    """A verified certificate without an allowed SAN gets 403."""
    pki = make_pki(tmp_path)
    async with serve(tls_config(pki, client_auth_type="RequireAndVerifyClientCert", client_ca_file="ca.crt",
                                client_allowed_sans=["scraper.example", "10.0.0.7"])) as served:
        for name in ("scraper.example", "10.0.0.7"):
            assert (await get(served.url + "/metrics", pki.client_context(pki.ca.issue_cert(name))))[0] == 200
        status, body, _ = await get(served.url + "/metrics", pki.client_context(pki.ca.issue_cert("other.example")))
        assert status == 403 and b"not allowed" in body


def auth_config(pki: Pki | None, tmp_path: Path, **extra: object) -> webconfig.WebConfig:
    data: dict[str, object] = {"basic_auth_users": {"prometheus": hash_password("s3cret"),
                                                    "grafana": hash_password("other", cost=5)}, **extra}
    if pki is not None:
        data["tls_server_config"] = {"cert_file": "server.crt", "key_file": "server.key"}
    return webconfig.load(write_config(tmp_path / "web.yml", data))


async def test_basic_auth(tmp_path: Path) -> None:
    """Right password 200 (bcrypt once, then cached); wrong, unknown, missing or malformed: 401 everywhere."""
    pki = make_pki(tmp_path)
    async with serve(auth_config(pki, tmp_path)) as served:
        ctx = pki.client_context()
        auth = served.access.basic_auth
        assert auth is not None
        ok = basic("prometheus", "s3cret")
        for _ in range(3):
            status, body, _ = await get(served.url + "/metrics", ctx, ok)
            assert status == 200 and b"alikafka_consumergroup_lag" in body
        assert auth.bcrypt_checks == 1  # later scrapes hit the cache
        for path in ("/metrics", "/healthz", "/readyz", "/", "/no-such-page"):
            for creds in (None, basic("prometheus", "wrong"), basic("nobody", "s3cret")):
                status, _, headers = await get(served.url + path, ctx, creds)
                assert status == 401, (path, creds)
                assert headers["WWW-Authenticate"].startswith('Basic realm="alikafka-exporter"')
        checks = auth.bcrypt_checks
        await get(served.url + "/metrics", ctx, basic("nobody", "x"))
        assert auth.bcrypt_checks == checks + 1  # an unknown user costs a bcrypt check too
        for header in ("Basic !!!", "Bearer abc", "Basic " + base64.b64encode(b"no-colon").decode(),
                       "Basic " + base64.b64encode(b"prometheus:" + b"x" * 100).decode()):
            assert (await get(served.url + "/metrics", ctx, headers={"Authorization": header}))[0] == 401
        assert (await get(served.url + "/metrics", ctx, basic("grafana", "other")))[0] == 200


async def test_headers_and_rate_limit(tmp_path: Path) -> None:
    """Configured headers are on every answer, 401 included; the rate limit answers 429."""
    config = webconfig.load(write_config(tmp_path / "web.yml", {
        "http_server_config": {"headers": {"X-Frame-Options": "deny", "Strict-Transport-Security": "max-age=60"}},
        "rate_limit": {"interval": "1h", "burst": 3}}))
    async with serve(config) as served:
        statuses = []
        for path in ("/healthz", "/nope", "/metrics", "/metrics"):
            status, _, headers = await get(served.url + path)
            statuses.append(status)
            assert headers["X-Frame-Options"] == "deny"
        assert statuses == [200, 404, 200, 429]


async def test_plain_http_to_the_tls_port_is_refused_quietly(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Plain HTTP gets no answer and the connection closes; nothing above debug is logged; TLS still works."""
    caplog.set_level(logging.DEBUG)
    pki = make_pki(tmp_path)
    async with serve(tls_config(pki)) as served:
        for _ in range(5):
            reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
            writer.write(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            answer = await asyncio.wait_for(reader.read(), 5)
            assert not answer.startswith(b"HTTP/1.1 200")
            writer.close()
            await writer.wait_closed()
        with pytest.raises(aiohttp.ClientError):
            await get(served.url.replace("https", "http") + "/metrics")
        assert (await get(served.url + "/metrics", pki.client_context()))[0] == 200
    loud = [r for r in caplog.records if r.levelno > logging.DEBUG and r.name != "exporter.web.tls"]
    assert loud == []
    assert not any(r.exc_info for r in caplog.records if r.levelno > logging.DEBUG)


async def test_fifty_concurrent_scrapers_over_tls_with_auth(tmp_path: Path) -> None:
    """50 scrapers at once over TLS with basic auth all get the same bytes as the snapshot."""
    pki = make_pki(tmp_path)
    async with serve(auth_config(pki, tmp_path)) as served:
        expected = served.exposition.render().body
        ctx = pki.client_context()
        connector = aiohttp.TCPConnector(limit=0, ssl=ctx)
        async with aiohttp.ClientSession(connector=connector) as session:
            async def scrape() -> bytes:
                async with session.get(served.url + "/metrics", headers={**basic("prometheus", "s3cret"),
                                                                        "Accept-Encoding": "identity"}) as resp:
                    assert resp.status == 200
                    return await resp.read()
            bodies = await asyncio.gather(*(scrape() for _ in range(50)))
        assert all(body == expected for body in bodies)
        assert served.access.basic_auth is not None and served.access.basic_auth.bcrypt_checks == 1


async def run_tool(*args: str, stdin: bytes = b"") -> tuple[int, bytes, bytes]:
    proc = await asyncio.create_subprocess_exec(*args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(stdin), 30)
    assert proc.returncode is not None
    return proc.returncode, out, err


async def test_curl_with_client_certificate_and_basic_auth(tmp_path: Path) -> None:
    """curl: CA pinned, client certificate, basic auth; 401 without the password, failure without the cert."""
    curl = find_tool("curl")
    pki = make_pki(tmp_path)
    client = pki.ca.issue_cert("scraper.example")
    client.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "client.pem"))
    config = webconfig.load(write_config(tmp_path / "web.yml", {
        "tls_server_config": {"cert_file": "server.crt", "key_file": "server.key", "client_ca_file": "ca.crt",
                              "client_auth_type": "RequireAndVerifyClientCert"},
        "basic_auth_users": {"prometheus": hash_password("s3cret")}}))
    async with serve(config) as served:
        base = [curl, "-sS", "--cacert", str(pki.ca_file), "-o", "/dev/null", "-w", "%{http_code}"]
        code, out, err = await run_tool(*base, "--cert", str(tmp_path / "client.pem"), "-u", "prometheus:s3cret",
                                        served.url + "/metrics")
        assert (code, out) == (0, b"200"), err
        code, out, _ = await run_tool(*base, "--cert", str(tmp_path / "client.pem"), served.url + "/metrics")
        assert (code, out) == (0, b"401")
        code, _, _ = await run_tool(*base, "-u", "prometheus:s3cret", served.url + "/metrics")
        assert code != 0  # no client certificate: the handshake is refused


async def test_openssl_s_client_handshake_and_ciphers(tmp_path: Path) -> None:
    """openssl s_client verifies the chain; a TLS 1.2 cipher outside cipher_suites is refused."""
    openssl = find_tool("openssl")
    pki = make_pki(tmp_path)
    config = tls_config(pki, cipher_suites=["TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384"])
    async with serve(config) as served:
        connect = [openssl, "s_client", "-connect", f"127.0.0.1:{served.port}", "-CAfile", str(pki.ca_file),
                   "-verify_return_error", "-servername", "localhost"]
        code, out, err = await run_tool(*connect, "-tls1_2", stdin=b"Q\n")
        assert code == 0, err
        assert b"Verify return code: 0 (ok)" in out and b"ECDHE-ECDSA-AES256-GCM-SHA384" in out
        code, _, _ = await run_tool(*connect, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256", stdin=b"Q\n")
        assert code != 0
        code, out, _ = await run_tool(*connect, "-tls1_3", stdin=b"Q\n")
        assert code == 0 and b"TLSv1.3" in out


@pytest.mark.e2e
def test_prometheus_scrapes_the_exporter_over_tls_with_client_cert_and_basic_auth(
        tmp_path: Path, prometheus_bin: str) -> None:
    """The real exporter process (--demo) and the real Prometheus: right credentials up=1, wrong password up=0."""
    pki = make_pki(tmp_path)
    client = pki.ca.issue_cert("prometheus.example")
    client.private_key_pem.write_to_path(str(tmp_path / "client.key"))
    client.cert_chain_pems[0].write_to_path(str(tmp_path / "client.crt"))
    web_config = write_config(tmp_path / "web.yml", {
        "tls_server_config": {"cert_file": "server.crt", "key_file": "server.key", "client_ca_file": "ca.crt",
                              "client_auth_type": "RequireAndVerifyClientCert"},
        "basic_auth_users": {"prometheus": hash_password("s3cret", cost=10)}})
    exp_port, prom_port = free_port(), free_port()
    exp_cmd = python_module("exporter", "--demo", "--web.listen-address", f"127.0.0.1:{exp_port}",
                            "--web.config.file", str(web_config))
    job = ("  - job_name: {name}\n    scheme: https\n    static_configs: [{{targets: ['127.0.0.1:{port}']}}]\n"
           "    tls_config: {{ca_file: {ca}, cert_file: {crt}, key_file: {key}}}\n"
           "    basic_auth: {{username: prometheus, password: {pw}}}\n")
    files = {"port": exp_port, "ca": pki.ca_file, "crt": tmp_path / "client.crt", "key": tmp_path / "client.key"}
    (tmp_path / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\nscrape_configs:\n"
        + job.format(name="good", pw="s3cret", **files) + job.format(name="wrong", pw="guess", **files))
    prom_cmd = [prometheus_bin, f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'data'}", f"--web.listen-address=127.0.0.1:{prom_port}"]
    with process(exp_cmd, clean_env(), tmp_path / "exporter.log") as exporter:
        # Prometheus starts once the exporter listens: a first scrape before that would record good as up 0.
        wait_for(lambda: accepts(exp_port) or None, 30, "the exporter to listen")
        with process(prom_cmd, clean_env(), tmp_path / "prometheus.log"):
            def both_scraped() -> list[dict[str, Any]] | None:
                result = prom_query(prom_port, "up")
                return result if len(result) == 2 else None

            ups = wait_for(both_scraped, 30, "Prometheus to scrape both jobs")
            assert {r["metric"]["job"]: r["value"][1] for r in ups} == {"good": "1", "wrong": "0"}
            lag = prom_query(prom_port, 'count(alikafka_consumergroup_lag{job="good"})')
            assert float(lag[0]["value"][1]) > 0
            exporter.send_signal(signal.SIGTERM)
            assert exporter.wait(timeout=10) == 0
    log = (tmp_path / "exporter.log").read_text()
    assert "tls=true" in log and "basic_auth=true" in log
    assert "Traceback" not in log and "s3cret" not in log


async def test_unfinished_handshake_is_cut_off(tmp_path: Path) -> None:
    """A client that connects to the TLS port and never completes a handshake is dropped after handshake_timeout."""
    pki = make_pki(tmp_path)
    async with serve(tls_config(pki), HttpLimits(handshake_timeout=0.5, request_timeout=30)) as served:
        reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
        writer.write(b"\x16\x03\x01")  # the start of a ClientHello, then silence
        started = asyncio.get_running_loop().time()
        assert await asyncio.wait_for(reader.read(), 5) == b""
        assert asyncio.get_running_loop().time() - started < 2
        writer.close()
        await writer.wait_closed()
        assert (await get(served.url + "/healthz", pki.client_context()))[0] == 200


def test_token_bucket_refills() -> None:
    """rate_limit: burst at once, then one more per interval."""
    now = [0.0]
    bucket = TokenBucket(2.0, 2, clock=lambda: now[0])
    assert [bucket.allow() for _ in range(3)] == [True, True, False]
    now[0] = 1.0
    assert not bucket.allow()
    now[0] = 2.1
    assert bucket.allow() and not bucket.allow()
    now[0] = 100.0
    assert [bucket.allow() for _ in range(3)] == [True, True, False]  # never more than burst


async def test_basic_auth_cache_is_bounded_and_keyed_by_password() -> None:
    """Evicted or changed credentials are checked with bcrypt again; the cache never grows past its size."""
    auth = BasicAuth({"a": SecretStr(hash_password("pa")), "b": SecretStr(hash_password("pb"))}, cache_size=1)
    for user, password in (("a", "pa"), ("a", "pa"), ("b", "pb"), ("a", "pa")):
        assert await auth.check(basic(user, password)["Authorization"])
    assert auth.bcrypt_checks == 3  # the second "a" was cached; "b" evicted it
    assert not await auth.check(basic("a", "pb")["Authorization"])
    assert auth.bcrypt_checks == 4


async def test_password_longer_than_72_bytes_never_matches_by_its_prefix() -> None:
    """bcrypt reads 72 bytes: a 72-byte password works, the same plus one byte is refused, not truncated."""
    password = "p" * 72
    auth = BasicAuth({"u": SecretStr(bcrypt.hashpw(password.encode(), bcrypt.gensalt(4)).decode())})
    assert await auth.check(basic("u", password)["Authorization"])
    assert not await auth.check(basic("u", password + "x")["Authorization"])
    assert not await auth.check(basic("u", "é" * 37)["Authorization"])  # 74 bytes in UTF-8


def test_bcrypt_requirement_excludes_versions_that_truncate_passwords() -> None:
    """pyproject asks for bcrypt 5 or later: 4.x compares only the first 72 bytes of a password."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    (bcrypt_req,) = [Requirement(r) for r in project["dependencies"] if Requirement(r).name == "bcrypt"]
    assert not bcrypt_req.specifier.contains("4.3.0")
    assert bcrypt_req.specifier.contains("5.0.0")
    assert int(bcrypt.__version__.split(".")[0]) >= 5


async def _closed_by_server(reader: asyncio.StreamReader, within: float) -> bool:
    try:
        return await asyncio.wait_for(reader.read(1024), within) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


async def test_connection_cap_counts_tls_handshakes_in_progress(tmp_path: Path) -> None:
    """Idle TCP connections to the TLS port fill the cap: the next one is closed at once, even a real TLS
    client; once the idle ones go, TLS clients are served again."""
    pki = make_pki(tmp_path)
    async with serve(tls_config(pki), HttpLimits(max_connections=3, handshake_timeout=30)) as served:
        idle = [await asyncio.open_connection("127.0.0.1", served.port) for _ in range(3)]
        await asyncio.sleep(0.2)
        reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
        assert await _closed_by_server(reader, 2)  # no handshake is even started for it
        writer.close()
        with pytest.raises((aiohttp.ClientError, ssl.SSLError, ConnectionError)):
            await get(served.url + "/healthz", pki.client_context())
        for _, idle_writer in idle:
            assert not idle_writer.is_closing()
            idle_writer.close()
            await idle_writer.wait_closed()
        await asyncio.sleep(0.2)
        assert (await get(served.url + "/healthz", pki.client_context()))[0] == 200


async def test_idle_handshakes_are_closed_after_the_timeout_and_free_their_slots(tmp_path: Path) -> None:
    """Connections that send nothing are closed after handshake_timeout; their slots then serve TLS clients."""
    pki = make_pki(tmp_path)
    async with serve(tls_config(pki), HttpLimits(max_connections=2, handshake_timeout=0.5)) as served:
        idle = [await asyncio.open_connection("127.0.0.1", served.port) for _ in range(2)]
        started = asyncio.get_running_loop().time()
        for reader, _ in idle:
            assert await _closed_by_server(reader, 5)
        assert asyncio.get_running_loop().time() - started < 3
        for _, writer in idle:
            writer.close()
        status, body, headers = await get(served.url + "/metrics", pki.client_context())
        assert status == 200 and b"alikafka_consumergroup_lag" in body and headers["Server"] == "alikafka-exporter"
