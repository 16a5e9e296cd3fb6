"""Per-user quotas and request rate limits. Zero means "no limit" for every setting.

Budgets are enforced at the model relay, before a request is forwarded, so an agent that
runs out mid-turn gets a clear error from "the model" and reports it; launches and chats
are rate-limited with 429 and ``Retry-After``.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from control.settings import Settings
from control.store import Store
from wire.errors import RateLimited

WINDOW = 60.0


@dataclass(frozen=True)
class QuotaUse:
    """One limit and how much of it a user has used (``limit`` None: unlimited)."""

    name: str
    setting: str
    limit: float | None
    used: float
    unit: str
    window: str


class Quotas:
    def __init__(self, settings: Settings, store: Store, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.store = store
        self._clock = clock
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()
        self._pruned_at = clock()

    def check_rate(self, who: str) -> None:
        """Sliding one-minute window per principal (or client address)."""
        limit = self.settings.rate_limit_per_minute
        if limit <= 0:
            return
        now = self._clock()
        with self._lock:
            if now - self._pruned_at >= WINDOW:
                self._prune(now)
            hits = self._hits.setdefault(who, deque())
            while hits and now - hits[0] >= WINDOW:
                hits.popleft()
            if len(hits) >= limit:
                retry = max(1, math.ceil(WINDOW - (now - hits[0])))
                raise RateLimited(f"too many requests: {limit} a minute", details={"retry_after": retry})
            hits.append(now)

    def prune(self) -> None:
        """Forget callers with no request in the last window (also done once a window by
        ``check_rate``, so the table holds only recent callers)."""
        with self._lock:
            self._prune(self._clock())

    def _prune(self, now: float) -> None:
        for who in [w for w, hits in self._hits.items() if not hits or now - hits[-1] >= WINDOW]:
            del self._hits[who]
        self._pruned_at = now

    def tracked(self) -> int:
        """Callers currently tracked by the rate limit (for tests and debugging)."""
        with self._lock:
            return len(self._hits)

    def check_launch(self, owner: str | None) -> None:
        s = self.settings
        if s.quota_max_sessions:
            existing = self._sessions_of(owner)
            if existing >= s.quota_max_sessions:
                raise RateLimited(f"you have {existing} sessions; the limit is {s.quota_max_sessions}. "
                                  "Delete one first.", code="quota_exceeded",
                                  details={"max_sessions": s.quota_max_sessions})
        if s.quota_launches_per_hour:
            launched = self._launches_last_hour(owner)
            if launched >= s.quota_launches_per_hour:
                raise RateLimited(f"the limit is {s.quota_launches_per_hour} launches an hour", code="quota_exceeded",
                                  details={"launches_per_hour": s.quota_launches_per_hour, "retry_after": 300})

    def budget_left(self, owner: str | None) -> str | None:
        """None while within today's budget, else a message for the agent."""
        s = self.settings
        if not (s.quota_daily_tokens or s.quota_daily_usd):
            return None
        used = self._used_today(owner)
        if s.quota_daily_tokens and used["tokens"] >= s.quota_daily_tokens:
            return (f"AgCluster daily token budget exhausted ({int(used['tokens'])} of {s.quota_daily_tokens} "
                    "tokens used)")
        if s.quota_daily_usd and used["cost_usd"] >= s.quota_daily_usd:
            return f"AgCluster daily budget exhausted (${used['cost_usd']:.4f} of ${s.quota_daily_usd:.2f} used)"
        return None

    def report(self, owner: str | None, rate_key: str) -> list[QuotaUse]:
        """Every limit with what ``owner`` has used of it, counted exactly as the checks
        above count (for the dashboard's Usage page and ``GET /api/quotas``)."""
        s = self.settings
        today = self._used_today(owner)
        with self._lock:
            hits = self._hits.get(rate_key)
            recent = sum(1 for t in hits if self._clock() - t < WINDOW) if hits else 0

        def limit(value: float) -> float | None:
            return value or None

        return [
            QuotaUse("max_sessions", "QUOTA_MAX_SESSIONS", limit(s.quota_max_sessions), self._sessions_of(owner),
                     "sessions", "kept at once (running or stopped)"),
            QuotaUse("launches_per_hour", "QUOTA_LAUNCHES_PER_HOUR", limit(s.quota_launches_per_hour),
                     self._launches_last_hour(owner), "launches", "the last hour"),
            QuotaUse("daily_tokens", "QUOTA_DAILY_TOKENS", limit(s.quota_daily_tokens), today["tokens"], "tokens",
                     "today (UTC)"),
            QuotaUse("daily_usd", "QUOTA_DAILY_USD", limit(s.quota_daily_usd), round(today["cost_usd"], 6), "usd",
                     "today (UTC)"),
            QuotaUse("rate_limit_per_minute", "RATE_LIMIT_PER_MINUTE", limit(s.rate_limit_per_minute), recent,
                     "requests", "the last minute"),
        ]

    def _sessions_of(self, owner: str | None) -> int:
        return len(self.store.list_sessions(owner=owner) if owner else self.store.list_sessions())

    def _launches_last_hour(self, owner: str | None) -> int:
        return self.store.count_launches_since(owner, time.time() - 3600)

    def _used_today(self, owner: str | None) -> dict[str, float]:
        """Since midnight UTC, the day the usage report's days are cut at."""
        return self.store.usage_since(owner, time.time() - (time.time() % 86_400))
