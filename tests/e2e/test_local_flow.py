"""The walking product on the embedded provider: real SDK, real CLI, real bwrap sandbox."""

from __future__ import annotations

import os
import secrets
import signal
from pathlib import Path

import pytest
import requests

from stubs.anthropic import StubAnthropic
from tests.support import ControlPlane, dump, processes_with, types

KEY = "sk-ant-api03-" + secrets.token_hex(24)
OTHER_KEY = "sk-ant-api03-" + secrets.token_hex(24)


@pytest.fixture(scope="module")
def session(control_plane: ControlPlane) -> dict:
    return control_plane.launch(KEY)


def workspace(cp: ControlPlane, session_id: str) -> Path:
    return cp.data_dir / "machines" / session_id / "workspace"


def test_bash_turn_streams_every_event_in_order(control_plane: ControlPlane, session: dict,
                                                model: StubAnthropic) -> None:
    events = control_plane.chat_events(session["session_id"], KEY, "run: echo hi > proof.txt && cat proof.txt")
    kinds = types(events)
    assert kinds[0] == "user" and kinds[-1] == "done", dump(events)
    order = [kinds.index(k) for k in ("tool_use", "tool_result", "text", "result", "done")]
    assert order == sorted(order), dump(events)
    seqs = [e["seq"] for e in events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    tool_use = next(e for e in events if e["type"] == "tool_use")
    assert tool_use["name"] == "Bash"
    result = next(e for e in events if e["type"] == "tool_result")
    assert result["tool_use_id"] == tool_use["id"] and "hi" in result["output"] and not result["is_error"]
    assert all(e["session_id"] == session["session_id"] for e in events)
    assert (workspace(control_plane, session["session_id"]) / "proof.txt").read_text() == "hi\n"


def test_files_stay_in_their_own_session(control_plane: ControlPlane, session: dict) -> None:
    other = control_plane.launch(OTHER_KEY)
    try:
        events = control_plane.chat_events(other["session_id"], OTHER_KEY,
                                           "run: ls /workspace; ls /workspace/.. ; cat proof.txt")
        output = next(e for e in events if e["type"] == "tool_result")["output"]
        assert "proof.txt" not in output.replace("cat: proof.txt", "")
        assert not (workspace(control_plane, other["session_id"]) / "proof.txt").exists()
        # The sandbox hides the control plane's data directory (database, secrets, other workspaces).
        events = control_plane.chat_events(other["session_id"], OTHER_KEY, f"run: ls -a {control_plane.data_dir}")
        listing = next(e for e in events if e["type"] == "tool_result")["output"]
        assert "agcluster.db" not in listing and "server.secret" not in listing
    finally:
        assert control_plane.delete(f"/api/agents/sessions/{other['session_id']}", OTHER_KEY).status_code == 200


def test_second_turn_remembers_the_first(control_plane: ControlPlane, session: dict, model: StubAnthropic) -> None:
    model.reset()
    marker = "remember-" + secrets.token_hex(4)
    control_plane.chat_events(session["session_id"], KEY, f"say {marker}")
    control_plane.chat_events(session["session_id"], KEY, "what did I say?")
    main = [r for r in model.requests() if r.get("kind") == "main"] or model.requests()
    last = main[-1]["body"]["messages"]
    assert marker in str(last[:-1]), "the second request must carry the first turn"


def test_busy_then_interrupt_then_next_turn_works(control_plane: ControlPlane, session: dict) -> None:
    sid = session["session_id"]
    stream = control_plane.chat_stream(sid, KEY, "run: python3 -c 'import time; time.sleep(120)'")
    seen = []
    for event in stream:
        seen.append(event)
        if event["type"] == "tool_use":
            break
    busy = control_plane.post(f"/api/agents/{sid}/chat", KEY, json={"message": "hello"})
    assert busy.status_code == 409 and busy.json()["error"]["code"] == "busy"
    assert control_plane.post(f"/api/agents/{sid}/interrupt", KEY).json()["interrupted"] is True
    rest = list(stream)
    assert rest[-1]["type"] == "done", dump(rest)
    events = control_plane.chat_events(sid, KEY, "run: echo after-interrupt")
    assert "after-interrupt" in next(e for e in events if e["type"] == "tool_result")["output"]


def test_auth_and_validation_errors(control_plane: ControlPlane, session: dict) -> None:
    sid = session["session_id"]
    for method, path in (("post", f"/api/agents/{sid}/chat"), ("get", f"/api/agents/sessions/{sid}"),
                         ("post", f"/api/agents/{sid}/interrupt"), ("get", f"/api/files/{sid}"),
                         ("get", f"/api/agents/sessions/{sid}/events")):
        no_key = getattr(control_plane, method)(path, None, **({"json": {"message": "x"}} if method == "post" else {}))
        body = {"json": {"message": "x"}} if method == "post" else {}
        wrong = getattr(control_plane, method)(path, OTHER_KEY, **body)
        assert no_key.status_code == 401 and no_key.json()["error"]["code"] == "unauthorized", path
        assert wrong.status_code == 403 and wrong.json()["error"]["code"] == "forbidden", path
    assert control_plane.delete(f"/api/agents/sessions/{sid}", OTHER_KEY).status_code == 403
    missing = control_plane.post("/api/agents/no-such-session/chat", KEY, json={"message": "x"})
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    bad = control_plane.post(f"/api/agents/{sid}/chat", KEY, json={"message": 5, "extra": True})
    assert bad.status_code == 400
    assert set(bad.json()["error"]["details"]) == {"message", "extra"}
    bad_launch = control_plane.post("/api/agents/launch", json={"api_key": KEY, "config_id": "nope"})
    assert bad_launch.status_code == 404
    inline = control_plane.post("/api/agents/launch",
                                json={"api_key": KEY, "config": {"id": "x", "allowed_tools": ["Nope"]}})
    assert inline.status_code == 400 and "allowed_tools" in inline.json()["error"]["details"]
    not_json = requests.post(f"{control_plane.url}/api/agents/launch", data="{",
                             headers={"Content-Type": "application/json"})
    assert not_json.status_code == 400 and not_json.json()["error"]["code"] == "invalid_json"


def test_the_key_never_reaches_disk_logs_or_the_agent(control_plane: ControlPlane, session: dict,
                                                      model: StubAnthropic) -> None:
    sid = session["session_id"]
    events = control_plane.chat_events(sid, KEY, "run: env; cat /proc/1/environ | tr '\\0' '\\n'; ls -a ~")
    output = next(e for e in events if e["type"] == "tool_result")["output"]
    assert "ANTHROPIC_BASE_URL" in output  # the agent really printed its environment
    assert KEY not in output
    # The model did receive the user's key, through the relay.
    assert any(r.get("credential", {}).get("last4") == KEY[-4:] for r in model.requests() if r.get("credential"))
    control_plane.stop()  # flush everything to disk first
    try:
        needle = KEY.encode()
        offenders = [p for p in control_plane.data_dir.rglob("*") if p.is_file() and needle in p.read_bytes()]
        assert offenders == []
        assert KEY not in control_plane.log()
    finally:
        control_plane.start()


def test_killed_machine_reports_error_and_recovers(control_plane: ControlPlane) -> None:
    key = "sk-ant-api03-" + secrets.token_hex(24)
    sid = control_plane.launch(key)["session_id"]
    stream = control_plane.chat_stream(sid, key, "run: python3 -c 'import time; time.sleep(120)'")
    for event in stream:
        if event["type"] == "tool_use":
            break
    killed = _kill_machine(control_plane.session_row(sid)["machine_key"])
    assert killed
    rest = list(stream)
    assert "error" in types(rest) and rest[-1]["type"] == "done", dump(rest)
    assert control_plane.get("/health").status_code == 200
    details = control_plane.get(f"/api/agents/sessions/{sid}", key).json()
    assert details["status"] == "failed" and details["status_detail"]
    # The next chat wakes a fresh machine that resumes the conversation.
    events = control_plane.chat_events(sid, key, "run: echo back-again")
    assert "back-again" in next(e for e in events if e["type"] == "tool_result")["output"]
    assert control_plane.delete(f"/api/agents/sessions/{sid}", key).status_code == 200


def _kill_machine(machine_key: str) -> bool:
    """SIGKILL the bwrap process of this machine (its namespace dies with it)."""
    pids = [pid for pid in processes_with("machine_agent", f"/machines/{machine_key}/")
            if Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].endswith(b"bwrap")]
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    return bool(pids)


def test_metrics_show_launches_events_and_tokens(control_plane: ControlPlane, session: dict) -> None:
    text = control_plane.get("/metrics").text

    def total(name: str, **labels: str) -> float:
        values = []
        for line in text.splitlines():
            if line.startswith((name + "{", name + " ")) and all(f'{k}="{v}"' in line for k, v in labels.items()):
                values.append(float(line.rsplit(" ", 1)[1]))
        return sum(values)

    assert total("agcluster_launches_total", outcome="ok") >= 1
    assert total("agcluster_events_relayed_total", type="tool_use") >= 1
    assert total("agcluster_tokens_total", kind="input") > 0
    assert total("agcluster_relay_bytes_total") > 0
    assert total("agcluster_sessions", provider="local") >= 1
