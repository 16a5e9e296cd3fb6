"""Reading what matters out of a Messages API request body.

The CLI wraps the user's words in system reminders, sends environment details as
``role: "system"`` messages, defers rarely used tools behind ``ToolSearch`` and sends side
requests (session titles, probes) alongside the agent loop. This module hides those
details so the grammar can ask simple questions: what did the user last say, which tools
are offered, what just came back from a tool, and is this the agent loop at all.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property
from typing import Any

REMINDER = re.compile(r"<system-reminder>.*?</system-reminder>", re.DOTALL)
WORKDIR = re.compile(r"(?:Primary working directory|Working directory|cwd):\s*(/\S*)")
NOTIFICATION_RESULT = re.compile(r"<task-notification>.*?<result>(.*?)</result>", re.DOTALL)
DEFERRED_HEADER = "deferred tools are now available via ToolSearch"

MAIN = "main"
STRUCTURED = "structured"
PROBE = "probe"
SIDE = "side"


@dataclass(frozen=True)
class ToolResult:
    tool_use_id: str
    tool_name: str
    tool_input: dict[str, Any]
    output: str
    is_error: bool


def content_blocks(message: dict[str, Any]) -> list[dict[str, Any]]:
    content = message.get("content")
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [b for b in content or [] if isinstance(b, dict)]


def result_text(content: Any) -> str:
    """Flatten a tool_result's content (a string or a list of blocks) into text."""
    if isinstance(content, str):
        return content
    parts: list[str] = []
    for block in content or []:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text":
            parts.append(str(block.get("text", "")))
        elif block.get("type") == "tool_reference":
            parts.append(f"[tool {block.get('tool_name', '?')} loaded]")
        else:
            parts.append(f"[{block.get('type', 'block')}]")
    return "\n".join(parts)


INTERRUPT_MARKER = "[Request interrupted by user"


def typed_text(blocks: list[dict[str, Any]]) -> str:
    """The last text block that is more than system reminders, with reminders removed."""
    for block in reversed(blocks):
        if block.get("type") == "text":
            text = REMINDER.sub("", str(block.get("text", ""))).strip()
            if text and not text.startswith(INTERRUPT_MARKER):
                return text
    return ""


# Text the CLI itself puts next to tool results; anything else there was typed by the user
# (after an interrupt, or a turn cut short by max_turns, the next message rides along).
CLI_NOTES = frozenset({"Tool loaded."})


def cli_free_text(blocks: list[dict[str, Any]]) -> str:
    text = typed_text(blocks)
    return "" if text in CLI_NOTES else text


