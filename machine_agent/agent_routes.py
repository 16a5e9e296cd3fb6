"""Health, configure, chat and interrupt: the agent half of the machine protocol."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request, stream_with_context

from machine_agent.runner import AgentRunner
from wire import sse
from wire.errors import ValidationFailed
from wire.protocol import DECISIONS

agent_bp = Blueprint("agent", __name__)


def _runner() -> AgentRunner:
    runner: AgentRunner = current_app.extensions["agent_runner"]
    return runner


def _json_object() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise ValidationFailed("the body must be a JSON object")
    return body


@agent_bp.get("/health")
def health() -> Response:
    runner = _runner()
    runner.prefetch()
    return jsonify(status="ok", configured=runner.configured, busy=runner.busy, session_id=runner.session_id,
                   claude_session_id=runner.claude_session_id,
                   effective_config={**runner.effective, "cli": runner.cli_init} if runner.effective else {})


@agent_bp.post("/prepare")
def prepare() -> Response:
    """Answers once the SDK is imported: the warm pool counts a machine ready only then."""
    return jsonify(status="prepared" if _runner().prepare() else "preparing")


@agent_bp.post("/configure")
def configure() -> Response:
    body = _json_object()
    missing = [k for k in ("session_id", "config", "relay_url", "relay_token") if not body.get(k)]
    if missing:
        raise ValidationFailed("missing fields", details=dict.fromkeys(missing, "required"))
    effective = _runner().configure(
        str(body["session_id"]), body["config"], str(body["relay_url"]), str(body["relay_token"]),
        mcp_env=body.get("mcp_env") or {}, resume=body.get("resume"),
    )
    return jsonify(status="ready", effective_config=effective)


@agent_bp.post("/chat")
def chat() -> Response:
    message = _json_object().get("message")
    if not isinstance(message, str) or not message.strip():
        raise ValidationFailed("message must be a non-empty string", details={"message": "required"})
    batches = _runner().chat(message)
    # Pieces, not frames: the control plane numbers them and names the session (wire.sse).
    body = stream_with_context(b"".join(sse.machine_frame(event) for event in batch) for batch in batches)
    return Response(body, mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@agent_bp.post("/interrupt")
def interrupt() -> Response:
    return jsonify(interrupted=_runner().interrupt())


@agent_bp.post("/permissions/<request_id>")
def permission(request_id: str) -> Response:
    body = _json_object()
    decision, message = body.get("decision"), body.get("message") or ""
    if decision not in DECISIONS or not isinstance(message, str):
        raise ValidationFailed("decision must be allow, allow_session or deny",
                               details={"decision": str(decision)[:40]})
    _runner().answer_permission(request_id, decision, message)
    return jsonify(request_id=request_id, decision=decision)
