"""The embedded default: each machine is a bubblewrap-sandboxed local process.

What a sandbox sees and reaches is described in ``sandbox.py``; this module runs them:
it gives each machine its directories and host uid, creates the socket its agent serves
on (so the agent never chooses a path the control plane will connect to), asks the
control plane to serve the machine's relay (and egress proxy) on sockets of its own,
enters the machine's cgroups, and reaps everything when the machine stops. Machines die
with the control plane (``--die-with-parent``); their directories survive, so a woken
session finds its workspace.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from control import procfs
from control.providers import sandbox, seccomp
from control.providers.base import (
    Closer,
    Machine,
    MachineLink,
    MachineSpec,
    Provider,
    ProviderError,
    ResourceLimits,
    wait_healthy,
)
from control.providers.limits import Enforcement, Limiter
from control.providers.sandbox import EGRESS_SOCKET, RELAY_PORT, RELAY_SOCKET, MachineDirs

AGENT_SOCKET = "agent.sock"


@dataclass
class _Process:
    popen: subprocess.Popen[bytes]
    session_id: str
    log: Any
    closers: list[Closer] = field(default_factory=list)
    enforcement: Enforcement = field(default_factory=Enforcement)
    limits: ResourceLimits = field(default_factory=ResourceLimits)


def unix_url(path: Path) -> str:
    """A machine agent reached over a Unix socket, as ``control.machine_client`` spells it."""
    return "http+unix://" + quote(str(path), safe="")


class LocalProvider(Provider):
    name = "local"

    def __init__(self, machines_dir: Path, *, hidden_dirs: list[Path] | None = None,
                 startup_timeout: float = 60.0, max_upload_mb: int = 50) -> None:
        self.bwrap = sandbox.bwrap_path()
        if self.bwrap is None:
            raise ProviderError(
                "bubblewrap (bwrap) is not installed, so local machines cannot be sandboxed. "
                "Install it (Debian/Ubuntu: sudo apt-get install bubblewrap) or use CONTAINER_PROVIDER=docker."
            )
        self.machines_dir = machines_dir.resolve()
        self.machines_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.machines_dir, 0o700)
        self.hidden_dirs = [d.resolve() for d in (hidden_dirs or [])] + [self.machines_dir]
        self.as_root = sandbox.runs_as_root()
        self.limiter = Limiter(own_uid_per_sandbox=self.as_root)
        self.startup_timeout = startup_timeout
        self.max_upload_mb = max_upload_mb
        self.link: MachineLink | None = None
        self._procs: dict[str, _Process] = {}
        self._lock = threading.Lock()
        # PR_SET_PDEATHSIG fires when the *thread* that forked exits, so machines are
        # always forked from this one long-lived thread, not from request threads; it also
        # serialises uid allocation.
        self._spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="machine-spawner")

    # Provider API ---------------------------------------------------------------------
    def attach(self, link: MachineLink) -> None:
        self.link = link

    def start(self, spec: MachineSpec) -> Machine:
        if self.link is None:
            raise ProviderError("local machines need the control plane's relay (attach a MachineLink first)")
        self._kill(spec.session_id)
        dirs = MachineDirs(self.machines_dir / spec.session_id)
        proc = self._spawner.submit(self._spawn, spec, dirs).result()
        url = unix_url(dirs.private / AGENT_SOCKET)
        try:
            wait_healthy(url, spec.machine_token, self.startup_timeout, alive=lambda: proc.popen.poll() is None)
        except ProviderError as exc:
            tail = _tail(dirs.root / "agent.log")
            self._kill(spec.session_id)
            raise ProviderError(f"{exc.message}. Last agent output:\n{tail}") from None
        return Machine(spec.session_id, url, "started", spec.session_id)

    def resume(self, machine_id: str) -> Machine:
        raise ProviderError("local machines are restarted with start()")

    def destroy(self, machine_id: str) -> None:
        self._kill(machine_id)
        self.limiter.release(machine_id)
        shutil.rmtree(self.machines_dir / machine_id, ignore_errors=True)

    def suspend(self, machine_id: str) -> None:
        """Stop the process; the workspace and the CLI's session files stay on disk."""
        self._kill(machine_id)

    def inspect(self, machine_id: str) -> Machine | None:
        with self._lock:
            proc = self._procs.get(machine_id)
        dirs = MachineDirs(self.machines_dir / machine_id)
        if proc is None:
            return Machine(machine_id, "", "stopped", machine_id) if dirs.root.exists() else None
        state = "started" if proc.popen.poll() is None else "stopped"
        return Machine(machine_id, unix_url(dirs.private / AGENT_SOCKET), state, proc.session_id)

    def list_machines(self) -> list[Machine]:
        """Running machines and stopped ones whose storage is still on disk."""
        with self._lock:
            ids = set(self._procs)
        ids |= {d.name for d in self.machines_dir.iterdir() if d.is_dir()}
        return [m for m in (self.inspect(i) for i in sorted(ids)) if m is not None]

    def relay_url(self) -> str:
        return f"http://127.0.0.1:{RELAY_PORT}/relay"

    def enforcement(self, network: str = "relay") -> dict[str, str | None]:
        return {**self.limiter.describe().as_dict(), "network": "empty network namespace"
                + (" + egress proxy" if network == "internet" else "")}

    def workspace_dir(self, machine_id: str) -> Path:
        return MachineDirs(self.machines_dir / machine_id).workspace

    def usage(self, machine_id: str) -> dict[str, Any] | None:
        with self._lock:
            proc = self._procs.get(machine_id)
        if proc is None or proc.popen.poll() is not None:
            return None
        used = self.limiter.memory_used_mb(machine_id)
        if used is None:
            used = round(sum(procfs.rss_kb(pid) for pid in procfs.descendants(proc.popen.pid)) / 1024, 1)
        return {"memory_used_mb": used,
                "memory_limit_mb": proc.limits.memory_mb if proc.enforcement.memory else None,
                "disk_used_mb": round(_du_bytes(self.workspace_dir(machine_id)) / 1e6, 2), "cpu_percent": None,
                "oom_kills": self.limiter.oom_kills(machine_id), "enforced": proc.enforcement.as_dict()}

    def close(self) -> None:
        with self._lock:
            ids = list(self._procs)
        for machine_id in ids:
            self._kill(machine_id)
            self.limiter.release(machine_id)
        self._spawner.shutdown(wait=False)

    # internals ------------------------------------------------------------------------
    def _spawn(self, spec: MachineSpec, dirs: MachineDirs) -> _Process:
        """Runs on the spawner thread: everything a machine needs, then the sandbox."""
        assert self.link is not None and self.bwrap is not None
        uid = sandbox.allocate_uid(self.machines_dir, spec.session_id) if self.as_root else None
        sandbox.prepare_dirs(dirs, uid)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        agent_socket = dirs.private / AGENT_SOCKET
        try:
            agent_socket.unlink()
        except FileNotFoundError:
            pass
        listener.bind(str(agent_socket))
        os.chmod(agent_socket, 0o600)
        listener.listen(64)
        closers = [self.link.relay_unix(dirs.run / RELAY_SOCKET, spec.session_id)]
        internet = spec.network == "internet"
        if internet:
            closers.append(self.link.egress_unix(dirs.run / EGRESS_SOCKET, spec.session_id))
        filter_fd = seccomp.filter_fd()
        placement = self.limiter.place(spec.session_id, spec.resources)
        box = sandbox.Sandbox(dirs=dirs, token=spec.machine_token, hidden_dirs=self.hidden_dirs, env=spec.env,
                              network="none", listen_fd=listener.fileno(), internet=internet, uid=uid,
                              seccomp_fd=filter_fd, max_upload_mb=self.max_upload_mb)
        argv, env = sandbox.command(box, self.bwrap)
        log = open(dirs.root / "agent.log", "ab")  # noqa: SIM115 - owned by _Process
        try:
            popen = subprocess.Popen(placement.prefix + argv, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=subprocess.STDOUT, cwd=str(dirs.root), start_new_session=True,
                                     pass_fds=(listener.fileno(), filter_fd))
        except OSError as exc:
            log.close()
            for closer in closers:
                closer.close()
            raise ProviderError(f"could not start the sandbox: {exc}") from None
        finally:
            listener.close()
            os.close(filter_fd)
        proc = _Process(popen, spec.session_id, log, closers, placement.enforcement, spec.resources)
        with self._lock:
            self._procs[spec.session_id] = proc
        return proc

    def _kill(self, machine_id: str) -> None:
        with self._lock:
            proc = self._procs.pop(machine_id, None)
        if proc is None:
            return
        if proc.popen.poll() is None:
            try:
                os.killpg(proc.popen.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.popen.wait(timeout=10)
        for closer in proc.closers:
            closer.close()
        proc.log.close()


def sandbox_command(machine_dir: Path, host: str, port: int, token: str, extra_env: dict[str, str], *,
                    bwrap: str | None, hidden_dirs: list[Path], max_upload_mb: int = 50) -> tuple[list[str], dict[str, str]]:
    """A machine agent on a TCP address in the host's network (``stubs.fly``'s process
    backend, which plays Fly's VMs): the same sandbox otherwise, including its own uid."""
    dirs = MachineDirs(machine_dir)
    uid = sandbox.allocate_uid(machine_dir.parent, machine_dir.name) if sandbox.runs_as_root() and bwrap else None
    sandbox.prepare_dirs(dirs, uid)
    box = sandbox.Sandbox(dirs=dirs, token=token, hidden_dirs=hidden_dirs, env=extra_env, network="host",
                          host=host, port=port, uid=uid, max_upload_mb=max_upload_mb)
    return sandbox.command(box, bwrap)


def bwrap_path() -> str | None:
    return sandbox.bwrap_path()


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _du_bytes(path: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total
