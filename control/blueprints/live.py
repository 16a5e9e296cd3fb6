"""The live channel: one WebSocket per client carrying the same events as SSE, plus the
client's messages (send, interrupt, answers to permission requests). Also the REST answer
route for permission requests, for clients that stay on SSE.

Both call the same session-service methods as the REST routes (access check, rate limit,
turn rules), so a message is treated alike whichever way it arrives.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from flask import Blueprint, Response, jsonify
from flask_sock import Sock
from simple_websocket import Server

from control.auth import current_caller, socket_caller
from control.context import ctx
from control.openapi import MACHINE_ERRORS, describe
from control.schemas import ChatSchema, PermissionAnsweredSchema, PermissionAnswerSchema, load, load_body
from control.sessions import Grant
from wire.errors import ApiError, ValidationFailed, error_body

live_bp = Blueprint("live", __name__, url_prefix="/api/agents")
KEEPALIVE = json.dumps({"type": "keepalive"})
sock = Sock()


@live_bp.post("/<session_id>/permissions/<request_id>")
@describe("Answer an agent's permission request", body=PermissionAnswerSchema, response=PermissionAnsweredSchema,
          auth="session", errors=(*MACHINE_ERRORS, 413),
          path_params={"request_id": "from the permission_request event"})
def answer_permission(session_id: str, request_id: str) -> Response:
    service = ctx().sessions
    grant = service.open(current_caller(), session_id)
    body = load_body(PermissionAnswerSchema())
    service.turns.answer_permission(grant, request_id, body["decision"], body["message"])
    return jsonify(request_id=request_id, decision=body["decision"])


@sock.route("/<session_id>/ws", bp=live_bp)  # copies the description below
@describe("WebSocket live channel (events out; send, interrupt, permission answers in)", status=101, media=(),
          response_description="Switching Protocols", auth="socket", errors=(400,),
          description="A GET with the WebSocket upgrade headers. The first client message authenticates: "
                      "{\"api_key\": \"...\", \"after\": SEQ} (browsers cannot set headers on a WebSocket); "
                      "then {type: send|interrupt|permission, ...}.")
def channel(ws: Server, session_id: str) -> None:
    """First message authenticates: ``{"api_key", "after"}``, plus ``"token"`` (an
    AgCluster token) in AUTH_MODE=token."""
    service = ctx().sessions
    try:
        hello = _parse(ws.receive(timeout=30))
        after = int(hello.get("after") or 0)
        grant = service.open(socket_caller(hello), session_id)
    except (ApiError, ValueError, TypeError) as exc:
        body = exc.body() if isinstance(exc, ApiError) else error_body("bad_request", "send {api_key, after} first")
        ws.send(json.dumps({"type": "error", **body["error"]}))
        ws.close()
        return
    closed = threading.Event()

    def pump() -> None:
        # One WebSocket message per event (the protocol's unit), each the stored JSON as is.
        for batch in service.turns.follow_frames(grant, after, until_done=False):
            for text in [KEEPALIVE] if batch is None else [f.data.decode(errors="replace") for f in batch]:
                if closed.is_set():
                    return
                ws.send(text)

    threading.Thread(target=pump, name=f"ws-{session_id[:8]}", daemon=True).start()
    try:
        while True:
            raw = ws.receive()
            if raw is None:
                break
            _handle(ws, grant, _parse(raw))
    except Exception:  # noqa: BLE001 - the socket closed under us
        pass
    finally:
        closed.set()


def _handle(ws: Server, grant: Grant, message: dict[str, Any]) -> None:
    turns = ctx().sessions.turns
    kind = message.get("type")
    try:
        if kind == "send":
            turns.chat(grant, load(ChatSchema(), {"message": message.get("message")})["message"])
        elif kind == "interrupt":
            turns.interrupt(grant)
        elif kind == "permission":
            answer = load(PermissionAnswerSchema(), {k: v for k, v in message.items() if k in ("decision", "message")})
            turns.answer_permission(grant, str(message.get("request_id", "")), answer["decision"], answer["message"])
        else:
            raise ValidationFailed("type must be send, interrupt or permission", details={"type": str(kind)[:40]})
    except ApiError as exc:
        ws.send(json.dumps({"type": "error", **exc.body()["error"]}))


def _parse(raw: Any) -> dict[str, Any]:
    data = json.loads(raw) if isinstance(raw, (str, bytes)) else None
    if not isinstance(data, dict):
        raise ValueError("messages are JSON objects")
    return data


__all__ = ["live_bp", "sock"]
