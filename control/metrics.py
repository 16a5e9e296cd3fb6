"""Prometheus metrics, exposed at ``GET /metrics`` (``control.blueprints.metrics``).

Counters and histograms live in one module-level :class:`CollectorRegistry` of their own
(never prometheus_client's global default), because the code that feeds them (launches,
turns, the relay) runs in background threads with no app at hand, and a process that
builds two apps (the tests do) must not register anything twice. What describes *state*
rather than *history* (sessions by state, the warm pool) is read from the app at scrape
time by a per-app collector, so it can never drift from SQLite or the pool.

Labels are bounded on purpose: event types come from the fixed event schema, outcomes and
directions from small fixed sets, HTTP routes from the URL map's rules (never raw paths),
so a client cannot blow up the number of series.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable
from typing import Any, Concatenate, ParamSpec, TypeVar

from flask import Flask, Response, request
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric

from control.session_status import SessionStatus
from wire.events import EVENT_TYPES

TOKEN_KINDS = ("input", "output", "cache_read", "cache_write")
LAUNCH_OUTCOMES = ("ok", "rejected", "failed")
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_SECONDS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 7.5, 10.0, 15.0, 30.0, 60.0, 120.0)
_FAST_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)

REGISTRY = CollectorRegistry(auto_describe=True)

LAUNCHES = Counter("agcluster_launches", "Session launches by provider and outcome "
                   "(ok; rejected = the request was refused; failed = no machine could be started).",
                   ["provider", "outcome"], registry=REGISTRY)
LAUNCH_SECONDS = Histogram("agcluster_launch_duration_seconds",
                           "Wall time of successful launches, from request to a configured machine.",
                           ["provider"], buckets=_SECONDS, registry=REGISTRY)
FIRST_EVENT_SECONDS = Histogram("agcluster_chat_first_event_seconds",
                                "Time from a turn being accepted to the agent's first event "
                                "(the echoed user message does not count).", buckets=_SECONDS, registry=REGISTRY)
EVENTS = Counter("agcluster_events_relayed", "Events published to followers and the transcript, by type.",
                 ["type"], registry=REGISTRY)
RELAY_BYTES = Counter("agcluster_relay_bytes", "Bytes through the model relay: upstream (machine to model API) "
                      "and downstream (model API to machine).", ["direction"], registry=REGISTRY)
PROVIDER_ERRORS = Counter("agcluster_provider_errors", "Errors from the APIs the control plane depends on: "
                          "the machine provider (local, docker, fly_machines) and the model API (anthropic).",
                          ["provider", "kind"], registry=REGISTRY)
TOKENS = Counter("agcluster_tokens", "Model tokens metered by the relay, by kind.", ["kind"], registry=REGISTRY)
COST = Counter("agcluster_cost_usd", "Model cost in US dollars.", registry=REGISTRY)
HTTP_REQUESTS = Counter("agcluster_http_requests", "Control-plane HTTP requests by route rule, method and status.",
                        ["route", "method", "status"], registry=REGISTRY)
HTTP_SECONDS = Histogram("agcluster_http_request_duration_seconds",
                         "Time to the response's headers (a stream's body is not included).",
                         ["route", "method"], buckets=_FAST_SECONDS, registry=REGISTRY)

# Series that should exist (at zero) from the first scrape, so rate() and alerts work
# before the first launch or turn.
for _kind in TOKEN_KINDS:
    TOKENS.labels(_kind)
for _direction in ("upstream", "downstream"):
    RELAY_BYTES.labels(_direction)


# The functions the rest of the control plane calls ----------------------------------
def observe_launch(provider: str, seconds: float, outcome: str = "ok") -> None:
    """Count a launch; only successful ones feed the latency histogram, since a refused
    request is fast and would make launches look quicker than they are."""
    outcome = outcome if outcome in LAUNCH_OUTCOMES else "failed"
    LAUNCHES.labels(provider, outcome).inc()
    if outcome == "ok":
        LAUNCH_SECONDS.labels(provider).observe(max(0.0, seconds))


def observe_first_event(seconds: float) -> None:
    FIRST_EVENT_SECONDS.observe(max(0.0, seconds))


# Label children bound once: a labels() lookup per event or chunk showed up in profiles.
_EVENT_COUNTERS = {t: EVENTS.labels(t) for t in (*EVENT_TYPES, "other")}
_RELAY_COUNTERS = {d: RELAY_BYTES.labels(d) for d in ("upstream", "downstream")}


def count_event(type_: str, n: int = 1) -> None:
    _EVENT_COUNTERS.get(type_, _EVENT_COUNTERS["other"]).inc(n)


def count_relay_bytes(n: int, direction: str = "downstream") -> None:
    if n > 0:
        _RELAY_COUNTERS["upstream" if direction == "upstream" else "downstream"].inc(n)


def count_tokens(input_tokens: int = 0, output_tokens: int = 0, cache_read_tokens: int = 0,
                 cache_write_tokens: int = 0, cost_usd: float = 0.0) -> None:
    """Keyword names match ``UsageMeter.totals()`` and ``Store.add_usage`` so the relay
    can pass the same dict to both."""
    counts = (input_tokens, output_tokens, cache_read_tokens, cache_write_tokens)
    for kind, value in zip(TOKEN_KINDS, counts, strict=True):
        if value > 0:
            TOKENS.labels(kind).inc(value)
    if cost_usd > 0:
        COST.inc(cost_usd)


def count_provider_error(provider: str, kind: str) -> None:
    PROVIDER_ERRORS.labels(provider[:32], kind[:64]).inc()


def observe_model_status(status: int) -> None:
    """The model API's own error answers (429, 529, ...) count as provider errors of the
    model API, labelled by status so overload and auth failures can be told apart."""
    if status >= 400:
        count_provider_error("anthropic", str(int(status)))


_S = TypeVar("_S")
_P = ParamSpec("_P")
_R = TypeVar("_R")


def timed_launch(method: Callable[Concatenate[_S, _P], _R]) -> Callable[Concatenate[_S, _P], _R]:
    """Decorates ``SessionService.launch``: one line there instead of timing code woven
    through its error handling. A 4xx ``ApiError`` is a rejected request; anything else
    raised is a failed launch."""

    def wrapper(self: _S, /, *args: _P.args, **kwargs: _P.kwargs) -> _R:
        started = time.perf_counter()
        outcome = "failed"
        try:
            result = method(self, *args, **kwargs)
            outcome = "ok"
            return result
        except Exception as exc:
            outcome = "rejected" if 400 <= int(getattr(exc, "status", 500)) < 500 else "failed"
            raise
        finally:
            observe_launch(getattr(getattr(self, "provider", None), "name", "unknown"),
                           time.perf_counter() - started, outcome)

    functools.update_wrapper(wrapper, method)
    return wrapper


class FirstEventClock:
    """One per turn: observes the time to the first event the agent itself produced."""

    IGNORED = frozenset({"user", "session"})

    def __init__(self) -> None:
        self._started = time.perf_counter()
        self._seen = False

    def see(self, event: dict[str, Any]) -> None:
        if not self._seen and event.get("type") not in self.IGNORED:
            self._seen = True
            observe_first_event(time.perf_counter() - self._started)


# Scrape-time state -------------------------------------------------------------------
class _Shared:
    """Forwards the module registry into each app's registry (one exposition per app)."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()

    def describe(self) -> Iterable[Metric]:
        return []


