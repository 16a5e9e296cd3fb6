"""Real processes for tests: the control plane as `agcluster serve`, talked to over HTTP."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import requests

from wire import sse

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ControlPlane:
    """`agcluster serve` in a child process with its own data dir and log file."""

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None, command: str = "serve") -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = data_dir / "server.log"
        self.db_path = data_dir / "agcluster.db"
        self.env = {**os.environ, "DATABASE_PATH": str(self.db_path), "API_PORT": str(self.port),
                    "SESSION_CLEANUP_INTERVAL": "3600", **(env or {})}
        self.command = command
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> "ControlPlane":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen([sys.executable, "-m", "control.cli", self.command], env=self.env,
                                     stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"control plane exited:\n{self.log()}")
            try:
                if requests.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"control plane did not start:\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    # API helpers ------------------------------------------------------------------------
    def launch(self, api_key: str, config_id: str = "code-assistant", **body: Any) -> dict[str, Any]:
        payload: dict[str, Any] = {"api_key": api_key, **body}
        if "config" not in body:
            payload["config_id"] = config_id
        resp = requests.post(f"{self.url}/api/agents/launch", json=payload, timeout=180)
        assert resp.status_code == 201, resp.text
        return resp.json()

    def chat_events(self, session_id: str, key: str, message: str, **headers: str) -> list[dict[str, Any]]:
        return list(self.chat_stream(session_id, key, message, **headers))

    def chat_stream(self, session_id: str, key: str, message: str, **headers: str) -> Iterator[dict[str, Any]]:
        resp = requests.post(f"{self.url}/api/agents/{session_id}/chat", json={"message": message}, stream=True,
                             headers={"Authorization": f"Bearer {key}", "Accept": "text/event-stream", **headers},
                             timeout=(5, 300))
        assert resp.status_code == 200, resp.text
        with resp:
            yield from sse.parse(resp.iter_content(chunk_size=None))

    def get(self, path: str, key: str | None = None, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return requests.get(f"{self.url}{path}", headers=headers, timeout=60, **kwargs)

    def post(self, path: str, key: str | None = None, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return requests.post(f"{self.url}{path}", headers=headers, timeout=120, **kwargs)

    def delete(self, path: str, key: str | None = None) -> requests.Response:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return requests.delete(f"{self.url}{path}", headers=headers, timeout=60)

    def session_row(self, session_id: str) -> dict[str, Any]:
        import sqlite3

        with sqlite3.connect(self.db_path) as db:
            db.row_factory = sqlite3.Row
            row = db.execute("SELECT * FROM sessions WHERE id = ?", (session_id,)).fetchone()
        return dict(row) if row else {}


def types(events: list[dict[str, Any]]) -> list[str]:
    return [e["type"] for e in events]


def dump(events: list[dict[str, Any]]) -> str:
    return "\n".join(json.dumps(e)[:300] for e in events)


def processes_with(*markers: str) -> list[int]:
    """Pids whose command line contains every marker (machines are found by their paths/ports)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if all(m.encode() in cmdline for m in markers):
            found.append(int(proc.name))
    return found


def wait_for(probe: Any, attempts: int = 1200, interval: float = 0.05) -> Any:
    """Poll a condition (never a fixed sleep standing in for synchronisation)."""
    for _ in range(attempts):
        value = probe()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition never became true")
