"""HTTP routes: content negotiation, gzip, readiness, status page, unknown paths."""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import logging
import re
import socket
from pathlib import Path
from types import MappingProxyType

import aiohttp
from aiohttp.test_utils import TestClient

from exporter.cloud.stats import ApiStats
from exporter.config.settings import RESERVED_PATHS, MetricsSettings, WebSettings
from exporter.metrics import exposition as exposition_module
from exporter.metrics.exposition import Exposition
from exporter.metrics.self_metrics import TailCollector
from exporter.polling.analysis import Insight
from exporter.polling.snapshot import Board, PairState, PollError, Snapshot
from exporter.targets.pair import Pair
from exporter.web import routes as web_module
from exporter.web import webconfig
from exporter.web.routes import make_app
from tests.support.fakes import board_of, progress
from tests.support.samples import find, value
from tests.support.webserve import hash_password, serve, write_config

A = Pair("alikafka_post-cn-a", "orders", "cn-hangzhou")
B = Pair("alikafka_post-cn-a", "<script>", "cn-hangzhou")


def polled() -> Snapshot:
    err = PollError("BIZ_SUBSCRIPTION_NOT_FOUND", "group <b>missing</b>", "not_found", "RID-7")
    return Snapshot(MappingProxyType({
        A: PairState(A, progress({"t": {0: (30, 5)}}), True, 1.0, 1.0, None, 1,
                     Insight(MappingProxyType({("t", 0): 754.0}), "stalled")),
        B: PairState(B, None, False, 1.0, None, err, 1),
    }), 2)


async def client_for(aiohttp_client, board: Board, path: str = "/metrics") -> TestClient:  # type: ignore[no-untyped-def]
    exposition = Exposition(MetricsSettings(max_series=0), board, TailCollector(board, ApiStats()))
    return await aiohttp_client(make_app(exposition, board, WebSettings(telemetry_path=path)))  # type: ignore[no-any-return]


async def test_metrics_text_gzip_and_openmetrics(aiohttp_client) -> None:  # type: ignore[no-untyped-def]
    """Plain text by default, gzip when asked, OpenMetrics when the Accept header asks."""
    client = await client_for(aiohttp_client, board_of(polled()))
    plain = await client.get("/metrics", headers={"Accept-Encoding": "identity"})
    assert plain.status == 200
    assert plain.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    text = await plain.text()
    assert value(text, "alikafka_consumergroup_lag", group="orders", instance_id="alikafka_post-cn-a", partition="0",
                 topic="t") == 25

    zipped = await client.get("/metrics", headers={"Accept-Encoding": "gzip"}, auto_decompress=False)
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(await zipped.read()).decode() == text  # several gzip members, one stream
    decoded = await client.get("/metrics", headers={"Accept-Encoding": "gzip"})  # aiohttp's own decoder
    assert await decoded.text() == text

    om = await client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert om.headers["Content-Type"].startswith("application/openmetrics-text")
    assert (await om.text()).endswith("# EOF\n")

    refused = await client.get("/metrics", headers={"Accept-Encoding": "gzip;q=0"}, auto_decompress=False)
    assert "Content-Encoding" not in refused.headers


async def test_readiness_follows_first_poll(aiohttp_client) -> None:  # type: ignore[no-untyped-def]
    """/readyz is 503 until every target was polled once; /healthz is always 200."""
    board = Board([A])
    client = await client_for(aiohttp_client, board)
    assert (await client.get("/healthz")).status == 200
    not_ready = await client.get("/readyz")
    assert not_ready.status == 503 and "1 of 1" in await not_ready.text()
    for state in polled().pairs.values():
        board.put(state)
    assert (await client.get("/readyz")).status == 200


