"""Driving a stub that runs in another process (``python -m stubs.anthropic``) over ``/_stub``.

Mirrors :class:`~stubs.anthropic.runtime.StubAnthropic`'s control methods so benchmarks and
e2e tests read the same whether the stub is in-process or not.
"""

from __future__ import annotations

from typing import Any

import httpx

from .control import Matcher
from .reply import Reply, block_to_api


def _match(matcher: Matcher | None) -> dict[str, Any] | None:
    return None if matcher is None else {"kind": matcher.kind, "text_contains": matcher.text_contains}


def _reply_json(reply: Reply | dict[str, Any]) -> dict[str, Any]:
    if isinstance(reply, dict):
        return reply
    return {"content": [block_to_api(b) for b in reply.blocks], "stop_reason": reply.stop_reason}


class StubAnthropicClient:
    def __init__(self, url: str, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=f"{self.url}/_stub", timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self._http.post(path, json=body)
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data

    def enqueue(self, reply: Reply | dict[str, Any], matcher: Matcher | None = None) -> None:
        self._post("/script", {"reply": _reply_json(reply), "match": _match(matcher)})

    def fail_next(
        self,
        status: int,
        count: int = 1,
        message: str | None = None,
        error_type: str | None = None,
        retry_after: float | None = None,
        matcher: Matcher | None = None,
    ) -> None:
        body = {"status": status, "count": count, "message": message, "error_type": error_type}
        self._post("/faults", dict(body, retry_after=retry_after, match=_match(matcher)))

    def fail_midstream(
        self,
        after_events: int = 3,
        count: int = 1,
        error_type: str = "overloaded_error",
        message: str = "stub injected mid-stream error",
        matcher: Matcher | None = None,
    ) -> None:
        body = {"after_events": after_events, "count": count, "error_type": error_type, "message": message}
        self._post("/faults/midstream", dict(body, match=_match(matcher)))

    def set_latency(self, ttft: float = 0.0, tokens_per_second: float | None = None) -> None:
        self._post("/latency", {"ttft": ttft, "tokens_per_second": tokens_per_second})

    def require_api_key(self, key: str | None) -> None:
        self._post("/auth", {"api_key": key})

    def requests(
        self, kind: str | None = None, path: str | None = None, since: int = 0, limit: int | None = None
    ) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"since": since}
        params.update({k: v for k, v in {"kind": kind, "path": path, "limit": limit}.items() if v is not None})
        response = self._http.get("/requests", params=params)
        response.raise_for_status()
        entries: list[dict[str, Any]] = response.json()["requests"]
        return entries

    def state(self) -> dict[str, Any]:
        response = self._http.get("/state")
        response.raise_for_status()
        state: dict[str, Any] = response.json()
        return state

    def reset(self) -> None:
        self._post("/reset", {})
