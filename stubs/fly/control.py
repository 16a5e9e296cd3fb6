"""The stand-in's test controls: the call record, injected faults and (opt-in) rate limits."""

from __future__ import annotations

import copy
import threading
import time
from dataclasses import dataclass
from typing import Any

READ_ACTIONS = ("get",)


@dataclass
class Fault:
    """One injected failure (or delay) for the next ``remaining`` matching calls.

    ``when="before"`` refuses the call without acting, like a throttle or a proxy error;
    ``when="after"`` carries the call out and then answers with the error, the ambiguous
    kind (a create that did create) a careful client must survive.
    """

    status: int | None
    action: str | None = None
    machine_id: str | None = None
    remaining: int = 1
    when: str = "before"
    message: str | None = None
    code: str | None = None
    retry_after: float | None = None
    delay: float = 0.0

    def matches(self, action: str, machine_id: str | None, when: str) -> bool:
        return (self.remaining != 0 and self.when == when and (self.action is None or self.action == action)
                and (self.machine_id is None or self.machine_id == machine_id))

    def describe(self) -> str:
        return self.message or {
            408: "deadline_exceeded: request timed out", 412: "failed_precondition: injected",
            429: "rate limit exceeded", 500: "internal server error", 502: "bad gateway",
            503: "service unavailable", 504: "gateway timeout",
        }.get(self.status or 0, f"injected error {self.status}")


class _Buckets:
    """Fly's documented limits: 1 req/s per action per machine (bursts of 3); Get Machine 5/s (10)."""

    def __init__(self) -> None:
        self._state: dict[tuple[str, str], tuple[float, float]] = {}

    def allow(self, action: str, scope: str) -> bool:
        rate, burst = (5.0, 10) if action in READ_ACTIONS else (1.0, 3)
        now = time.monotonic()
        tokens, updated = self._state.get((action, scope), (float(burst), now))
        tokens = min(float(burst), tokens + (now - updated) * rate)
        if tokens < 1:
            self._state[(action, scope)] = (tokens, now)
            return False
        self._state[(action, scope)] = (tokens - 1, now)
        return True


class StubControl:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._calls: list[dict[str, Any]] = []
        self._faults: list[Fault] = []
        self._buckets: _Buckets | None = None

    # call record ------------------------------------------------------------------------
    def record(self, entry: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            entry = {"seq": len(self._calls) + 1, "status": None, **entry}
            self._calls.append(entry)
            return entry

    def finish(self, entry: dict[str, Any], status: int, fault: bool = False) -> None:
        with self._lock:
            entry["status"] = status
            if fault:
                entry["fault"] = True

    def calls(self, action: str | None = None, machine_id: str | None = None, since: int = 0) -> list[dict[str, Any]]:
        with self._lock:
            return [copy.deepcopy(c) for c in self._calls
                    if c["seq"] > since and (action is None or c.get("action") == action)
                    and (machine_id is None or c.get("machine_id") == machine_id)]

    def clear_calls(self) -> None:
        with self._lock:
            self._calls.clear()

    # faults -------------------------------------------------------------------------------
    def add_fault(self, fault: Fault) -> None:
        with self._lock:
            self._faults.append(fault)

    def take_fault(self, action: str, machine_id: str | None, when: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.matches(action, machine_id, when):
                    if fault.remaining > 0:
                        fault.remaining -= 1
                    return fault
            return None

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def pending_faults(self) -> int:
        with self._lock:
            return sum(1 for f in self._faults if f.remaining != 0)

    # rate limits --------------------------------------------------------------------------
    def set_rate_limits(self, enabled: bool) -> None:
        with self._lock:
            self._buckets = _Buckets() if enabled else None

    def allow(self, action: str, scope: str) -> bool:
        with self._lock:
            return self._buckets is None or self._buckets.allow(action, scope)
