"""The product on CONTAINER_PROVIDER=fly_machines, against stubs.fly's docker backend.

Machines are containers of the real agent image, run as Fly runs them (the image's own
ENTRYPOINT, CMD and USER), on a private IPv6 network of their own with a Fly Volume
(a Docker volume that starts empty and root-owned) at /workspace. The control plane on the
host reaches them at ``http://[fd…]:8080`` and serves their relay on the network's gateway,
the stand-in for its 6PN address. Every test ends with no machine and no volume left.

What is proven here, through the control plane's own API:

* launch → chat (the real CLI runs the real Bash tool) → workspace files → delete, and the
  exact Machines API calls that made it;
* a 4 GB session that goes idle is stopped (Fly cannot suspend it), wakes on a cold boot
  with its files and its conversation; a 2 GB session is suspended and resumed; a resume
  that Fly turns into a cold boot keeps everything too;
* a launch that fails halfway leaves no machine and no volume behind;
* the machine agent refuses every peer but the control plane, token or not.

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
from stubs.fly import DockerBackend, StubFly
from tests.fly_support import APP, FLY_TOKEN, config, fly_control_plane, key
from tests.support import ControlPlane, dump, types

GONE = ("pending_destroy", "destroyed")


def wait_for(condition: Callable[[], Any], timeout: float = 120.0) -> Any:
    """Poll a condition (never a fixed sleep standing in for synchronisation)."""
    tick = threading.Event()
    for _ in range(int(timeout / 0.1)):
        value = condition()
        if value:
            return value
        tick.wait(0.1)
    raise AssertionError("condition never became true")


def live_volumes(fly: StubFly) -> list[dict[str, Any]]:
    return [v for v in fly.volumes() if v["state"] not in GONE]


@pytest.fixture(scope="module")
def cp(fly: StubFly, agent_image: str, model: StubAnthropic,
       tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    plane = fly_control_plane(tmp_path_factory.mktemp("fly-cp"), fly, model, agent_image)
    yield plane
    plane.stop()


@pytest.fixture()
def idle_cp(fly: StubFly, agent_image: str, model: StubAnthropic, tmp_path: Path) -> Iterator[ControlPlane]:
    """Sessions go idle after a second; the janitor looks every second."""
    plane = fly_control_plane(tmp_path / "cp", fly, model, agent_image, SESSION_IDLE_TIMEOUT="1",
                              SESSION_CLEANUP_INTERVAL="1")
    yield plane
    plane.stop()


@pytest.fixture(autouse=True)
def nothing_left(fly: StubFly) -> Iterator[None]:
    yield
    fly.clear_faults()
    fly.cold_resume(0.0)
    assert wait_for(lambda: fly.count() == 0 and live_volumes(fly) == [], 60), (fly.machines(), live_volumes(fly))


def docker_machine(docker_client: Any, fly: StubFly, machine_id: str) -> Any:
    assert isinstance(fly.backend, DockerBackend)
    return docker_client.containers.get(f"stubs-fly-{fly.backend.label}-{machine_id}")


def in_machine(fly: StubFly, machine_id: str, script: str, shell: str = "sh") -> str:
    """Run a script inside a machine, as ``fly machine exec`` does (root, in its network)."""
    code, out, err = fly.backend.exec(fly.state.machines[machine_id].handle, [shell, "-c", script], 30)
    assert code == 0, err
    return out


pytestmark = pytest.mark.docker


# --------------------------------------------------------------------------- the whole flow
def test_launch_chat_files_delete(cp: ControlPlane, fly: StubFly, docker_client: Any, agent_image: str) -> None:
    assert cp.get("/health").json()["provider"] == "fly_machines"
    fly.clear_calls()
    api_key = key()
    sid = cp.launch(api_key)["session_id"]
    row = cp.session_row(sid)
    machine = fly.machine(row["machine_id"])
    assert machine["state"] == "started" and ":" in machine["private_ip"]
    assert row["machine_url"] == f"http://[{machine['private_ip']}]:8080"  # 6PN-style IPv6, bracketed

    # The image's own ENTRYPOINT and CMD run, as its USER hands over to the agent user.
    container = docker_machine(docker_client, fly, row["machine_id"])
    image = docker_client.images.get(agent_image).attrs["Config"]
    assert container.attrs["Config"]["Cmd"] == image["Cmd"] and container.attrs["Config"]["Entrypoint"] == \
        image["Entrypoint"]
    processes = in_machine(fly, row["machine_id"], "ps -o user=,args= -e")
    assert any(line.startswith("agent") and "machine_agent" in line for line in processes.splitlines()), processes

    events = cp.chat_events(sid, api_key, "run: echo hi > proof.txt && cat proof.txt")
    assert types(events)[0] == "user" and types(events)[-1] == "done", dump(events)
    result = next(e for e in events if e["type"] == "tool_result")
    assert "hi" in result["output"] and not result["is_error"]
    tree = cp.get(f"/api/files/{sid}", api_key)
    assert tree.status_code == 200 and "proof.txt" in [entry["name"] for entry in tree.json()["tree"]]
    assert cp.get(f"/api/files/{sid}/proof.txt", api_key).json()["content"] == "hi\n"
    [volume] = live_volumes(fly)
    assert volume["attached_machine_id"] == row["machine_id"] and volume["size_gb"] == 10  # CONTAINER_STORAGE_LIMIT

    assert cp.delete(f"/api/agents/sessions/{sid}", api_key).status_code == 200
    assert fly.count() == 0 and live_volumes(fly) == []

    calls = fly.calls()
    changes = [c["action"] for c in calls if c["action"] not in ("get", "list", "wait", "volume_list")]
    assert changes == ["volume_create", "create", "lease_acquire", "lease_release",             # launch
                       "lease_acquire", "stop", "destroy", "lease_release", "volume_destroy"], dump(calls)
    assert all(c["status"] < 400 for c in calls), dump(calls)
    assert all(c["auth"] == "FlyV1" and c["app"] == APP for c in calls)
    create = next(c for c in calls if c["action"] == "create")["body"]["config"]
    assert create["image"] == agent_image and create["mounts"] == [{"volume": volume["id"], "path": "/workspace"}]
    assert create["guest"] == {"cpu_kind": "shared", "cpus": 2, "memory_mb": 4096}
    assert create["services"] == [] and create["restart"] == {"policy": "no"} and create["auto_destroy"] is False
    assert create["metadata"]["agcluster_session"] == row["machine_key"]
    assert create["env"]["AGCLUSTER_CONTROL_PLANE"] == fly.gateway
    assert set(create["env"]) == {"AGCLUSTER_MACHINE_TOKEN", "MAX_UPLOAD_MB", "AGCLUSTER_CONTROL_PLANE"}
    assert api_key not in json.dumps(calls)  # the user's key is nowhere in what Fly was sent


def test_an_impossible_size_is_a_400_at_launch(model: StubAnthropic, tmp_path: Path) -> None:
    """32 CPUs (allowed by CONTAINER_CPU_QUOTA) is no Fly size: refused before Fly is asked."""
    with StubFly(token=FLY_TOKEN, apps=[APP]) as stub:
        plane = fly_control_plane(tmp_path / "cp", stub, model, CONTAINER_CPU_QUOTA="3200000")
        try:
            stub.clear_calls()
            plain = {"id": "plain", "name": "Plain", "allowed_tools": ["Bash"]}  # default resource limits
            resp = plane.post("/api/agents/launch", json={"api_key": key(), "config": plain})
            assert resp.status_code == 400, resp.text
            error = resp.json()["error"]
            assert error["code"] == "validation_error" and "no Fly Machine size" in error["message"]
            assert stub.calls() == [] and stub.count() == 0 and stub.volume_count() == 0
            assert plane.get("/api/agents/sessions").json()["total"] == 0
        finally:
            plane.stop()


@pytest.mark.parametrize(("fault", "action"), [
    ({"status": 503, "count": -1}, "create"),                                            # Fly down after the volume
    ({"status": 422, "code": "insufficient_capacity", "message": "no room"}, "create"),  # no capacity for the guest
])
def test_a_launch_that_fails_halfway_leaves_nothing(cp: ControlPlane, fly: StubFly, fault: dict[str, Any],
                                                    action: str) -> None:
    fly.clear_calls()
    fly.fail_next(fault["status"], count=fault.get("count", 1), action=action, code=fault.get("code"),
                  message=fault.get("message"))
    resp = cp.post("/api/agents/launch", json={"api_key": key(), "config": config()})
    assert resp.status_code == 503, resp.text
    assert resp.json()["error"]["code"] == "machine_start_failed"
    assert [c["status"] for c in fly.calls("volume_create")] == [200]  # the volume was made first...
    assert fly.count() == 0 and live_volumes(fly) == []                # ...and is gone again
    assert cp.get("/api/agents/sessions").json()["total"] == 0


# --------------------------------------------------------------------------- idle and wake
def remember(plane: ControlPlane, sid: str, api_key: str) -> str:
    """Leave a file and something to remember; return the thing."""
    marker = "remember-" + secrets.token_hex(4)
    wrote = plane.chat_events(sid, api_key, f"write notes.md: {marker}")
    assert types(wrote)[-1] == "done" and "error" not in types(wrote), dump(wrote)
    said = plane.chat_events(sid, api_key, f"say {marker}")
    assert types(said)[-1] == "done" and "error" not in types(said), dump(said)
    return marker


def went_idle(plane: ControlPlane, fly: StubFly, sid: str, api_key: str, machine_id: str, state: str) -> None:
    def idle() -> bool:
        status = plane.get(f"/api/agents/sessions/{sid}", api_key).json()["status"]
        return status == "stopped" and fly.machine(machine_id)["state"] == state

    wait_for(idle)


def woke_with_everything(plane: ControlPlane, fly: StubFly, model: StubAnthropic, sid: str, api_key: str,
                         machine_id: str, marker: str) -> None:
    model.reset()
    second = plane.chat_events(sid, api_key, "what did I say?")
    assert types(second)[-1] == "done" and "error" not in types(second), dump(second)
    assert fly.machine(machine_id)["state"] == "started"
    assert plane.session_row(sid)["machine_id"] == machine_id  # woken, not replaced
    main = [r for r in model.requests() if r.get("kind") == "main"] or model.requests()
    assert marker in json.dumps(main[-1]["body"]["messages"][:-1]), "the conversation must continue"
    note = plane.get(f"/api/files/{sid}/notes.md", api_key)
    assert note.status_code == 200 and marker in note.json()["content"], note.text  # the workspace too


def test_an_idle_4gb_session_is_stopped_and_wakes_cold_with_its_files_and_conversation(
        idle_cp: ControlPlane, fly: StubFly, model: StubAnthropic) -> None:
    api_key = key()
    sid = idle_cp.launch(api_key, config=config("4g"))["session_id"]
    machine_id = idle_cp.session_row(sid)["machine_id"]
    marker = remember(idle_cp, sid, api_key)
    in_machine(fly, machine_id, "echo rootfs > /home/agent/mark")
    since = fly.calls()[-1]["seq"]
    went_idle(idle_cp, fly, sid, api_key, machine_id, "stopped")
    assert fly.calls("suspend", since=since) == []  # above 2 GB Fly cannot suspend: stopped outright
    woke_with_everything(idle_cp, fly, model, sid, api_key, machine_id, marker)
    assert in_machine(fly, machine_id, "ls -A /home/agent | grep -c mark || true").strip() == "0"  # a cold boot
    assert idle_cp.delete(f"/api/agents/sessions/{sid}", api_key).status_code == 200


def test_an_idle_2gb_session_is_suspended_and_resumed(idle_cp: ControlPlane, fly: StubFly,
                                                     model: StubAnthropic) -> None:
    api_key = key()
    sid = idle_cp.launch(api_key, config=config("2g"))["session_id"]
    machine_id = idle_cp.session_row(sid)["machine_id"]
    marker = remember(idle_cp, sid, api_key)
    in_machine(fly, machine_id, "echo memory > /home/agent/mark")
    since = fly.calls()[-1]["seq"]
    went_idle(idle_cp, fly, sid, api_key, machine_id, "suspended")
    assert [c["status"] for c in fly.calls("suspend", since=since)] == [200]
    woke_with_everything(idle_cp, fly, model, sid, api_key, machine_id, marker)
    assert in_machine(fly, machine_id, "cat /home/agent/mark") == "memory\n"  # resumed, not rebooted
    assert idle_cp.delete(f"/api/agents/sessions/{sid}", api_key).status_code == 200


def test_a_resume_that_fly_turns_into_a_cold_boot_keeps_everything(idle_cp: ControlPlane, fly: StubFly,
                                                                  model: StubAnthropic) -> None:
    fly.cold_resume(1.0, seed=14)
    api_key = key()
    sid = idle_cp.launch(api_key, config=config("2g"))["session_id"]
    machine_id = idle_cp.session_row(sid)["machine_id"]
    marker = remember(idle_cp, sid, api_key)
    in_machine(fly, machine_id, "echo memory > /home/agent/mark")
    went_idle(idle_cp, fly, sid, api_key, machine_id, "suspended")
    woke_with_everything(idle_cp, fly, model, sid, api_key, machine_id, marker)
    assert in_machine(fly, machine_id, "ls -A /home/agent | grep -c mark || true").strip() == "0"
    events = fly.state.events(APP, machine_id)
    assert any(e["type"] == "start" and e["request"].get("cold_boot") for e in events)
    assert idle_cp.delete(f"/api/agents/sessions/{sid}", api_key).status_code == 200


# --------------------------------------------------------------------------- who may call a machine
def test_the_machine_agent_refuses_every_peer_but_the_control_plane(cp: ControlPlane, fly: StubFly) -> None:
    first_key, second_key = key(), key()
    first = cp.launch(first_key, config=config("1g"))["session_id"]
    second = cp.launch(second_key, config=config("1g"))["session_id"]
    target, neighbour = cp.session_row(first)["machine_id"], cp.session_row(second)["machine_id"]
    target_ip = fly.machine(target)["private_ip"]
    token = next(c for c in fly.calls("create") if c["body"]["config"]["metadata"]["agcluster_session"]
                 == cp.session_row(first)["machine_key"])["body"]["config"]["env"]["AGCLUSTER_MACHINE_TOKEN"]
    probe = (f"import json, urllib.request as u\n"
             f"for auth in ('', 'Bearer {token}'):\n"
             f"    req = u.Request('http://[{target_ip}]:8080/health', headers={{'Authorization': auth}})\n"
             f"    try:\n"
             f"        u.urlopen(req, timeout=10)\n"
             f"        print(200)\n"
             f"    except u.HTTPError as exc:\n"
             f"        print(exc.code, json.dumps(json.loads(exc.read())))\n")
    out = in_machine(fly, neighbour, probe, shell="python3")
    lines = out.strip().splitlines()
    assert len(lines) == 2, out
    for line in lines:  # no token, then the target's own token: both refused before the token counts
        status, body = line.split(" ", 1)
        assert status == "403" and json.loads(body)["error"]["code"] == "forbidden", out
    # The control plane itself still gets through (its address is AGCLUSTER_CONTROL_PLANE).
    events = cp.chat_events(first, first_key, "run: echo still-mine")
    assert types(events)[-1] == "done" and "error" not in types(events), dump(events)
    for sid, api_key in ((first, first_key), (second, second_key)):
        assert cp.delete(f"/api/agents/sessions/{sid}", api_key).status_code == 200
