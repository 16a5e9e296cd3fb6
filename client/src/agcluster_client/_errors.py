"""Exceptions: one class per kind of failure a caller may want to handle differently.

Every HTTP error carries the server's ``{"error": {"code", "message", "details"}}`` body,
so callers can branch on ``code`` (e.g. ``busy``, ``quota_exceeded``) without parsing text.
A turn that ends in an ``error`` event is not an exception: it is part of the stream.
"""

from __future__ import annotations

import json
from typing import Any

import httpx


class AgClusterError(Exception):
    """Base class; ``status`` is the HTTP status, or None when no response came back."""

    def __init__(self, message: str, *, code: str = "error", status: int | None = None,
                 details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status
        self.details: dict[str, Any] = details or {}

    def __str__(self) -> str:
        where = f"{self.status} " if self.status is not None else ""
        return f"{where}{self.code}: {self.message}"


class ConnectionFailed(AgClusterError):
    """The server could not be reached, or the connection broke before any answer."""


class BadRequest(AgClusterError):
    """400: the request was refused as invalid; ``details`` names the fields."""


class Unauthorized(AgClusterError):
    """401: no credentials, or not valid ones."""


class Forbidden(AgClusterError):
    """403: e.g. an Anthropic key that is not the one the session was launched with."""


class NotFound(AgClusterError):
    """404: no such session, config, file or pending request (or not yours to see)."""


class Conflict(AgClusterError):
    """409: e.g. a turn is already running (``code == "busy"``)."""


class TooLarge(AgClusterError):
    """413: an upload or body over the server's limit."""


class RateLimited(AgClusterError):
    """429: a rate limit or quota; ``retry_after`` is in seconds when the server said."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class ServerError(AgClusterError):
    """5xx: the server or a machine behind it failed; retrying later may help."""


_BY_STATUS: dict[int, type[AgClusterError]] = {
    400: BadRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound, 409: Conflict, 413: TooLarge,
}


def error_from_response(response: httpx.Response, body: bytes) -> AgClusterError:
    """The exception for a non-2xx response whose body has been read."""
    status = response.status_code
    code, message = f"http_{status}", body.decode(errors="replace")[:500] or response.reason_phrase
    details: dict[str, Any] = {}
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict):
        error = parsed["error"]
        code = str(error.get("code") or code)
        message = str(error.get("message") or message)
        details = error.get("details") if isinstance(error.get("details"), dict) else {}
    if status == 429:
        return RateLimited(message, code=code, status=status, details=details,
                           retry_after=_retry_after(details, response.headers.get("Retry-After")))
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else AgClusterError)
    return cls(message, code=code, status=status, details=details)


def _retry_after(details: dict[str, Any], header: str | None) -> float | None:
    for value in (details.get("retry_after"), header):
        if isinstance(value, (int, float, str)):
            try:
                return float(value)
            except ValueError:
                continue
    return None
