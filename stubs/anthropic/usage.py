"""Deterministic token estimates.

The platform's relay meters tokens from the stream and tests compare that with the stub's
request log, so the numbers must be a pure function of the request bytes and the reply —
never of timing or randomness.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from .reply import Reply, Text, Thinking

CHARS_PER_TOKEN = 4


def _tokens(chars: int) -> int:
    return max(1, -(-chars // CHARS_PER_TOKEN))


def input_tokens_for(raw_body: bytes) -> int:
    """Roughly what a tokenizer would say, from the size of the request as sent."""
    return _tokens(len(raw_body))


def output_tokens_for(reply: Reply) -> int:
    chars = 0
    for block in reply.blocks:
        if isinstance(block, Text):
            chars += len(block.text)
        elif isinstance(block, Thinking):
            chars += len(block.thinking)
        else:
            chars += len(block.name) + len(json.dumps(block.input))
    return _tokens(chars)


@dataclass(frozen=True)
class Usage:
    input_tokens: int
    output_tokens: int

    def to_api(self) -> dict[str, Any]:
        """Cache fields are present (as zero) because clients read them unconditionally."""
        return {
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
        }
