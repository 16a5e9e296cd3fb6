"""Human-in-the-loop approvals over REST and the WebSocket live channel."""

from __future__ import annotations

import json
import secrets

import pytest
import simple_websocket

from stubs.anthropic import StubAnthropic
from tests.support import ControlPlane, dump, receive_json

ASKING = {"id": "asks-first", "name": "Asks first", "allowed_tools": ["Bash", "Read"], "permission_mode": "default"}


def _launch(cp: ControlPlane) -> tuple[str, str]:
    key = "sk-ant-api03-" + secrets.token_hex(20)
    return cp.launch(key, config=ASKING)["session_id"], key


def test_deny_then_allow_over_rest(control_plane: ControlPlane, model: StubAnthropic) -> None:
    sid, key = _launch(control_plane)
    stream = control_plane.chat_stream(sid, key, "run: touch denied.txt && echo made-denied")
    events = []
    for event in stream:
        events.append(event)
        if event["type"] == "permission_request":
            assert event["tool_name"] == "Bash" and "touch denied.txt" in event["input"]["command"]
            answer = control_plane.post(f"/api/agents/{sid}/permissions/{event['request_id']}", key,
                                        json={"decision": "deny", "message": "not on my machine"})
            assert answer.status_code == 200, answer.text
    result = next(e for e in events if e["type"] == "tool_result")
    assert result["is_error"] and "not on my machine" in result["output"], dump(events)
    assert not (control_plane.data_dir / "machines" / sid / "workspace" / "denied.txt").exists()
    # The model was told about the denial.
    assert "not on my machine" in json.dumps(model.requests()[-1]["body"]["messages"][-1])

    events = []
    for event in control_plane.chat_stream(sid, key, "run: touch allowed.txt && echo made-allowed"):
        events.append(event)
        if event["type"] == "permission_request":
            control_plane.post(f"/api/agents/{sid}/permissions/{event['request_id']}", key, json={"decision": "allow"})
    result = next(e for e in events if e["type"] == "tool_result")
    assert not result["is_error"] and "made-allowed" in result["output"], dump(events)
    assert (control_plane.data_dir / "machines" / sid / "workspace" / "allowed.txt").exists()

    bad = control_plane.post(f"/api/agents/{sid}/permissions/perm_nope", key, json={"decision": "maybe"})
    assert bad.status_code == 400 and "decision" in bad.json()["error"]["details"]
    unknown = control_plane.post(f"/api/agents/{sid}/permissions/perm_nope", key, json={"decision": "allow"})
    assert unknown.status_code == 404
    control_plane.delete(f"/api/agents/sessions/{sid}", key)


def test_websocket_channel_sends_answers_and_streams(control_plane: ControlPlane) -> None:
    sid, key = _launch(control_plane)
    ws = simple_websocket.Client(f"ws://127.0.0.1:{control_plane.port}/api/agents/{sid}/ws")
    try:
        ws.send(json.dumps({"api_key": key, "after": 0}))
        ws.send(json.dumps({"type": "send", "message": "run: touch ws.txt && echo via-websocket"}))
        events = []
        while True:
            event = receive_json(ws, 120)
            if event["type"] == "keepalive":
                continue
            events.append(event)
            if event["type"] == "permission_request":
                ws.send(json.dumps({"type": "permission", "request_id": event["request_id"],
                                    "decision": "allow_session"}))
            if event["type"] == "done":
                break
        assert "via-websocket" in next(e for e in events if e["type"] == "tool_result")["output"], dump(events)
        ws.send(json.dumps({"type": "bogus"}))
        error = receive_json(ws, 30)
        assert error["type"] == "error" and error["code"] == "validation_error"
    finally:
        ws.close()
    wrong = simple_websocket.Client(f"ws://127.0.0.1:{control_plane.port}/api/agents/{sid}/ws")
    wrong.send(json.dumps({"api_key": "sk-ant-wrong-key-000"}))
    refused = receive_json(wrong, 30)
    assert refused["type"] == "error" and refused["code"] == "forbidden"
    with pytest.raises(simple_websocket.ConnectionClosed):
        wrong.receive(timeout=30)
    control_plane.delete(f"/api/agents/sessions/{sid}", key)
