"""The live channel: one WebSocket per client carrying the same events as SSE, plus the
client's messages (send, interrupt, answers to permission requests). Also the REST answer
route for permission requests, for clients that stay on SSE."""

from __future__ import annotations

import json
import threading
from typing import Any

from flask import Blueprint, Response, jsonify
from flask_sock import Sock
from marshmallow import ValidationError

from control.auth import authorized_session
from control.context import ctx
from control.openapi import MACHINE_ERRORS, describe
from control.schemas import PermissionAnsweredSchema, PermissionAnswerSchema, load_body
from wire.errors import ApiError, NotFound, Unauthorized, ValidationFailed, error_body

live_bp = Blueprint("live", __name__, url_prefix="/api/agents")
sock = Sock()


@live_bp.post("/<session_id>/permissions/<request_id>")
@describe("Answer an agent's permission request", body=PermissionAnswerSchema, response=PermissionAnsweredSchema,
          auth="session", errors=(*MACHINE_ERRORS, 413),
          path_params={"request_id": "from the permission_request event"})
def answer_permission(session_id: str, request_id: str) -> Response:
    row = authorized_session(session_id)
    body = load_body(PermissionAnswerSchema())
    _forward_answer(row, request_id, body["decision"], body["message"])
    return jsonify(request_id=request_id, decision=body["decision"])


def _forward_answer(row: Any, request_id: str, decision: str, message: str) -> None:
    if not ctx().sessions.hub.is_running(row.id):
        # No turn, so nothing can be waiting for an answer (and the machine may be asleep).
        raise NotFound(f"no pending permission request {request_id!r}")
    ctx().sessions.client(row).request("POST", f"/permissions/{request_id}",
                                       json={"decision": decision, "message": message})


@sock.route("/<session_id>/ws", bp=live_bp)  # registers a wrapper that copies the description below
@describe("WebSocket live channel (events out; send, interrupt, permission answers in)", status=101, media=(),
          response_description="Switching Protocols", auth="socket", errors=(400,),
          description="A GET with the WebSocket upgrade headers. The first client message authenticates: "
                      "{\"api_key\": \"...\", \"after\": SEQ} (browsers cannot set headers on a WebSocket); "
                      "then {type: send|interrupt|permission, ...}.")
def channel(ws: Any, session_id: str) -> None:
    """First message authenticates (browsers cannot set headers on a WebSocket):
    ``{"api_key", "after"}``, plus ``"token"`` (an AgCluster token) in AUTH_MODE=token."""
    try:
        hello = _parse(ws.receive(timeout=30))
        after = int(hello.get("after") or 0)
        row = _authorize(session_id, hello)
    except (ApiError, ValueError, TypeError) as exc:
        body = exc.body() if isinstance(exc, ApiError) else error_body("bad_request", "send {api_key, after} first")
        ws.send(json.dumps({"type": "error", **body["error"]}))
        ws.close()
        return
    app = ctx()
    closed = threading.Event()

    def pump() -> None:
        for event in app.sessions.hub.follow(row.id, after, until_done=False):
            if closed.is_set():
                return
            ws.send(json.dumps(event if event is not None else {"type": "keepalive"}))

    threading.Thread(target=pump, name=f"ws-{row.id[:8]}", daemon=True).start()
    try:
        while True:
            raw = ws.receive()
            if raw is None:
                break
            _handle(ws, row, _parse(raw))
    except Exception:  # noqa: BLE001 - the socket closed under us
        pass
    finally:
        closed.set()


def _authorize(session_id: str, hello: dict[str, Any]) -> Any:
    app = ctx()
    if app.settings.auth_mode != "token":
        return app.sessions.authorize(session_id, hello.get("api_key"))
    principal = app.accounts.authenticate(str(hello.get("token") or ""))
    if principal is None:
        raise Unauthorized("send an AgCluster token as 'token' in the first message")
    row = app.store.get_session(session_id)
    if row is None or (row.owner != principal.user_id and not principal.is_admin):
        raise NotFound(f"no session {session_id!r}")
    if hello.get("api_key"):
        app.sessions.authorize(session_id, str(hello["api_key"]))
    return row


def _handle(ws: Any, row: Any, message: dict[str, Any]) -> None:
    service = ctx().sessions
    kind = message.get("type")
    try:
        if kind == "send":
            text = message.get("message")
            if not isinstance(text, str) or not text.strip():
                raise ValidationFailed("message must be a non-empty string", details={"message": "required"})
            service.chat(row, text)
        elif kind == "interrupt":
            service.interrupt(row)
        elif kind == "permission":
            answer = PermissionAnswerSchema().load({k: v for k, v in message.items() if k in ("decision", "message")})
            _forward_answer(row, str(message.get("request_id", "")), answer["decision"], answer["message"])
        else:
            raise ValidationFailed("type must be send, interrupt or permission", details={"type": str(kind)[:40]})
    except ValidationError as exc:
        ws.send(json.dumps({"type": "error", **error_body("validation_error", "bad message", exc.messages)["error"]}))
    except ApiError as exc:
        ws.send(json.dumps({"type": "error", **exc.body()["error"]}))


def _parse(raw: Any) -> dict[str, Any]:
    data = json.loads(raw) if isinstance(raw, (str, bytes)) else None
    if not isinstance(data, dict):
        raise ValueError("messages are JSON objects")
    return data


__all__ = ["live_bp", "sock"]
