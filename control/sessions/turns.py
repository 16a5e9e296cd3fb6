"""A session's turns: send a message, follow the events, interrupt, answer the agent.

REST and the WebSocket live channel both call these methods, so the rate limit, the
one-turn-at-a-time rule and the wake-on-chat behaviour hold whichever way a message comes.
The turn itself runs in the background (``control.turns.TurnHub``); callers only follow it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from typing import Any

from control.machine_client import MachineClient, MachineUnreachable
from control.quotas import Quotas
from control.secrets import KeyVault
from control.session_status import IllegalTransition, SessionStatus
from control.sessions.caller import Grant
from control.sessions.machines import Machines
from control.store import Store
from control.turns import TurnHub
from wire.errors import ApiError, NotFound
from wire.events import make_event
from wire.sse import Frame, Piece

FAILING_ERRORS = ("machine_unreachable", "agent_failed")
"""Error events that mean the machine broke (not just the turn)."""


class Turns:
    def __init__(self, *, store: Store, machines: Machines, quotas: Quotas, vault: KeyVault) -> None:
        self.store = store
        self.machines = machines
        self.quotas = quotas
        self.vault = vault
        self.hub = TurnHub(store, observer=self._observe)

    def chat(self, grant: Grant, message: str) -> int:
        """Start a turn; returns the seq to follow from. 429 past the caller's rate limit,
        409 while another turn runs."""
        self.quotas.check_rate(grant.caller.rate_key)
        session_id = grant.session_id
        self.store.update_session(session_id, last_active_at=time.time())

        def source() -> Iterator[list[Piece]]:
            if self.vault.get(session_id) is None:
                # After a restart the key comes back only with a request that carries it; the
                # CLI would otherwise retry the relay's 401s for minutes. Fail at once instead.
                raise ApiError("the session's Anthropic key is not in memory (the control plane restarted): "
                               "send this chat again with the key (X-Anthropic-Api-Key in AUTH_MODE=token)",
                               code="key_required", status=401)
            # Fast path: a machine believed up is asked directly; only if it cannot take the
            # turn (gone, restarted, unconfigured) is it woken and the turn retried.
            current = self.store.get_session(session_id)
            events: Iterator[list[Piece]] | None = None
            first: list[Piece] | None = None
            if current is not None and current.status is SessionStatus.RUNNING and current.machine_url:
                try:
                    events = self.machines.client(current).chat(message)
                    first = next(events)
                except (MachineUnreachable, StopIteration):
                    events = None
                except ApiError as exc:
                    if exc.code != "not_configured":
                        raise
                    events = None
            if events is None:
                events = self.machines.ensure(session_id).chat(message)
                first = next(events)
            assert first is not None
            yield first
            yield from events

        return self.hub.start_turn(session_id, message, source)

    def follow(self, grant: Grant, after: int, *, until_done: bool = True) -> Iterator[dict[str, Any] | None]:
        """Events with seq > ``after``, replayed then live (None is a keep-alive)."""
        return self.hub.follow(grant.session_id, after, until_done=until_done)

    def follow_frames(self, grant: Grant, after: int, *, until_done: bool = True) -> Iterator[list[Frame] | None]:
        """The same as batches of frames, byte for byte as stored (streaming clients)."""
        return self.hub.follow_frames(grant.session_id, after, until_done=until_done)

    def transcript(self, grant: Grant, after: int = 0, limit: int = 5000) -> list[dict[str, Any]]:
        return self.store.events_after(grant.session_id, after, limit=limit)

    def busy(self, session_id: str) -> bool:
        return self.hub.is_running(session_id)

    def interrupt(self, grant: Grant) -> bool:
        if not self.hub.is_running(grant.session_id):
            return False
        return self._machine(grant).interrupt()

    def answer_permission(self, grant: Grant, request_id: str, decision: str, message: str) -> None:
        if not self.hub.is_running(grant.session_id):
            # No turn, so nothing can be waiting for an answer (and the machine may be asleep).
            raise NotFound(f"no pending permission request {request_id!r}")
        self._machine(grant).request("POST", f"/permissions/{request_id}",
                                     json={"decision": decision, "message": message})

    def close_dangling(self, session_id: str) -> None:
        """A turn cut off by a crash gets its error and ``done``, so followers never hang."""
        last = self.store.events_after(session_id, max(0, self.store.last_seq(session_id) - 1))
        if last and last[-1]["type"] != "done":
            self.hub.publish(session_id, make_event("error", session_id, code="turn_interrupted",
                                                    message="the control plane restarted during this turn"))
            self.hub.publish(session_id, make_event("done", session_id))

    def forget(self, session_id: str) -> None:
        self.hub.forget(session_id)

    def _machine(self, grant: Grant) -> MachineClient:
        row = self.store.get_session(grant.session_id)
        if row is None:
            raise NotFound(f"no session {grant.session_id!r}")
        return self.machines.client(row)

    def _observe(self, session_id: str, event: dict[str, Any]) -> None:
        """Keep the session row in step with its events."""
        kind = event["type"]
        if kind == "result":
            row = self.store.get_session(session_id)
            if row is None:
                return
            changes: dict[str, Any] = {"last_active_at": time.time(), "turns": row.turns + 1}
            if event.get("claude_session_id"):
                changes["claude_session_id"] = event["claude_session_id"]
            self.store.update_session(session_id, **changes)
        elif kind == "error" and event.get("code") in FAILING_ERRORS:
            # e.g. the user stopped the machine under the turn: that stays stopped, not failed
            with contextlib.suppress(IllegalTransition):
                self.store.set_status(session_id, SessionStatus.FAILED,
                                      f"{event.get('code')}: {event.get('message', '')}"[:500])
