"""Driving one turn from a terminal: stream it into a view, answer approvals, and turn
Ctrl-C into an interrupt (the first) or an exit (the second)."""

from __future__ import annotations

import sys
from collections.abc import Callable

from .. import Session
from .._base import Decision
from .._models import turn_failed
from .._wire.events import Event, PermissionRequestEvent
from .render import View, tool_call

ANSWERS: dict[str, Decision] = {"y": "allow", "yes": "allow", "a": "allow_session", "always": "allow_session",
                                "n": "deny", "no": "deny"}


class Quit(Exception):
    """The user pressed Ctrl-C a second time: leave the program."""


def ask_in_terminal(view: View, event: PermissionRequestEvent) -> Decision:
    """y/a/n at the terminal; without one (a script), deny: nobody can say yes."""
    if not sys.stdin.isatty():
        view.note(f"denied {event.tool_name}: no terminal to ask for approval (run interactively to approve)")
        return "deny"
    view.pause()
    while True:
        try:
            answer = input(f"Allow {tool_call(event.tool_name, event.input)}? [y]es / [a]lways / [n]o: ")
        except EOFError:
            return "deny"
        decision = ANSWERS.get(answer.strip().lower())
        if decision:
            return decision


def run_turn(session: Session, message: str, view: View,
             ask: Callable[[View, PermissionRequestEvent], Decision] = ask_in_terminal) -> bool:
    """Stream one turn into ``view``; True when it succeeded.

    Ctrl-C interrupts the turn on the server and keeps following it to its ``done`` (from
    the last event seen, so nothing is shown twice); a second Ctrl-C raises :class:`Quit`.
    """
    events: list[Event] = []
    stream = session.stream(message)
    interrupted = False
    view.begin()
    while True:
        try:
            with stream:
                for event in stream:
                    events.append(event)
                    view.show(event)
                    if isinstance(event, PermissionRequestEvent):
                        session.approve(event.request_id, ask(view, event))
                        view.begin()
            break
        except KeyboardInterrupt:
            if interrupted:
                view.end()
                raise Quit() from None
            interrupted = True
            view.note("interrupting… (Ctrl-C again to quit)")
            session.interrupt()
            if stream.last_seq is None:
                break  # nothing seen yet: there is nothing to follow from
            stream = session.stream(after=stream.last_seq)
    view.end()
    return not turn_failed(events)
