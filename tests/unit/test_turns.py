"""The turn hub: numbering, transcript, and followers that reconnect without gaps."""

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from control.store import Store
from control.turns import TurnHub, _coalesced
from wire import sse
from wire.errors import Conflict
from wire.events import make_event


def ev(type_: str, **fields: Any) -> sse.Piece:
    """One event as a machine sends it (no seq, no session id)."""
    return sse.piece(make_event(type_, **fields))


def take(stream: Iterator[dict[str, Any] | None], n: int) -> list[dict[str, Any]]:
    """The next ``n`` events (a keep-alive, None, is not one)."""
    events: list[dict[str, Any]] = []
    while len(events) < n:
        event = next(stream)
        if event is not None:
            events.append(event)
    return events


@pytest.fixture()
def hub(tmp_path: Path) -> TurnHub:
    return TurnHub(Store(tmp_path / "db.sqlite"))


def scripted(gate: threading.Event, n: int):
    def source():
        yield [ev("user", text="hi")]
        for i in range(n):
            if i == n // 2:
                gate.wait(10)
            yield [ev("text_delta", text=str(i))]
        yield [ev("done")]
    return source


def test_follower_sees_every_event_once_in_order(hub: TurnHub) -> None:
    gate = threading.Event()
    start = hub.start_turn("s", "hi", scripted(gate, 10))
    stream = hub.follow("s", start)
    first = take(stream, 3)
    gate.set()
    rest = [e for e in stream if e is not None]
    seqs = [e["seq"] for e in first + rest]
    assert seqs == list(range(1, 13)) and rest[-1]["type"] == "done"


def test_reconnect_mid_turn_resumes_without_gap(hub: TurnHub) -> None:
    gate = threading.Event()
    start = hub.start_turn("s", "hi", scripted(gate, 10))
    stream = hub.follow("s", start)
    seen = take(stream, 4)
    stream.close()  # the client goes away; the turn keeps running
    resumed = hub.follow("s", seen[-1]["seq"])
    gate.set()
    rest = [e for e in resumed if e is not None]
    assert [e["seq"] for e in seen + rest] == list(range(1, 13))


def test_second_turn_while_running_conflicts_and_seq_continues(hub: TurnHub) -> None:
    gate = threading.Event()
    start = hub.start_turn("s", "hi", scripted(gate, 4))
    with pytest.raises(Conflict):
        hub.start_turn("s", "again", scripted(gate, 2))
    gate.set()
    assert [e for e in hub.follow("s", start) if e][-1]["type"] == "done"
    start2 = hub.start_turn("s", "again", scripted(threading.Event(), 0))
    events = [e for e in hub.follow("s", start2) if e]
    assert events[0]["seq"] == 7 and events[-1]["type"] == "done"


def test_failing_source_still_ends_with_error_and_done(hub: TurnHub) -> None:
    def broken():
        yield [ev("user", text="x")]
        raise RuntimeError("machine vanished")

    events = [e for e in hub.follow("s", hub.start_turn("s", "x", broken)) if e]
    assert [e["type"] for e in events] == ["user", "error", "done"]
    assert "machine vanished" in events[1]["message"]


def test_transcript_survives_a_new_hub(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite")
    hub = TurnHub(store)
    events = [e for e in hub.follow("s", hub.start_turn("s", "hi", scripted(threading.Event(), 0))) if e]
    again = TurnHub(Store(tmp_path / "db.sqlite"))
    assert [e["seq"] for e in again.store.events_after("s", 0)] == [e["seq"] for e in events]
    assert again.follow("s", 0, until_done=True) is not None
    replay = [e for e in again.follow("s", 0) if e]
    assert replay == events


def test_what_a_follower_saw_is_already_stored(hub: TurnHub) -> None:
    """Write-through: a kill -9 right after a client saw an event cannot lose it."""
    gate = threading.Event()
    start = hub.start_turn("s", "hi", scripted(gate, 10))
    stream = hub.follow("s", start)
    seen = take(stream, 4)
    stored = hub.store.events_after("s", 0)
    assert [e["seq"] for e in stored][: len(seen)] == [e["seq"] for e in seen]
    gate.set()
    list(stream)


def test_a_batch_is_one_transaction_in_order(hub: TurnHub) -> None:
    def source():
        yield [ev("user", text="x"), ev("text_delta", text="a"),
               ev("text_delta", text="b")]
        yield [ev("done")]

    events = [e for e in hub.follow("s", hub.start_turn("s", "x", source)) if e]
    assert [e["seq"] for e in events] == [1, 2, 3, 4]
    assert [e["seq"] for e in hub.store.events_after("s", 0)] == [1, 2, 3, 4]


def test_batches_that_arrive_while_one_is_stored_are_joined_in_order() -> None:
    queued, release = threading.Event(), threading.Event()
    closed: list[bool] = []

    def source() -> Iterator[list[sse.Piece]]:
        try:
            yield [ev("text_delta", text="a")]
            yield [ev("text_delta", text="b"), ev("text_delta", text="c")]
            yield [ev("text_delta", text="d")]
            queued.set()  # the reader asks for more only once all three are queued
            release.wait(10)
            raise ConnectionError("machine gone")
        finally:
            closed.append(True)

    joined = _coalesced(source())
    assert queued.wait(10)
    first = next(joined)
    assert [json.loads(p.body)["text"] for p in first] == ["a", "b", "c", "d"]  # one commit, not three
    release.set()
    with pytest.raises(ConnectionError, match="machine gone"):
        next(joined)
    assert closed == [True]


def test_a_consumer_that_stops_early_stops_the_reader() -> None:
    gate = threading.Event()
    closed = threading.Event()

    def source() -> Iterator[list[sse.Piece]]:
        try:
            yield [ev("text_delta", text="a")]
            gate.wait(10)
            yield [ev("text_delta", text="b")]
            yield [ev("text_delta", text="never read")]
        finally:
            closed.set()

    joined = _coalesced(source())
    assert [json.loads(p.body)["text"] for p in next(joined)] == ["a"]
    joined.close()  # e.g. the turn worker failed
    gate.set()
    assert closed.wait(10)  # the source (and its HTTP response) is closed, not read to the end
