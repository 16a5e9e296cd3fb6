"""SSE framing and parsing, and the pass-through form the control plane relays without decoding.

One event has two shapes on the wire:

* a **piece**, what a machine agent sends on ``/chat``: ``event: <type>`` and ``data: <JSON
  object>`` *without* ``seq`` and ``session_id`` (the machine cannot know either: a session's
  numbering spans turns and control-plane events, and a hot-pool machine is configured before
  its session exists);
* a **frame**, what clients get and the transcript keeps: ``id: <seq>``, ``event: <type>`` and
  the same JSON object with ``"seq"`` and ``"session_id"`` spliced in before its closing brace.

Turning a piece into a frame is a byte splice (:func:`number`), so the control plane neither
decodes nor re-encodes an event on its way through. The two fields it owns go *last*: should a
machine send its own ``seq`` or ``session_id`` anyway, the later key wins in every JSON reader
that matters here (Python's ``json``, JavaScript's ``JSON.parse``), so a machine can never
renumber or relabel what clients see. :class:`PieceReader` only lets through bodies that are
one line and look like an object, so a splice can never open a second line or field.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, NamedTuple

KEEPALIVE = b": keep-alive\n\n"
OWNED = ("seq", "session_id")
"""The fields the control plane owns; a piece never needs them."""


class Piece(NamedTuple):
    """An event as a machine sends it: its type and its JSON object (no seq, no session_id)."""

    type: str
    body: bytes


class Frame:
    """A numbered event: its seq, type, the JSON object clients get, and its SSE bytes."""

    __slots__ = ("data", "seq", "sse", "type")

    def __init__(self, seq: int, type_: str, data: bytes) -> None:
        self.seq = seq
        self.type = type_
        self.data = data
        self.sse = b"id: %d\nevent: %s\ndata: %s\n\n" % (seq, type_.encode(), data)

    def event(self) -> dict[str, Any]:
        """The event as a dict (decodes the JSON: for readers off the hot path)."""
        decoded: dict[str, Any] = json.loads(self.data)
        return decoded

    def __repr__(self) -> str:
        return f"Frame(seq={self.seq}, type={self.type!r}, data={self.data[:60]!r})"


def piece(event: Mapping[str, Any]) -> Piece:
    """The piece of an event built as a dict (``wire.events.make_event``)."""
    body = {k: v for k, v in event.items() if k not in OWNED}
    return Piece(str(event["type"]), json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode())


def piece_bytes(p: Piece) -> bytes:
    return b"event: %s\ndata: %s\n\n" % (p.type.encode(), p.body)


def machine_frame(event: Mapping[str, Any]) -> bytes:
    """What a machine agent writes for one event."""
    return piece_bytes(piece(event))


def number(p: Piece, seq: int, session_id: bytes) -> Frame:
    """Splice the control plane's fields into a piece (``session_id`` is JSON-safe ASCII)."""
    head = p.body[:-1]
    tail = b'"seq":%d,"session_id":"%s"}' % (seq, session_id)
    return Frame(seq, p.type, head + (tail if head == b"{" else b"," + tail))


def frame(event: Mapping[str, Any]) -> bytes:
    """One event's SSE frame, exactly as the control plane would relay it."""
    session_id = json.dumps(str(event.get("session_id", "")), ensure_ascii=False)[1:-1].encode()
    return number(piece(event), int(event.get("seq", 0)), session_id).sse


class _Splitter:
    """Raw frames (the lines of one event, ``\\n``-separated) from arbitrary chunks.

    Only the newly arrived bytes are searched for the blank line that ends a frame, and line
    ends are normalised only on a stream that uses ``\\r`` at all.
    """

    def __init__(self) -> None:
        self._buffer = b""
        self._cr = False

    def feed(self, chunk: bytes) -> list[bytes]:
        if self._cr or b"\r" in chunk:
            chunk = self._normalise(chunk)
        if not chunk:
            return []
        held = len(self._buffer)
        buffer = self._buffer + chunk if held else chunk
        cut = buffer.rfind(b"\n\n", max(0, held - 1))
        if cut < 0:
            self._buffer = buffer
            return []
        self._buffer = buffer[cut + 2 :]
        return buffer[:cut].split(b"\n\n")

    def _normalise(self, chunk: bytes) -> bytes:
        if self._cr:  # a "\r" held back from the previous chunk, maybe half of "\r\n"
            chunk = b"\r" + chunk
            self._cr = False
        if chunk.endswith(b"\r"):
            chunk, self._cr = chunk[:-1], True
        return chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")


def _fields(raw: bytes) -> tuple[str, bytes | None]:
    """(event line's type, joined data lines) of one raw frame; comments and ids are skipped."""
    kind, data = "", None
    for line in raw.split(b"\n"):
        if line.startswith(b"event:"):
            kind = line[6:].strip().decode(errors="replace")
        elif line.startswith(b"data:"):
            value = line[5:].removeprefix(b" ")
            data = value if data is None else data + b"\n" + value
    return kind, data


class PieceReader:
    """Pieces from a machine's ``/chat`` stream, fed chunk by chunk, without decoding JSON.

    A frame in the exact shape a machine agent writes takes the fast path: its type is read
    off the ``event:`` line and its body kept as bytes. Anything else (an ``id:`` line, a
    body over several lines, a stream from an older agent) is decoded once and re-encoded as
    a piece; a frame whose data is not a JSON object is dropped.
    """

    def __init__(self) -> None:
        self._splitter = _Splitter()

    def feed(self, chunk: bytes) -> list[Piece]:
        out: list[Piece] = []
        for raw in self._splitter.feed(chunk):
            if raw.startswith(b"event: "):
                nl = raw.find(b"\n")
                if nl > 7 and raw.startswith(b"data: ", nl + 1) and raw.find(b"\n", nl + 1) < 0:
                    body = raw[nl + 7 :]
                    if body.startswith(b"{") and body.endswith(b"}"):
                        out.append(Piece(_type_name(raw[7:nl]), body))
                        continue
            slow = _slow_piece(raw)
            if slow is not None:
                out.append(slow)
        return out


_TYPE_NAMES: dict[bytes, str] = {}


def _type_name(raw: bytes) -> str:
    """``raw.decode()``, remembered for the few names a stream uses (bounded: a stream of
    made-up names from a broken machine cannot grow it)."""
    name = _TYPE_NAMES.get(raw)
    if name is None:
        name = raw.decode(errors="replace")
        if len(_TYPE_NAMES) < 64:
            _TYPE_NAMES[raw] = name
    return name


def _slow_piece(raw: bytes) -> Piece | None:
    kind, data = _fields(raw)
    if data is None:
        return None  # a keep-alive or a frame without data
    try:
        event = json.loads(data)
    except ValueError:
        return None
    if not isinstance(event, dict):
        return None
    kind = kind or str(event.get("type", ""))
    return Piece(kind, piece(event).body)


def read_pieces(chunks: Iterable[bytes]) -> Iterator[list[Piece]]:
    """Per received chunk, the pieces it completed (chunks that complete none yield nothing)."""
    reader = PieceReader()
    for chunk in chunks:
        batch = reader.feed(chunk)
        if batch:
            yield batch


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
        self._splitter = _Splitter()

    def feed(self, chunk: bytes) -> list[dict[str, Any]]:
        """Add received bytes; return the events they completed."""
        batch: list[dict[str, Any]] = []
        for raw in self._splitter.feed(chunk):
            data = _fields(raw)[1]
            if data is not None:
                batch.append(json.loads(data))
        return batch
