"""The pass-through event path: pieces in, frames out, the same bytes live and replayed."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from control.store import Store
from control.turns import TurnHub
from wire import sse
from wire.events import make_event

SID = "0b7f3e2a-5c1d-4e8f-9a6b-1c2d3e4f5a6b"


def test_a_frame_is_the_piece_with_the_owned_fields_spliced_in() -> None:
    event = make_event("text", "ignored", seq=99, text="héllo \u2028 \"quoted\"\n")
    piece = sse.piece(event)
    assert piece.type == "text" and b'"seq"' not in piece.body and b'"session_id"' not in piece.body
    frame = sse.number(piece, 7, SID.encode())
    assert frame.sse == b"id: 7\nevent: text\ndata: " + frame.data + b"\n\n"
    decoded = json.loads(frame.data)
    assert decoded == {**event, "seq": 7, "session_id": SID}
    assert sse.frame({**event, "seq": 7, "session_id": SID}) == frame.sse


def test_a_machine_cannot_renumber_or_relabel_its_events() -> None:
    """A machine's own seq/session_id come earlier in the object, so ours win on decode."""
    forged = sse.Piece("text", b'{"type":"text","seq":1000,"session_id":"someone-else","text":"x"}')
    frame = sse.number(forged, 3, SID.encode())
    assert json.loads(frame.data)["seq"] == 3 and json.loads(frame.data)["session_id"] == SID


@pytest.mark.parametrize("raw", [
    b'event: text\ndata: {"text":"a"}\nid: 999\nevent: done\ndata: {}',  # a second line of fields
    b'id: 5\nevent: text\ndata: {"type":"text","seq":5,"text":"a"}',  # an old agent's full frame
    b'event: text\ndata: {"type":"text",\ndata: "text":"a"}',  # data over two lines
])
def test_anything_but_the_exact_piece_shape_is_decoded_and_reencoded(raw: bytes) -> None:
    pieces = sse.PieceReader().feed(raw + b"\n\n")
    assert len(pieces) <= 1
    for p in pieces:
        assert b"\n" not in p.body and p.body.startswith(b"{") and p.body.endswith(b"}")
        assert b'"seq"' not in p.body
        frame = sse.number(p, 1, SID.encode())
        assert frame.sse.count(b"\n") == 4  # id, event, data, blank line


def test_non_objects_and_keepalives_are_dropped() -> None:
    raw = sse.KEEPALIVE + b"event: text\ndata: [1,2]\n\n" + b"event: text\ndata: not json\n\n"
    assert sse.PieceReader().feed(raw) == []


def test_pieces_survive_any_chunking_and_crlf() -> None:
    events = [make_event("text_delta", text=f"d{i}") for i in range(50)] + [make_event("done")]
    stream = b"".join(sse.machine_frame(e) for e in events)
    expected = [sse.piece(e) for e in events]
    for size in (1, 2, 3, 7, 64, len(stream)):
        reader = sse.PieceReader()
        got = [p for i in range(0, len(stream), size) for p in reader.feed(stream[i : i + size])]
        assert got == expected, size
    crlf = stream.replace(b"\n", b"\r\n")
    reader = sse.PieceReader()
    assert [p for i in range(0, len(crlf), 5) for p in reader.feed(crlf[i : i + 5])] == expected
    decoder = sse.Decoder()
    pieces_only = [{k: v for k, v in e.items() if k not in sse.OWNED} for e in events]
    assert [e for i in range(0, len(crlf), 5) for e in decoder.feed(crlf[i : i + 5])] == pieces_only


def test_followers_and_the_transcript_get_the_same_bytes(tmp_path: Path) -> None:
    hub = TurnHub(Store(tmp_path / "db.sqlite"))
    gate = threading.Event()

    def source() -> Iterator[list[sse.Piece]]:
        yield [sse.piece(make_event("user", text="hi"))]
        for i in range(20):
            if i == 10:
                gate.wait(10)
            yield [sse.piece(make_event("text_delta", text=f"ü{i}")) for _ in range(3)]
        yield [sse.piece(make_event("result", subtype="success", claude_session_id="c1")),
               sse.piece(make_event("done"))]

    stream = hub.follow_frames(SID, hub.start_turn(SID, "hi", source))
    first = next(stream)
    live = list(first or [])
    gate.set()
    live += [f for batch in stream if batch for f in batch]
    stored = hub.store.frames_after(SID, 0)
    assert b"".join(f.sse for f in live) == b"".join(f.sse for f in stored)
    assert [f.seq for f in live] == list(range(1, 64)) and live[-1].type == "done"
    replay = [f for batch in hub.follow_frames(SID, 0) if batch for f in batch]
    assert b"".join(f.sse for f in replay) == b"".join(f.sse for f in live)
    assert hub.store.events_after(SID, 0) == [f.event() for f in live]


def test_unknown_types_are_dropped_and_an_unreadable_event_reads_back_as_an_error(tmp_path: Path) -> None:
    hub = TurnHub(Store(tmp_path / "db.sqlite"))
    frames = hub.publish_pieces(SID, [sse.Piece("made_up", b'{"x":1}'), sse.Piece("text", b'{"text":"\xff"}')])
    assert [f.type for f in frames] == ["text"]
    [event] = hub.store.events_after(SID, 0)
    assert event["type"] == "error" and event["code"] == "unreadable_event" and event["seq"] == 1
