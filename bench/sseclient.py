"""An SSE reader that timestamps what arrives, cheap enough for 20,000 events a turn."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import requests

CONTENT = frozenset({"text", "text_delta", "thinking", "tool_use", "tool_result", "todo"})


@dataclass
class TurnTrace:
    status: int = 0
    sent: float = 0.0
    first_event: float | None = None
    first_delta: float | None = None
    last_delta: float | None = None
    last_content: float | None = None
    """When the turn's last content event (text, delta, thinking, tool call or result) arrived."""
    done: float | None = None
    events: int = 0
    types: Counter[str] = field(default_factory=Counter)
    seqs: list[int] = field(default_factory=list)
    kept: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None
    body: str = ""

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.done is not None and self.error is None and self.types["error"] == 0

    def since_sent(self, moment: float | None) -> float | None:
        return None if moment is None else moment - self.sent

    @property
    def duration(self) -> float | None:
        return self.since_sent(self.done)


def split_frame(raw: bytes) -> tuple[str, int | None, bytes | None]:
    """(event type, id, data bytes) of one SSE frame; comments give type ``""``."""
    kind, ident, data = "", None, None
    for line in raw.split(b"\n"):
        if line.startswith(b"event:"):
            kind = line[6:].strip().decode()
        elif line.startswith(b"id:"):
            value = line[3:].strip()
            ident = int(value) if value.isdigit() else None
        elif line.startswith(b"data:"):
            data = line[5:].lstrip(b" ") if data is None else data + b"\n" + line[5:].lstrip(b" ")
    return kind, ident, data


def read_stream(resp: requests.Response, trace: TurnTrace, *, keep: bool = False,
                on_event: Callable[[str, int | None, TurnTrace], None] | None = None) -> TurnTrace:
    buffer = b""
    try:
        for chunk in resp.iter_content(chunk_size=None):
            now = time.perf_counter()
            buffer += chunk.replace(b"\r\n", b"\n") if b"\r" in chunk else chunk
            if b"\n\n" not in buffer:
                continue
            *frames, buffer = buffer.split(b"\n\n")
            for raw in frames:
                kind, ident, data = split_frame(raw)
                if not kind and data is None:
                    continue  # keep-alive comment
                if data is not None and not kind:
                    kind = json.loads(data).get("type", "")
                trace.events += 1
                trace.types[kind] += 1
                if ident is not None:
                    trace.seqs.append(ident)
                if trace.first_event is None:
                    trace.first_event = now
                if kind in CONTENT:
                    trace.last_content = now
                if kind == "text_delta":
                    trace.last_delta = now
                    if trace.first_delta is None:
                        trace.first_delta = now
                if keep and data is not None:
                    trace.kept.append(json.loads(data))
                if on_event is not None:
                    on_event(kind, ident, trace)
                if kind == "done":
                    trace.done = now
                    return trace
    except requests.RequestException as exc:
        trace.error = f"stream broke: {type(exc).__name__}"
    finally:
        resp.close()
    if trace.done is None and trace.error is None:
        trace.error = "stream ended without done"
    return trace


def post_turn(http: requests.Session, url: str, headers: dict[str, str], message: str, *, keep: bool = False,
              timeout: float = 600, on_event: Callable[[str, int | None, TurnTrace], None] | None = None) -> TurnTrace:
    """POST a chat and read its SSE answer to ``done`` (or until it breaks)."""
    trace = TurnTrace()
    trace.sent = time.perf_counter()
    try:
        resp = http.post(url, json={"message": message}, stream=True, timeout=(10, timeout),
                         headers={**headers, "Accept": "text/event-stream"})
    except requests.RequestException as exc:
        trace.error = f"request failed: {type(exc).__name__}"
        return trace
    trace.status = resp.status_code
    if resp.status_code != 200:
        trace.body = resp.text[:500]
        trace.error = f"HTTP {resp.status_code}"
        resp.close()
        return trace
    return read_stream(resp, trace, keep=keep, on_event=on_event)
