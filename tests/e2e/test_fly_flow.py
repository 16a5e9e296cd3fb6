"""The product on CONTAINER_PROVIDER=fly_machines, against stubs.fly with machines that really run.

Each backend of the stand-in gets the whole flow: launch → chat (the real CLI runs the real
Bash tool) → workspace files → delete, then the exact Machines API calls the control plane
made; and idle suspend → the next chat resumes the machine and the conversation.

The docker backend uses the shared Docker fixtures (tests/docker_support.py): the agent
image is built once per run (hash-skipped), and a missing engine is a skip on a laptop but
a failure in CI (CI=true).
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from stubs.anthropic import StubAnthropic
from stubs.fly import StubFly
from tests.docker_support import AGENT_IMAGE, agent_image, docker_client  # noqa: F401 - fixtures
from tests.support import ControlPlane, dump, types

APP = "agcluster-test"
FLY_TOKEN = "test-token"
KEY = "sk-ant-api03-" + secrets.token_hex(24)
IDLE_KEY = "sk-ant-api03-" + secrets.token_hex(24)


@pytest.fixture(scope="module", params=["process", pytest.param("docker", marks=pytest.mark.docker)])
def backend(request: pytest.FixtureRequest) -> tuple[str, str]:
    """(stand-in backend, the image its machines run)."""
    if request.param == "docker":
        return "docker", request.getfixturevalue("agent_image")
    return "process", AGENT_IMAGE


@pytest.fixture(scope="module")
def fly(backend: tuple[str, str]) -> Iterator[StubFly]:
    stub = StubFly(backend=backend[0], token=FLY_TOKEN, apps=[APP]).start()
    yield stub
    stub.stop()


def fly_control_plane(data_dir: Path, stub: StubFly, model: StubAnthropic, image: str = AGENT_IMAGE,
                      **extra: str) -> ControlPlane:
    cp = ControlPlane(data_dir, {"CONTAINER_PROVIDER": "fly_machines", "FLY_API_TOKEN": FLY_TOKEN,
                                 "FLY_APP_NAME": APP, "MACHINES_API_URL": stub.url, "AGENT_IMAGE": image,
                                 "ANTHROPIC_BASE_URL": model.url, **extra})
    cp.env["RELAY_URL"] = f"http://127.0.0.1:{cp.port}/relay"
    return cp.start(timeout=120)


@pytest.fixture(scope="module")
def cp(fly: StubFly, backend: tuple[str, str], model: StubAnthropic,
       tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    plane = fly_control_plane(tmp_path_factory.mktemp("fly-cp"), fly, model, backend[1])
    yield plane
    plane.stop()


def wait_for(condition: Callable[[], Any], timeout: float = 120.0) -> Any:
    """Poll a condition (never a fixed sleep standing in for synchronisation)."""
    tick = threading.Event()
    for _ in range(int(timeout / 0.1)):
        value = condition()
        if value:
            return value
        tick.wait(0.1)
    raise AssertionError("condition never became true")


def test_launch_chat_files_delete(cp: ControlPlane, fly: StubFly, backend: tuple[str, str]) -> None:
    assert cp.get("/health").json()["provider"] == "fly_machines"
    fly.clear_calls()
    session = cp.launch(KEY)
    sid = session["session_id"]
    row = cp.session_row(sid)
    machine = fly.machine(row["machine_id"])
    assert machine["state"] == "started"
    assert row["machine_url"] == f"http://{machine['private_ip']}:8080"  # reached at its private IP

    events = cp.chat_events(sid, KEY, "run: echo hi > proof.txt && cat proof.txt")
    assert types(events)[0] == "user" and types(events)[-1] == "done", dump(events)
    tool_use = next(e for e in events if e["type"] == "tool_use")
    result = next(e for e in events if e["type"] == "tool_result")
    assert tool_use["name"] == "Bash" and result["tool_use_id"] == tool_use["id"]
    assert "hi" in result["output"] and not result["is_error"]

    tree = cp.get(f"/api/files/{sid}", KEY)
    assert tree.status_code == 200, tree.text
    assert tree.json()["root"] == "/workspace"
    assert "proof.txt" in [entry["name"] for entry in tree.json()["tree"]]
    preview = cp.get(f"/api/files/{sid}/proof.txt", KEY)
    assert preview.status_code == 200 and preview.json()["content"] == "hi\n"

    assert cp.delete(f"/api/agents/sessions/{sid}", KEY).status_code == 200
    assert fly.count() == 0  # nothing left behind

    calls = fly.calls()
    changes = [c["action"] for c in calls if c["action"] not in ("get", "list", "wait")]
    assert changes == ["create", "lease_acquire", "lease_release",                  # launch
                       "lease_acquire", "stop", "destroy", "lease_release"], dump(calls)   # delete
    # Only a lease released after its machine was already gone may be a 404.
    assert all(c["status"] < 400 or (c["action"], c["status"]) == ("lease_release", 404) for c in calls), dump(calls)
    assert all(c["auth"] == "Bearer" and c["app"] == APP for c in calls)
    lookups = [c["query"] for c in calls if c["action"] == "list"]
    assert {"metadata.agcluster_session": row["machine_key"]} in lookups
    waits = [c["query"]["state"] for c in calls if c["action"] == "wait"]
    assert waits == ["started", "stopped", "destroyed"]

    create = next(c for c in calls if c["action"] == "create")["body"]
    config = create["config"]
    assert config["image"] == backend[1]
    assert config["guest"] == {"cpu_kind": "shared", "cpus": 2, "memory_mb": 4096}
    assert config["services"] == [] and config["restart"] == {"policy": "no"} and config["auto_destroy"] is False
    assert config["metadata"]["agcluster_session"] == row["machine_key"]
    assert set(config["env"]) == {"AGCLUSTER_MACHINE_TOKEN", "MAX_UPLOAD_MB"}
    # The user's key is nowhere in what Fly was sent (machine config, env, anything).
    assert KEY not in json.dumps(calls)


def test_an_impossible_size_is_a_400_at_launch(model: StubAnthropic, tmp_path: Path) -> None:
    """32 CPUs (allowed by CONTAINER_CPU_QUOTA) is no Fly size: refused before Fly is asked."""
    with StubFly(token=FLY_TOKEN, apps=[APP]) as stub:
        plane = fly_control_plane(tmp_path / "cp", stub, model, CONTAINER_CPU_QUOTA="3200000")
        try:
            stub.clear_calls()
            config = {"id": "plain", "name": "Plain", "allowed_tools": ["Bash"]}  # default resource limits
            resp = plane.post("/api/agents/launch", json={"api_key": KEY, "config": config})
            assert resp.status_code == 400, resp.text
            error = resp.json()["error"]
            assert error["code"] == "validation_error" and "no Fly Machine size" in error["message"]
            assert stub.calls() == [] and stub.count() == 0
            assert plane.get("/api/agents/sessions").json()["total"] == 0
        finally:
            plane.stop()


def test_idle_suspend_then_the_next_chat_resumes_the_conversation(
        fly: StubFly, backend: tuple[str, str], model: StubAnthropic, tmp_path: Path) -> None:
    idle = fly_control_plane(tmp_path / "cp", fly, model, backend[1], SESSION_IDLE_TIMEOUT="1",
                             SESSION_CLEANUP_INTERVAL="1")
    try:
        sid = idle.launch(IDLE_KEY)["session_id"]
        machine_id = idle.session_row(sid)["machine_id"]
        marker = "remember-" + secrets.token_hex(4)
        first = idle.chat_events(sid, IDLE_KEY, f"say {marker}")
        assert types(first)[-1] == "done" and "error" not in types(first), dump(first)
        since = fly.calls()[-1]["seq"]

        def suspended_while_idle() -> bool:
            status = idle.get(f"/api/agents/sessions/{sid}", IDLE_KEY).json()["status"]
            return status == "stopped" and any(c["action"] == "suspend" for c in fly.calls(since=since))

        wait_for(suspended_while_idle)
        assert fly.machine(machine_id)["state"] == "suspended"

        model.reset()
        second = idle.chat_events(sid, IDLE_KEY, "what did I say?")
        assert types(second)[-1] == "done" and "error" not in types(second), dump(second)
        assert fly.machine(machine_id)["state"] == "started"
        assert idle.session_row(sid)["machine_id"] == machine_id  # resumed, not replaced
        woken = [c["action"] for c in fly.calls(since=since)]
        assert woken.index("start") > woken.index("suspend") and "create" not in woken
        main = [r for r in model.requests() if r.get("kind") == "main"] or model.requests()
        assert marker in json.dumps(main[-1]["body"]["messages"][:-1]), "the conversation must continue"
        assert idle.delete(f"/api/agents/sessions/{sid}", IDLE_KEY).status_code == 200
        assert fly.count() == 0
    finally:
        idle.stop()
