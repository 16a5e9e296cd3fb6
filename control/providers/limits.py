"""Resource limits for local sandboxes: cgroups where this control plane may write them,
per-process rlimits otherwise, and an honest account of which is which.

* cgroup v1 (as on this project's CI machines, where root can write
  ``/sys/fs/cgroup/{memory,cpu,pids}``): one group per machine under this process's own
  group in each hierarchy: a memory limit with no swap, a CFS CPU quota, a process cap.
* cgroup v2: the same under this process's own group, when its ``subtree_control`` can
  enable the controllers (a delegated subtree, or the root of a container's namespace).
* otherwise ``prlimit``: a per-process data-size cap, a per-file size cap, and a process
  cap only when the sandbox has a host uid of its own (RLIMIT_NPROC counts every process of
  a uid, so it would otherwise count the control plane's own threads).

A sandbox enters its groups before anything runs: its command starts with a tiny shell
prelude that writes its own pid into each group and then execs bubblewrap.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from control.providers.base import ResourceLimits

log = logging.getLogger(__name__)

CGROUP_ROOT = Path("/sys/fs/cgroup")
GROUP = "agcluster"
CPU_PERIOD_US = 100_000
_ENTER = 'n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1" || exit 97; shift; n=$((n-1)); done; exec "$@"'


@dataclass(frozen=True)
class Enforcement:
    """How each limit is enforced for a machine; None means it is not."""

    memory: str | None = None
    cpu: str | None = None
    pids: str | None = None
    storage: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        return {"memory": self.memory, "cpu": self.cpu, "pids": self.pids, "storage": self.storage}


@dataclass
class Placement:
    """What a sandbox start needs: a command prefix and where its groups are."""

    prefix: list[str]
    groups: list[Path] = field(default_factory=list)
    enforcement: Enforcement = field(default_factory=Enforcement)


class Limiter:
    """Chooses the mechanism once, at start-up, from what this process may really do."""

    def __init__(self, own_uid_per_sandbox: bool) -> None:
        self.own_uid = own_uid_per_sandbox
        self.mode, self.bases = _detect()
        self.prlimit = shutil.which("prlimit")
        self._sweep()
        log.info("local machine limits: %s", self.describe().as_dict())

    def _sweep(self) -> None:
        """Groups left by a control plane that was killed: empty ones go (a group that still
        has processes cannot be removed, so another running control plane's are safe)."""
        for base in self.bases.values():
            parent = base / GROUP
            for group in parent.iterdir() if parent.is_dir() else []:
                if group.is_dir():
                    with contextlib.suppress(OSError):
                        group.rmdir()

    def describe(self) -> Enforcement:
        if self.mode == "v1":
            return Enforcement("cgroup v1", "cgroup v1", "cgroup v1", None)
        if self.mode == "v2":
            return Enforcement("cgroup v2", "cgroup v2", "cgroup v2", None)
        if self.prlimit:
            return Enforcement("rlimit (per process data size)", None,
                               "rlimit (per sandbox uid)" if self.own_uid else None,
                               "rlimit (per file size)")
        return Enforcement()

    def place(self, machine_key: str, limits: ResourceLimits) -> Placement:
        """Create the machine's groups (or rlimits) and the prefix that enters them."""
        if self.mode in ("v1", "v2"):
            try:
                groups = self._create(machine_key, limits)
                return Placement(["/bin/sh", "-c", _ENTER, "agcluster-enter", str(len(groups)),
                                  *[str(g / "cgroup.procs") for g in groups]], groups, self.describe())
            except OSError as exc:
                log.warning("could not create cgroups for %s (%s); falling back to rlimits", machine_key, exc)
        if not self.prlimit:
            return Placement([], [], Enforcement())
        mb = 2**20
        prefix = [self.prlimit, f"--data={limits.memory_mb * mb}"]
        if limits.storage_mb:
            prefix.append(f"--fsize={limits.storage_mb * mb}")
        if self.own_uid:
            prefix.append(f"--nproc={limits.pids}")
        enforcement = Enforcement("rlimit (per process data size)", None,
                                  "rlimit (per sandbox uid)" if self.own_uid else None,
                                  "rlimit (per file size)" if limits.storage_mb else None)
        return Placement([*prefix, "--"], [], enforcement)

    def release(self, machine_key: str) -> None:
        for base in self.bases.values():
            group = base / GROUP / machine_key
            if group.is_dir():
                _kill_all(group)
                try:
                    group.rmdir()
                except OSError as exc:
                    log.debug("cgroup %s not removed yet: %s", group, exc)

    def oom_kills(self, machine_key: str) -> int:
        """How many processes the memory limit has killed in this machine."""
        for base in self.bases.values():
            group = base / GROUP / machine_key
            for name, key in (("memory.events", "oom_kill"), ("memory.oom_control", "oom_kill")):
                try:
                    for line in (group / name).read_text().splitlines():
                        field_name, _, value = line.partition(" ")
                        if field_name == key:
                            return int(value)
                except (OSError, ValueError):
                    continue
        return 0

    def memory_used_mb(self, machine_key: str) -> float | None:
        for base in self.bases.values():
            for name in ("memory.usage_in_bytes", "memory.current"):
                try:
                    return round(int((base / GROUP / machine_key / name).read_text()) / 2**20, 1)
                except (OSError, ValueError):
                    continue
        return None

    def _create(self, machine_key: str, limits: ResourceLimits) -> list[Path]:
        groups = []
        cpus = min(limits.cpus, float(os.cpu_count() or 1))  # more than the host has means all of it
        quota = max(1_000, int(cpus * CPU_PERIOD_US))
        mem = limits.memory_mb * 2**20
        for controller, base in self.bases.items():
            group = base / GROUP / machine_key
            group.mkdir(parents=True, exist_ok=True)
            if self.mode == "v2":
                _write(group / "memory.max", mem)
                _write(group / "memory.swap.max", 0, optional=True)
                _write(group / "cpu.max", f"{quota} {CPU_PERIOD_US}")
                _write(group / "pids.max", limits.pids)
            elif controller == "memory":
                _write(group / "memory.limit_in_bytes", mem)
                _write(group / "memory.memsw.limit_in_bytes", mem, optional=True)
            elif controller == "cpu":
                _write(group / "cpu.cfs_period_us", CPU_PERIOD_US)
                _write(group / "cpu.cfs_quota_us", quota)
            elif controller == "pids":
                _write(group / "pids.max", limits.pids)
            groups.append(group)
        return groups


def _write(path: Path, value: object, optional: bool = False) -> None:
    try:
        path.write_text(str(value))
    except OSError:
        if not optional:
            raise


def _kill_all(group: Path) -> None:
    """Whatever is still in a machine's group when it is released (a stray daemon)."""
    try:
        pids = [int(p) for p in (group / "cgroup.procs").read_text().split()]
    except (OSError, ValueError):
        return
    for pid in pids:
        with contextlib.suppress(OSError):
            os.kill(pid, 9)


def _own_groups() -> dict[str, str]:
    """Controller (or "" for v2) → this process's group path, from /proc/self/cgroup."""
    found: dict[str, str] = {}
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for controller in controllers.split(",") if controllers else [""]:
                found[controller] = path
    except (OSError, ValueError):
        pass
    return found


def _detect() -> tuple[str, dict[str, Path]]:
    """The cgroup mode and, per controller ("" for v2), the group machines go under."""
    own = _own_groups()
    v1: dict[str, Path] = {}
    for controller in ("memory", "cpu", "pids"):
        mount = CGROUP_ROOT / controller
        if controller in own and (mount / "cgroup.procs").exists():
            v1[controller] = mount / own[controller].lstrip("/")
    if len(v1) == 3 and all(_writable_dir(p) for p in v1.values()):
        return "v1", v1
    if (CGROUP_ROOT / "cgroup.controllers").exists() and "" in own:
        base = CGROUP_ROOT / own[""].lstrip("/")
        if _enable_v2(base):
            return "v2", {"": base}
    return "none", {}


def _writable_dir(path: Path) -> bool:
    return path.is_dir() and os.access(path, os.W_OK)


def _enable_v2(base: Path) -> bool:
    """Our own group must delegate memory, cpu and pids to a child group for machines."""
    try:
        available = set((base / "cgroup.controllers").read_text().split())
        if not {"memory", "cpu", "pids"} <= available:
            return False
        (base / GROUP).mkdir(exist_ok=True)
        (base / "cgroup.subtree_control").write_text("+memory +cpu +pids")
        (base / GROUP / "cgroup.subtree_control").write_text("+memory +cpu +pids")
        return True
    except OSError:
        return False
