"""M idle SSE streams held open on one control plane: its RSS, idle CPU and fan-out.

Each stream is ``GET /api/agents/sessions/{id}/events?follow=1`` with
``Accept: text/event-stream`` on a plain socket (so the client side costs almost nothing).
After the streams are open and idle, one chat on the session checks they are all live:
the time until every stream has received that turn's ``done`` is the fan-out time.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import time
from typing import Any

import requests

from bench import procs
from bench.common import Context, launch_many, result, target
from bench.stack import ControlPlane
from bench.stats import Table, verdict

IDLE_HOLD_SECONDS = 5.0


class RawStream:
    def __init__(self, cp: ControlPlane, session_id: str, key: str, after: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", cp.port), timeout=30)
        request = (f"GET /api/agents/sessions/{session_id}/events?follow=1&after={after} HTTP/1.1\r\n"
                   f"Host: 127.0.0.1:{cp.port}\r\nAuthorization: Bearer {key}\r\n"
                   "Accept: text/event-stream\r\nCache-Control: no-cache\r\n\r\n")
        self.sock.sendall(request.encode())
        self.sock.setblocking(False)
        self.buffer = b""
        self.status: int | None = None
        self.done_at: float | None = None

    def feed(self) -> bool:
        """Read what is there; False once the peer closed."""
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return True
        except OSError:
            return False
        if not data:
            return False
        self.buffer = (self.buffer + data)[-4096:] if self.status is not None else self.buffer + data
        if self.status is None and b"\r\n\r\n" in self.buffer:
            line = self.buffer.split(b"\r\n", 1)[0].split()
            self.status = int(line[1]) if len(line) > 1 and line[1].isdigit() else -1
        if self.done_at is None and b"event: done" in self.buffer:
            self.done_at = time.perf_counter()
        return True

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


def _pump(streams: list[RawStream], until: Any, timeout: float) -> None:
    selector = selectors.DefaultSelector()
    for s in streams:
        selector.register(s.sock, selectors.EVENT_READ, s)
    deadline = time.monotonic() + timeout
    try:
        while not until() and time.monotonic() < deadline:
            for key, _ in selector.select(timeout=0.2):
                if not key.data.feed():
                    selector.unregister(key.fileobj)
    finally:
        selector.close()


def run(ctx: Context) -> dict[str, Any]:
    cp = ctx.control_plane("streams", CONTAINER_PROVIDER="local")
    streams: list[RawStream] = []
    try:
        ctx.model.set_latency(0.0)
        session = launch_many(cp, 1)[0]
        auth = {"Authorization": f"Bearer {session.key}"}
        requests.post(cp.chat_url(session.session_id), json={"message": "stream 3"}, headers=auth, timeout=120)
        worker = cp.worker_pid()
        base = cp.rss_mb()
        levels: dict[int, dict[str, Any]] = {}
        for m in ctx.sizes.streams:
            last = cp.events(session.session_id, session.key)[-1]["seq"]
            for s in streams:
                s.done_at = None
                s.buffer = b""  # the previous turn's "event: done" must not count again
            opened = time.perf_counter()
            while len(streams) < m:
                streams.append(RawStream(cp, session.session_id, session.key, last))
            _pump(streams, lambda: all(s.status is not None for s in streams), 120)
            open_s = time.perf_counter() - opened
            ok = sum(1 for s in streams if s.status == 200)
            cpu0 = procs.cpu_seconds(worker)
            hold_start = time.monotonic()
            hold_until = hold_start + IDLE_HOLD_SECONDS
            _pump(streams, lambda until=hold_until: time.monotonic() >= until, IDLE_HOLD_SECONDS + 1)
            idle_cpu = (procs.cpu_seconds(worker) - cpu0) / (time.monotonic() - hold_start)
            rss = cp.rss_mb()
            # Fan-out: one turn, every stream must see its ``done``.
            sent = time.perf_counter()
            requests.post(cp.chat_url(session.session_id), json={"message": "stream 3"}, headers=auth, timeout=120)
            _pump(streams, lambda: all(s.done_at is not None for s in streams if s.status == 200), 120)
            arrived = [s.done_at - sent for s in streams if s.done_at is not None]
            levels[m] = {"open": ok, "open_seconds": open_s, "rss_mb": rss["rss_mb"],
                         "worker_rss_mb": rss["worker_rss_mb"],
                         "kb_per_stream": (rss["rss_mb"] - base["rss_mb"]) * 1024 / m,
                         "idle_cpu_percent": idle_cpu * 100, "saw_done": len(arrived),
                         "fanout_last_ms": max(arrived) * 1000 if arrived else None}
        for s in streams:
            s.close()
        streams.clear()
        after_close = cp.rss_mb()
        cp.delete_session(session.session_id, session.key)
    finally:
        for s in streams:
            s.close()
        cp.stop()
    columns = [f"M={m}" for m in levels]
    table = Table(f"Idle SSE streams held by one control plane (baseline RSS {base['rss_mb']:.0f} MB with one session)",
                  columns)
    table.add("streams open (HTTP 200)", [lv["open"] for lv in levels.values()])
    table.add("control-plane RSS (MB)", [lv["rss_mb"] for lv in levels.values()], "arbiter+worker")
    table.add("RSS per stream (KB)", [lv["kb_per_stream"] for lv in levels.values()], "(RSS - baseline) / M")
    table.add("idle CPU (% of a core)", [lv["idle_cpu_percent"] for lv in levels.values()],
              f"over {IDLE_HOLD_SECONDS:.0f} s idle")
    table.add("streams that saw the next turn's done", [lv["saw_done"] for lv in levels.values()])
    table.add("fan-out: chat sent → last stream got done (ms)", [lv["fanout_last_ms"] for lv in levels.values()],
              "includes the turn itself")
    data = {"levels": levels, "baseline": base, "after_close": after_close}
    top = max(levels)
    rss_top = levels[top]["rss_mb"]
    return result("streams", [table], data, [
        target(f"{top} idle streams, control-plane RSS", "1,000 streams within 300 MB", rss_top,
               verdict(rss_top, 300) if top >= 1000 else f"{verdict(rss_top, 300)} (only {top} measured)", "MB"),
    ])
