"""Who is asking, as the session service sees it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Caller:
    """Built once per request (or WebSocket) by ``control.auth``; the session service
    decides with it what may be done, so REST and WebSocket share every rule."""

    user_id: str | None = None
    """The account in ``AUTH_MODE=token``; None in ``AUTH_MODE=none``, where the key alone
    opens a session."""
    is_admin: bool = False
    key: str | None = None
    """The Anthropic key presented: the Bearer in ``none`` mode, ``X-Anthropic-Api-Key`` (or
    the WebSocket's ``api_key``) in ``token`` mode. Refreshes the session's key in memory."""
    rate_key: str = "local"
    """What rate limits count: the account, else the client's address."""
    origin: str = ""
    """For the audit log: the request line, or ``websocket``."""


@dataclass(frozen=True)
class Grant:
    """A caller allowed to act on one session. Only ``SessionService.open`` makes these,
    after the access check, so every method that takes one was authorised first. It names
    the session rather than holding its row: a WebSocket keeps its grant for hours."""

    caller: Caller
    session_id: str
