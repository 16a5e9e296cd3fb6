"""Running the stub in-process on a background thread, for tests and benchmarks.

A threaded werkzeug server is enough: each request gets its own thread, and werkzeug writes
each chunk of a streamed response as soon as the generator yields it, so SSE is unbuffered.
"""

from __future__ import annotations

import threading
from types import TracebackType
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from .control import Matcher, StubControl
from .reply import Reply, reply_from_api
from .server import create_app


class QuietHandler(WSGIRequestHandler):
    """Per-request access lines would drown test output; the request log is the record."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


class StubAnthropic:
    """A scripted Messages API on ``http://host:port`` (``port=0`` picks a free port)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, control: StubControl | None = None) -> None:
        self.host = host
        self.port = port
        self.control = control or StubControl()
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("StubAnthropic is not started")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self._server.server_port}"

    def start(self) -> StubAnthropic:
        if self._server is not None:
            return self
        self._server = make_server(
            self.host, self.port, create_app(self.control), threaded=True, request_handler=QuietHandler
        )
        self.port = self._server.server_port
        # A short poll interval keeps stop() quick; tests start and stop many stubs.
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="stub-anthropic", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = None
        self._thread = None

    def wait(self) -> None:
        """Block until the server stops (``python -m`` serves in the foreground this way)."""
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> StubAnthropic:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # --- conveniences delegating to the shared control state -----------------------------
    def enqueue(self, reply: Reply | dict[str, Any], matcher: Matcher | None = None) -> None:
        """Queue a reply (a :class:`Reply` or API-shaped ``{"content": [...]}``)."""
        self.control.enqueue(reply if isinstance(reply, Reply) else reply_from_api(reply), matcher)

    def fail_next(
        self,
        status: int,
        count: int = 1,
        message: str | None = None,
        error_type: str | None = None,
        retry_after: float | None = None,
        matcher: Matcher | None = None,
    ) -> None:
        self.control.fail_next(status, count, message, error_type, retry_after, matcher)

    def fail_midstream(
        self,
        after_events: int = 3,
        count: int = 1,
        error_type: str = "overloaded_error",
        message: str = "stub injected mid-stream error",
        matcher: Matcher | None = None,
    ) -> None:
        self.control.fail_midstream(after_events, count, error_type, message, matcher)

    def set_latency(self, ttft: float = 0.0, tokens_per_second: float | None = None) -> None:
        self.control.set_latency(ttft, tokens_per_second)

    def require_api_key(self, key: str | None) -> None:
        self.control.expected_api_key = key

    def requests(
        self, kind: str | None = None, path: str | None = None, since: int = 0, limit: int | None = None
    ) -> list[dict[str, Any]]:
        return self.control.requests(kind, path, since, limit)

    def reset(self) -> None:
        self.control.reset()
