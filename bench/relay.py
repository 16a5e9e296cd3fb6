"""Relay throughput: one turn streaming N text deltas, through the control plane and direct.

The control plane carries the turn twice over: the model's stream through ``/relay`` (N
Messages API deltas in) and the machine's events to the client (N SSE events out, plus
transcript writes). Sending the same turn straight to the machine still relays the model
stream, so the difference in control-plane CPU is the event path's own cost.
"""

from __future__ import annotations

from statistics import median
from typing import Any

import requests

from bench import procs
from bench.common import Context, launch_many, result, target
from bench.profiler import Recorder, analyse
from bench.sseclient import TurnTrace, post_turn
from bench.stack import ROOT, ControlPlane
from bench.stats import Table, ratio, verdict


def _measure(cp: ControlPlane, http: requests.Session, url: str, headers: dict[str, str], message: str,
             machine_root: int | None) -> dict[str, Any]:
    worker = cp.worker_pid()
    cpu0 = procs.cpu_seconds(worker)
    mcpu0 = procs.tree_cpu_seconds(machine_root) if machine_root else 0.0
    trace: TurnTrace = post_turn(http, url, headers, message, timeout=900)
    cpu = procs.cpu_seconds(worker) - cpu0
    mcpu = (procs.tree_cpu_seconds(machine_root) - mcpu0) if machine_root else None
    wall = trace.duration or 0.0
    stream_window = (trace.last_delta - trace.first_delta) if trace.first_delta and trace.last_delta else None
    deltas = trace.types["text_delta"]
    return {"ok": trace.ok, "error": trace.error, "events": trace.events, "text_deltas": deltas,
            "wall_s": wall, "events_per_s": trace.events / wall if wall else None,
            "delta_window_s": stream_window,
            "deltas_per_s_in_window": deltas / stream_window if stream_window else None,
            "cp_cpu_s": cpu, "cp_cpu_s_per_1000_events": cpu / trace.events * 1000 if trace.events else None,
            "machine_cpu_s": mcpu, "seqs_contiguous": trace.seqs == list(range(trace.seqs[0], trace.seqs[0] + len(trace.seqs)))
            if trace.seqs else None}


def run(ctx: Context) -> dict[str, Any]:
    cp = ctx.control_plane("relay", CONTAINER_PROVIDER="local")
    try:
        return _run(ctx, cp)
    finally:
        cp.stop()


def _run(ctx: Context, cp: ControlPlane) -> dict[str, Any]:
    ctx.model.set_latency(0.0)
    session = launch_many(cp, 1)[0]
    machine_url, machine_token = cp.direct_machine(session.session_id)
    machine_root = cp.machine_root_pids().get(cp.session_row(session.session_id)["machine_key"])
    http = requests.Session()
    via = (cp.chat_url(session.session_id), {"Authorization": f"Bearer {session.key}"})
    direct = (f"{machine_url}/chat", {"Authorization": f"Bearer {machine_token}"})
    n = ctx.sizes.relay_deltas
    message = f"stream {n}"
    for url, headers in (via, direct):
        post_turn(http, url, headers, "stream 200")  # warm-up
    runs: dict[str, list[dict[str, Any]]] = {"platform": [], "direct": []}
    recorder = Recorder(cp.worker_pid(), ctx.profile_path("relay")) if ctx.profile else None
    for i in range(ctx.sizes.relay_rounds):
        if recorder and i == 0:
            recorder.start()
        runs["platform"].append(_measure(cp, http, *via, message, machine_root))
        if recorder and i == 0:
            recorder.stop()
        runs["direct"].append(_measure(cp, http, *direct, message, machine_root))
    # The transcript must hold every event the client saw.
    stored = cp.events(session.session_id, session.key)
    http.close()

    def med(side: str, key: str) -> float | None:
        values = [r[key] for r in runs[side] if r.get(key) is not None]
        return median(values) if values else None

    table = Table(f"Relay throughput: one turn of {n:,} text deltas (median of {ctx.sizes.relay_rounds})",
                  ["platform", "direct to machine", "ratio"])
    for label, key in (("events/s end to end", "events_per_s"), ("text_delta/s while streaming", "deltas_per_s_in_window"),
                       ("turn wall time (s)", "wall_s"), ("control-plane CPU s / 1,000 events", "cp_cpu_s_per_1000_events"),
                       ("control-plane CPU s (turn)", "cp_cpu_s"), ("machine CPU s (agent+CLI)", "machine_cpu_s")):
        a, b = med("platform", key), med("direct", key)
        r = ratio(a, b)
        table.add(label, [a, b, f"{r:.2f}x" if r else None])
    hub_cpu = None
    if med("platform", "cp_cpu_s") is not None and med("direct", "cp_cpu_s") is not None:
        events = med("platform", "events") or 1
        hub_cpu = (med("platform", "cp_cpu_s") - med("direct", "cp_cpu_s")) / events * 1000  # type: ignore[operator]
    table.add("event path only: CPU s / 1,000 events", [hub_cpu, None, None],
              "platform minus direct (the model relay runs in both)")
    profile = None
    if recorder is not None:
        profile = {"error": recorder.error} if recorder.error else analyse(recorder.out, str(ROOT))
    eps = med("platform", "events_per_s")
    data = {"deltas": n, "runs": runs, "transcript_events": len(stored),
            "all_ok": all(r["ok"] for side in runs.values() for r in side), "event_path_cpu_s_per_1000": hub_cpu,
            "profile": profile}
    return result("relay", [table], data, [
        target("relay throughput end to end", ">= 20,000 events/s", eps, verdict(eps, 20_000, at_most=False),
               "events/s"),
    ], profile=profile)
