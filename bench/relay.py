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
from bench.stats import Table, is_na, na, ratio, verdict
from control import unixhttp


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
            "machine_cpu_s": mcpu,
            "seqs_contiguous": trace.seqs == list(range(trace.seqs[0], trace.seqs[0] + len(trace.seqs)))
            if trace.seqs else None}


def run(ctx: Context) -> dict[str, Any]:
    """This tree, then the baseline tree ("before"), each platform vs direct on its own machine."""
    sides: dict[str, Any] = {}
    for side in ("after", "before"):
        if side == "before" and isinstance(ctx.baseline, str):
            sides[side] = na(ctx.baseline)
            continue
        try:
            cp = ctx.control_plane("relay", before=side == "before", CONTAINER_PROVIDER="local")
        except Exception as exc:  # noqa: BLE001 - the other side still runs
            sides[side] = na(f"{type(exc).__name__}: {str(exc)[:160]}")
            continue
        try:
            sides[side] = _run(ctx, cp, profile=ctx.profile and side == "after")
        except Exception as exc:  # noqa: BLE001 - reported as this side's figure; the other side stands
            sides[side] = na(f"{type(exc).__name__}: {str(exc)[:160]}")
        finally:
            cp.stop()
    n = ctx.sizes.relay_deltas
    table = Table(f"Relay throughput: one turn of {n:,} text deltas (median of {ctx.sizes.relay_rounds}, "
                  "platform and direct alternating; before = the baseline tree on this box now)",
                  ["platform", "direct to machine", "ratio", "before: platform", "before: direct", "before: ratio"])
    rows = (("events/s end to end", "events_per_s"), ("text_delta/s while streaming", "deltas_per_s_in_window"),
            ("turn wall time (s)", "wall_s"), ("control-plane CPU s / 1,000 events", "cp_cpu_s_per_1000_events"),
            ("control-plane CPU s (turn)", "cp_cpu_s"), ("machine CPU s (agent+CLI)", "machine_cpu_s"))
    for label, key in rows:
        cells: list[Any] = []
        for side in ("after", "before"):
            got = sides[side]
            if is_na(got):
                cells += [got, got, got]
                continue
            a, b = got["median"]["platform"].get(key), got["median"]["direct"].get(key)
            r = ratio(a, b)
            cells += [a, b, f"{r:.2f}x" if r else None]
        table.add(label, cells)
    table.add("event path only: CPU s / 1,000 events",
              [None if is_na(sides[s]) else sides[s]["event_path_cpu_s_per_1000"] for s in ("after",)] + [None, None]
              + [sides["before"] if is_na(sides["before"]) else sides["before"]["event_path_cpu_s_per_1000"],
                 None, None], "platform minus direct (the model relay runs in both)")
    table.add("transcript = what the client saw", [None if is_na(sides[s]) else sides[s]["transcript_matches"]
                                                   for s in ("after",)] + [None] * 5,
              "every event of a checked turn, decoded, equal to the stored one")
    after = sides["after"]
    profile = None if is_na(after) else after.get("profile")
    data = {"deltas": n, "after": after, "before": sides["before"]}
    targets = []
    if not is_na(after):
        r = ratio(after["median"]["platform"].get("events_per_s"), after["median"]["direct"].get("events_per_s"))
        targets.append(target("streaming through the platform / straight from the machine", ">= 0.90x",
                              f"{r:.2f}x" if r else None, verdict(r, 0.9, at_most=False) if r else "n/a"))
        cpu = after["event_path_cpu_s_per_1000"]
        targets.append(target("control-plane CPU per 1,000 events (event path)", "<= 0.030 s", cpu,
                              verdict(cpu, 0.030), "s"))
    return result("relay", [table], data, targets, profile=profile)


def _run(ctx: Context, cp: ControlPlane, profile: bool) -> dict[str, Any]:
    ctx.model.set_latency(0.0)
    session = launch_many(cp, 1)[0]
    machine_url, machine_token = cp.direct_machine(session.session_id)
    machine_root = cp.machine_root_pids().get(cp.session_row(session.session_id)["machine_key"])
    http = unixhttp.Session()
    via = (cp.chat_url(session.session_id), {"Authorization": f"Bearer {session.key}"})
    direct = (f"{machine_url}/chat", {"Authorization": f"Bearer {machine_token}"})
    n = ctx.sizes.relay_deltas
    message = f"stream {n}"
    # Warm-up at full size both ways: the CLI's JavaScript engine speeds up over its first long
    # stream, and whichever path ran first would otherwise pay for it.
    for url, headers in (via, direct):
        post_turn(http, url, headers, message, timeout=900)
    runs: dict[str, list[dict[str, Any]]] = {"platform": [], "direct": []}
    recorder = Recorder(cp.worker_pid(), ctx.profile_path("relay")) if profile else None
    for i in range(ctx.sizes.relay_rounds):
        order = [("platform", via), ("direct", direct)]
        for side, (url, headers) in order if i % 2 == 0 else order[::-1]:
            profiled = recorder is not None and i == 0 and side == "platform"
            if profiled and recorder is not None:
                recorder.start()
            runs[side].append(_measure(cp, http, url, headers, message, machine_root))
            if profiled and recorder is not None:
                recorder.stop()
    # The transcript holds every event a client saw, exactly (checked on a shorter turn).
    seen = post_turn(http, *via, "stream 500", keep=True, timeout=300)
    stored = cp.events(session.session_id, session.key, after=seen.kept[0]["seq"] - 1) if seen.kept else []
    http.close()

    def med(side: str, key: str) -> float | None:
        values = [r[key] for r in runs[side] if r.get(key) is not None]
        return median(values) if values else None

    keys = ("events_per_s", "deltas_per_s_in_window", "wall_s", "cp_cpu_s_per_1000_events", "cp_cpu_s",
            "machine_cpu_s", "events")
    medians = {side: {k: med(side, k) for k in keys} for side in runs}
    hub_cpu = None
    if medians["platform"]["cp_cpu_s"] is not None and medians["direct"]["cp_cpu_s"] is not None:
        events = medians["platform"]["events"] or 1
        hub_cpu = (medians["platform"]["cp_cpu_s"] - medians["direct"]["cp_cpu_s"]) / events * 1000
    profile_data = None
    if recorder is not None:
        profile_data = {"error": recorder.error} if recorder.error else analyse(recorder.out, str(ROOT))
    return {"runs": runs, "median": medians, "event_path_cpu_s_per_1000": hub_cpu,
            "transcript_matches": bool(seen.kept) and stored[: len(seen.kept)] == seen.kept,
            "all_ok": all(r["ok"] for side in runs.values() for r in side), "profile": profile_data}
