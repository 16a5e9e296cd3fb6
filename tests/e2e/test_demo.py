"""`agcluster demo`: a newcomer chats with the built-in scripted model, no key needed."""

from __future__ import annotations

from pathlib import Path

from tests.support import ControlPlane


def test_demo_runs_tools_without_an_anthropic_key(tmp_path: Path) -> None:
    cp = ControlPlane(tmp_path / "demo", command="demo").start()
    try:
        health = cp.get("/health").json()
        assert health["demo"] is True
        key = "anything-goes-here"
        sid = cp.launch(key)["session_id"]
        events = cp.chat_events(sid, key, "run: echo hello-from-demo")
        assert "hello-from-demo" in next(e for e in events if e["type"] == "tool_result")["output"]
        help_text = cp.post(f"/api/agents/{sid}/chat", key, json={"message": "hello?"}).json()["text"]
        assert "run:" in help_text  # anything else explains the grammar
    finally:
        cp.stop()
    assert "Demo model" in cp.log()
