"""Event classes, straight from the server's one wire schema (vendored as ``._wire``).

``ev.type``, ``ev.seq`` and ``ev.data`` (the wire object as received) exist on every event;
each class adds its own typed fields, e.g. ``ToolUseEvent.name`` and ``.input``.
"""

from ._wire.events import (
    EVENT_CLASSES,
    EVENT_TYPES,
    DoneEvent,
    ErrorEvent,
    Event,
    PermissionRequestEvent,
    ResultEvent,
    SessionEvent,
    TextDeltaEvent,
    TextEvent,
    ThinkingEvent,
    TodoEvent,
    ToolResultEvent,
    ToolUseEvent,
    UserEvent,
    parse_event,
)

__all__ = [
    "EVENT_CLASSES", "EVENT_TYPES", "DoneEvent", "ErrorEvent", "Event", "PermissionRequestEvent", "ResultEvent",
    "SessionEvent", "TextDeltaEvent", "TextEvent", "ThinkingEvent", "TodoEvent", "ToolResultEvent", "ToolUseEvent",
    "UserEvent", "parse_event",
]
