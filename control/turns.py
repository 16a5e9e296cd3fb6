"""Turns run in the background; HTTP clients only follow them.

A turn is read from its machine by a background worker that numbers every event, keeps it
in the transcript and publishes it to live followers. A follower that disconnects loses
nothing: it can come back with ``Last-Event-ID`` (or ``?after=``) and is replayed from the
transcript, then continues live, with no gap and no duplicate.

Transcript writes are batched (at most ``FLUSH_INTERVAL`` or ``FLUSH_EVENTS``), and
unflushed events are replayed from memory, so batching never opens a gap; on a clean
shutdown everything is flushed, on a kill -9 at most the last interval is lost.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from control import metrics
from control.store import Store
from wire.errors import Conflict
from wire.events import make_event

log = logging.getLogger(__name__)

FLUSH_INTERVAL = 0.05
FLUSH_EVENTS = 200
KEEPALIVE_SECONDS = 15.0


@dataclass
class _Channel:
    next_seq: int
    running: bool = False
    pending: list[dict[str, Any]] = field(default_factory=list)
    followers: set[queue.Queue[dict[str, Any] | None]] = field(default_factory=set)


TurnSource = Callable[[], Iterator[dict[str, Any]]]
TurnObserver = Callable[[str, dict[str, Any]], None]


class TurnHub:
    def __init__(self, store: Store, observer: TurnObserver | None = None) -> None:
        self.store = store
        self.observer = observer
        self._channels: dict[str, _Channel] = {}
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._flusher = threading.Thread(target=self._flush_loop, name="transcript-flusher", daemon=True)
        self._flusher.start()

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
        clock = metrics.FirstEventClock()
        try:
            for event in source():
                clock.see(event)
                if event.get("type") == "done":
                    # Idle before anyone sees "done", so a client may send its next message at once.
                    saw_done = True
                    self._idle(session_id)
                self.publish(session_id, event)
        except Exception as exc:  # noqa: BLE001 - every failure ends the turn with an event
            code = getattr(exc, "code", "turn_failed")
            message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
            if not saw_done:  # after "done" the turn is over (and the next may have begun)
                self.publish(session_id, make_event("error", session_id, code=code, message=message))
        finally:
            if not saw_done:
                self._idle(session_id)
                self.publish(session_id, make_event("done", session_id))
            self.flush(session_id)

    def _idle(self, session_id: str) -> None:
        with self._lock:
            self._channel(session_id).running = False

    def publish(self, session_id: str, event: dict[str, Any]) -> dict[str, Any]:
        """Number, remember and fan out one event (also used for control-plane events)."""
        with self._lock:
            channel = self._channel(session_id)
            event = {**event, "seq": channel.next_seq, "session_id": session_id}
            channel.next_seq += 1
            channel.pending.append(event)
            followers = list(channel.followers)
            should_flush = len(channel.pending) >= FLUSH_EVENTS
        metrics.count_event(event["type"])
        for follower in followers:
            follower.put(event)
        if should_flush:
            self.flush(session_id)
        if self.observer is not None:
            try:
                self.observer(session_id, event)
            except Exception:  # noqa: BLE001 - bookkeeping must not break the stream
                log.exception("event observer failed")
        return event

    # following ------------------------------------------------------------------------
    def follow(self, session_id: str, after: int, *, until_done: bool = True,
               keepalive: float = KEEPALIVE_SECONDS) -> Iterator[dict[str, Any] | None]:
        """Events with seq > ``after``: replayed, then live. ``None`` means keep-alive.

        With ``until_done`` the stream ends at the first ``done`` after ``after`` (or at once
        when no turn is running and none is left to replay); otherwise it follows until the
        client leaves.
        """
        inbox: queue.Queue[dict[str, Any] | None] = queue.Queue()
        with self._lock:
            channel = self._channel(session_id)
            channel.followers.add(inbox)
            backlog = self.store.events_after(session_id, after)
            stored_max = backlog[-1]["seq"] if backlog else after
            backlog += [e for e in channel.pending if e["seq"] > stored_max]
            running = channel.running
        try:
            last = after
            for event in backlog:
                last = event["seq"]
                yield event
                if until_done and event["type"] == "done":
                    return
            if until_done and not running:
                return
            while True:
                try:
                    event = inbox.get(timeout=keepalive)
                except queue.Empty:
                    yield None
                    continue
                if event is None:
                    return
                if event["seq"] <= last:
                    continue
                last = event["seq"]
                yield event
                if until_done and event["type"] == "done":
                    return
        finally:
            with self._lock:
                channel.followers.discard(inbox)

    # persistence ----------------------------------------------------------------------
    def flush(self, session_id: str | None = None) -> None:
        with self._lock:
            ids = [session_id] if session_id else list(self._channels)
            batches = []
            for sid in ids:
                channel = self._channels.get(sid)
                if channel and channel.pending:
                    batches.append((sid, channel.pending))
                    channel.pending = []
            # Written under the lock so a follower never sees an event in neither place.
            for sid, events in batches:
                try:
                    self.store.append_events(sid, events)
                except Exception:  # noqa: BLE001 - e.g. the session was deleted meanwhile
                    log.warning("could not store %d events for session %s", len(events), sid)

    def forget(self, session_id: str) -> None:
        with self._lock:
            channel = self._channels.pop(session_id, None)
        if channel:
            for follower in channel.followers:
                follower.put(None)

    def close(self) -> None:
        self._stopping.set()
        self.flush()

    def _flush_loop(self) -> None:
        while not self._stopping.wait(FLUSH_INTERVAL):
            try:
                self.flush()
            except Exception:  # noqa: BLE001
                log.exception("transcript flush failed")

    def _channel(self, session_id: str) -> _Channel:
        channel = self._channels.get(session_id)
        if channel is None:
            channel = _Channel(next_seq=self.store.last_seq(session_id) + 1)
            self._channels[session_id] = channel
        return channel
