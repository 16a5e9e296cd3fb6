"""A host firewall chain for Docker's agents bridge: machines reach the control plane's
relay and egress ports on the host, and nothing else the host listens on.

Docker's internal networks have no route out, but the host itself is on every bridge (the
gateway address), so any host service bound to all addresses would answer an agent. When
this process is root and ``iptables`` exists, traffic that arrives on the agents' bridge is
sent through the ``AGCLUSTER-AGENTS`` chain: replies to the host's own connections and the
allowed ports pass, the rest is dropped. Several control planes (tests, a second checkout)
may share one agents network, so each adds only its own port rules, tagged with its pid,
and removes them when it stops; rules of one that died are swept by the next start. It is
the one change AgCluster makes to a host's firewall (docs/SECURITY.md).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import subprocess
from collections.abc import Callable

log = logging.getLogger(__name__)

CHAIN = "AGCLUSTER-AGENTS"


OWNER = "agcluster-pid-"
"""Each control plane's port rules carry its pid as a comment, so it removes exactly its own
when it stops, and one that died without stopping has its rules swept by the next start: a
stale ACCEPT would open that port to agents for whatever host service binds it later."""


def confine(bridge: str, ports: list[int]) -> str | None:
    """Install the chain for ``bridge``; returns what enforces it, or None when nothing can."""
    iptables = _iptables()
    if iptables is None:
        log.warning("agents on Docker can reach host services on the gateway address: no host firewall "
                    "(needs root and iptables)")
        return None
    run = _runner(iptables)
    established = ("-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT")
    try:
        if not run("-n", "-L", CHAIN, check=False):
            run("-N", CHAIN)
        _sweep(iptables, run)
        if not run("-C", CHAIN, *established, check=False):
            run("-I", CHAIN, "1", *established)
        for port in ports:
            rule = _port_rule(port, os.getpid())
            if not run("-C", CHAIN, *rule, check=False):
                run("-I", CHAIN, "2", *rule)  # after replies, before the final DROP
        if not run("-C", CHAIN, "-j", "DROP", check=False):
            run("-A", CHAIN, "-j", "DROP")
        if not run("-C", "INPUT", "-i", bridge, "-j", CHAIN, check=False):
            run("-I", "INPUT", "-i", bridge, "-j", CHAIN)
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("could not install the host firewall for Docker agents (%s)", exc)
        return None
    return "iptables"


def release(ports: list[int]) -> None:
    """Remove this process's port rules (the chain and its DROP stay for other planes)."""
    iptables = _iptables()
    if iptables is None:
        return
    run = _runner(iptables)
    for port in ports:
        rule = _port_rule(port, os.getpid())
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            while run("-D", CHAIN, *rule, check=False):
                pass


def _sweep(iptables: str, run: Callable[..., bool]) -> None:
    """Delete port rules whose owner process is gone, and untagged ones older versions left."""
    listing = subprocess.run([iptables, "-w", "-S", CHAIN], capture_output=True, text=True, timeout=30)
    for line in listing.stdout.splitlines():
        parts = line.split()
        if parts[:2] != ["-A", CHAIN] or "--dport" not in parts:
            continue
        owner = next((p.strip('"')[len(OWNER):] for p in parts if p.strip('"').startswith(OWNER)), None)
        if owner is not None and owner.isdigit() and _alive(int(owner)):
            continue
        run("-D", CHAIN, *[p.strip('"') for p in parts[2:]], check=False)


def _port_rule(port: int, pid: int) -> tuple[str, ...]:
    return ("-p", "tcp", "-m", "tcp", "--dport", str(port), "-m", "comment", "--comment", f"{OWNER}{pid}",
            "-j", "ACCEPT")


def _alive(pid: int) -> bool:
    """A killed control plane's worker can linger as a zombie (its parent died with it and
    nothing reaped it yet): it answers signal 0 but holds nothing, so it counts as gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            state = stat.read().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def _iptables() -> str | None:
    return shutil.which("iptables") if os.geteuid() == 0 else None


def _runner(iptables: str) -> Callable[..., bool]:
    def run(*args: str, check: bool = True) -> bool:
        result = subprocess.run([iptables, "-w", *args], capture_output=True, text=True, timeout=30)
        if check and result.returncode != 0:
            raise OSError(result.stderr.strip() or f"iptables {' '.join(args)} failed")
        return result.returncode == 0

    return run
