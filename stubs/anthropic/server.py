"""The Flask app that speaks the Messages API (plus the few other paths the CLI touches).

Every request except the ``/_stub`` control routes is logged first, so even requests the
stub rejects show up in the log with the status they got.
"""

from __future__ import annotations

import json
import time
from typing import Any

from flask import Flask, Response, current_app, g, request

from .admin import admin
from .control import CONTROL_KEY, LogEntry, StubControl, credential_summary, redact_headers
from .conversation import Conversation
from .delivery import deliver
from .grammar import plan_reply
from .reply import Reply, block_to_api, new_id
from .stream import error_body, message_json, sse_events
from .usage import Usage, input_tokens_for, output_tokens_for

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def create_app(control: StubControl | None = None) -> Flask:
    app = Flask(__name__)
    app.config[CONTROL_KEY] = control or StubControl()
    app.register_blueprint(admin)
    app.before_request(_log_request)
    app.add_url_rule("/", "root", _root, methods=["GET", "HEAD"])
    app.add_url_rule("/v1/messages", "messages", _messages, methods=["POST"])
    app.add_url_rule("/v1/messages/count_tokens", "count_tokens", _count_tokens, methods=["POST"])
    any_method = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
    app.add_url_rule("/api/<path:_rest>", "api_any", _api_any, methods=any_method)
    app.register_error_handler(404, lambda _e: _error(404, "not_found_error", f"no route for {request.path}"))
    app.register_error_handler(405, lambda _e: _error(405, "invalid_request_error", "method not allowed"))
    return app


def _control() -> StubControl:
    control: StubControl = current_app.config[CONTROL_KEY]
    return control


def _log_request() -> None:
    if request.path.startswith("/_stub"):
        return
    headers = dict(request.headers.items())
    body: Any = request.get_json(silent=True) if request.data else None
    g.entry = _control().record(
        {
            "method": request.method,
            "path": request.path,
            "query": request.query_string.decode(errors="replace"),
            "headers": redact_headers(headers),
            "credential": credential_summary(headers),
            "body": body,
        }
    )


def _entry() -> LogEntry | None:
    entry: LogEntry | None = g.get("entry")
    return entry


def _error(status: int, error_type: str, message: str, headers: dict[str, str] | None = None) -> Response:
    """Anthropic's error envelope; also noted in the log so tests can see what was refused."""
    body = error_body(error_type, message)
    entry = _entry()
    if entry is not None:
        _control().update(entry, status=status, error=body["error"], completed=True)
    response = Response(json.dumps(body), status=status, mimetype="application/json", headers=headers or {})
    response.headers["request-id"] = new_id("req")
    return response


def _root() -> Response:
    return Response("{}", mimetype="application/json")


def _api_any(_rest: str) -> Response:
    """The CLI probes assorted ``/api/*`` paths (hello, settings); an empty success is enough."""
    return Response("{}", mimetype="application/json")


def _parse_body() -> tuple[dict[str, Any] | None, Response | None]:
    try:
        body = json.loads(request.get_data() or b"null")
    except ValueError:
        return None, _error(400, "invalid_request_error", "request body is not valid JSON")
    if not isinstance(body, dict):
        return None, _error(400, "invalid_request_error", "request body must be a JSON object")
    return body, None


def _check_key() -> Response | None:
    expected = _control().expected_api_key
    if expected is None:
        return None
    presented = request.headers.get("x-api-key") or request.headers.get("authorization", "").removeprefix("Bearer ")
    if presented != expected:
        return _error(401, "authentication_error", "invalid x-api-key")
    return None


def _validate(body: dict[str, Any]) -> Response | None:
    if not isinstance(body.get("model"), str) or not body["model"]:
        return _error(400, "invalid_request_error", "model: field required")
    if not isinstance(body.get("messages"), list):
        return _error(400, "invalid_request_error", "messages: field required")
    max_tokens = body.get("max_tokens")
    if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
        return _error(400, "invalid_request_error", "max_tokens: must be a positive integer")
    return None


def _count_tokens() -> Response:
    body, problem = _parse_body()
    if problem is not None:
        return problem
    assert body is not None
    problem = _check_key()
    if problem is not None:
        return problem
    return Response(json.dumps({"input_tokens": input_tokens_for(request.get_data())}), mimetype="application/json")


def _messages() -> Response:
    control = _control()
    body, problem = _parse_body()
    if problem is not None:
        return problem
    assert body is not None
    problem = _check_key() or _validate(body)
    if problem is not None:
        return problem
    conv = Conversation(body)
    entry = _entry()
    assert entry is not None
    streaming = bool(body.get("stream"))
    control.update(entry, kind=conv.kind, stream=streaming)

    fault = control.take_http_fault(conv)
    if fault is not None:
        headers: dict[str, str] = {}
        retry_after = fault.retry_after if fault.retry_after is not None else (0 if fault.status == 429 else None)
        if retry_after is not None:
            headers["retry-after"] = f"{retry_after:g}"
        return _error(fault.status, fault.error_type, fault.message, headers)

    scripted = control.take_script(conv)
    reply = scripted or plan_reply(conv)
    usage = Usage(input_tokens_for(request.get_data()), output_tokens_for(reply))
    message_id = new_id("msg")
    control.update(entry, scripted=scripted is not None, reply=[block_to_api(b) for b in reply.blocks])
    if streaming:
        return _stream_response(control, entry, conv, reply, usage, message_id)
    return _json_response(control, entry, conv, reply, usage, message_id)


def _json_response(
    control: StubControl, entry: LogEntry, conv: Conversation, reply: Reply, usage: Usage, message_id: str
) -> Response:
    latency = control.latency
    if latency.ttft > 0:
        time.sleep(latency.ttft)
    control.update(entry, usage=usage.to_api(), completed=True)
    body = message_json(reply, conv.model, message_id, usage)
    return Response(json.dumps(body), mimetype="application/json", headers={"request-id": new_id("req")})


def _stream_response(
    control: StubControl, entry: LogEntry, conv: Conversation, reply: Reply, usage: Usage, message_id: str
) -> Response:
    def on_event(name: str, data: dict[str, Any]) -> None:
        if name == "message_start":
            control.update(entry, usage=dict(data["message"]["usage"]))
        elif name == "message_delta":
            control.update(entry, usage=dict(data["usage"]))
        elif name == "message_stop":
            control.update(entry, completed=True)
        elif name == "error":
            control.update(entry, error=data["error"], completed=True)

    chunks = deliver(
        sse_events(reply, conv.model, message_id, usage),
        control.latency,
        control.take_stream_fault(conv),
        on_event,
        ping_interval=control.ping_interval,
    )
    headers = dict(SSE_HEADERS, **{"request-id": new_id("req")})
    return Response(chunks, mimetype="text/event-stream", headers=headers)
