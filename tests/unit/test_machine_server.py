"""The machine agent's HTTP/1.1 server (machine_agent.server) on a real loopback socket.

A small Flask app stands in for the agent so each framing rule can be driven exactly:
keep-alive across requests, streamed chunks leaving before the response ends, chunked
request bodies, unread bodies drained, and malformed requests answered in JSON.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask, Response, request

from machine_agent.http import install_error_handlers
from machine_agent.server import Server, listen_tcp

STEP = threading.Event()


def _app() -> Flask:
    app = Flask(__name__)
    install_error_handlers(app)  # as the agent does: errors in the app are JSON too

    @app.post("/echo")
    def echo() -> dict[str, Any]:
        data = request.get_data()
        return {"length": len(data), "head": data[:16].decode(errors="replace")}

    @app.post("/ignore")
    def ignore() -> dict[str, bool]:
        return {"ignored": True}

    @app.get("/stream")
    def stream() -> Response:
        def body() -> Iterator[bytes]:
            yield b"first"
            assert STEP.wait(10), "the client never saw the first chunk"
            yield b"second"

        return Response(body(), mimetype="text/event-stream")

    @app.get("/boom-midway")
    def boom_midway() -> Response:
        def body() -> Iterator[bytes]:
            yield b"partial"
            raise RuntimeError("secret-internal-detail")

        return Response(body())

    @app.get("/path/<path:rest>")
    def path(rest: str) -> dict[str, Any]:
        return {"rest": rest, "query": request.args.to_dict()}

    return app


def _raw_wsgi_boom(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    raise RuntimeError("secret-internal-detail")


@pytest.fixture
def serve() -> Iterator[Any]:
    servers: list[tuple[Server, threading.Thread]] = []

    def start(app: Any) -> tuple[str, int]:
        server = Server(listen_tcp("127.0.0.1", 0), app)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        servers.append((server, thread))
        host, port = server.socket.getsockname()[:2]
        return host, port

    yield start
    for server, thread in servers:
        server.close()
        thread.join(10)
        assert not thread.is_alive()


@pytest.fixture
def address(serve: Any) -> tuple[str, int]:
    STEP.clear()
    return serve(_app())


def _raw(address: tuple[str, int], payload: bytes) -> bytes:
    """Send raw bytes, read until the server closes the connection."""
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(payload)
        chunks: list[bytes] = []
        while True:
            data = sock.recv(65536)
            if not data:
                return b"".join(chunks)
            chunks.append(data)


def _json_error(raw: bytes) -> tuple[int, dict[str, Any]]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert b"application/json" in head
    return status, json.loads(body)


def test_keep_alive_serves_many_requests_on_one_connection(address: tuple[str, int]) -> None:
    conn = http.client.HTTPConnection(*address, timeout=10)
    conn.request("POST", "/echo", body=b"x" * 10)
    first = conn.getresponse()
    assert first.status == 200 and json.loads(first.read())["length"] == 10
    assert first.getheader("Connection") is None
    sock = conn.sock
    for size in (0, 1, 100_000):
        conn.request("POST", "/echo", body=b"y" * size)
        resp = conn.getresponse()
        assert json.loads(resp.read())["length"] == size
    assert conn.sock is sock, "the client had to reconnect"
    conn.close()


def test_unread_request_body_is_drained_before_the_next_request(address: tuple[str, int]) -> None:
    conn = http.client.HTTPConnection(*address, timeout=10)
    conn.request("POST", "/ignore", body=b"GET /echo HTTP/1.1\r\n\r\n" * 5000)
    assert json.loads(conn.getresponse().read()) == {"ignored": True}
    conn.request("POST", "/echo", body=b"after")
    assert json.loads(conn.getresponse().read()) == {"length": 5, "head": "after"}


def test_streamed_chunks_leave_before_the_response_ends(address: tuple[str, int]) -> None:
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(b"GET /stream HTTP/1.1\r\nHost: x\r\n\r\n")
        received = b""
        while b"first\r\n" not in received:
            data = sock.recv(65536)
            assert data, "connection closed before the first chunk"
            received += data
        head, _, body = received.partition(b"\r\n\r\n")
        assert b"Transfer-Encoding: chunked" in head
        assert body == b"5\r\nfirst\r\n", "the first chunk must be on the wire, alone, while the app waits"
        STEP.set()
        while not received.endswith(b"0\r\n\r\n"):
            data = sock.recv(65536)
            assert data
            received += data
        assert received.partition(b"\r\n\r\n")[2] == b"5\r\nfirst\r\n6\r\nsecond\r\n0\r\n\r\n"


def test_chunked_request_body_then_keep_alive(address: tuple[str, int]) -> None:
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nTrailer: yes\r\n\r\n"
                     b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc")
        raw = b""
        while data := sock.recv(65536):
            raw += data
    first, second = raw.split(b"HTTP/1.1 200", 2)[1:]
    assert b'"length":12' in first.replace(b" ", b"") and b"hello, world" in first
    assert b'"length":3' in second.replace(b" ", b"")


@pytest.mark.parametrize("payload, status", [
    (b"NONSENSE\r\n\r\n", 400),
    (b"GET / HTTP/9.9\r\n\r\n", 505),
    (b"GET / HTTP/1.1\r\nX-Long: " + b"a" * 70_000 + b"\r\n\r\n", 431),
    (b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n", 414),
    (b"POST /echo HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
    (b"POST /echo HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400),
    (b"POST /echo HTTP/1.1\r\nContent-Length: \xc2\xb2\r\n\r\n", 400),
    (b"POST /echo HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
    (b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n", 400),
    (b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n", 400),
])
def test_malformed_requests_get_a_json_error(address: tuple[str, int], payload: bytes, status: int) -> None:
    got, body = _json_error(_raw(address, payload))
    assert got == status
    assert set(body["error"]) == {"code", "message", "details"}
    assert "Traceback" not in json.dumps(body)


def test_an_app_failure_after_the_headers_cuts_the_stream_without_leaking(address: tuple[str, int]) -> None:
    raw = _raw(address, b"GET /boom-midway HTTP/1.1\r\nHost: x\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 200")
    assert b"partial" in raw
    assert not raw.endswith(b"0\r\n\r\n"), "a broken stream must not look complete"
    assert b"secret-internal-detail" not in raw


def test_an_app_that_raises_gets_a_json_500_without_details(serve: Any) -> None:
    address = serve(_raw_wsgi_boom)
    status, body = _json_error(_raw(address, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
    assert status == 500
    assert "secret-internal-detail" not in json.dumps(body)


def test_paths_and_queries_reach_the_app_decoded(address: tuple[str, int]) -> None:
    conn = http.client.HTTPConnection(*address, timeout=10)
    conn.request("GET", "/path/caf%C3%A9/a%20b?q=%C3%A9t%C3%A9&x=1")
    assert json.loads(conn.getresponse().read()) == {"rest": "café/a b", "query": {"q": "été", "x": "1"}}


def test_head_and_http10_framing(address: tuple[str, int]) -> None:
    raw = _raw(address, b"HEAD /path/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and body == b""
    STEP.set()  # no pause in the stream this time
    raw = _raw(address, b"GET /stream HTTP/1.0\r\n\r\n")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"chunked" not in head and b"Connection: close" in head
    assert body == b"firstsecond"
