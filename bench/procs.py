"""Reading processes from /proc: trees, RSS/PSS, CPU seconds, and finding machines."""

from __future__ import annotations

import os
import signal
from pathlib import Path

# Re-exported: the benchmarks read processes through this module only.
from control.procfs import children_map as children_map
from control.procfs import descendants as descendants
from control.procfs import parent_of as parent_of
from control.procfs import rss_kb as rss_kb
from control.procfs import stat_fields

CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def alive(pid: int) -> bool:
    fields = stat_fields(pid)
    return fields is not None and bool(fields) and fields[0] != "Z"


def pss_kb(pid: int) -> int:
    """Proportional set size: shared pages divided among their users (sums without double counting)."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (0 when it is gone)."""
    fields = stat_fields(pid)
    if not fields:
        return 0.0
    # After the name: state(0) ppid(1) ... utime is field 14 overall → index 11 here, stime 12.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def tree_memory_kb(pid: int, tree: dict[int, list[int]] | None = None) -> dict[str, int]:
    pids = descendants(pid, tree=tree)
    return {"rss_kb": sum(rss_kb(p) for p in pids), "pss_kb": sum(pss_kb(p) for p in pids), "processes": len(pids)}


ROLES = ("sandbox", "machine agent", "CLI", "other")


def role(pid: int) -> str:
    """What a process in a machine's tree is: bubblewrap, the machine agent, the CLI, or a tool."""
    argv = cmdline(pid).split(b"\0")
    exe = argv[0].rsplit(b"/", 1)[-1] if argv and argv[0] else b""
    if exe == b"bwrap":
        return "sandbox"
    if b"machine_agent" in argv[:4]:
        return "machine agent"
    if exe == b"claude" or b"/_bundled/claude" in argv[0]:
        return "CLI"
    return "other"


def tree_breakdown_kb(pid: int, tree: dict[int, list[int]] | None = None) -> dict[str, dict[str, int]]:
    """PSS, RSS and process count of a machine's tree, per :func:`role` (every role present)."""
    out = {name: {"pss_kb": 0, "rss_kb": 0, "processes": 0} for name in ROLES}
    for p in descendants(pid, tree=tree):
        row = out[role(p)]
        row["pss_kb"] += pss_kb(p)
        row["rss_kb"] += rss_kb(p)
        row["processes"] += 1
    return out


def tree_cpu_seconds(pid: int) -> float:
    return sum(cpu_seconds(p) for p in descendants(pid))


def find_by_cmdline(marker: str, within: list[int] | None = None) -> list[int]:
    """Live processes whose command line contains ``marker`` (optionally among ``within``)."""
    needle = marker.encode()
    pids = within if within is not None else [int(e.name) for e in Path("/proc").iterdir() if e.name.isdigit()]
    return [p for p in pids if needle in cmdline(p) and alive(p)]


def kill_tree(pid: int, sig: int = signal.SIGKILL) -> int:
    """Signal a process and all its descendants, leaves first; returns how many were signalled."""
    pids = descendants(pid)
    sent = 0
    for target in reversed(pids):
        try:
            os.kill(target, sig)
            sent += 1
        except ProcessLookupError:
            pass
    return sent


def machine_info() -> dict[str, object]:
    """What the figures ran on: CPUs, memory, CPU model, kernel."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kb = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    except OSError:
        pass
    import platform

    return {"nproc": len(os.sched_getaffinity(0)), "memory_gib": round(mem_kb / 1024 / 1024, 1), "cpu_model": model,
            "kernel": platform.release(), "python": platform.python_version()}