def _all_text(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return [t for item in value for t in _all_text(item)]
    if isinstance(value, dict):
        return [t for key in ("text", "content") for t in _all_text(value.get(key))]
    return []


class Conversation:
    """A read-only view of one request body."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body

    @property
    def messages(self) -> list[dict[str, Any]]:
        messages = self.body.get("messages")
        return [m for m in messages if isinstance(m, dict)] if isinstance(messages, list) else []

    @property
    def dialogue(self) -> list[dict[str, Any]]:
        """User and assistant turns only: the CLI interleaves ``role: "system"`` context."""
        return [m for m in self.messages if m.get("role") in ("user", "assistant")]

    @property
    def model(self) -> str:
        return str(self.body.get("model") or "claude-stub")

    @cached_property
    def _tool_list(self) -> list[dict[str, Any]]:
        tools = self.body.get("tools")
        if not isinstance(tools, list):
            return []
        return [t for t in tools if isinstance(t, dict) and isinstance(t.get("name"), str)]

    @cached_property
    def loaded_references(self) -> set[str]:
        """Deferred tools a ToolSearch result has already loaded (``tool_reference`` blocks)."""
        names: set[str] = set()
        for message in self.messages:
            for block in content_blocks(message):
                if block.get("type") == "tool_result" and isinstance(block.get("content"), list):
                    names.update(
                        str(ref.get("tool_name"))
                        for ref in block["content"]
                        if isinstance(ref, dict) and ref.get("type") == "tool_reference"
                    )
        return names

    @cached_property
    def tools(self) -> dict[str, dict[str, Any]]:
        """Callable tools by name: eager ones, plus deferred ones a ToolSearch has loaded."""
        return {
            t["name"]: t for t in self._tool_list if not t.get("defer_loading") or t["name"] in self.loaded_references
        }

    @cached_property
    def deferred_tools(self) -> set[str]:
        """Names loadable through ToolSearch but not yet callable.

        The CLI lists them in a context message; any ``defer_loading`` entries in ``tools``
        (MCP tools, for instance) count too.
        """
        names = {t["name"] for t in self._tool_list if t.get("defer_loading")} - {"DeferredToolPlaceholder"}
        for text in self._context_texts():
            if DEFERRED_HEADER not in text:
                continue
            listing = text.split(DEFERRED_HEADER, 1)[1].split("\n\n", 1)[0]
            names.update(line.strip() for line in listing.splitlines()[1:] if re.fullmatch(r"[\w-]+", line.strip()))
        return names - set(self.tools)

    @cached_property
    def kind(self) -> str:
        """``main`` for agent-loop turns (they carry tools); everything else is a side request."""
        if self._tool_list:
            return MAIN
        output_format = (self.body.get("output_config") or {}).get("format") or {}
        if output_format.get("type") == "json_schema":
            return STRUCTURED
        if self.body.get("max_tokens") == 1:
            return PROBE
        return SIDE

    def _context_texts(self) -> list[str]:
        """Where the CLI puts context: the system prompt, ``role: "system"`` messages and
        system reminders. Typed text and tool output are excluded so a user (or a command's
        output) mentioning "cwd: /x" cannot steer the stub."""
        texts = _all_text(self.body.get("system"))
        for message in self.messages:
            if message.get("role") == "system":
                texts.extend(_all_text(message.get("content")))
            elif message.get("role") == "user":
                for block in content_blocks(message):
                    if block.get("type") == "text":
                        texts.extend(REMINDER.findall(str(block.get("text", ""))))
        return texts

    @cached_property
    def working_directory(self) -> str | None:
        for text in self._context_texts():
            match = WORKDIR.search(text)
            if match:
                return match.group(1).rstrip(".,")
        return None

    @cached_property
    def latest_user_text(self) -> str:
        """The last thing the human (or the parent agent) actually typed, reminders removed.

        This is the command that started the current chain of tool calls.
        """
        for message in reversed(self.dialogue):
            blocks = content_blocks(message)
            if message.get("role") != "user":
                continue
            has_results = any(b.get("type") == "tool_result" for b in blocks)
            text = cli_free_text(blocks) if has_results else typed_text(blocks)
            if text:
                return text
        return ""

    @cached_property
    def final_user_text(self) -> str | None:
        """What the final user message typed: ``""`` when it is only reminders (a background
        task notification, say) and ``None`` when the final turn is not a typed user message."""
        dialogue = self.dialogue
        if not dialogue or dialogue[-1].get("role") != "user":
            return None
        blocks = content_blocks(dialogue[-1])
        results = [b for b in blocks if b.get("type") == "tool_result"]
        if results:
            # After an interrupt the CLI sends the cut-off tool's result and the user's next
            # message together: that typed text is a new command, not a request to summarise.
            return cli_free_text(blocks) or None
        return typed_text(blocks)

    @cached_property
    def notification_results(self) -> list[str]:
        """``<result>`` bodies of task notifications in the final message (finished sub-agents)."""
        dialogue = self.dialogue
        if not dialogue or dialogue[-1].get("role") != "user":
            return []
        text = "\n".join(str(b.get("text", "")) for b in content_blocks(dialogue[-1]) if b.get("type") == "text")
        return [m.strip() for m in NOTIFICATION_RESULT.findall(text)]

    @cached_property
    def trailing_tool_results(self) -> list[ToolResult]:
        """Results in the final user message, joined with the tool calls that asked for them."""
        dialogue = self.dialogue
        if not dialogue or dialogue[-1].get("role") != "user":
            return []
        results = [b for b in content_blocks(dialogue[-1]) if b.get("type") == "tool_result"]
        if not results:
            return []
        calls: dict[str, dict[str, Any]] = {}
        for message in dialogue:
            if message.get("role") == "assistant":
                for block in content_blocks(message):
                    if block.get("type") == "tool_use":
                        calls[str(block.get("id"))] = block
        joined: list[ToolResult] = []
        for block in results:
            call = calls.get(str(block.get("tool_use_id")), {})
            tool_input = call.get("input")
            joined.append(
                ToolResult(
                    tool_use_id=str(block.get("tool_use_id")),
                    tool_name=str(call.get("name", "unknown")),
                    tool_input=tool_input if isinstance(tool_input, dict) else {},
                    output=result_text(block.get("content")),
                    is_error=bool(block.get("is_error")),
                )
            )
        return joined
