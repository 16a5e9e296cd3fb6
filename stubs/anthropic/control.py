"""Mutable test-facing state: scripted replies, injected faults, latency and the request log.

One lock guards everything because the server is threaded and tests poke at the state from
another thread (or another process, through ``/_stub`` routes) while requests stream.
"""

from __future__ import annotations

import copy
import hashlib
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass
from typing import Any, TypeVar

from .conversation import MAIN, Conversation
from .reply import Reply

SECRET_HEADERS = ("x-api-key", "authorization")
# Where the Flask app keeps its StubControl (shared by the API routes and ``/_stub``).
CONTROL_KEY = "stub_control"

ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


@dataclass(frozen=True)
class Matcher:
    """Which requests a scripted reply or fault applies to.

    ``kind`` is ``main`` (agent-loop turns, i.e. requests carrying tools — the default, so
    the CLI's side requests never eat a script), ``any``, or a specific side kind
    (``structured``, ``probe``, ``side``). ``text_contains`` narrows by the latest user text.
    """

    kind: str = MAIN
    text_contains: str | None = None

    def matches(self, conv: Conversation) -> bool:
        if self.kind != "any" and conv.kind != self.kind:
            return False
        return self.text_contains is None or self.text_contains in conv.latest_user_text

    @staticmethod
    def from_json(data: dict[str, Any] | None) -> Matcher:
        data = data or {}
        return Matcher(str(data.get("kind", MAIN)), data.get("text_contains"))


@dataclass(frozen=True)
class Latency:
    """``ttft`` seconds before the first content event; ``tokens_per_second`` paces deltas."""

    ttft: float = 0.0
    tokens_per_second: float | None = None


@dataclass(frozen=True)
class HttpFault:
    status: int
    error_type: str
    message: str
    retry_after: float | None
    matcher: Matcher


@dataclass(frozen=True)
class StreamFault:
    """Break a stream with an ``event: error`` after ``after_events`` events have been sent."""

    after_events: int
    error_type: str
    message: str
    matcher: Matcher


def credential_summary(headers: dict[str, str]) -> dict[str, Any] | None:
    """Enough to tell which key arrived (last 4 characters, a hash) without storing it."""
    for name in SECRET_HEADERS:
        value = next((v for k, v in headers.items() if k.lower() == name), None)
        if value is None:
            continue
        secret = value[7:] if name == "authorization" and value.lower().startswith("bearer ") else value
        return {
            "header": name,
            "last4": secret[-4:],
            "sha256": hashlib.sha256(secret.encode()).hexdigest(),
        }
    return None


def redact_headers(headers: dict[str, str]) -> dict[str, str]:
    redacted: dict[str, str] = {}
    for key, value in headers.items():
        redacted[key] = f"REDACTED(...{value[-4:]})" if key.lower() in SECRET_HEADERS else value
    return redacted


@dataclass
class LogEntry:
    """One received request. ``usage`` is what the response reported (updated mid-stream)."""

    seq: int
    ts: float
    method: str
    path: str
    query: str
    headers: dict[str, str]
    credential: dict[str, Any] | None
    body: Any
    kind: str | None = None
    status: int = 200
    stream: bool = False
    scripted: bool = False
    usage: dict[str, int] | None = None
    reply: list[dict[str, Any]] | None = None
    error: dict[str, Any] | None = None
    completed: bool = False


