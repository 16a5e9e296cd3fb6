"""Turns run in the background; HTTP clients only follow them.

A turn is read from its machine by a background worker that numbers every event, keeps it
in the transcript and publishes it to live followers. A follower that disconnects loses
nothing: it can come back with ``Last-Event-ID`` (or ``?after=``) and is replayed from the
transcript, then continues live, with no gap and no duplicate.

Write-through with group commit: the events that arrived from the machine together are
stored in one transaction *before* any follower sees them, so whatever a client was shown
survives a kill -9 of the control plane, at one commit per network read, not per event.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from control import metrics
from control.store import Store
from wire.errors import Conflict
from wire.events import make_event

log = logging.getLogger(__name__)

KEEPALIVE_SECONDS = 15.0


@dataclass
class _Channel:
    next_seq: int
    running: bool = False
    followers: set[queue.Queue[dict[str, Any] | None]] = field(default_factory=set)


TurnSource = Callable[[], Iterator[list[dict[str, Any]]]]
"""Yields batches of events: what arrived together is committed together."""
TurnObserver = Callable[[str, dict[str, Any]], None]


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
        clock = metrics.FirstEventClock()
        try:
            for batch in source():
                for event in batch:
                    clock.see(event)
                if any(event.get("type") == "done" for event in batch):
                    # Idle before anyone sees "done", so a client may send its next message at once.
                    saw_done = True
                    self._idle(session_id)
                self.publish_batch(session_id, batch)
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
        """Number, store and fan out one event (also used for control-plane events)."""
        return self.publish_batch(session_id, [event])[0]

    def publish_batch(self, session_id: str, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
        with self._lock:
            channel = self._channel(session_id)
            numbered = [{**event, "seq": channel.next_seq + i, "session_id": session_id}
                        for i, event in enumerate(events)]
            channel.next_seq += len(numbered)
            try:
                self.store.append_events(session_id, numbered)
            except Exception:  # noqa: BLE001 - e.g. the session was deleted meanwhile
                log.warning("could not store %d events for session %s", len(numbered), session_id)
            followers = list(channel.followers)
        for event in numbered:
            metrics.count_event(event["type"])
            for follower in followers:
                follower.put(event)
            if self.observer is not None:
                try:
                    self.observer(session_id, event)
                except Exception:  # noqa: BLE001 - bookkeeping must not break the stream
                    log.exception("event observer failed")
        return numbered

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
