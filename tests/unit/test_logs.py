"""Structured logs: one JSON object per line, request ids end to end, and no secret in any
line however a client sends it (headers, query string, path, request id, message)."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, Response, jsonify, stream_with_context

from control import errors, logs
from control.app import create_app
from control.secrets import REDACTOR
from control.settings import from_env
from wire.errors import NotFound

ANTHROPIC_KEY = "sk-ant-api03-LOGTEST-abcdefghijklmnop"
AGC_TOKEN = "agc_logtest_0123456789abcdefghij"
UNSHAPED_SECRET = "plainsecretvalue-0987"  # not key-shaped: only masking keeps it out
log = logging.getLogger("agcluster.test")


@pytest.fixture()
def sink() -> Iterator[io.StringIO]:
    buffer = io.StringIO()
    root = logging.getLogger()
    level = root.level
    handler = logs.configure_logging("DEBUG", stream=buffer)
    yield buffer
    root.removeHandler(handler)
    root.setLevel(level)


def lines(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.strip()]


def access(buffer: io.StringIO) -> list[dict[str, Any]]:
    return [entry for entry in lines(buffer) if entry["logger"] == "agcluster.access"]


@pytest.fixture()
def app() -> Flask:
    app = Flask(__name__)
    errors.install(app)
    logs.install(app)

    @app.get("/hello")
    def hello() -> Response:
        log.info("inside the view")
        return jsonify(ok=True)

    @app.get("/missing")
    def missing() -> Response:
        raise NotFound("nothing here")

    @app.get("/boom")
    def boom() -> Response:
        raise RuntimeError(f"exploded while holding {ANTHROPIC_KEY}")

    @app.get("/stream")
    def stream() -> Response:
        def body() -> Iterator[bytes]:
            yield b"data: 1\n\n"
            log.info("streaming")
            yield b"data: 2\n\n"

        return Response(stream_with_context(body()), mimetype="text/event-stream")

    return app


def test_every_line_is_one_json_object_with_the_fields(sink: io.StringIO, app: Flask) -> None:
    logging.getLogger("agcluster.other").warning("multi\nline %s", "message")
    app.test_client().get("/hello")
    entries = lines(sink)
    assert len(sink.getvalue().splitlines()) == len(entries)  # newlines stay escaped inside a line
    assert entries[0]["message"] == "multi\nline message" and entries[0]["level"] == "WARNING"
    assert {"ts", "level", "logger", "message"} <= set(entries[0])
    line = access(sink)[0]
    assert line["method"] == "GET" and line["path"] == "/hello" and line["status"] == 200
    assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0
    assert line["ts"].endswith("+00:00")


def test_request_id_is_generated_echoed_and_on_every_line_of_the_request(sink: io.StringIO, app: Flask) -> None:
    resp = app.test_client().get("/hello")
    request_id = resp.headers[logs.REQUEST_ID_HEADER]
    assert len(request_id) == 32
    inside = [e for e in lines(sink) if e["message"] == "inside the view"]
    assert inside[0]["request_id"] == request_id
    assert access(sink)[0]["request_id"] == request_id


def test_a_safe_incoming_request_id_is_honoured(sink: io.StringIO, app: Flask) -> None:
    resp = app.test_client().get("/missing", headers={"X-Request-Id": "trace-42.abc:7"})
    assert resp.status_code == 404 and resp.headers["X-Request-Id"] == "trace-42.abc:7"
    assert access(sink)[0]["request_id"] == "trace-42.abc:7" and access(sink)[0]["status"] == 404


@pytest.mark.parametrize("hostile", ["has space", "x" * 200, "semi;colon", ANTHROPIC_KEY, "\u00e9t\u00e9", "-leading"])
def test_an_unsafe_incoming_request_id_is_replaced(sink: io.StringIO, app: Flask, hostile: str) -> None:
    resp = app.test_client().get("/hello", headers={"X-Request-Id": hostile})
    echoed = resp.headers["X-Request-Id"]
    assert echoed != hostile and len(echoed) == 32
    assert hostile not in sink.getvalue()


def test_no_secret_reaches_the_log_however_it_is_sent(sink: io.StringIO, app: Flask) -> None:
    REDACTOR.add(AGC_TOKEN)
    client = app.test_client()
    client.get(f"/hello?api_key={UNSHAPED_SECRET}&token={UNSHAPED_SECRET}&x-api-key={UNSHAPED_SECRET}&after=3",
               headers={"Authorization": f"Bearer {AGC_TOKEN}", "X-Anthropic-Api-Key": ANTHROPIC_KEY,
                        "Cookie": f"session={UNSHAPED_SECRET}"})
    client.get(f"/missing/{ANTHROPIC_KEY}")
    client.get("/boom", headers={"Authorization": f"Bearer {ANTHROPIC_KEY}"})
    text = sink.getvalue()
    for secret in (ANTHROPIC_KEY, AGC_TOKEN, UNSHAPED_SECRET):
        assert secret not in text
    line = access(sink)[0]
    assert line["query"] == "api_key=[REDACTED]&token=[REDACTED]&x-api-key=[REDACTED]&after=3"
    assert "Authorization" not in text and "X-Anthropic-Api-Key" not in text
    crash = [e for e in lines(sink) if e["message"].startswith("unhandled error")]
    assert crash and "RuntimeError" in crash[0]["message"] and "[REDACTED]" in crash[0]["message"]
    assert access(sink)[-1]["status"] == 500 and access(sink)[-1]["level"] == "ERROR"


def test_a_stream_is_logged_when_it_closes(sink: io.StringIO, app: Flask) -> None:
    resp = app.test_client().get("/stream")
    assert access(sink) == []  # headers sent, body not yet consumed
    assert resp.get_data() == b"data: 1\n\ndata: 2\n\n"
    resp.close()
    entries = lines(sink)
    assert [e["logger"] for e in entries][-1] == "agcluster.access"
    assert entries[-1]["path"] == "/stream" and entries[-1]["status"] == 200
    assert entries[-2]["message"] == "streaming"


def test_health_and_metrics_polls_are_debug_only(sink: io.StringIO) -> None:
    app = Flask(__name__)
    logs.install(app)
    app.add_url_rule("/health", view_func=lambda: jsonify(status="healthy"))
    app.test_client().get("/health")
    assert access(sink)[0]["level"] == "DEBUG"


def test_configure_logging_is_idempotent(sink: io.StringIO) -> None:
    second = io.StringIO()
    handler = logs.configure_logging("INFO", stream=second)
    try:
        ours = [h for h in logging.getLogger().handlers if type(h) is type(handler)]
        assert ours == [handler]
        logging.getLogger("agcluster.test").info("once")
        assert second.getvalue().count('"once"') == 1 and sink.getvalue() == ""
    finally:
        logging.getLogger().removeHandler(handler)


def test_the_real_app_carries_request_ids(tmp_path: Path, sink: io.StringIO) -> None:
    app = create_app(from_env({"DATABASE_PATH": str(tmp_path / "agcluster.db")}))
    logs.install(app)  # idempotent once the app factory wires it
    resp = app.test_client().get("/api/agents/sessions/nope", headers={"X-Request-Id": "abc123"})
    assert resp.status_code == 404 and resp.headers["X-Request-Id"] == "abc123"
    assert resp.get_json()["error"]["code"] == "not_found"
    assert any(e.get("request_id") == "abc123" and e["status"] == 404 for e in access(sink))
