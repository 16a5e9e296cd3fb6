"""The foundation flow on a real Docker engine, through the control plane."""

from __future__ import annotations

import json
import secrets
import signal
import socket
from pathlib import Path
from typing import Any

import pytest

from stubs.anthropic import StubAnthropic
from tests.docker_support import cleanup_instance
from tests.support import ControlPlane, dump, types, wait_for

pytestmark = [pytest.mark.docker, pytest.mark.timeout(1800)]
SMALL = {"id": "small-box", "name": "Small box", "allowed_tools": ["Bash", "Read", "Write"],
         "resource_limits": {"cpu_quota": 50000, "memory_limit": "512m"}}


@pytest.fixture(scope="module")
def module_cp(tmp_path_factory: pytest.TempPathFactory, model: StubAnthropic, agent_image: str,
              docker_client: Any) -> Any:
    cp = ControlPlane(tmp_path_factory.mktemp("docker-cp"), {
        "ANTHROPIC_BASE_URL": model.url, "CONTAINER_PROVIDER": "docker", "AGENT_IMAGE": agent_image}).start()
    yield cp
    cp.stop()


@pytest.fixture
def docker_cp(module_cp: ControlPlane, docker_client: Any) -> Any:
    """The module's control plane; whatever a test left on the engine (a failed assertion
    before its own delete, say) is removed by the plane's instance label afterwards."""
    yield module_cp
    cleanup_instance(docker_client, module_cp.docker_instance)


@pytest.fixture
def idle_cp(tmp_path: Path, model: StubAnthropic, agent_image: str, docker_client: Any) -> Any:
    cp = ControlPlane(tmp_path / "idle", {"ANTHROPIC_BASE_URL": model.url, "CONTAINER_PROVIDER": "docker",
                                          "AGENT_IMAGE": agent_image, "SESSION_IDLE_TIMEOUT": "2",
                                          "SESSION_CLEANUP_INTERVAL": "1"}).start()
    yield cp
    cp.stop()
    cleanup_instance(docker_client, cp.docker_instance)


def _containers(client: Any, sid: str) -> list[Any]:
    return client.containers.list(all=True, filters={"label": f"agcluster.session_id={sid}"})


def test_launch_chat_files_delete_on_docker(docker_cp: ControlPlane, docker_client: Any) -> None:
    key = "sk-ant-api03-" + secrets.token_hex(20)
    sid = docker_cp.launch(key, config=SMALL)["session_id"]
    events = docker_cp.chat_events(sid, key, "run: echo hi > proof.txt && cat proof.txt && id -u")
    result = next(e for e in events if e["type"] == "tool_result")
    assert "hi" in result["output"] and "1000" in result["output"], dump(events)
    tree = docker_cp.get(f"/api/files/{sid}", key).json()
    assert "proof.txt" in [n["name"] for n in tree["tree"]]
    assert docker_cp.get(f"/api/files/{sid}/proof.txt", key).json()["content"] == "hi\n"

    (container,) = _containers(docker_client, sid)
    attrs = container.attrs
    host = attrs["HostConfig"]
    assert host["Memory"] == 512 * 1024 * 1024 and host["CapDrop"] == ["ALL"] and host["ReadonlyRootfs"]
    assert "no-new-privileges" in " ".join(host["SecurityOpt"])
    assert sorted(host["CapAdd"]) == ["SETGID", "SETPCAP", "SETUID"]  # for pid 1 to step down
    assert key not in json.dumps(attrs)
    env_dump = next(e for e in docker_cp.chat_events(sid, key, "run: env; cat /proc/1/environ | tr '\\0' '\\n'")
                    if e["type"] == "tool_result")["output"]
    assert "ANTHROPIC_BASE_URL" in env_dump and key not in env_dump
    details = docker_cp.get(f"/api/agents/sessions/{sid}", key).json()
    assert details["resources"]["memory_limit_mb"] == 512

    assert docker_cp.delete(f"/api/agents/sessions/{sid}", key).status_code == 200
    assert _containers(docker_client, sid) == []
    assert not [v for v in docker_client.volumes.list() if sid in v.name]


def test_memory_limit_kills_the_allocation_not_the_platform(docker_cp: ControlPlane) -> None:
    key = "sk-ant-api03-" + secrets.token_hex(20)
    sid = docker_cp.launch(key, config=SMALL)["session_id"]
    events = docker_cp.chat_events(sid, key, "run: python3 -c 'x = bytearray(2 * 1024 ** 3); print(len(x))'")
    failed = [e for e in events if (e["type"] == "tool_result" and e["is_error"]) or e["type"] == "error"]
    assert failed and events[-1]["type"] == "done", dump(events)
    assert "2147483648" not in str([e for e in events if e["type"] == "tool_result"])
    assert docker_cp.get("/health").status_code == 200
    status = docker_cp.get(f"/api/agents/sessions/{sid}", key).json()["status"]
    assert status in ("running", "failed")
    # Either way the session carries on: the next turn works (on a woken machine if need be).
    again = docker_cp.chat_events(sid, key, "run: echo still-here")
    assert "still-here" in next(e for e in again if e["type"] == "tool_result")["output"], dump(again)


