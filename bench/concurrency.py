"""N sessions chatting at once: turn latency, memory per session, control-plane RSS.

Every session's turn is a real agent turn (a Bash tool call and a reply) against the
stand-in with a fixed time-to-first-token. Memory per session is the machine's whole process
tree (sandbox, machine agent, CLI): RSS (what ``top`` shows; shared pages counted in every
process) and PSS (shared pages divided among their users, so it sums honestly).
"""

from __future__ import annotations

import threading
from typing import Any

import requests

from bench import procs, stack
from bench.common import MODEL_TTFT, Context, Session, launch_many, result, target
from bench.sseclient import TurnTrace, post_turn
from bench.stack import ControlPlane
from bench.stats import Table, is_na, ms, na, summarize

UPSTREAM_IDLE_MIB = 178.0
"""Upstream AgCluster's idle session, measured on this box for issue 15 (not reproducible here)."""


def _round(cp: ControlPlane, sessions: list[Session], tag: str) -> list[TurnTrace]:
    traces: list[TurnTrace | None] = [None] * len(sessions)
    barrier = threading.Barrier(len(sessions))

    def one(i: int, session: Session) -> None:
        with requests.Session() as http:
            barrier.wait()
            traces[i] = post_turn(http, cp.chat_url(session.session_id),
                                  {"Authorization": f"Bearer {session.key}"}, f"run: echo {tag}-{i}", timeout=600)

    threads = [threading.Thread(target=one, args=(i, s), daemon=True) for i, s in enumerate(sessions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=900)
    return [t if t is not None else TurnTrace(error="client thread did not finish") for t in traces]


def _session_memory(cp: ControlPlane, provider: str, sessions: list[Session]) -> list[dict[str, float]]:
    out = []
    if provider == "local":
        roots = cp.machine_root_pids()
        tree = procs.children_map()
        for s in sessions:
            root = roots.get(cp.session_row(s.session_id).get("machine_key", ""))
            if root:
                roles = procs.tree_breakdown_kb(root, tree)
                row = {"rss_mb": sum(r["rss_kb"] for r in roles.values()) / 1024,
                       "pss_mb": sum(r["pss_kb"] for r in roles.values()) / 1024}
                row.update({f"pss_mb:{role}": r["pss_kb"] / 1024 for role, r in roles.items()})
                out.append(row)
    else:
        for s in sessions:
            machine = cp.session_row(s.session_id).get("machine_id")
            used = stack.docker_memory_mb(machine) if machine else None
            if used is not None:
                out.append({"rss_mb": used, "pss_mb": used})
    return out


def measure(ctx: Context, provider: str) -> dict[str, Any]:
    cp = ctx.control_plane(f"concurrency-{provider}", CONTAINER_PROVIDER=provider)
    try:
        ctx.model.set_latency(MODEL_TTFT)
        base_rss = cp.rss_mb()
        sizes = ctx.sizes.concurrency if provider == "local" else ctx.sizes.concurrency_docker
        sessions = launch_many(cp, max(sizes), parallel=2)
        levels = {}
        for n in sizes:
            active = sessions[:n]
            traces: list[TurnTrace] = []
            for r in range(ctx.sizes.concurrency_rounds):
                traces += _round(cp, active, f"n{n}r{r}")
            durations = [t.duration for t in traces if t.ok and t.duration is not None]
            memory = _session_memory(cp, provider, active)
            levels[n] = {
                "turns": len(traces), "failed": sum(1 for t in traces if not t.ok),
                "failures": [t.error or dict(t.types) for t in traces if not t.ok][:5],
                "latency_ms": {k: ms(v) if k != "n" else v for k, v in summarize(durations).items()},
                "session_rss_mb": summarize([m["rss_mb"] for m in memory]),
                "session_pss_mb": summarize([m["pss_mb"] for m in memory]),
                "session_pss_mb_by_role": {
                    role: summarize([m[f"pss_mb:{role}"] for m in memory if f"pss_mb:{role}" in m])
                    for role in procs.ROLES},
                "cp": cp.rss_mb(),
            }
        for s in sessions:
            cp.delete_session(s.session_id, s.key)
        return {"levels": levels, "cp_idle": base_rss, "sessions_launched": len(sessions)}
    finally:
        ctx.model.set_latency(0.0)
        cp.stop()


def run(ctx: Context) -> dict[str, Any]:
    data: dict[str, Any] = {}
    tables = []
    for provider in ("local", "docker"):
        if provider not in ctx.providers:
            continue
        missing = stack.docker_provider_missing() if provider == "docker" else None
        try:
            data[provider] = na(missing) if missing else measure(ctx, provider)
        except Exception as exc:  # noqa: BLE001 - report, keep going
            data[provider] = na(f"{type(exc).__name__}: {str(exc)[:160]}")
        if is_na(data[provider]):
            table = Table(f"Concurrency ({provider})", ["-"])
            table.add("all figures", [data[provider]])
            tables.append(table)
            continue
        levels = data[provider]["levels"]
        columns = [f"N={n}" for n in levels]
        table = Table(f"Concurrency ({provider}): N sessions each running a Bash-tool turn at once, "
                      f"{ctx.sizes.concurrency_rounds} rounds; model TTFT {MODEL_TTFT * 1000:.0f} ms", columns)
        table.add("turn latency p50 (ms)", [lv["latency_ms"]["p50"] for lv in levels.values()])
        table.add("turn latency p95 (ms)", [lv["latency_ms"]["p95"] for lv in levels.values()])
        first = next(iter(levels.values()))["latency_ms"]["p50"]
        table.add("p50 / N=1 p50", [f"{lv['latency_ms']['p50'] / first:.2f}x"
                                    if first and lv["latency_ms"]["p50"] else None for lv in levels.values()])
        table.add("failed turns", [f"{lv['failed']} / {lv['turns']}" for lv in levels.values()])
        if provider == "local":
            table.add("memory per session RSS (MB)", [lv["session_rss_mb"]["mean"] for lv in levels.values()],
                      "sandbox + machine agent + CLI process tree")
            table.add("memory per session PSS (MB)", [lv["session_pss_mb"]["mean"] for lv in levels.values()],
                      "shared pages split among their users")
            for role in procs.ROLES:
                table.add(f"  of which {role} PSS (MB)",
                          [lv["session_pss_mb_by_role"][role]["mean"] for lv in levels.values()])
        else:
            table.add("memory per session (MB)", [lv["session_rss_mb"]["mean"] for lv in levels.values()],
                      "container cgroup usage (docker stats)")
        table.add("control-plane RSS (MB)", [lv["cp"]["rss_mb"] for lv in levels.values()],
                  f"arbiter+worker; {data[provider]['sessions_launched']} sessions exist; "
                  f"{data[provider]['cp_idle']['rss_mb']:.0f} MB before any launch")
        tables.append(table)
    targets = []
    local = data.get("local")
    if local and not is_na(local):
        top = max(local["levels"])
        level = local["levels"][top]
        failed = level["failed"]
        targets.append(target(f"{top} concurrent sessions (local), each a Bash turn, no failed turn",
                              "50 sessions, 0 failed", f"{top} sessions, {failed} failed, p95 "
                              f"{level['latency_ms']['p95'] or 0:,.0f} ms",
                              ("met" if failed == 0 else "missed") if top >= 50 else f"partial ({top} < 50 measured)"))
        pss = level["session_pss_mb"]["mean"]
        if pss:
            targets.append(target("idle session memory (PSS) vs upstream's 178 MiB (issue 15)", "<= 1.0x",
                                  f"{pss:.0f} MiB = {pss / UPSTREAM_IDLE_MIB:.2f}x",
                                  "met" if pss <= UPSTREAM_IDLE_MIB else "missed"))
    return result("concurrency", tables, data, targets)
