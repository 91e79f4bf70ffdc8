"""Helpers for the TLS, auth and HTTP robustness tests: a real exporter web app on 127.0.0.1."""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import trustme
import yaml
from aiohttp import web as aioweb

from exporter.cloud.stats import ApiStats
from exporter.config.settings import MetricsSettings, WebSettings
from exporter.metrics.exposition import Exposition
from exporter.metrics.self_metrics import TailCollector
from exporter.polling.snapshot import Board, PairState
from exporter.targets.pair import Pair
from exporter.web import routes as web
from exporter.web import webconfig
from exporter.web.server import HttpLimits
from tests.support.fakes import progress

PAIRS = tuple(Pair("alikafka_post-cn-a", f"group-{i}", "cn-hangzhou") for i in range(40))


def hash_password(password: str, cost: int = 4) -> str:
    """A bcrypt hash (low cost: the tests check behaviour, not strength)."""
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=cost)).decode()


def exposition() -> tuple[Exposition, Board]:
    """An exposition over a board of 40 groups with a few partitions each."""
    board = Board.holding(PairState(p, progress({"orders": {n: (1000 + n, 900 + i) for n in range(6)}}), True, 1.0,
                                    1.0, None, 1) for i, p in enumerate(PAIRS))
    return Exposition(MetricsSettings(max_series=0), board, TailCollector(board, ApiStats())), board


def write_config(path: Path, data: dict[str, object]) -> Path:
    """Write a web config file."""
    path.write_text(yaml.safe_dump(data))
    return path


@dataclass
class Served:
    """A running server: its URL and the exposition it serves."""

    url: str
    port: int
    exposition: Exposition
    access: web.Access
    runner: aioweb.AppRunner


@contextlib.asynccontextmanager
async def serve(config: webconfig.WebConfig | None = None, limits: HttpLimits | None = None) -> AsyncIterator[Served]:
    """Serve the exporter's app with ``config`` (TLS when it says so) on a free port."""
    expo, board = exposition()
    access = web.Access.of(config) if config is not None else web.Access()
    app = web.make_app(expo, board, WebSettings(), access)
    runner = await web.start(app, "127.0.0.1", 0, web.tls_context(config), limits)
    port = runner.addresses[0][1]
    scheme = "https" if config is not None and config.tls_server_config.enabled else "http"
    try:
        yield Served(f"{scheme}://127.0.0.1:{port}", port, expo, access, runner)
    finally:
        await runner.cleanup()


@dataclass
class Pki:
    """A CA, a server certificate for 127.0.0.1/localhost and file paths for them."""

    ca: trustme.CA
    dir: Path
    cert_file: Path
    key_file: Path
    ca_file: Path

    def client_context(self, cert: trustme.LeafCert | None = None, ca: trustme.CA | None = None) -> ssl.SSLContext:
        """A client context trusting the server's CA, optionally presenting ``cert``."""
        context = ssl.create_default_context()
        (ca or self.ca).configure_trust(context)
        if cert is not None:
            cert.configure_cert(context)
        return context

    def issue_server(self, ca: trustme.CA | None = None) -> trustme.LeafCert:
        """A new server certificate, written over the served files."""
        leaf = (ca or self.ca).issue_cert("127.0.0.1", "localhost")
        leaf.private_key_pem.write_to_path(str(self.key_file))
        self.key_file.chmod(0o600)  # as a key should be: a readable one is warned about
        leaf.cert_chain_pems[0].write_to_path(str(self.cert_file))
        return leaf


def make_pki(tmp_path: Path) -> Pki:
    """Files for a CA and a server certificate under ``tmp_path``."""
    ca = trustme.CA()
    pki = Pki(ca, tmp_path, tmp_path / "server.crt", tmp_path / "server.key", tmp_path / "ca.crt")
    ca.cert_pem.write_to_path(str(pki.ca_file))
    pki.issue_server()
    return pki
