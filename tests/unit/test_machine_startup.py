"""What a machine agent pays before it is configured, and the transcript mirror's client.

The SDK import (~0.45 s: MCP types, pydantic) belongs to ``/configure``; a fresh machine
must answer ``/health`` without it. The mirror's append is on every turn's path to
``done``, so it must reuse one HTTP client and connection instead of building one per call.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from machine_agent.server import Server, listen_tcp
from machine_agent.session_store import ControlPlaneSessionStore
from tests.support import ROOT

HEAVY = ("claude_agent_sdk", "mcp", "pydantic", "httpx")


def test_the_first_health_check_starts_importing_the_sdk(tmp_path: Any) -> None:
    """So a machine waiting in the warm pool is configured without paying the import."""
    probe = f"""
import sys
from machine_agent.app import create_app
app = create_app(workspace={str(tmp_path)!r}, token="t", home={str(tmp_path)!r})
assert "claude_agent_sdk" not in sys.modules
assert app.test_client().get("/health", headers={{"Authorization": "Bearer t"}}).status_code == 200
app.extensions["agent_runner"]._prefetch.join(120)
print("claude_agent_sdk" in sys.modules and "httpcore" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "True"


def test_prepare_answers_once_the_sdk_is_imported(tmp_path: Any) -> None:
    """The warm pool counts a machine ready only after ``/prepare``: its configure then pays
    only the CLI's start."""
    probe = f"""
import sys
from machine_agent.app import create_app
app = create_app(workspace={str(tmp_path)!r}, token="t", home={str(tmp_path)!r})
assert "claude_agent_sdk" not in sys.modules
answer = app.test_client().post("/prepare", headers={{"Authorization": "Bearer t"}})
print(answer.get_json()["status"], "claude_agent_sdk" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["prepared", "True"]


def test_creating_the_app_imports_none_of_the_heavy_packages(tmp_path: Any) -> None:
    probe = f"""
import sys
from machine_agent.app import create_app
create_app(workspace={str(tmp_path)!r}, token="t", home={str(tmp_path)!r})
print(",".join(sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))))
"""
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "", f"imported at start-up: {out.stdout.strip()}"


@pytest.fixture
def store_server() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    calls: list[dict[str, Any]] = []

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        body = json.loads(environ["wsgi.input"].read() or b"{}")
        op = environ["PATH_INFO"].rsplit("/", 1)[-1]
        calls.append({"op": op, "peer": environ["REMOTE_PORT"], "auth": environ.get("HTTP_AUTHORIZATION"),
                      "path": environ["PATH_INFO"], "body": body})
        answer = {"append": {}, "load": {"entries": [{"n": 1}]}, "subkeys": {"subkeys": ["a"]}}[op]
        data = json.dumps(answer).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]

    server = Server(listen_tcp("127.0.0.1", 0), app)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.socket.getsockname()[1]}/relay", calls
    server.close()
    thread.join(10)


def test_the_mirror_reuses_one_connection(store_server: tuple[str, list[dict[str, Any]]]) -> None:
    url, calls = store_server

    async def session() -> tuple[Any, Any]:
        store = ControlPlaneSessionStore(url, "relay-token")
        for i in range(5):
            await store.append({"sessionId": "s"}, [{"uuid": str(i)}])
        loaded = await store.load({"sessionId": "s"})
        subkeys = await store.list_subkeys({"sessionId": "s"})
        await store.close()
        return loaded, subkeys

    loaded, subkeys = asyncio.run(session())
    assert loaded == [{"n": 1}] and subkeys == ["a"]
    assert [c["op"] for c in calls] == ["append"] * 5 + ["load", "subkeys"]
    assert all(c["path"].startswith("/relay/_store/") for c in calls)
    assert {c["auth"] for c in calls} == {"Bearer relay-token"}
    assert [c["body"]["entries"][0]["uuid"] for c in calls[:5]] == ["0", "1", "2", "3", "4"]
    assert len({c["peer"] for c in calls}) == 1, "every call must ride the same kept-alive connection"
