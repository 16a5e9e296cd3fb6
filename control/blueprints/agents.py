"""Launch, sessions, chat (SSE or JSON), interrupt and the transcript."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from flask import Blueprint, Response, jsonify, request, stream_with_context

from control.auth import current_caller
from control.context import ctx
from control.export import export_json, export_markdown
from control.openapi import LAST_EVENT_ID, MACHINE_ERRORS, SESSION_ERRORS, SSE, describe, query
from control.schemas import (
    ChatAnswerSchema,
    ChatSchema,
    EventPageSchema,
    InterruptedSchema,
    LaunchResultSchema,
    LaunchSchema,
    SessionDeletedSchema,
    SessionDetailSchema,
    SessionListSchema,
    SessionStoppedSchema,
    load_body,
)
from control.session_status import SessionStatus
from wire import sse
from wire.errors import ValidationFailed
from wire.sse import Frame

agents_bp = Blueprint("agents", __name__, url_prefix="/api/agents")


@agents_bp.post("/launch")
@describe("Launch an agent in its own machine", body=LaunchSchema, status=201, response=LaunchResultSchema,
          auth="launch", errors=(400, 401, 404, 413, 429, 502, 503),
          description="Give exactly one of config_id or config. In AUTH_MODE=token the Anthropic key may come as "
                      "X-Anthropic-Api-Key instead of api_key.")
def launch() -> tuple[Response, int]:
    caller = current_caller()
    body = load_body(LaunchSchema())
    row = ctx().sessions.launches.launch(caller, api_key=body.get("api_key"), config_id=body.get("config_id"),
                                         config=body.get("config"), mcp_env=body["mcp_env"])
    enforced, warnings = ctx().sessions.machines.enforcement(row.config)
    return jsonify(session_id=row.id, agent_id=row.agent_id, config_id=row.config_id, status=str(row.status),
                   enforced=enforced, warnings=warnings), 201


@agents_bp.get("/sessions")
@describe("List sessions (members see their own)", response=SessionListSchema, errors=())
def list_sessions() -> Response:
    sessions = ctx().sessions.list(current_caller())
    return jsonify(sessions=sessions, total=len(sessions))


@agents_bp.get("/sessions/<session_id>")
@describe("Session details, usage and resources", response=SessionDetailSchema, auth="session",
          errors=SESSION_ERRORS)
def get_session(session_id: str) -> Response:
    service = ctx().sessions
    return jsonify(service.details(service.open(current_caller(), session_id)))


@agents_bp.delete("/sessions/<session_id>")
@describe("Stop and remove a session and its machine", response=SessionDeletedSchema, auth="session",
          errors=(*SESSION_ERRORS, 409, 503))
def delete_session(session_id: str) -> Response:
    service = ctx().sessions
    service.lifecycle.delete(service.open(current_caller(), session_id))
    return jsonify(session_id=session_id, status="deleted")


@agents_bp.post("/sessions/<session_id>/stop")
@describe("Stop the session's machine, keeping workspace, transcript and conversation; the next chat wakes it",
          response=SessionStoppedSchema, auth="session", errors=(*SESSION_ERRORS, 409, 503))
def stop_session(session_id: str) -> Response:
    service = ctx().sessions
    service.lifecycle.stop(service.open(current_caller(), session_id))
    return jsonify(session_id=session_id, status=str(SessionStatus.STOPPED))


@agents_bp.post("/<session_id>/chat")
@describe("Send a message; the answer streams as SSE with Accept: text/event-stream, else one JSON", body=ChatSchema,
          body_required=False, response=ChatAnswerSchema, media=("application/json", SSE), headers=(LAST_EVENT_ID,),
          auth="session", errors=(*MACHINE_ERRORS, 413, 429),
          description="SSE frames are `id: <seq>`, `event: <type>`, `data: <json event>`; a turn ends with `done`. "
                      "With Last-Event-ID the running turn is followed and no body is read. A second chat while a "
                      "turn runs is a 409.")
def chat(session_id: str) -> Response:
    turns = ctx().sessions.turns
    grant = ctx().sessions.open(current_caller(), session_id)
    resume_from = _last_event_id()
    if resume_from is not None:
        # A reconnect: follow the running (or just finished) turn; never resend the message.
        return _stream(turns.follow_frames(grant, resume_from))
    body = load_body(ChatSchema())
    start = turns.chat(grant, body["message"])
    if "text/event-stream" in request.headers.get("Accept", ""):
        return _stream(turns.follow_frames(grant, start))
    return jsonify(_collect(session_id, turns.follow(grant, start)))


@agents_bp.post("/<session_id>/interrupt")
@describe("Stop the running turn", response=InterruptedSchema, auth="session", errors=MACHINE_ERRORS)
def interrupt(session_id: str) -> Response:
    service = ctx().sessions
    grant = service.open(current_caller(), session_id)
    return jsonify(session_id=session_id, interrupted=service.turns.interrupt(grant))


@agents_bp.get("/sessions/<session_id>/events")
@describe("The transcript after ?after=SEQ (JSON), or replayed then live as SSE", response=EventPageSchema,
          media=("application/json", SSE), headers=(LAST_EVENT_ID,), auth="session", errors=SESSION_ERRORS,
          query=(query("after", {"type": "integer", "minimum": 0}, "events with seq greater than this"),
                 query("limit", {"type": "integer", "minimum": 0}, "at most this many events (JSON)"),
                 query("follow", {"type": "string", "enum": ["1"]}, "SSE only: keep following after the turn's done")))
def events(session_id: str) -> Response:
    turns = ctx().sessions.turns
    grant = ctx().sessions.open(current_caller(), session_id)
    after = _int_arg("after", 0)
    if "text/event-stream" in request.headers.get("Accept", ""):
        resume_from = _last_event_id()
        after = resume_from if resume_from is not None else after
        return _stream(turns.follow_frames(grant, after, until_done=request.args.get("follow") != "1"))
    items = turns.transcript(grant, after, limit=_int_arg("limit", 5000))
    return jsonify(session_id=session_id, events=items, last_seq=items[-1]["seq"] if items else after)


@agents_bp.get("/sessions/<session_id>/export")
@describe("The transcript as a JSON or Markdown download", response={"type": "object"},
          media=("application/json", "text/markdown"), auth="session", errors=SESSION_ERRORS,
          query=(query("format", {"type": "string", "enum": ["json", "markdown"]}, "default json"),))
def export(session_id: str) -> Response:
    service = ctx().sessions
    grant = service.open(current_caller(), session_id)
    fmt = request.args.get("format", "json")
    if fmt not in ("json", "markdown"):
        raise ValidationFailed("format must be json or markdown", details={"format": fmt[:40]})
    row = service.row(grant)
    events = service.turns.transcript(grant, 0, limit=1_000_000)
    name = f"agcluster-{row.id[:8]}"
    if fmt == "markdown":
        return Response(export_markdown(row, events), mimetype="text/markdown",
                        headers={"Content-Disposition": f'attachment; filename="{name}.md"'})
    resp = jsonify(export_json(row, events))
    resp.headers["Content-Disposition"] = f'attachment; filename="{name}.json"'
    return resp


def _stream(batches: Iterator[list[Frame] | None]) -> Response:
    """Frames as stored, with no re-encoding; everything queued for this client goes out in
    one write (the hub hands over whole batches)."""
    def body() -> Iterator[bytes]:
        for batch in batches:
            if batch is None:
                yield sse.KEEPALIVE
            elif len(batch) == 1:
                yield batch[0].sse
            else:
                yield b"".join([f.sse for f in batch])

    return Response(stream_with_context(body()), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _collect(session_id: str, events: Iterator[dict[str, Any] | None]) -> dict[str, Any]:
    collected = [e for e in events if e is not None]
    text = "".join(e["text"] for e in collected if e["type"] == "text" and not e.get("parent_tool_use_id"))
    result = next((e for e in reversed(collected) if e["type"] == "result"), None)
    errors = [e for e in collected if e["type"] == "error"]
    return {"session_id": session_id, "text": text, "result": result, "errors": errors, "events": collected}


def _last_event_id() -> int | None:
    raw = request.headers.get("Last-Event-ID")
    if raw is None:
        return None
    return _bounded("Last-Event-ID", raw.strip())


def _int_arg(name: str, default: int) -> int:
    raw = request.args.get(name)
    return default if raw is None else _bounded(name, raw)


_SMALL_INT = re.compile(r"^[0-9]{1,15}$")


def _bounded(name: str, raw: str) -> int:
    """A non-negative whole number below 10^15: ASCII digits only (``isdigit`` would let "²"
    through to ``int``), and small enough for SQLite and JavaScript alike."""
    if not _SMALL_INT.match(raw):
        raise ValidationFailed(f"{name} must be a whole number from 0 to 999999999999999", details={name: raw[:40]})
    return int(raw)
