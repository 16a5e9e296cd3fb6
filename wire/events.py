"""The one event schema (DESIGN.md §5) used from machine to browser and in the transcript."""

from __future__ import annotations

import time
from typing import Any

EVENT_TYPES: frozenset[str] = frozenset(
    {
        "session",
        "user",
        "text_delta",
        "text",
        "thinking",
        "tool_use",
        "tool_result",
        "todo",
        "permission_request",
        "result",
        "error",
        "done",
    }
)


def make_event(type_: str, session_id: str = "", seq: int = 0, **fields: Any) -> dict[str, Any]:
    """Build an event dict; ``seq`` is re-assigned by whoever owns the transcript."""
    if type_ not in EVENT_TYPES:
        raise ValueError(f"unknown event type {type_!r}")
    event: dict[str, Any] = {"type": type_, "seq": seq, "ts": time.time(), "session_id": session_id}
    event.update(fields)
    return event


def error_event(code: str, message: str, session_id: str = "") -> dict[str, Any]:
    return make_event("error", session_id, code=code, message=message)
