"""What the sync and async clients share, free of I/O: settings, auth headers, request
shapes and the bookkeeping that lets a stream resume with no gap and no duplicate."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import quote

import httpx

from ._errors import AgClusterError, ConnectionFailed, ServerError
from ._wire.events import Event, parse_event

DEFAULT_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT = httpx.Timeout(300.0, connect=10.0)
# The server sends a keep-alive every 15 s on an idle stream: four missed ones mean the
# connection is dead, and the stream reconnects instead of waiting for the full timeout.
STREAM_READ_TIMEOUT = 60.0
RESUME_ATTEMPTS = 6
ANTHROPIC_KEY_HEADER = "X-Anthropic-Api-Key"

Decision = Literal["allow", "allow_session", "deny"]
ExportFormat = Literal["json", "markdown"]
Progress = Callable[[int, "int | None"], None]
"""Called with (bytes done, total bytes or None) as a transfer advances."""


@dataclass(frozen=True)
class Settings:
    """Where the server is and who we are.

    ``AUTH_MODE=none`` servers take the Anthropic key as Bearer; ``AUTH_MODE=token``
    servers take an AgCluster token as Bearer and the Anthropic key in its own header.
    Unset arguments fall back to ``AGCLUSTER_URL``, ``ANTHROPIC_API_KEY`` and
    ``AGCLUSTER_TOKEN``, like the Anthropic SDK reads its key.
    """

    base_url: str
    api_key: str | None
    token: str | None

    @classmethod
    def resolve(cls, base_url: str | None, api_key: str | None, token: str | None) -> Settings:
        return cls(base_url=(base_url or os.environ.get("AGCLUSTER_URL") or DEFAULT_URL).rstrip("/"),
                   api_key=api_key if api_key is not None else os.environ.get("ANTHROPIC_API_KEY") or None,
                   token=token if token is not None else os.environ.get("AGCLUSTER_TOKEN") or None)

    def headers(self) -> dict[str, str]:
        headers = {"User-Agent": "agcluster-client/0.1"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
            if self.api_key:
                headers[ANTHROPIC_KEY_HEADER] = self.api_key
        elif self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers


def seg(value: str) -> str:
    """One URL path segment (a session id or request id never reshapes the path)."""
    return quote(value, safe="")


def file_path(path: str) -> str:
    return quote(path.lstrip("/"), safe="/")


def launch_body(config_id: str | None, config: Mapping[str, Any] | None,
                mcp_env: Mapping[str, Mapping[str, str]] | None) -> dict[str, Any]:
    if (config_id is None) == (config is None):
        raise ValueError("give exactly one of config_id or config")
    body: dict[str, Any] = {"config_id": config_id} if config_id is not None else {"config": dict(config or {})}
    if mcp_env:
        body["mcp_env"] = {name: dict(values) for name, values in mcp_env.items()}
    return body


class Cursor:
    """Where a turn's stream stands: the last ``seq`` delivered and whether ``done`` came.

    A reconnect asks for ``Last-Event-ID: last_seq``; anything at or below it that the
    server sends again is dropped here, so the caller sees each event exactly once.
    """

    def __init__(self, message: str | None, after: int | None) -> None:
        if message is None and after is None:
            raise ValueError("give a message to start a turn, or after= to follow one")
        self.message = message
        self.last_seq = after
        self.done = False
        self.failures = 0

    def request(self, session_id: str) -> tuple[str, dict[str, Any]]:
        """Path and httpx keyword arguments of the next attempt."""
        path = f"/api/agents/{seg(session_id)}/chat"
        headers = {"Accept": "text/event-stream"}
        if self.message is not None and self.last_seq is None:
            return path, {"json": {"message": self.message}, "headers": headers}
        return path, {"headers": {**headers, "Last-Event-ID": str(self.last_seq)}}

    def accept(self, batch: list[dict[str, Any]]) -> list[Event]:
        fresh: list[Event] = []
        for data in batch:
            if self.done:
                break
            seq = data.get("seq")
            if isinstance(seq, int):
                if self.last_seq is not None and seq <= self.last_seq:
                    continue
                self.last_seq = seq
            event = parse_event(data)
            fresh.append(event)
            self.done = event.type == "done"
        if fresh:
            self.failures = 0
        return fresh

    def should_retry(self, error: Exception) -> bool:
        """After a broken attempt: resume, or give up by raising ``error``'s mapped form."""
        if self.last_seq is None:
            return False  # broke before the first event: we cannot know where the turn began
        if isinstance(error, AgClusterError) and not isinstance(error, (ConnectionFailed, ServerError)):
            return False
        self.failures += 1
        return self.failures <= RESUME_ATTEMPTS

    def backoff(self) -> float:
        return min(4.0, 0.25 * 2.0 ** (self.failures - 1))

    def lost(self) -> ConnectionFailed:
        if self.last_seq is None:
            return ConnectionFailed("the connection broke before the turn's first event; read the transcript "
                                    "with stream(after=...) or GET /api/agents/sessions/{id}/events",
                                    code="stream_lost")
        return ConnectionFailed(f"the stream could not be resumed after seq {self.last_seq}", code="stream_lost")


def transport_error(exc: httpx.TransportError) -> ConnectionFailed:
    message = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return ConnectionFailed(message, code="connection_failed")


def stream_timeout(timeout: httpx.Timeout) -> httpx.Timeout:
    read = STREAM_READ_TIMEOUT if timeout.read is None else min(timeout.read, STREAM_READ_TIMEOUT)
    return httpx.Timeout(timeout.connect, read=read, write=timeout.write, pool=timeout.pool)