class StubControl:
    """The shared state behind both the Python API and the ``/_stub`` HTTP routes."""

    def __init__(self, max_log: int = 2000) -> None:
        """``max_log`` bounds memory for long-running demos: the CLI sends ~40 kB per turn."""
        self._lock = threading.Lock()
        self._max_log = max_log
        self._seq = 0
        self._scripts: deque[tuple[Matcher, Reply]] = deque()
        self._http_faults: deque[HttpFault] = deque()
        self._stream_faults: deque[StreamFault] = deque()
        self._latency = Latency()
        self._log: list[LogEntry] = []
        self.expected_api_key: str | None = None
        self.ping_interval: float = 5.0

    # --- scripting -----------------------------------------------------------------------
    def enqueue(self, reply: Reply, matcher: Matcher | None = None) -> None:
        with self._lock:
            self._scripts.append((matcher or Matcher(), reply))

    def take_script(self, conv: Conversation) -> Reply | None:
        """The first queued reply whose matcher accepts ``conv`` (FIFO among matches)."""
        with self._lock:
            for index, (matcher, reply) in enumerate(self._scripts):
                if matcher.matches(conv):
                    del self._scripts[index]
                    return reply
        return None

    # --- faults --------------------------------------------------------------------------
    def fail_next(
        self,
        status: int,
        count: int = 1,
        message: str | None = None,
        error_type: str | None = None,
        retry_after: float | None = None,
        matcher: Matcher | None = None,
    ) -> None:
        kind = error_type or ERROR_TYPES.get(status, "api_error")
        fault = HttpFault(status, kind, message or f"stub injected {kind}", retry_after, matcher or Matcher())
        with self._lock:
            self._http_faults.extend([fault] * count)

    def fail_midstream(
        self,
        after_events: int = 3,
        count: int = 1,
        error_type: str = "overloaded_error",
        message: str = "stub injected mid-stream error",
        matcher: Matcher | None = None,
    ) -> None:
        fault = StreamFault(after_events, error_type, message, matcher or Matcher())
        with self._lock:
            self._stream_faults.extend([fault] * count)

    def take_http_fault(self, conv: Conversation) -> HttpFault | None:
        with self._lock:
            return _take_first(self._http_faults, conv)

    def take_stream_fault(self, conv: Conversation) -> StreamFault | None:
        with self._lock:
            return _take_first(self._stream_faults, conv)

    # --- latency -------------------------------------------------------------------------
    def set_latency(self, ttft: float = 0.0, tokens_per_second: float | None = None) -> None:
        with self._lock:
            self._latency = Latency(ttft, tokens_per_second)

    @property
    def latency(self) -> Latency:
        with self._lock:
            return self._latency

    # --- log -----------------------------------------------------------------------------
    def record(self, entry_fields: dict[str, Any]) -> LogEntry:
        with self._lock:
            self._seq += 1
            entry = LogEntry(seq=self._seq, ts=time.time(), **entry_fields)
            self._log.append(entry)
            if len(self._log) > self._max_log:
                del self._log[: len(self._log) - self._max_log]
            return entry

    def update(self, entry: LogEntry, **changes: Any) -> None:
        with self._lock:
            for key, value in changes.items():
                setattr(entry, key, value)

    def requests(
        self, kind: str | None = None, path: str | None = None, since: int = 0, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Snapshots (deep copies) so callers can't race with streams still updating entries.

        ``since`` skips entries with ``seq <= since`` (poll for new ones); ``limit`` keeps
        the last N matches — long agent sessions log megabytes of conversation.
        """
        with self._lock:
            chosen = [
                e
                for e in self._log
                if e.seq > since and (kind is None or e.kind == kind) and (path is None or e.path == path)
            ]
            if limit is not None:
                chosen = chosen[-limit:] if limit > 0 else []
            return [copy.deepcopy(asdict(e)) for e in chosen]

    def clear_log(self) -> None:
        with self._lock:
            self._log.clear()

    def state(self) -> dict[str, Any]:
        with self._lock:
            return {
                "scripted_pending": len(self._scripts),
                "http_faults_pending": len(self._http_faults),
                "stream_faults_pending": len(self._stream_faults),
                "latency": asdict(self._latency),
                "requests": len(self._log),
                "expected_api_key_set": self.expected_api_key is not None,
            }

    def reset(self) -> None:
        with self._lock:
            self._scripts.clear()
            self._http_faults.clear()
            self._stream_faults.clear()
            self._latency = Latency()
            self._log.clear()
            self._seq = 0
            self.expected_api_key = None


FaultT = TypeVar("FaultT", HttpFault, StreamFault)


def _take_first(queue: deque[FaultT], conv: Conversation) -> FaultT | None:
    for index, item in enumerate(queue):
        if item.matcher.matches(conv):
            del queue[index]
            return item
    return None