class StateCollector:
    """Reads sessions and the warm pool from the app when Prometheus scrapes."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterable[Metric]:
        ext = self.app.extensions.get("agcluster")
        if ext is None:
            return
        sessions = GaugeMetricFamily("agcluster_sessions", "Sessions by state and provider.",
                                     labels=["state", "provider"])
        counts: dict[tuple[str, str], int] = {(str(state), ext.provider.name): 0 for state in SessionStatus}
        for row in ext.store.list_sessions():
            key = (str(row.status), row.provider)
            counts[key] = counts.get(key, 0) + 1
        for (state, provider), n in sorted(counts.items()):
            sessions.add_metric([state, provider], n)
        yield sessions
        pool = ext.sessions.pool
        ready = GaugeMetricFamily("agcluster_warm_pool_ready", "Started, unclaimed machines in the warm pool.")
        ready.add_metric([], pool.ready_count())
        yield ready
        target = GaugeMetricFamily("agcluster_warm_pool_target", "Machines the warm pool keeps ready per class.")
        target.add_metric([], pool.size)
        yield target
        hot = GaugeMetricFamily("agcluster_hot_pool_ready", "Machines configured ahead for a preset, unclaimed.",
                                labels=["preset"])
        for preset, numbers in sorted(pool.hot_counts().items()):  # bounded: the presets WARM_POOL names
            hot.add_metric([preset], numbers["ready"])
        yield hot


def registry_for(app: Flask) -> CollectorRegistry:
    """The registry ``/metrics`` exposes for this app (built once per app)."""
    registry = app.extensions.get("agcluster_metrics")
    if registry is None:
        registry = CollectorRegistry()
        registry.register(_Shared())
        registry.register(StateCollector(app))
        app.extensions["agcluster_metrics"] = registry
    return registry


def install(app: Flask) -> None:
    """Per-route HTTP counters (``GET /metrics`` itself is ``control.blueprints.metrics``)."""
    if app.extensions.get("agcluster_metrics_hooks"):  # already installed on this app
        return
    app.extensions["agcluster_metrics_hooks"] = True

    @app.before_request
    def _start_clock() -> None:
        request.environ["agcluster.metrics_started"] = time.perf_counter()

    @app.after_request
    def _count(resp: Response) -> Response:
        started = request.environ.get("agcluster.metrics_started")
        route = request.url_rule.rule if request.url_rule is not None else "unmatched"
        method = request.method if request.method in _METHODS else "other"
        HTTP_REQUESTS.labels(route, method, str(resp.status_code)).inc()
        if started is not None:
            HTTP_SECONDS.labels(route, method).observe(time.perf_counter() - started)
        return resp
