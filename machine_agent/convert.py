"""SDK messages → the events of ``wire.events``. Every content block of every message becomes an event."""

from __future__ import annotations

import json
from typing import Any

from claude_agent_sdk import (
    AssistantMessage,
    ResultMessage,
    StreamEvent,
    SystemMessage,
    TextBlock,
    ThinkingBlock,
    ToolResultBlock,
    ToolUseBlock,
    UserMessage,
)

from machine_agent.todos import TODO_TOOLS, TodoTracker
from wire.events import make_event

MAX_TOOL_OUTPUT = 100_000


class EventConverter:
    """Stateful because task lists and the CLI's session id span messages."""

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self.todos = TodoTracker()
        self.claude_session_id: str | None = None
        self.init_info: dict[str, Any] = {}

    def convert(self, message: Any) -> list[dict[str, Any]]:
        if isinstance(message, StreamEvent):
            return self._stream_event(message)
        if isinstance(message, AssistantMessage):
            return self._assistant(message)
        if isinstance(message, UserMessage):
            return self._user(message)
        if isinstance(message, ResultMessage):
            self.claude_session_id = message.session_id or self.claude_session_id
            return [self._event(
                "result",
                subtype=message.subtype,
                is_error=message.is_error,
                num_turns=message.num_turns,
                duration_ms=message.duration_ms,
                total_cost_usd=message.total_cost_usd,
                usage=message.usage or {},
                claude_session_id=message.session_id,
                result=message.result,
                errors=message.errors or [],
            )]
        if isinstance(message, SystemMessage) and message.subtype == "init":
            self.claude_session_id = message.data.get("session_id") or self.claude_session_id
            self.init_info = {k: message.data.get(k)
                              for k in ("tools", "agents", "mcp_servers", "model", "permissionMode")}
        return []

    def _event(self, type_: str, **fields: Any) -> dict[str, Any]:
        return make_event(type_, self.session_id, **fields)

    def _stream_event(self, message: StreamEvent) -> list[dict[str, Any]]:
        event = message.event
        if event.get("type") != "content_block_delta" or message.parent_tool_use_id:
            return []
        delta = event.get("delta") or {}
        if delta.get("type") == "text_delta" and delta.get("text"):
            return [self._event("text_delta", text=delta["text"])]
        return []

    def _assistant(self, message: AssistantMessage) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        parent = message.parent_tool_use_id
        if message.error:
            events.append(self._event("error", code=f"model_{message.error}",
                                      message=_first_text(message) or str(message.error)))
            return events
        for block in message.content:
            if isinstance(block, TextBlock):
                events.append(self._event("text", text=block.text, parent_tool_use_id=parent))
            elif isinstance(block, ThinkingBlock):
                events.append(self._event("thinking", text=block.thinking, parent_tool_use_id=parent))
            elif isinstance(block, ToolUseBlock):
                events.append(self._event("tool_use", id=block.id, name=block.name, input=block.input,
                                          parent_tool_use_id=parent))
                if block.name in TODO_TOOLS and self.todos.on_tool_use(block.id, block.name, block.input):
                    events.append(self._event("todo", todos=self.todos.snapshot()))
        return events

    def _user(self, message: UserMessage) -> list[dict[str, Any]]:
        if isinstance(message.content, str):
            return []
        events = []
        for block in message.content:
            if isinstance(block, ToolResultBlock):
                output = _tool_output(block.content)
                self.todos.on_tool_result(block.tool_use_id, output)
                events.append(self._event(
                    "tool_result",
                    tool_use_id=block.tool_use_id,
                    output=output[:MAX_TOOL_OUTPUT],
                    is_error=bool(block.is_error),
                    parent_tool_use_id=message.parent_tool_use_id,
                ))
        return events


def _tool_output(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    parts = []
    for item in content:
        if isinstance(item, dict) and item.get("type") == "text":
            parts.append(str(item.get("text", "")))
        elif isinstance(item, dict) and item.get("type") == "image":
            parts.append("[image]")
        else:
            parts.append(json.dumps(item, default=str))
    return "\n".join(parts)


def _first_text(message: AssistantMessage) -> str:
    for block in message.content:
        if isinstance(block, TextBlock):
            return block.text
    return ""
