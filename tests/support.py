"""Real processes for tests: the control plane as `agcluster serve`, talked to over HTTP."""

from __future__ import annotations

import json
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import requests

from control.harness import ROOT, ControlPlaneProcess, free_port
from wire import sse

__all__ = ["ROOT", "ControlPlane", "dump", "free_port", "processes_with", "types", "wait_for"]


class ControlPlane(ControlPlaneProcess):
    """`agcluster serve` in a child process (``control.harness``), plus API helpers."""

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

    def chat_stream(self, session_id: str, key: str, message: str,
                    **headers: str) -> Generator[dict[str, Any], None, None]:
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


def receive_json(ws: Any, timeout: float) -> Any:
    """The next WebSocket message, decoded; a test fails here if none comes in time."""
    raw = ws.receive(timeout=timeout)
    assert raw is not None, f"no WebSocket message in {timeout}s"
    return json.loads(raw)


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
