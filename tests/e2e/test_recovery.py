"""Sessions survive: kill -9 of the control plane mid-turn, restart, continue; export."""

from __future__ import annotations

import secrets
import signal
from pathlib import Path

from stubs.anthropic import StubAnthropic
from tests.support import ControlPlane, dump, processes_with, wait_for

SLOW = "run: python3 -c 'import time; time.sleep(120)'"


def test_kill_9_mid_turn_then_restart_keeps_everything(tmp_path: Path, model: StubAnthropic) -> None:
    cp = ControlPlane(tmp_path / "cp", {"ANTHROPIC_BASE_URL": model.url}).start()
    key = "sk-ant-api03-" + secrets.token_hex(20)
    try:
        sid = cp.launch(key)["session_id"]
        first = cp.chat_events(sid, key, "run: echo first-turn-marker")
        stream = cp.chat_stream(sid, key, SLOW)
        before_kill = []
        for event in stream:
            before_kill.append(event)
            if event["type"] == "tool_use":
                break
        cp.stop(signal.SIGKILL)
        machines_dir = str(cp.data_dir / "machines")
        # Machines die with their control plane (PR_SET_PDEATHSIG), so nothing leaks.
        wait_for(lambda: not processes_with(machines_dir))

        cp.start()
        events = cp.get(f"/api/agents/sessions/{sid}/events?after=0", key).json()["events"]
        seqs = [e["seq"] for e in events]
        assert seqs == list(range(1, len(events) + 1))
        assert [e["seq"] for e in first + before_kill] == seqs[: len(first) + len(before_kill)], dump(events)
        assert events[-2]["type"] == "error" and events[-2]["code"] == "turn_interrupted"
        assert events[-1]["type"] == "done"
        assert cp.get(f"/api/agents/sessions/{sid}", key).json()["status"] == "stopped"

        model.reset()
        again = cp.chat_events(sid, key, "run: echo after-restart")
        assert "after-restart" in next(e for e in again if e["type"] == "tool_result")["output"], dump(again)
        main_requests = [r for r in model.requests() if r.get("kind") == "main"] or model.requests()
        assert "first-turn-marker" in str(main_requests[-1]["body"]["messages"])
        assert again[0]["seq"] == events[-1]["seq"] + 1

        export = cp.get(f"/api/agents/sessions/{sid}/export?format=markdown", key)
        assert export.status_code == 200 and export.headers["Content-Type"].startswith("text/markdown")
        assert "### Tool `Bash`" in export.text and "echo first-turn-marker" in export.text
        assert "first-turn-marker" in export.text.split("Output:", 1)[1]
        as_json = cp.get(f"/api/agents/sessions/{sid}/export?format=json", key).json()
        assert as_json["turns"][0]["tool_calls"][0]["name"] == "Bash"
        assert cp.get(f"/api/agents/sessions/{sid}/export?format=pdf", key).status_code == 400

        assert cp.delete(f"/api/agents/sessions/{sid}", key).status_code == 200
        assert processes_with(machines_dir) == []
    finally:
        cp.stop()


def test_disconnected_client_reconnects_with_last_event_id(control_plane: ControlPlane) -> None:
    key = "sk-ant-api03-" + secrets.token_hex(20)
    sid = control_plane.launch(key)["session_id"]
    stream = control_plane.chat_stream(sid, key, "run: python3 -c 'import time; time.sleep(1); print(\"late-output\")'")
    seen = []
    for event in stream:
        seen.append(event)
        if event["type"] == "tool_use":
            break
    stream.close()  # the browser went away mid-turn
    rest = control_plane.chat_events(sid, key, "", **{"Last-Event-ID": str(seen[-1]["seq"])})
    assert [e["seq"] for e in seen + rest] == list(range(seen[0]["seq"], rest[-1]["seq"] + 1)), dump(rest)
    assert rest[-1]["type"] == "done" and "late-output" in str(rest)
    control_plane.delete(f"/api/agents/sessions/{sid}", key)
