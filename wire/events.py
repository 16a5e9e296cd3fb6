"""The one event schema, from machine to browser, in the transcript and in clients.

Every event type is a frozen dataclass below; nothing else lists the types or their fields.
The server side builds events as plain dicts with :func:`make_event` (cheap and ready for
JSON), and ``make_event`` refuses a type or a field that is not declared here, so what is
sent cannot drift away from the schema. Clients (``agcluster_client`` ships this package
inside itself) turn a received dict into its class with :func:`parse_event`.

Readers are tolerant on purpose: a newer server may add types and fields, so an unknown
type parses as the base :class:`Event`, unknown fields are ignored, missing ones take their
defaults, and the dict as received is always kept as ``.data``.

This module imports nothing outside the standard library (and nothing from its own package
by absolute name), because the client distribution vendors it under another package name.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar


@dataclass(frozen=True, kw_only=True)
class Event:
    """Fields every event has. ``seq`` orders a session's events (1, 2, 3, ... with no
    gaps) and is what ``Last-Event-ID`` / ``?after=`` resume from."""

    TYPE: ClassVar[str] = ""
    type: str = ""
    seq: int = 0
    ts: float = 0.0
    session_id: str = ""
    data: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)


@dataclass(frozen=True, kw_only=True)
class SessionEvent(Event):
    """Reserved for session-level notices; carries only the common fields today."""

    TYPE: ClassVar[str] = "session"


@dataclass(frozen=True, kw_only=True)
class UserEvent(Event):
    """The message that started a turn: the first event of every turn."""

    TYPE: ClassVar[str] = "user"
    text: str = ""


@dataclass(frozen=True, kw_only=True)
class TextDeltaEvent(Event):
    """A piece of the top-level assistant text as the model streams it; the complete block
    follows as a ``text`` event, so a reader may use either."""

    TYPE: ClassVar[str] = "text_delta"
    text: str = ""


@dataclass(frozen=True, kw_only=True)
class TextEvent(Event):
    """One complete text block; ``parent_tool_use_id`` is set inside a sub-agent."""

    TYPE: ClassVar[str] = "text"
    text: str = ""
    parent_tool_use_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class ThinkingEvent(Event):
    TYPE: ClassVar[str] = "thinking"
    text: str = ""
    parent_tool_use_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class ToolUseEvent(Event):
    """A tool call; its ``tool_result`` carries the same id as ``tool_use_id``."""

    TYPE: ClassVar[str] = "tool_use"
    id: str = ""
    name: str = ""
    input: Mapping[str, Any] = field(default_factory=dict)
    parent_tool_use_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class ToolResultEvent(Event):
    """A tool's output as text (capped by the machine at 100,000 characters)."""

    TYPE: ClassVar[str] = "tool_result"
    tool_use_id: str = ""
    output: str = ""
    is_error: bool = False
    parent_tool_use_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class TodoEvent(Event):
    """The whole current task list, each item ``{content, status, activeForm}`` with status
    ``pending``, ``in_progress`` or ``completed``; sent whenever it changes."""

    TYPE: ClassVar[str] = "todo"
    todos: list[Mapping[str, Any]] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class PermissionRequestEvent(Event):
    """A tool call waiting for a human: answer ``allow``, ``allow_session`` or ``deny`` at
    ``POST /api/agents/{id}/permissions/{request_id}``; silence is a denial after a while."""

    TYPE: ClassVar[str] = "permission_request"
    request_id: str = ""
    tool_name: str = ""
    input: Mapping[str, Any] = field(default_factory=dict)
    tool_use_id: str | None = None


@dataclass(frozen=True, kw_only=True)
class ResultEvent(Event):
    """How the turn ended, with its cost; ``is_error`` for limits and failures."""

    TYPE: ClassVar[str] = "result"
    subtype: str = ""
    is_error: bool = False
    num_turns: int = 0
    duration_ms: int = 0
    total_cost_usd: float | None = None
    usage: Mapping[str, Any] = field(default_factory=dict)
    claude_session_id: str | None = None
    result: str | None = None
    errors: list[Any] = field(default_factory=list)


@dataclass(frozen=True, kw_only=True)
class ErrorEvent(Event):
    """Something went wrong in the turn (the model, the CLI, the machine); the turn still
    ends with ``done``. ``stderr`` is the CLI's last output when it crashed."""

    TYPE: ClassVar[str] = "error"
    code: str = ""
    message: str = ""
    stderr: str | None = None


@dataclass(frozen=True, kw_only=True)
class DoneEvent(Event):
    """The last event of every turn, whatever happened in it."""

    TYPE: ClassVar[str] = "done"


EVENT_CLASSES: Mapping[str, type[Event]] = {
    cls.TYPE: cls
    for cls in (SessionEvent, UserEvent, TextDeltaEvent, TextEvent, ThinkingEvent, ToolUseEvent, ToolResultEvent,
                TodoEvent, PermissionRequestEvent, ResultEvent, ErrorEvent, DoneEvent)
}
EVENT_TYPES: frozenset[str] = frozenset(EVENT_CLASSES)

_COMMON = frozenset(f.name for f in dataclasses.fields(Event)) - {"data"}
EVENT_FIELDS: Mapping[str, frozenset[str]] = {
    type_: frozenset(f.name for f in dataclasses.fields(cls)) - {"data"} for type_, cls in EVENT_CLASSES.items()
}
"""Per type, every field a wire object of that type may carry (common ones included)."""


def make_event(type_: str, session_id: str = "", seq: int = 0, **fields: Any) -> dict[str, Any]:
    """Build an event dict; ``seq`` is re-assigned by whoever owns the transcript."""
    allowed = EVENT_FIELDS.get(type_)
    if allowed is None:
        raise ValueError(f"unknown event type {type_!r}")
    undeclared = fields.keys() - allowed
    if undeclared:
        raise ValueError(f"{type_!r} events have no field(s) {sorted(undeclared)}; declare them in wire/events.py")
    event: dict[str, Any] = {"type": type_, "seq": seq, "ts": time.time(), "session_id": session_id}
    event.update(fields)
    return event


def parse_event(data: Mapping[str, Any]) -> Event:
    """The typed view of a wire object (see the module docstring for what is tolerated)."""
    type_ = data.get("type")
    cls = EVENT_CLASSES.get(type_, Event) if isinstance(type_, str) else Event
    names = EVENT_FIELDS.get(cls.TYPE, _COMMON)
    values = {name: data[name] for name in names if name in data}
    values["type"] = type_ if isinstance(type_, str) else ""
    return cls(**values, data=data)
