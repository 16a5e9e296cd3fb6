"""Pacing a stream of events onto the wire: latency, keep-alive pings and mid-stream faults.

``on_event`` runs *before* each event is written so the request log is already up to date
when the client sees ``message_delta``/``message_stop``: a test that reads the log right
after the CLI finishes can never observe a stale entry.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from typing import Any

from .control import Latency, StreamFault
from .stream import Event, delta_size, error_body, format_sse

PING: Event = ("ping", {"type": "ping"})


class Pacer:
    """Sleeps in slices so long waits still emit pings (clients treat silence as a stall)."""

    def __init__(self, ping_interval: float, sleep: Callable[[float], None], clock: Callable[[], float]) -> None:
        self.ping_interval = ping_interval
        self.sleep = sleep
        self.clock = clock
        self.last_ping = clock()

    def wait(self, seconds: float) -> Iterator[str]:
        deadline = self.clock() + seconds
        while True:
            remaining = deadline - self.clock()
            if remaining <= 0:
                return
            until_ping = self.ping_interval - (self.clock() - self.last_ping)
            if until_ping <= 0:
                yield self.ping()
                continue
            self.sleep(min(remaining, until_ping))

    def ping(self) -> str:
        self.last_ping = self.clock()
        return format_sse(*PING)

    def maybe_ping(self) -> Iterator[str]:
        if self.clock() - self.last_ping >= self.ping_interval:
            yield self.ping()


def deliver(
    events: Iterator[Event],
    latency: Latency,
    fault: StreamFault | None,
    on_event: Callable[[str, dict[str, Any]], None],
    ping_interval: float = 5.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[str]:
    """SSE text chunks for ``events``, with the configured latency and fault applied."""
    pacer = Pacer(ping_interval, sleep, clock)
    for sent, (name, data) in enumerate(events):
        if fault is not None and sent >= fault.after_events:
            body = error_body(fault.error_type, fault.message)
            on_event("error", body)
            yield format_sse("error", body)
            return
        if sent == 1 and latency.ttft > 0:
            yield from pacer.wait(latency.ttft)
        if name == "content_block_delta" and latency.tokens_per_second:
            tokens = max(1, math.ceil(delta_size(data) / 4))
            yield from pacer.wait(tokens / latency.tokens_per_second)
        yield from pacer.maybe_ping()
        on_event(name, data)
        yield format_sse(name, data)
        if name == "message_start":
            yield pacer.ping()