async def test_custom_path_unknown_paths_and_methods(aiohttp_client) -> None:  # type: ignore[no-untyped-def]
    """The telemetry path is configurable; other paths 404, other methods 405."""
    client = await client_for(aiohttp_client, board_of(polled()), path="/custom")
    assert (await client.get("/custom")).status == 200
    assert (await client.get("/metrics")).status == 404
    assert (await client.post("/custom", data=b"x")).status == 405


async def test_status_page_lists_targets_and_escapes(aiohttp_client) -> None:  # type: ignore[no-untyped-def]
    """The status page shows each target, its error and RequestId, escaping names and messages."""
    client = await client_for(aiohttp_client, board_of(polled()))
    page = await client.get("/")
    assert page.status == 200 and page.content_type == "text/html"
    body = await page.text()
    assert "&lt;script&gt;" in body and "<script>" not in body
    assert "BIZ_SUBSCRIPTION_NOT_FOUND" in body and "RID-7" in body and "&lt;b&gt;missing" in body
    assert "alikafka_post-cn-a" in body
    worst = body.split('id="worst"')[1].split("</table>")[0]
    assert "<td class='num'>25</td><td class='num'>12m 34s</td>" in worst
    assert page.headers["Cache-Control"] == "no-store"


async def test_status_page_json_and_bad_format(aiohttp_client) -> None:  # type: ignore[no-untyped-def]
    """``?format=json`` gives the same facts as data; an unknown format is a 400."""
    client = await client_for(aiohttp_client, board_of(polled()))
    answer = await client.get("/", params={"format": "json"})
    assert answer.status == 200 and answer.content_type == "application/json"
    data = await answer.json()
    assert {t["group"] for t in data["targets"]} == {"orders", "<script>"}
    assert data["counts"] == {"ok": 1, "failing": 0, "stale": 1}
    assert (await client.get("/", params={"format": "xml"})).status == 400


async def test_exposition_cache_renders_once_per_state() -> None:
    """Scrapes between changes reuse the same bytes; a write to the board or new API counts render again."""
    board = board_of(polled())
    stats = ApiStats()
    exposition = Exposition(MetricsSettings(max_series=0), board, TailCollector(board, stats))
    first = exposition.render()
    assert exposition.render() is first
    stats.observe("GetConsumerProgress", "200", 0.1)
    second = exposition.render()
    assert second is not first and b'code="200"' in second.body
    assert exposition.render() is second
    board.put(PairState(A, progress({"t": {0: (31, 31)}}), True, 2.0, 2.0, None, 2))
    third = exposition.render()
    assert third is not second and value(third.body, "alikafka_consumergroup_lag", group="orders") == 0


async def test_status_page_links_are_the_apps_routes(aiohttp_client) -> None:  # type: ignore[no-untyped-def]
    """Every link of the page's navigation answers 200, the custom telemetry path included."""
    client = await client_for(aiohttp_client, board_of(polled()), path="/custom")
    nav = (await (await client.get("/")).text()).split("<nav>")[1].split("</nav>")[0]
    hrefs = [part.split('"')[0].replace("&amp;", "&") for part in nav.split('href="')[1:]]
    assert "/custom" in hrefs and "/healthz" in hrefs and "/readyz" in hrefs and len(hrefs) == 4
    for href in hrefs:
        assert (await client.get(href)).status == 200, href


def test_reserved_paths_are_the_apps_routes() -> None:
    """The paths web.telemetry_path may not take are exactly the fixed routes the app serves."""
    board = board_of(polled())
    exposition = Exposition(MetricsSettings(max_series=0), board, TailCollector(board, ApiStats()))
    app = make_app(exposition, board, WebSettings(telemetry_path="/custom"))
    routes = {r.resource.canonical for r in app.router.routes() if r.resource is not None and r.method == "GET"}
    assert routes - {"/custom"} == set(RESERVED_PATHS)


