"""A session's status: one enum and one transition function (docs/ARCHITECTURE.md, "Session states").

The status says where the session's *machine* is, not whether a turn is in progress: a
running session is busy or idle, and only the turn hub (in memory, authoritative) knows
which; views report that as ``busy``. Every write of a status goes through
:func:`transition` (``Store.set_status`` calls it inside its transaction), so a move the
table below does not allow is refused instead of silently recorded.

Every state may go to ``deleting``; ``deleting`` goes nowhere but away.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum

from wire.errors import Conflict


class SessionStatus(StrEnum):
    STARTING = "starting"
    """A machine is being started, woken or configured."""
    RUNNING = "running"
    """The machine is up and configured: a chat goes straight to it (busy or idle)."""
    STOPPED = "stopped"
    """No machine runs; workspace, transcript and conversation are kept. A chat wakes it."""
    FAILED = "failed"
    """The machine broke; ``status_detail`` says how. A chat tries to start it again."""
    DELETING = "deleting"
    """Being removed; a removal that failed is retried by the janitor until it succeeds."""


INITIAL = SessionStatus.STARTING

_S = SessionStatus
TRANSITIONS: Mapping[SessionStatus, frozenset[SessionStatus]] = {
    # Self-moves update the detail (e.g. "waking the machine").
    _S.STARTING: frozenset({_S.STARTING, _S.RUNNING, _S.STOPPED, _S.FAILED, _S.DELETING}),
    _S.RUNNING: frozenset({_S.RUNNING, _S.STARTING, _S.STOPPED, _S.FAILED, _S.DELETING}),
    # A stopped session is woken through starting; a broken stream of a turn the user
    # stopped is not a failure, so stopped never becomes failed.
    _S.STOPPED: frozenset({_S.STOPPED, _S.STARTING, _S.DELETING}),
    _S.FAILED: frozenset({_S.FAILED, _S.STARTING, _S.STOPPED, _S.DELETING}),
    _S.DELETING: frozenset({_S.DELETING}),
}

LIVE: frozenset[SessionStatus] = frozenset({_S.STARTING, _S.RUNNING})
"""States in which a machine is (or is being) up."""


class IllegalTransition(Conflict):
    code = "illegal_transition"


def transition(current: SessionStatus | str | None, new: SessionStatus | str) -> SessionStatus:
    """The new status if the move is allowed; :class:`IllegalTransition` (a 409) if not.

    ``current`` is None for a session being created, which may only begin as ``starting``.
    """
    target = SessionStatus(new)
    if current is None:
        if target is not INITIAL:
            raise IllegalTransition(f"a session begins as {INITIAL}, not {target}",
                                    details={"from": None, "to": str(target)})
        return target
    source = SessionStatus(current)
    if target not in TRANSITIONS[source]:
        raise IllegalTransition(f"a {source} session cannot become {target}",
                                details={"from": str(source), "to": str(target)})
    return target
