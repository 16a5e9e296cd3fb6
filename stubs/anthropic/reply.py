"""The stub's notion of one assistant reply, independent of how it is delivered.

Grammar and scripted replies both produce a :class:`Reply`; ``stream.py`` turns it into
Messages API JSON or SSE. Keeping the model separate means a scripted reply posted as JSON
over HTTP and one built in Python go through exactly the same delivery path.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from dataclasses import dataclass, field
from typing import Any


def new_id(prefix: str) -> str:
    """IDs look like Anthropic's so clients that sniff prefixes (``toolu_``) are happy."""
    return f"{prefix}_stub{uuid.uuid4().hex[:20]}"


def fake_signature(thinking: str) -> str:
    """Deterministic, opaque-looking signature: the CLI echoes it back but never verifies it."""
    return base64.b64encode(hashlib.sha256(thinking.encode()).digest()).decode()


@dataclass(frozen=True)
class Text:
    """A text block. ``chunks`` pins the exact deltas (benchmarks need an exact count)."""

    text: str
    chunks: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Thinking:
    thinking: str
    signature: str = ""

    def resolved_signature(self) -> str:
        return self.signature or fake_signature(self.thinking)


@dataclass(frozen=True)
class ToolUse:
    name: str
    input: dict[str, Any] = field(default_factory=dict)
    id: str = field(default_factory=lambda: new_id("toolu"))


Block = Text | Thinking | ToolUse


@dataclass(frozen=True)
class Reply:
    """One assistant message. ``stop_reason`` defaults from the content, as the API would."""

    blocks: tuple[Block, ...]
    stop_reason: str | None = None

    @staticmethod
    def text(text: str) -> Reply:
        return Reply((Text(text),))

    @property
    def resolved_stop_reason(self) -> str:
        if self.stop_reason:
            return self.stop_reason
        return "tool_use" if any(isinstance(b, ToolUse) for b in self.blocks) else "end_turn"

    def tool_uses(self) -> list[ToolUse]:
        return [b for b in self.blocks if isinstance(b, ToolUse)]


def block_to_api(block: Block) -> dict[str, Any]:
    """The complete (non-streamed) Messages API content block."""
    if isinstance(block, Text):
        return {"type": "text", "text": block.text}
    if isinstance(block, Thinking):
        return {"type": "thinking", "thinking": block.thinking, "signature": block.resolved_signature()}
    return {"type": "tool_use", "id": block.id, "name": block.name, "input": block.input}


def block_from_api(data: dict[str, Any]) -> Block:
    """Accept API-shaped blocks so tests and HTTP callers script replies in the wire format."""
    kind = data.get("type")
    if kind == "text":
        chunks = data.get("chunks")
        return Text(str(data.get("text", "")), tuple(chunks) if chunks is not None else None)
    if kind == "thinking":
        return Thinking(str(data.get("thinking", "")), str(data.get("signature", "")))
    if kind == "tool_use":
        name = data.get("name")
        if not isinstance(name, str) or not name:
            raise ValueError("tool_use block needs a name")
        tool_input = data.get("input", {})
        if not isinstance(tool_input, dict):
            raise ValueError("tool_use input must be an object")
        return ToolUse(name, tool_input, str(data.get("id") or new_id("toolu")))
    raise ValueError(f"unsupported content block type: {kind!r}")


def reply_from_api(data: dict[str, Any]) -> Reply:
    """Parse ``{"content": [...], "stop_reason": ...}`` (a bare list of blocks also works)."""
    content = data.get("content") if isinstance(data, dict) else data
    if not isinstance(content, list) or not content:
        raise ValueError("a scripted reply needs a non-empty content list")
    stop_reason = data.get("stop_reason") if isinstance(data, dict) else None
    return Reply(tuple(block_from_api(b) for b in content), stop_reason)
