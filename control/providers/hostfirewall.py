"""A host firewall chain for Docker's agents bridge: machines reach the control plane's
relay and egress ports on the host, and nothing else the host listens on.

Docker's internal networks have no route out, but the host itself is on every bridge (the
gateway address), so any host service bound to all addresses would answer an agent. When
this process is root and ``iptables`` exists, traffic that arrives on the agents' bridge is
sent through the ``AGCLUSTER-AGENTS`` chain: replies to the host's own connections and the
allowed ports pass, the rest is dropped. Rules are added only when missing, since several
control planes (tests, a second checkout) may share one agents network; it is the one
change AgCluster makes to a host's firewall (docs/SECURITY.md).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess

log = logging.getLogger(__name__)

CHAIN = "AGCLUSTER-AGENTS"


def confine(bridge: str, ports: list[int]) -> str | None:
    """Install the chain for ``bridge``; returns what enforces it, or None when nothing can."""
    iptables = shutil.which("iptables")
    if os.geteuid() != 0 or iptables is None:
        log.warning("agents on Docker can reach host services on the gateway address: no host firewall "
                    "(needs root and iptables)")
        return None

    def run(*args: str, check: bool = True) -> bool:
        result = subprocess.run([iptables, "-w", *args], capture_output=True, text=True, timeout=30)
        if check and result.returncode != 0:
            raise OSError(result.stderr.strip() or f"iptables {' '.join(args)} failed")
        return result.returncode == 0

    try:
        if not run("-n", "-L", CHAIN, check=False):
            run("-N", CHAIN)
        for rule in [("-p", "tcp", "--dport", str(port), "-j", "ACCEPT") for port in ports] + [
                ("-m", "conntrack", "--ctstate", "ESTABLISHED,RELATED", "-j", "ACCEPT")]:
            if not run("-C", CHAIN, *rule, check=False):
                run("-I", CHAIN, "1", *rule)
        if not run("-C", CHAIN, "-j", "DROP", check=False):
            run("-A", CHAIN, "-j", "DROP")
        if not run("-C", "INPUT", "-i", bridge, "-j", CHAIN, check=False):
            run("-I", "INPUT", "-i", bridge, "-j", CHAIN)
    except (OSError, subprocess.SubprocessError) as exc:
        log.warning("could not install the host firewall for Docker agents (%s)", exc)
        return None
    return "iptables"