async def test_large_bodies_are_written_in_slices(aiohttp_client, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A body above the slice size goes out a memoryview slice at a time: the same bytes, the same
    Content-Length, gzip or plain, and HEAD sends only the headers."""
    client = await client_for(aiohttp_client, board_of(polled()))
    whole = await (await client.get("/metrics", headers={"Accept-Encoding": "identity"})).read()
    zipped_whole = await (await client.get("/metrics", headers={"Accept-Encoding": "gzip"},
                                           auto_decompress=False)).read()
    monkeypatch.setattr(web_module, "WRITE_CHUNK", 97)  # every body of this test is now sliced
    plain = await client.get("/metrics", headers={"Accept-Encoding": "identity"})
    assert int(plain.headers["Content-Length"]) == len(whole) > 97 * 3
    assert "Transfer-Encoding" not in plain.headers
    assert await plain.read() == whole
    zipped = await client.get("/metrics", headers={"Accept-Encoding": "gzip"}, auto_decompress=False)
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert await zipped.read() == zipped_whole
    head = await client.head("/metrics", headers={"Accept-Encoding": "identity"})
    assert head.status == 200 and await head.read() == b""


def test_scrapes_share_a_costly_render_for_a_while() -> None:
    """A render that took long enough is reused by scrapes (coalesce) for COALESCE_FACTOR times its cost,
    changed or not; other callers, and scrapes after that, get the change; cheap renders are always fresh."""
    now = [0.0]
    step = [0.01]  # every clock reading advances this much: a render "takes" 10 ms

    def clock() -> float:
        now[0] += step[0]
        return now[0]

    board = board_of(polled())
    stats = ApiStats()
    exposition = Exposition(MetricsSettings(max_series=0), board, TailCollector(board, stats), clock=clock)
    step[0] = 0.0
    first = exposition.render(coalesce=True)  # took 0 s (the clock stood still): never reused when stale
    stats.observe("GetConsumerProgress", "200", 0.1)
    step[0] = 0.01
    costly = exposition.render(coalesce=True)
    assert costly is not first
    stats.observe("GetConsumerProgress", "200", 0.1)
    assert exposition.render(coalesce=True) is costly  # changed, but the render is 10 ms old and cost 10 ms
    fresh = exposition.render()
    assert fresh is not costly and len(find(fresh.body, "alikafka_exporter_api_requests_total", code="200")) == 1
    stats.observe("GetConsumerProgress", "200", 0.1)
    now[0] += exposition_module.COALESCE_FACTOR * 0.01
    later = exposition.render(coalesce=True)
    assert later is not fresh
    assert value(later.body, "alikafka_exporter_api_requests_total", action="GetConsumerProgress", code="200") == 3


async def test_a_scraper_leaving_mid_body_is_not_an_error(caplog) -> None:  # type: ignore[no-untyped-def]
    """On the exporter's own server, a scraper that resets its connection while a large body is being
    written (a scrape timeout) logs nothing, and the next scrape is served whole."""
    big = {Pair("i", f"g{n:03d}", "r"): PairState(Pair("i", f"g{n:03d}", "r"),
                                                  progress({f"t{n}": {p: (10**9 + p, 10**8) for p in range(100)}}),
                                                  True, 1.0, 1.0, None, 1) for n in range(200)}
    board = Board.holding(big.values())
    exposition = Exposition(MetricsSettings(max_series=0), board, TailCollector(board, ApiStats()))
    whole = exposition.render().body
    assert len(whole) > 8 * 2**20  # more than the socket buffers between the two take
    runner = await web_module.start(make_app(exposition, board, WebSettings()), "127.0.0.1", 0)
    host, port = runner.addresses[0][:2]
    request = f"GET /metrics HTTP/1.1\r\nHost: {host}\r\nAccept-Encoding: identity\r\n\r\n".encode()
    try:
        for _ in range(3):
            sock = socket.socket()
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # the server must wait on this scraper
            sock.setblocking(False)
            await asyncio.get_running_loop().sock_connect(sock, (host, port))
            reader, writer = await asyncio.open_connection(sock=sock)
            writer.write(request)
            await writer.drain()
            assert (await reader.read(12)).startswith(b"HTTP/1.1 200")
            writer.transport.abort()  # a reset, not a polite close
            await asyncio.sleep(0.2)
        assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        assert f"Content-Length: {len(whole)}".encode() in head
        assert await reader.readexactly(len(whole)) == whole
        writer.close()
    finally:
        await runner.cleanup()


async def _raw(port: int, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    answer = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    await writer.wait_closed()
    return answer


def _headers_of(answer: bytes) -> dict[str, str]:
    head = answer.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")[1:]
    return {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in head)}


async def test_every_response_says_nosniff_and_names_no_versions(tmp_path: Path) -> None:
    """Routes, 401, 404, the JSON view and aiohttp's own 400 for a malformed request: nosniff, no version banner."""
    config = webconfig.load(write_config(tmp_path / "web.yml", {"basic_auth_users": {"u": hash_password("pw")}}))
    auth = "Basic " + base64.b64encode(b"u:pw").decode()
    async with serve(config) as served, aiohttp.ClientSession() as session:
        answers = []
        for path, headers in (("/metrics", {"Authorization": auth}), ("/healthz", {"Authorization": auth}),
                              ("/readyz", {"Authorization": auth}), ("/", {"Authorization": auth}),
                              ("/?format=json", {"Authorization": auth}), ("/nope", {"Authorization": auth}),
                              ("/metrics", {})):
            async with session.get(served.url + path, headers=headers) as resp:
                answers.append((resp.status, {k.lower(): v for k, v in resp.headers.items()}))
        raw = await _raw(served.port, b"GET /metrics HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n")
        answers.append((int(raw.split(b" ", 2)[1]), _headers_of(raw)))
    assert [status for status, _ in answers] == [200, 200, 200, 200, 200, 404, 401, 400]
    for status, headers in answers:
        assert headers.get("x-content-type-options") == "nosniff", (status, headers)
        assert headers.get("server") == "alikafka-exporter", (status, headers)
        assert "aiohttp" not in str(headers).lower() and "python" not in str(headers).lower()


async def test_status_page_policy_allows_its_inline_style_and_nothing_else() -> None:
    """The page's CSP: default-src 'none' and the hash of its one <style> element; no script, no unsafe-inline."""
    async with serve() as served, aiohttp.ClientSession() as session:
        async with session.get(served.url + "/") as resp:
            body, policy = await resp.text(), resp.headers.get("Content-Security-Policy", "")
        async with session.get(served.url + "/metrics") as resp:
            assert resp.headers["X-Content-Type-Options"] == "nosniff"
    directives = {d.split()[0]: d.split()[1:] for d in policy.split(";") if d.strip()}
    assert directives.get("default-src") == ["'none'"], policy
    styles = re.findall(r"<style>(.*?)</style>", body, re.DOTALL)
    assert len(styles) == 1 and "<script" not in body and " style=" not in body
    digest = base64.b64encode(hashlib.sha256(styles[0].encode()).digest()).decode()
    assert directives["style-src"] == [f"'sha256-{digest}'"]
    assert directives["frame-ancestors"] == ["'none'"] and "script-src" not in directives
    assert "unsafe" not in policy


async def test_headers_from_the_web_config_win_over_the_defaults(tmp_path: Path) -> None:
    """A Content-Security-Policy set in http_server_config.headers replaces the page's own."""
    config = webconfig.load(write_config(tmp_path / "web.yml", {
        "http_server_config": {"headers": {"Content-Security-Policy": "default-src 'self'"}}}))
    async with serve(config) as served, aiohttp.ClientSession() as session, session.get(served.url + "/") as resp:
        assert resp.headers.getall("Content-Security-Policy") == ["default-src 'self'"]
        assert resp.headers.getall("X-Content-Type-Options") == ["nosniff"]
