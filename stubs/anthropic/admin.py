"""``/_stub/*`` routes: the same controls as the Python API, for out-of-process callers
(benchmarks, ``agcluster demo``, e2e tests that run the stub as a subprocess)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request

from .control import CONTROL_KEY, Matcher, StubControl
from .reply import reply_from_api
from .stream import error_body

admin = Blueprint("stub_admin", __name__, url_prefix="/_stub")


def _control() -> StubControl:
    control: StubControl = current_app.config[CONTROL_KEY]
    return control


def _bad(message: str) -> tuple[Response, int]:
    return jsonify(error_body("invalid_request_error", message)), 400


def _json() -> dict[str, Any]:
    data = request.get_json(silent=True)
    return data if isinstance(data, dict) else {}


@admin.get("/state")
def state() -> Response:
    return jsonify(_control().state())


@admin.get("/requests")
def list_requests() -> Response | tuple[Response, int]:
    """Query: ``kind``, ``path``, ``since`` (seq), ``limit`` (last N)."""
    args = request.args
    try:
        since = int(args.get("since", 0))
        limit = int(args["limit"]) if "limit" in args else None
    except ValueError:
        return _bad("since and limit must be integers")
    return jsonify({"requests": _control().requests(args.get("kind"), args.get("path"), since, limit)})


@admin.delete("/requests")
def clear_requests() -> Response:
    _control().clear_log()
    return jsonify({"ok": True})


@admin.post("/script")
def script() -> Response | tuple[Response, int]:
    """Body: ``{"reply": {...}}`` or ``{"replies": [...]}``, optional ``"match"``."""
    data = _json()
    raw = data.get("replies") if "replies" in data else [data.get("reply")]
    if not isinstance(raw, list):
        return _bad("replies must be a list")
    try:
        replies = [reply_from_api(r) for r in raw]
    except (ValueError, TypeError, AttributeError) as exc:
        return _bad(str(exc))
    matcher = Matcher.from_json(data.get("match"))
    for reply in replies:
        _control().enqueue(reply, matcher)
    return jsonify({"queued": len(replies)})


@admin.post("/latency")
def latency() -> Response | tuple[Response, int]:
    data = _json()
    try:
        ttft = float(data.get("ttft", 0.0))
        tps = data.get("tokens_per_second")
        tokens_per_second = float(tps) if tps is not None else None
    except (TypeError, ValueError):
        return _bad("ttft and tokens_per_second must be numbers")
    if ttft < 0 or (tokens_per_second is not None and tokens_per_second <= 0):
        return _bad("ttft must be >= 0 and tokens_per_second > 0")
    _control().set_latency(ttft, tokens_per_second)
    return jsonify({"ok": True})


@admin.post("/faults")
def faults() -> Response | tuple[Response, int]:
    """Body: ``{"status": 429, "count": 1, "retry_after": 0, "message": ..., "match": ...}``."""
    data = _json()
    try:
        status = int(data["status"])
        count = int(data.get("count", 1))
        retry_after = float(data["retry_after"]) if data.get("retry_after") is not None else None
    except (KeyError, TypeError, ValueError):
        return _bad("status (int) is required; count and retry_after must be numbers")
    if not 400 <= status <= 599 or count < 1:
        return _bad("status must be 4xx/5xx and count >= 1")
    _control().fail_next(
        status, count, data.get("message"), data.get("error_type"), retry_after, Matcher.from_json(data.get("match"))
    )
    return jsonify({"ok": True})


@admin.post("/faults/midstream")
def midstream() -> Response | tuple[Response, int]:
    data = _json()
    try:
        after_events = int(data.get("after_events", 3))
        count = int(data.get("count", 1))
    except (TypeError, ValueError):
        return _bad("after_events and count must be integers")
    if after_events < 0 or count < 1:
        return _bad("after_events must be >= 0 and count >= 1")
    _control().fail_midstream(
        after_events,
        count,
        str(data.get("error_type", "overloaded_error")),
        str(data.get("message", "stub injected mid-stream error")),
        Matcher.from_json(data.get("match")),
    )
    return jsonify({"ok": True})


@admin.post("/auth")
def auth() -> Response:
    """``{"api_key": "..."}`` makes every model request with another key a 401; null clears."""
    key = _json().get("api_key")
    _control().expected_api_key = str(key) if key is not None else None
    return jsonify({"ok": True})


@admin.post("/reset")
def reset() -> Response:
    _control().reset()
    return jsonify({"ok": True})
