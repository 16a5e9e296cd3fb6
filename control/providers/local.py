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

import contextlib
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
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
from wire.errors import ValidationFailed

MIN_MEMORY_MB = 384



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
        sandbox.compile_sources()
        self.machines_dir = machines_dir.resolve()
        self.machines_dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.machines_dir, 0o700)
        # Sockets live here, not in the machine directories: a Unix socket path is limited
        # to 107 bytes. Private (0700) and gone with the process, like its machines.
        self.runtime_dir = Path(tempfile.mkdtemp(prefix="agcluster-", dir=_short_tmp()))
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
        dirs = self._dirs(spec.session_id)
        proc = self._spawner.submit(self._spawn, spec, dirs).result()
        url = unix_url(dirs.agent_socket)
        try:
            wait_healthy(url, spec.machine_token, self.startup_timeout, alive=lambda: proc.popen.poll() is None,
                         listening=True)
        except ProviderError as exc:
            tail = _tail(dirs.root / "agent.log")
            self._kill(spec.session_id)
            raise ProviderError(f"{exc.message}. Last agent output:\n{tail}") from None
        return Machine(spec.session_id, url, "started", spec.session_id)

    def resume(self, machine_id: str) -> Machine:
        raise ProviderError("local machines are restarted with start()")

    def validate_resources(self, limits: ResourceLimits) -> None:
        """Limits a local machine could never honour are a 400 before anything starts: the
        whole machine (agent, CLI, tools) lives in one memory group, and the CLI and machine
        agent alone use about 190 MB, so below ~2x that the out-of-memory killer would pick
        the CLI instead of the tool that ran away. (More CPUs than the host has are capped
        at the host's, as Docker does.)"""
        if limits.memory_mb < MIN_MEMORY_MB:
            raise ValidationFailed("the local provider cannot run these resource limits", details={"resource_limits": {
                "memory_limit": f"a local machine needs at least {MIN_MEMORY_MB} MB (the CLI and the machine agent "
                                f"use about 190 MB), got {limits.memory_mb} MB"}})

    def destroy(self, machine_id: str) -> None:
        self._kill(machine_id)
        self.limiter.release(machine_id)
        dirs = self._dirs(machine_id)
        shutil.rmtree(dirs.root, ignore_errors=True)
        if dirs.sockets is not None:
            shutil.rmtree(dirs.sockets, ignore_errors=True)

    def suspend(self, machine_id: str) -> None:
        """Stop the process; the workspace and the CLI's session files stay on disk."""
        self._kill(machine_id)

    def inspect(self, machine_id: str) -> Machine | None:
        with self._lock:
            proc = self._procs.get(machine_id)
        dirs = self._dirs(machine_id)
        if proc is None:
            return Machine(machine_id, "", "stopped", machine_id) if dirs.root.exists() else None
        state = "started" if proc.popen.poll() is None else "stopped"
        return Machine(machine_id, unix_url(dirs.agent_socket), state, proc.session_id)

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
        return self._dirs(machine_id).workspace

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
        shutil.rmtree(self.runtime_dir, ignore_errors=True)

    def _dirs(self, machine_key: str) -> MachineDirs:
        short = hashlib.sha256(machine_key.encode()).hexdigest()[:16]
        return MachineDirs(self.machines_dir / machine_key, self.runtime_dir / short)

    # internals ------------------------------------------------------------------------
    def _spawn(self, spec: MachineSpec, dirs: MachineDirs) -> _Process:
        """Runs on the spawner thread: everything a machine needs, then the sandbox."""
        assert self.link is not None and self.bwrap is not None
        closers: list[Closer] = []
        opened: list[int] = []
        log: Any = None
        try:
            uid = sandbox.allocate_uid(self.machines_dir, spec.session_id) if self.as_root else None
            sandbox.prepare_dirs(dirs, uid)
            listener = _listen_unix(dirs.agent_socket)
            opened.append(listener.detach())
            closers.append(self.link.relay_unix(dirs.run / RELAY_SOCKET, spec.session_id))
            internet = spec.network == "internet"
            if internet:
                closers.append(self.link.egress_unix(dirs.run / EGRESS_SOCKET, spec.session_id))
            opened.append(seccomp.filter_fd())
            placement = self.limiter.place(spec.session_id, spec.resources)
            box = sandbox.Sandbox(dirs=dirs, token=spec.machine_token, hidden_dirs=self.hidden_dirs, env=spec.env,
                                  network="none", listen_fd=opened[0], internet=internet, uid=uid,
                                  seccomp_fd=opened[1], max_upload_mb=self.max_upload_mb)
            argv, env = sandbox.command(box, self.bwrap)
            log = open(dirs.root / "agent.log", "ab")  # noqa: SIM115 - owned by _Process
            popen = subprocess.Popen(placement.prefix + argv, env=env, stdin=subprocess.DEVNULL, stdout=log,
                                     stderr=subprocess.STDOUT, cwd=str(dirs.root), start_new_session=True,
                                     pass_fds=tuple(opened))
        except (OSError, RuntimeError) as exc:
            if log is not None:
                log.close()
            for closer in closers:
                closer.close()
            raise ProviderError(f"could not start the sandbox: {exc}") from None
        finally:
            for fd in opened:
                os.close(fd)
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
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.popen.pid, signal.SIGKILL)
            proc.popen.wait(timeout=10)
        for closer in proc.closers:
            closer.close()
        proc.log.close()


def sandbox_command(machine_dir: Path, host: str, port: int, token: str, extra_env: dict[str, str], *,
                    bwrap: str | None, hidden_dirs: list[Path],
                    max_upload_mb: int = 50) -> tuple[list[str], dict[str, str]]:
    """A machine agent on a TCP address in the host's network (``stubs.fly``'s process
    backend, which plays Fly's VMs): the same sandbox otherwise, including its own uid."""
    dirs = MachineDirs(machine_dir)
    uid = sandbox.allocate_uid(machine_dir.parent, machine_dir.name) if sandbox.runs_as_root() and bwrap else None
    sandbox.prepare_dirs(dirs, uid)
    box = sandbox.Sandbox(dirs=dirs, token=token, hidden_dirs=hidden_dirs, env=extra_env, network="host",
                          host=host, port=port, uid=uid, max_upload_mb=max_upload_mb)
    return sandbox.command(box, bwrap)


def _listen_unix(path: Path) -> socket.socket:
    """The agent's listening socket, made here in a directory only the control plane can
    write, so the agent (which gets the descriptor) can never swap it for a symlink."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        listener.bind(str(path))
        os.chmod(path, 0o600)
        listener.listen(64)
    except OSError:
        listener.close()
        raise
    return listener


def _short_tmp() -> str:
    """A short base for runtime directories (TMPDIR can be as deep as a data directory)."""
    for candidate in ("/run" if os.geteuid() == 0 else "", "/tmp"):
        if candidate and os.access(candidate, os.W_OK):
            return candidate
    return tempfile.gettempdir()


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
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total
