"""Running the stub in-process on a background thread, for tests and benchmarks
(``stubs.serving`` holds the start-up code both stand-ins share)."""

from __future__ import annotations

from types import TracebackType
from typing import Any

from stubs.serving import BackgroundServer

from .control import Matcher, StubControl
from .reply import Reply, reply_from_api
from .server import create_app


class StubAnthropic(BackgroundServer):
    """A scripted Messages API on ``http://host:port`` (``port=0`` picks a free port)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, control: StubControl | None = None) -> None:
        super().__init__(host, port)
        self.control = control or StubControl()

    def start(self) -> StubAnthropic:
        if not self.serving:
            self._serve(create_app(self.control), "stub-anthropic")
        return self

    def stop(self) -> None:
        self._shutdown()

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
