"""The embedded default: each machine is a bubblewrap-sandboxed local process.

Inside the sandbox the agent sees a read-only system, a private ``/tmp``, its own
workspace at ``/workspace`` and home at ``/home/agent``, runs as uid 1000 in its own user
and PID namespaces, and dies with the control plane. The control plane's data directory
(database, server secret, other sessions' workspaces) is hidden behind an empty tmpfs.
The network namespace is shared so the agent can reach the model relay on loopback.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import machine_agent  # noqa: F401 - only to locate its source; never imported for its internals

from control import procfs
from control.providers.base import MACHINE_TOKEN_ENV, Machine, MachineSpec, Provider, ProviderError, wait_healthy

SOURCE_ROOT = Path(machine_agent.__file__).resolve().parent.parent
SANDBOX_UID = 1000


def bwrap_path() -> str | None:
    return shutil.which("bwrap")


@dataclass
class _Process:
    popen: subprocess.Popen[bytes]
    port: int
    session_id: str
    log: Any


class LocalProvider(Provider):
    name = "local"

    def __init__(self, machines_dir: Path, relay_url: str, *, hidden_dirs: list[Path] | None = None,
                 allow_unsandboxed: bool = False, startup_timeout: float = 60.0, max_upload_mb: int = 50) -> None:
        self.machines_dir = machines_dir.resolve()
        self.machines_dir.mkdir(parents=True, exist_ok=True)
        self._relay_url = relay_url
        self.hidden_dirs = [d.resolve() for d in (hidden_dirs or [])] + [self.machines_dir]
        self.bwrap = bwrap_path()
        if self.bwrap is None and not allow_unsandboxed:
            raise ProviderError(
                "bubblewrap (bwrap) is not installed, so local machines cannot be sandboxed. "
                "Install it (Debian/Ubuntu: sudo apt-get install bubblewrap) or set "
                "AGCLUSTER_ALLOW_UNSANDBOXED=1 to run agents as plain processes (not isolated)."
            )
        self.startup_timeout = startup_timeout
        self.max_upload_mb = max_upload_mb
        self._procs: dict[str, _Process] = {}
        self._lock = threading.Lock()
        # PR_SET_PDEATHSIG fires when the *thread* that forked exits, so machines are
        # always forked from this one long-lived thread, not from request threads.
        self._spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="machine-spawner")

    # Provider API ---------------------------------------------------------------------
    def start(self, spec: MachineSpec) -> Machine:
        machine_dir = self.machines_dir / spec.session_id
        for sub in ("workspace", "home"):
            (machine_dir / sub).mkdir(parents=True, exist_ok=True)
        return self._launch(spec.session_id, spec.machine_token, spec.env)

    def resume(self, machine_id: str) -> Machine:
        raise ProviderError("local machines are restarted with start()")

    def destroy(self, machine_id: str) -> None:
        self._kill(machine_id)
        shutil.rmtree(self.machines_dir / machine_id, ignore_errors=True)

    def suspend(self, machine_id: str) -> None:
        """Stop the process; the workspace and the CLI's session files stay on disk."""
        self._kill(machine_id)

    def inspect(self, machine_id: str) -> Machine | None:
        with self._lock:
            proc = self._procs.get(machine_id)
        if proc is None:
            return Machine(machine_id, "", "stopped", machine_id) if (self.machines_dir / machine_id).exists() else None
        state = "started" if proc.popen.poll() is None else "stopped"
        return Machine(machine_id, f"http://127.0.0.1:{proc.port}", state, proc.session_id)

    def list_machines(self) -> list[Machine]:
        """Running machines and stopped ones whose storage is still on disk."""
        with self._lock:
            ids = set(self._procs)
        ids |= {d.name for d in self.machines_dir.iterdir() if d.is_dir()}
        return [m for m in (self.inspect(i) for i in sorted(ids)) if m is not None]

    def relay_url(self) -> str:
        return self._relay_url

    def workspace_dir(self, machine_id: str) -> Path:
        return self.machines_dir / machine_id / "workspace"

    def usage(self, machine_id: str) -> dict[str, Any] | None:
        with self._lock:
            proc = self._procs.get(machine_id)
        if proc is None or proc.popen.poll() is not None:
            return None
        rss_kb = sum(procfs.rss_kb(pid) for pid in procfs.descendants(proc.popen.pid))
        return {"memory_used_mb": round(rss_kb / 1024, 1), "memory_limit_mb": None,
                "disk_used_mb": round(_du_bytes(self.workspace_dir(machine_id)) / 1e6, 2), "cpu_percent": None}

    def close(self) -> None:
        with self._lock:
            ids = list(self._procs)
        for machine_id in ids:
            self._kill(machine_id)
        self._spawner.shutdown(wait=False)

    # internals ------------------------------------------------------------------------
    def _launch(self, session_id: str, token: str, extra_env: dict[str, str]) -> Machine:
        self._kill(session_id)
        port = _free_port()
        machine_dir = self.machines_dir / session_id
        log = open(machine_dir / "agent.log", "ab")  # noqa: SIM115 - owned by _Process
        argv, env = self._command(machine_dir, port, token, extra_env)
        popen = self._spawner.submit(
            subprocess.Popen, argv, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            cwd=str(machine_dir), start_new_session=True,
        ).result()
        with self._lock:
            self._procs[session_id] = _Process(popen, port, session_id, log)
        url = f"http://127.0.0.1:{port}"
        try:
            wait_healthy(url, token, self.startup_timeout, alive=lambda: popen.poll() is None)
        except ProviderError as exc:
            tail = _tail(machine_dir / "agent.log")
            self._kill(session_id)
            raise ProviderError(f"{exc.message}. Last agent output:\n{tail}") from None
        return Machine(session_id, url, "started", session_id)

    def _command(self, machine_dir: Path, port: int, token: str, extra_env: dict[str, str]) -> tuple[list[str], dict[str, str]]:
        return sandbox_command(machine_dir, "127.0.0.1", port, token, extra_env, bwrap=self.bwrap,
                               hidden_dirs=self.hidden_dirs, max_upload_mb=self.max_upload_mb)

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
        proc.log.close()


