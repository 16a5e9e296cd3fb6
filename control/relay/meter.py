"""Token usage read from a Messages API answer as it streams past the relay."""

from __future__ import annotations

import json
import re
from typing import Any

MAX_JSON_BODY = 4 * 1024 * 1024
_MODEL = re.compile(rb'"model"\s*:\s*"([^"\\]{1,200})"')


def model_of(payload: bytes | None) -> str:
    """The request's model, for pricing, without parsing a whole conversation (a profile
    hotspot). Quotes inside message text are escaped in JSON, so they cannot match."""
    match = _MODEL.search(payload or b"")
    return match.group(1).decode(errors="replace") if match else ""


class UsageMeter:
    """Reads token usage from a Messages API answer as it streams past (SSE or JSON)."""

    def __init__(self) -> None:
        self._buffer = b""
        self._sse = False
        self._body: list[bytes] = []
        self._body_size = 0
        self.input_tokens = self.output_tokens = self.cache_read_tokens = self.cache_write_tokens = 0
        self.any = False

    def feed(self, chunk: bytes) -> None:
        if not self._sse and not self._body and chunk.lstrip().startswith((b"event:", b"data:", b":")):
            self._sse = True
        if not self._sse:
            if self._body_size < MAX_JSON_BODY:
                self._body.append(chunk)
                self._body_size += len(chunk)
            return
        self._buffer += chunk
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            if line.startswith(b"data:") and b"usage" in line:
                self._read(line[5:])

    def finish(self) -> None:
        if self._sse:
            if self._buffer.startswith(b"data:"):
                self._read(self._buffer[5:])
        elif self._body:
            self._read(b"".join(self._body))

    def _read(self, raw: bytes) -> None:
        try:
            data = json.loads(raw)
        except ValueError:
            return
        if not isinstance(data, dict):
            return
        usage = data.get("usage") or (data.get("message") or {}).get("usage")
        if not isinstance(usage, dict):
            return
        self.any = True
        kind = data.get("type")
        # message_start carries input (and an initial output count); message_delta carries
        # the cumulative output count, so it replaces rather than adds.
        if kind in ("message_start", "message") or kind is None:
            self.input_tokens = int(usage.get("input_tokens") or 0)
            self.cache_read_tokens = int(usage.get("cache_read_input_tokens") or 0)
            self.cache_write_tokens = int(usage.get("cache_creation_input_tokens") or 0)
            self.output_tokens = int(usage.get("output_tokens") or 0)
        elif kind == "message_delta":
            self.output_tokens = int(usage.get("output_tokens") or self.output_tokens)
            if usage.get("input_tokens"):
                self.input_tokens = int(usage["input_tokens"])

    def totals(self) -> dict[str, Any]:
        return {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens,
                "cache_read_tokens": self.cache_read_tokens, "cache_write_tokens": self.cache_write_tokens}
