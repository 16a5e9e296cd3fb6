"""SSE framing and parsing: ``id: <seq>``, ``event: <type>``, ``data: <json>``."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

KEEPALIVE = b": keep-alive\n\n"


def frame(event: dict[str, Any]) -> bytes:
    data = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
    return f"id: {event['seq']}\nevent: {event['type']}\ndata: {data}\n\n".encode()


def parse(chunks: Iterable[bytes]) -> Iterator[dict[str, Any]]:
    """Yield each event's ``data`` object from a byte stream of SSE frames."""
    for batch in parse_batches(chunks):
        yield from batch


def parse_batches(chunks: Iterable[bytes]) -> Iterator[list[dict[str, Any]]]:
    """Yield, per received chunk, the events it completed (possibly none are yielded).

    Batches let a reader store everything that arrived together in one transaction.
    Comments (keep-alives) are skipped; a frame without ``data`` is ignored. Works on
    arbitrary chunk boundaries because streams are relayed as they arrive.
    """
    decoder = Decoder()
    for chunk in chunks:
        batch = decoder.feed(chunk)
        if batch:
            yield batch


class Decoder:
    """Incremental form of :func:`parse_batches` for readers that are fed, not iterating
    (an async client receives chunks from an event loop)."""

    def __init__(self) -> None:
        self._buffer = b""

    def feed(self, chunk: bytes) -> list[dict[str, Any]]:
        """Add received bytes; return the events they completed."""
        self._buffer += chunk
        batch: list[dict[str, Any]] = []
        while True:
            sep = _frame_end(self._buffer)
            if sep is None:
                return batch
            end, width = sep
            raw, self._buffer = self._buffer[:end], self._buffer[end + width :]
            data_lines = [
                line[5:].lstrip(b" ")
                for line in raw.replace(b"\r\n", b"\n").split(b"\n")
                if line.startswith(b"data:")
            ]
            if data_lines:
                batch.append(json.loads(b"\n".join(data_lines)))


def _frame_end(buffer: bytes) -> tuple[int, int] | None:
    candidates = [(i, w) for i, w in ((buffer.find(b"\n\n"), 2), (buffer.find(b"\r\n\r\n"), 4)) if i >= 0]
    return min(candidates) if candidates else None
