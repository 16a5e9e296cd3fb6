"""Turning a :class:`Reply` into Messages API JSON or the sequence of SSE events.

Events are produced as ``(event_name, data)`` pairs with no timing: pacing, pings and
injected faults are layered on by ``delivery.py`` so this stays a pure, testable function.

Usage follows the real API's shape: ``message_start`` carries the input tokens (and zero
output so far), ``message_delta`` carries the cumulative totals, repeating input_tokens.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from .reply import Block, Reply, Text, Thinking, ToolUse, block_to_api
from .usage import Usage

Event = tuple[str, dict[str, Any]]

WORDS_PER_DELTA = 3
JSON_CHARS_PER_DELTA = 48


def split_text(text: str) -> list[str]:
    """A few words per delta: realistic enough to exercise clients' delta accumulation."""
    pieces = re.findall(r"\s*\S+\s*", text) or ([text] if text else [])
    return ["".join(pieces[i : i + WORDS_PER_DELTA]) for i in range(0, len(pieces), WORDS_PER_DELTA)]


def split_json(encoded: str) -> list[str]:
    return [encoded[i : i + JSON_CHARS_PER_DELTA] for i in range(0, len(encoded), JSON_CHARS_PER_DELTA)]


def message_json(reply: Reply, model: str, message_id: str, usage: Usage) -> dict[str, Any]:
    """The non-streaming response body."""
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [block_to_api(b) for b in reply.blocks],
        "stop_reason": reply.resolved_stop_reason,
        "stop_sequence": None,
        "usage": usage.to_api(),
    }


def _block_events(index: int, block: Block) -> Iterator[Event]:
    if isinstance(block, Text):
        yield (
            "content_block_start",
            {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}},
        )
        for chunk in block.chunks if block.chunks is not None else split_text(block.text):
            yield (
                "content_block_delta",
                {"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": chunk}},
            )
    elif isinstance(block, Thinking):
        start: dict[str, Any] = {"type": "thinking", "thinking": "", "signature": ""}
        yield "content_block_start", {"type": "content_block_start", "index": index, "content_block": start}
        for chunk in split_text(block.thinking):
            yield (
                "content_block_delta",
                {"type": "content_block_delta", "index": index, "delta": {"type": "thinking_delta", "thinking": chunk}},
            )
        signature = {"type": "signature_delta", "signature": block.resolved_signature()}
        yield "content_block_delta", {"type": "content_block_delta", "index": index, "delta": signature}
    else:
        assert isinstance(block, ToolUse)
        tool_start: dict[str, Any] = {"type": "tool_use", "id": block.id, "name": block.name, "input": {}}
        yield "content_block_start", {"type": "content_block_start", "index": index, "content_block": tool_start}
        for chunk in split_json(json.dumps(block.input)):
            yield (
                "content_block_delta",
                {
                    "type": "content_block_delta",
                    "index": index,
                    "delta": {"type": "input_json_delta", "partial_json": chunk},
                },
            )
    yield "content_block_stop", {"type": "content_block_stop", "index": index}


def sse_events(reply: Reply, model: str, message_id: str, usage: Usage) -> Iterator[Event]:
    """The full event sequence of one streamed message (without pings)."""
    start: dict[str, Any] = {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": Usage(usage.input_tokens, 0).to_api(),
    }
    yield "message_start", {"type": "message_start", "message": start}
    for index, block in enumerate(reply.blocks):
        yield from _block_events(index, block)
    delta = {"stop_reason": reply.resolved_stop_reason, "stop_sequence": None}
    yield "message_delta", {"type": "message_delta", "delta": delta, "usage": usage.to_api()}
    yield "message_stop", {"type": "message_stop"}


def format_sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def error_body(error_type: str, message: str) -> dict[str, Any]:
    """Anthropic's error envelope, used for HTTP errors and the mid-stream ``error`` event."""
    return {"type": "error", "error": {"type": error_type, "message": message}}


def delta_size(data: dict[str, Any]) -> int:
    """How many characters a delta event carries, for tokens-per-second pacing."""
    delta = data.get("delta") or {}
    for key in ("text", "thinking", "partial_json"):
        value = delta.get(key)
        if isinstance(value, str):
            return len(value)
    return 0
