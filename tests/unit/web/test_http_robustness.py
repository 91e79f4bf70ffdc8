"""Clients that misbehave: junk, oversized heads, no Host, slowloris, too many connections, 50 scrapers.

Raw sockets against the exporter's real server on 127.0.0.1. Every bad request gets a 4xx (or the
connection closed), the log gets at most one warning line per interval and no traceback, and the
server keeps answering good requests correctly.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import logging
import time

import aiohttp
import pytest
from aiohttp.http_exceptions import BadHttpMessage

from exporter.web.server import HttpLimits, RequestErrorLog
from tests.support.webserve import serve


async def exchange(port: int, data: bytes, wait: float = 5.0) -> bytes:
    """Send ``data`` on a new connection and read until the server closes it (or ``wait`` seconds)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        chunks = []
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            try:
                chunk = await asyncio.wait_for(reader.read(65536), deadline - time.monotonic())
            except (TimeoutError, ConnectionResetError):
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionResetError):
            await writer.wait_closed()


def status_of(answer: bytes) -> int:
    assert answer.startswith(b"HTTP/1."), answer[:100]
    return int(answer.split(b" ", 2)[1])


BAD_REQUESTS = {
    "garbage": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(range(256)) + b"\r\n\r\n",
    "not http": b"HELLO THERE\r\n\r\n",
    "long request line": b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
    "oversized header": b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n",
    "too many headers": b"GET /metrics HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(200))
                        + b"\r\n",
    "bad header line": b"GET /metrics HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n",
    "missing host": b"GET /metrics HTTP/1.1\r\n\r\n",
    "bad version": b"GET /metrics HTTP/9.9\r\nHost: x\r\n\r\n",
    "bad content-length": b"GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n",
    "nul in path": b"GET /met\x00rics HTTP/1.1\r\nHost: x\r\n\r\n",
}


async def test_bad_requests_get_4xx_and_one_warning_line(caplog: pytest.LogCaptureFixture) -> None:
    """Each malformed request is answered 4xx; the log has one warning, no traceback, nothing from aiohttp."""
    caplog.set_level(logging.INFO)
    async with serve() as served:
        for name, data in BAD_REQUESTS.items():
            answer = await exchange(served.port, data)
            assert 400 <= status_of(answer) < 500, (name, answer[:200])
        ok = await exchange(served.port, b"GET /healthz HTTP/1.0\r\n\r\n")  # HTTP/1.0 needs no Host
        assert status_of(ok) == 200 and ok.endswith(b"ok\n")
    records = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(records) == 1, [r.getMessage() for r in records]
    assert records[0].name == "exporter.http" and records[0].exc_info is None
    assert not any(r.name.startswith("aiohttp") for r in caplog.records)
    assert "Traceback" not in caplog.text


def test_error_log_counts_per_interval(caplog: pytest.LogCaptureFixture) -> None:
    """One line per interval, carrying how many failures it stands for; handler bugs keep their traceback."""
    now = [0.0]
    errors = RequestErrorLog(60.0, clock=lambda: now[0])
    for _ in range(5):
        errors.exception("Error handling request", exc_info=BadHttpMessage("bad"))
    now[0] = 61.0
    errors.exception("Error handling request", exc_info=BadHttpMessage("worse"))
    now[0] = 200.0
    errors.exception("Error handling request", exc_info=RuntimeError("handler bug"))
    lines = [(r.levelname, r.count, r.exc_info is not None) for r in caplog.records]  # type: ignore[attr-defined]
    assert lines == [("WARNING", 1, False), ("WARNING", 5, False), ("ERROR", 1, True)]
    assert errors.total == 7


async def test_unknown_paths_and_methods() -> None:
    """Unknown paths 404; only GET and HEAD are served, other methods 405 with Allow."""
    async with serve() as served, aiohttp.ClientSession() as session:
        for method, path, expected in [("GET", "/nope", 404), ("GET", "/metrics/", 404), ("POST", "/metrics", 405),
                                       ("PUT", "/", 405), ("DELETE", "/healthz", 405), ("OPTIONS", "/metrics", 405),
                                       ("TRACE", "/", 405), ("HEAD", "/metrics", 200), ("GET", "/metrics", 200)]:
            async with session.request(method, served.url + path) as resp:
                assert resp.status == expected, (method, path)
                if expected == 405:
                    assert set(resp.headers["Allow"].split(",")) <= {"GET", "HEAD"}
                if method == "HEAD":
                    assert await resp.read() == b""
        answer = await exchange(served.port, b"BREW /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status_of(answer) in (400, 405)


async def test_slowloris_is_cut_off_within_the_request_timeout() -> None:
    """A client trickling its request head is disconnected after request_timeout, and so is an idle one."""
    async with serve(limits=HttpLimits(request_timeout=1.0)) as served:
        reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
        idle_reader, idle_writer = await asyncio.open_connection("127.0.0.1", served.port)
        start = time.monotonic()
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
        closed_after = None
        for i in range(40):
            try:
                writer.write(b"X-Slow-%d: y\r\n" % i)
                await writer.drain()
            except ConnectionError:
                closed_after = time.monotonic() - start
                break
            if reader.at_eof() or await _closed(reader):
                closed_after = time.monotonic() - start
                break
        assert closed_after is not None and closed_after < 3.0, closed_after
        assert await asyncio.wait_for(idle_reader.read(), 3.0) == b""  # the silent one too
        for w in (writer, idle_writer):
            w.close()
            with contextlib.suppress(ConnectionError):
                await w.wait_closed()
        ok = await exchange(served.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert status_of(ok) == 200


async def _closed(reader: asyncio.StreamReader) -> bool:
    try:
        data = await asyncio.wait_for(reader.read(1024), 0.25)
    except TimeoutError:
        return False
    return data == b"" or data.startswith(b"HTTP/1.1 4")


async def test_connection_cap_answers_503() -> None:
    """Beyond max_connections a new connection gets 503 and is closed; freeing one lets clients in again."""
    async with serve(limits=HttpLimits(max_connections=3)) as served:
        held = [await asyncio.open_connection("127.0.0.1", served.port) for _ in range(3)]
        await asyncio.sleep(0.1)
        answer = await exchange(served.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status_of(answer) == 503
        for _, writer in held:
            writer.close()
            await writer.wait_closed()
        await asyncio.sleep(0.1)
        answer = await exchange(served.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert status_of(answer) == 200


async def test_fifty_concurrent_scrapers_get_identical_bodies() -> None:
    """50 scrapers at once, plain and gzip, each get exactly the snapshot's exposition bytes."""
    async with serve() as served:
        rendered = served.exposition.render()
        connector = aiohttp.TCPConnector(limit=0, force_close=True)
        async with aiohttp.ClientSession(connector=connector, auto_decompress=False) as session:
            async def scrape(encoding: str) -> tuple[int, bytes, str]:
                async with session.get(served.url + "/metrics", headers={"Accept-Encoding": encoding}) as resp:
                    return resp.status, await resp.read(), resp.headers.get("Content-Encoding", "")
            started = time.monotonic()
            results = await asyncio.gather(*(scrape("gzip" if i % 2 else "identity") for i in range(50)))
            elapsed = time.monotonic() - started
        assert len(rendered.body) > 20_000
        for i, (status, body, encoding) in enumerate(results):
            assert status == 200
            if i % 2:
                assert encoding == "gzip" and gzip.decompress(body) == rendered.body
            else:
                assert body == rendered.body
        assert elapsed < 10, elapsed
