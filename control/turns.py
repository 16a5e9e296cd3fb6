"""Turns run in the background; HTTP clients only follow them.

A turn is read from its machine by a background worker that numbers every event, keeps it
in the transcript and publishes it to live followers. A follower that disconnects loses
nothing: it can come back with ``Last-Event-ID`` (or ``?after=``) and is replayed from the
transcript, then continues live, with no gap and no duplicate.

Pass-through: events arrive as pieces (``wire.sse``), are numbered by a byte splice and are
stored, fanned out and replayed as the same bytes, never decoded on the way (only the rare
events the session row follows, ``result`` and ``error``, are read). Write-through with group
commit: the events that arrived from the machine while the previous batch was being stored
are stored together in one transaction *before* any follower sees them, so whatever a
client was shown survives a kill -9 of the control plane, at one commit per burst, not per
event or per network read. Followers get whole batches and a streaming client writes
everything queued for it in one send.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections import Counter
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import Any

from control import metrics
from control.store import Store
from wire import sse
from wire.errors import Conflict
from wire.events import EVENT_TYPES, make_event
from wire.sse import Frame, Piece

log = logging.getLogger(__name__)

KEEPALIVE_SECONDS = 15.0
REPLAY_PAGE = 5_000
OBSERVED = frozenset({"result", "error"})
"""Event types whose content the session row follows (the only ones ever decoded here)."""

Inbox = queue.Queue[list[Frame] | None]


@dataclass
class _Channel:
    next_seq: int
    running: bool = False
    followers: set[Inbox] = field(default_factory=set)


TurnSource = Callable[[], Iterator[list[Piece]]]
"""Yields batches of pieces: what arrived together is committed together."""
TurnObserver = Callable[[str, dict[str, Any]], None]


_END = object()


def _coalesced(batches: Iterator[list[Piece]]) -> Generator[list[Piece], None, None]:
    """The source's batches, with those that arrive while the previous one is being stored
    joined into one: a reader of their own keeps reading the machine, so a commit costs one
    per burst the control plane could not keep up with, not one per network read (a
    10,000-event turn took ~800 commits, now ~80-100). The write-ahead order is kept:
    nothing is published before it is stored."""
    arrived: queue.Queue[Any] = queue.Queue()
    abandoned = threading.Event()

    def read() -> None:
        try:
            for batch in batches:
                if abandoned.is_set():  # the consumer stopped: stop reading the machine too
                    break
                arrived.put(batch)
        except Exception as exc:  # noqa: BLE001 - handed to the consumer, which raises it in order
            arrived.put(exc)
        finally:
            if isinstance(batches, Generator):
                batches.close()  # its HTTP response with it
            arrived.put(_END)

    threading.Thread(target=read, name="turn-reader", daemon=True).start()
    return _joined(arrived, abandoned)


def _joined(arrived: queue.Queue[Any], abandoned: threading.Event) -> Generator[list[Piece], None, None]:
    try:
        while True:
            item = arrived.get()
            joined: list[Piece] = []
            while True:
                if item is _END:
                    if joined:
                        yield joined
                    return
                if isinstance(item, Exception):
                    if joined:
                        yield joined
                    raise item
                joined.extend(item)
                try:
                    item = arrived.get_nowait()
                except queue.Empty:
                    break
            yield joined
    finally:
        abandoned.set()


class TurnHub:
    def __init__(self, store: Store, observer: TurnObserver | None = None) -> None:
        self.store = store
        self.observer = observer
        self._channels: dict[str, _Channel] = {}
        self._lock = threading.RLock()

    # turns ----------------------------------------------------------------------------
    def is_running(self, session_id: str) -> bool:
        with self._lock:
            channel = self._channels.get(session_id)
            return bool(channel and channel.running)

    def start_turn(self, session_id: str, user_text: str, source: TurnSource) -> int:
        """Begin a turn; returns the seq just before its first event (for followers)."""
        with self._lock:
            channel = self._channel(session_id)
            if channel.running:
                raise Conflict("a turn is already running for this session; interrupt it or wait", code="busy")
            channel.running = True
            start = channel.next_seq - 1
        threading.Thread(target=self._run, args=(session_id, source), name=f"turn-{session_id[:8]}",
                         daemon=True).start()
        return start

    def _run(self, session_id: str, source: TurnSource) -> None:
        saw_done = False
        clock: metrics.FirstEventClock | None = metrics.FirstEventClock()
        try:
            for batch in _coalesced(source()):
                if clock is not None:
                    agent_first = next((p.type for p in batch if p.type not in clock.IGNORED), None)
                    if agent_first is not None:
                        clock.see({"type": agent_first})
                        clock = None
                if any(p.type == "done" for p in batch):
                    # Idle before anyone sees "done", so a client may send its next message at once.
                    saw_done = True
                    self._idle(session_id)
                self.publish_pieces(session_id, batch)
        except Exception as exc:  # noqa: BLE001 - every failure ends the turn with an event
            code = getattr(exc, "code", "turn_failed")
            message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
            if not saw_done:  # after "done" the turn is over (and the next may have begun)
                self.publish(session_id, make_event("error", session_id, code=code, message=message))
        finally:
            if not saw_done:
                self._idle(session_id)
                self.publish(session_id, make_event("done", session_id))

    def _idle(self, session_id: str) -> None:
        with self._lock:
            self._channel(session_id).running = False

    def publish(self, session_id: str, event: dict[str, Any]) -> dict[str, Any]:
        """Number, store and fan out one event built here (an error, a closing ``done``)."""
        return self.publish_pieces(session_id, [sse.piece(event)])[0].event()

    def publish_pieces(self, session_id: str, pieces: list[Piece]) -> list[Frame]:
        """Number a batch, store it in one transaction, then hand it to every follower."""
        unknown = [p.type for p in pieces if p.type not in EVENT_TYPES]
        if unknown:
            log.warning("dropped %d event(s) of unknown type from session %s's machine", len(unknown), session_id)
            pieces = [p for p in pieces if p.type in EVENT_TYPES]
        name = session_id.encode()
        with self._lock:
            channel = self._channel(session_id)
            first = channel.next_seq
            frames = [sse.number(p, first + i, name) for i, p in enumerate(pieces)]
            channel.next_seq = first + len(frames)
            try:
                self.store.append_frames(session_id, frames)
            except Exception:  # noqa: BLE001 - e.g. the session was deleted meanwhile
                log.warning("could not store %d events for session %s", len(frames), session_id)
            followers = list(channel.followers)
        if frames:
            for follower in followers:
                follower.put(frames)
            for type_, n in Counter(f.type for f in frames).items():
                metrics.count_event(type_, n)
            if self.observer is not None:
                for f in frames:
                    if f.type in OBSERVED:
                        self._observe(session_id, f)
        return frames

    def _observe(self, session_id: str, frame: Frame) -> None:
        assert self.observer is not None
        try:
            self.observer(session_id, frame.event())
        except Exception:
            log.exception("event observer failed")

    # following ------------------------------------------------------------------------
    def follow_frames(self, session_id: str, after: int, *, until_done: bool = True,
                      keepalive: float = KEEPALIVE_SECONDS) -> Iterator[list[Frame] | None]:
        """Frames with seq > ``after``, replayed then live, in batches: everything that is
        ready when the follower asks comes as one list. ``None`` means keep-alive.

        With ``until_done`` the stream ends at the first ``done`` after ``after`` (or at once
        when no turn is running and none is left to replay); otherwise it follows until the
        client leaves.
        """
        inbox: Inbox = queue.Queue()
        with self._lock:
            channel = self._channel(session_id)
            channel.followers.add(inbox)
            running = channel.running
            page = self.store.frames_after(session_id, after, REPLAY_PAGE)
        try:
            last = after
            # Everything published from now on reaches the inbox, and everything before it is
            # stored: replay pages until the transcript is exhausted, then go live.
            while page:
                out, done = _take(page, last, until_done)
                if out:
                    last = out[-1].seq
                    yield out
                if done:
                    return
                if len(page) < REPLAY_PAGE:
                    break
                page = self.store.frames_after(session_id, last, REPLAY_PAGE)
            if until_done and not running:
                return
            while True:
                try:
                    item = inbox.get(timeout=keepalive)
                except queue.Empty:
                    yield None
                    continue
                items = [item]
                while True:
                    try:
                        items.append(inbox.get_nowait())
                    except queue.Empty:
                        break
                out, done = [], False
                for batch in items:
                    if batch is None:
                        done = True
                        break
                    fresh, done = _take(batch, last, until_done)
                    if fresh:
                        out += fresh
                        last = fresh[-1].seq
                    if done:
                        break
                if out:
                    yield out
                if done:
                    return
        finally:
            with self._lock:
                channel.followers.discard(inbox)

    def follow(self, session_id: str, after: int, *, until_done: bool = True,
               keepalive: float = KEEPALIVE_SECONDS) -> Generator[dict[str, Any] | None, None, None]:
        """:meth:`follow_frames` one decoded event at a time (for JSON answers and tests)."""
        for batch in self.follow_frames(session_id, after, until_done=until_done, keepalive=keepalive):
            if batch is None:
                yield None
                continue
            for frame in batch:
                yield frame.event()

    # lifecycle ------------------------------------------------------------------------
    def forget(self, session_id: str) -> None:
        with self._lock:
            channel = self._channels.pop(session_id, None)
        if channel:
            for follower in channel.followers:
                follower.put(None)

    def tracked(self) -> int:
        """Sessions with a channel in memory (freed by :meth:`forget`)."""
        with self._lock:
            return len(self._channels)

    def _channel(self, session_id: str) -> _Channel:
        channel = self._channels.get(session_id)
        if channel is None:
            channel = _Channel(next_seq=self.store.last_seq(session_id) + 1)
            self._channels[session_id] = channel
        return channel


def _take(batch: list[Frame], last: int, until_done: bool) -> tuple[list[Frame], bool]:
    """The frames of ``batch`` after ``last``, cut after the first ``done`` when following a turn."""
    if not batch:
        return [], False
    fresh = batch if batch[0].seq > last else [f for f in batch if f.seq > last]
    if until_done:
        for i, f in enumerate(fresh):
            if f.type == "done":
                return fresh[: i + 1], True
    return fresh, False
