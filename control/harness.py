"""``agcluster serve`` as a child process, for the tests and the benchmarks (one copy).

Nothing here imports ``requests``: ``agcluster demo`` uses :func:`free_port` before
gunicorn's worker has monkey-patched the standard library (docs/ARCHITECTURE.md,
"Concurrency").
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Self, TypeVar

ROOT = Path(__file__).resolve().parent.parent
_T = TypeVar("_T")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_until(probe: Callable[[], _T], timeout: float, what: str, interval: float = 0.05) -> _T:
    """Poll ``probe`` until it returns something truthy; TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


class ControlPlaneProcess:
    """``python -m control.cli serve`` (or ``demo``) with its own data directory, port and
    log file, in a process group of its own so :meth:`stop` reaches the gunicorn worker
    and the machines it started too."""

    def __init__(self, data_dir: Path, env: Mapping[str, str] | None = None, command: str = "serve",
                 wrapper: list[str] | None = None) -> None:
        """``wrapper`` runs the server under another command (e.g. as another user)."""
        self.wrapper = list(wrapper or [])
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.db_path = data_dir / "agcluster.db"
        self.machines_dir = data_dir / "machines"
        self.log_path = data_dir / "server.log"
        self.env = {**os.environ, "DATABASE_PATH": str(self.db_path), "API_PORT": str(self.port),
                    "SESSION_CLEANUP_INTERVAL": "3600", **(env or {})}
        self.command = command
        self.source = ROOT
        self.python = sys.executable
        """The source tree served and its interpreter (the bench also runs an older tree beside this one)."""
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 90) -> Self:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:  # the child keeps its own descriptor
            self.proc = subprocess.Popen([*self.wrapper, self.python, "-m", "control.cli", self.command],
                                         env=self.env, cwd=self.source,
                                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            wait_until(self._healthy, timeout, "the control plane to answer /health")
        except TimeoutError:
            raise RuntimeError(f"control plane did not start:\n{self.log_tail()}") from None
        return self

    def _healthy(self) -> bool:
        import urllib.request  # here: the CLI imports this module before gevent patches

        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"control plane exited:\n{self.log_tail()}")
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=1) as resp:
                return int(resp.status) == 200
        except OSError:  # URLError is an OSError
            return False

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def kill9(self) -> None:
        """kill -9 of the whole control plane (gunicorn arbiter and worker)."""
        self.stop(signal.SIGKILL)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def session_row(self, session_id: str) -> dict[str, Any]:
        """The session's row as SQLite holds it (secrets included: tests check what is stored)."""
        with contextlib.closing(sqlite3.connect(self.db_path, timeout=10)) as db:
            db.row_factory = sqlite3.Row
            row = db.execute("SELECT * FROM sessions WHERE id = ?", (session_id,)).fetchone()
        return dict(row) if row else {}

    @property
    def docker_instance(self) -> str:
        """The ``agcluster.instance`` label the Docker provider gives this control plane's
        machines (derived from its database path), for cleaning up by label."""
        return hashlib.sha256(str(self.db_path.resolve()).encode()).hexdigest()[:12]
