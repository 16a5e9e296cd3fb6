"""Idle machines are stopped; the next chat wakes a fresh one that resumes the conversation."""

from __future__ import annotations

import json
import secrets
import shutil
import sqlite3
from pathlib import Path

from stubs.anthropic import StubAnthropic
from tests.support import ControlPlane, processes_with, wait_for


def test_idle_stop_then_wake_on_a_fresh_machine(tmp_path: Path, model: StubAnthropic) -> None:
    cp = ControlPlane(tmp_path / "cp", {"ANTHROPIC_BASE_URL": model.url, "SESSION_IDLE_TIMEOUT": "1",
                                        "SESSION_CLEANUP_INTERVAL": "1"}).start()
    key = "sk-ant-api03-" + secrets.token_hex(20)
    try:
        sid = cp.launch(key)["session_id"]
        cp.chat_events(sid, key, "run: echo idle-marker > kept.txt")
        wait_for(lambda: cp.get(f"/api/agents/sessions/{sid}", key).json()["status"] == "stopped")
        workspace = cp.data_dir / "machines" / sid / "workspace"
        assert processes_with(str(workspace)) == []
        # A *fresh* machine: the CLI's own files are gone; only the control plane's mirror remains.
        home = cp.data_dir / "machines" / sid / "home"
        shutil.rmtree(home)
        home.mkdir()
        with sqlite3.connect(cp.db_path) as db:
            mirrored = db.execute("SELECT COUNT(*) FROM cli_transcripts WHERE session_id = ?", (sid,)).fetchone()[0]
        assert mirrored > 0
        model.reset()
        events = cp.chat_events(sid, key, "run: cat kept.txt")
        assert "idle-marker" in next(e for e in events if e["type"] == "tool_result")["output"]
        history = str(model.requests()[-1]["body"]["messages"])
        assert "echo idle-marker" in history, "the woken machine must resume the earlier conversation"
    finally:
        cp.stop()


def test_session_ttl_destroys_after_keeping_an_export(tmp_path: Path, model: StubAnthropic) -> None:
    cp = ControlPlane(tmp_path / "cp", {"ANTHROPIC_BASE_URL": model.url, "SESSION_TTL": "3",
                                        "SESSION_CLEANUP_INTERVAL": "1"}).start()
    key = "sk-ant-api03-" + secrets.token_hex(20)
    try:
        sid = cp.launch(key)["session_id"]
        cp.chat_events(sid, key, "run: echo ttl-marker")
        wait_for(lambda: cp.get(f"/api/agents/sessions/{sid}", key).status_code == 404)
        export = json.loads((cp.data_dir / "exports" / f"{sid}.json").read_text())
        assert "ttl-marker" in json.dumps(export["turns"])
        assert not (cp.data_dir / "machines" / sid).exists()
    finally:
        cp.stop()