def sandbox_command(machine_dir: Path, host: str, port: int, token: str, extra_env: dict[str, str], *,
                    bwrap: str | None, hidden_dirs: list[Path], max_upload_mb: int = 50) -> tuple[list[str], dict[str, str]]:
    """The argv (and environment) that runs one machine agent in its bubblewrap sandbox.

    Shared with ``stubs.fly``'s process backend so the Fly stand-in runs agents exactly as
    the embedded provider does; only the bind address differs. ``machine_dir`` holds the
    ``workspace`` and ``home`` directories. With ``bwrap=None`` the agent runs unsandboxed
    and the returned environment is the one to start it with.
    """
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        MACHINE_TOKEN_ENV: token,
        "MAX_UPLOAD_MB": str(max_upload_mb),
        **extra_env,
    }
    agent = [sys.executable, "-m", "machine_agent", "--host", host, "--port", str(port)]
    if bwrap is None:
        env["HOME"] = str(machine_dir / "home")
        return agent + ["--workspace", str(machine_dir / "workspace")], env
    env["HOME"] = "/home/agent"
    argv = [bwrap, "--die-with-parent", "--new-session", "--unshare-user", "--uid", str(SANDBOX_UID),
            "--gid", str(SANDBOX_UID), "--unshare-pid", "--unshare-ipc", "--unshare-uts",
            "--hostname", "agcluster-machine",
            # The fresh /tmp comes first: binds below may live under /tmp (a checkout or a
            # venv there) and must be laid on top of it, not hidden by it.
            "--tmpfs", "/tmp", "--proc", "/proc", "--dev", "/dev"]
    for system_dir in ("/usr", "/etc", "/opt"):
        if Path(system_dir).is_dir():
            argv += ["--ro-bind", system_dir, system_dir]
    for link in ("/bin", "/lib", "/lib64", "/sbin", "/lib32", "/libx32"):
        target = Path(link)
        if target.is_symlink():
            argv += ["--symlink", os.readlink(link), link]
        elif target.is_dir():
            argv += ["--ro-bind", link, link]
    for python_dir in {Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve(), SOURCE_ROOT}:
        argv += ["--ro-bind", str(python_dir), str(python_dir)]
    for hidden in hidden_dirs:
        if any(hidden.is_relative_to(p) for p in (SOURCE_ROOT, Path(sys.prefix).resolve(), Path("/opt"))):
            argv += ["--tmpfs", str(hidden)]
    argv += ["--bind", str(machine_dir / "workspace"), "/workspace",
             "--bind", str(machine_dir / "home"), "/home/agent",
             "--chdir", "/workspace", "--clearenv"]
    for key, value in env.items():
        argv += ["--setenv", key, value]
    return argv + ["--"] + agent + ["--workspace", "/workspace"], {}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