def test_killed_container_is_reported_and_restart_reconciles(docker_cp: ControlPlane, docker_client: Any) -> None:
    key = "sk-ant-api03-" + secrets.token_hex(20)
    sid = docker_cp.launch(key, config=SMALL)["session_id"]
    stream = docker_cp.chat_stream(sid, key, "run: python3 -c 'import time; time.sleep(120)'")
    for event in stream:
        if event["type"] == "tool_use":
            break
    (container,) = _containers(docker_client, sid)
    container.kill()
    rest = list(stream)
    assert "error" in types(rest) and rest[-1]["type"] == "done", dump(rest)
    assert docker_cp.get(f"/api/agents/sessions/{sid}", key).json()["status"] == "failed"

    # An orphan (a labelled container no session knows) and a ghost (a session whose
    # container vanished) are both put right by a restart.
    other = docker_cp.launch("sk-ant-api03-" + secrets.token_hex(20), config=SMALL)["session_id"]
    docker_cp.stop(signal.SIGKILL)
    import sqlite3

    with sqlite3.connect(docker_cp.db_path) as db:
        db.execute("DELETE FROM sessions WHERE id = ?", (other,))
    for c in _containers(docker_client, sid):
        c.remove(force=True)
    docker_cp.start()
    assert _containers(docker_client, other) == []
    ghost = docker_cp.get(f"/api/agents/sessions/{sid}", key).json()
    assert ghost["status"] in ("stopped", "failed") and ghost["status_detail"]
    again = docker_cp.chat_events(sid, key, "run: cat proof.txt 2>/dev/null; echo woke-up")
    assert "woke-up" in next(e for e in again if e["type"] == "tool_result")["output"], dump(again)
    assert docker_cp.delete(f"/api/agents/sessions/{sid}", key).status_code == 200
    assert _containers(docker_client, sid) == []


def test_idle_stop_and_wake_on_docker(idle_cp: ControlPlane, model: StubAnthropic,
                                      docker_client: Any) -> None:
    cp = idle_cp
    key = "sk-ant-api03-" + secrets.token_hex(20)
    sid = cp.launch(key, config=SMALL)["session_id"]
    cp.chat_events(sid, key, "run: echo docker-idle-marker > kept.txt")
    wait_for(lambda: _status(cp, sid, key) == "stopped")
    (container,) = _containers(docker_client, sid)
    assert container.status in ("exited", "created")
    model.reset()
    events = cp.chat_events(sid, key, "run: cat kept.txt")
    assert "docker-idle-marker" in next(e for e in events if e["type"] == "tool_result")["output"], dump(events)
    assert "echo docker-idle-marker" in str(model.requests()[-1]["body"]["messages"])


def _status(cp: ControlPlane, sid: str, key: str) -> str:
    resp = cp.get(f"/api/agents/sessions/{sid}", key)
    assert resp.status_code == 200, resp.text
    return resp.json()["status"]


def test_sigterm_removes_pool_machines_while_a_connection_is_still_open(
        tmp_path: Path, model: StubAnthropic, agent_image: str, docker_client: Any) -> None:
    """gunicorn kills its worker a fixed time after SIGTERM, the drain of open connections
    included; a client that keeps one open used to take all of it, so the pool's machines,
    removed only after the drain, outlived the control plane."""
    cp = ControlPlane(tmp_path / "pool", {"ANTHROPIC_BASE_URL": model.url, "CONTAINER_PROVIDER": "docker",
                                          "AGENT_IMAGE": agent_image, "WARM_POOL": "code-assistant:1"}).start()
    selector = {"label": [f"agcluster.instance={cp.docker_instance}"]}
    try:
        wait_for(lambda: cp.get("/health").json()["warm_pool"]["hot"]["code-assistant"]["ready"] == 1, attempts=3000)
        assert docker_client.containers.list(all=True, filters=selector)
        with socket.create_connection(("127.0.0.1", cp.port)):  # open, never a request: the drain waits
            cp.stop()
        assert cp.proc is not None and cp.proc.returncode == 0, cp.log_tail()
        assert docker_client.containers.list(all=True, filters=selector) == [], cp.log_tail()
    finally:
        cp.stop()
        cleanup_instance(docker_client, cp.docker_instance)
