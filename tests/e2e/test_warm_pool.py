"""Launches claim pre-started machines; the pool refills; nothing leaks across restarts."""

from __future__ import annotations

import secrets
from pathlib import Path

from stubs.anthropic import StubAnthropic
from tests.support import ControlPlane, wait_for


def test_launch_claims_a_warm_machine_and_the_pool_refills(tmp_path: Path, model: StubAnthropic) -> None:
    cp = ControlPlane(tmp_path / "cp", {"ANTHROPIC_BASE_URL": model.url, "WARM_POOL_SIZE": "1"}).start()
    try:
        wait_for(lambda: cp.get("/health").json()["warm_pool"]["ready"] == 1)
        pooled_dirs = {d.name for d in (cp.data_dir / "machines").iterdir()}
        key = "sk-ant-api03-" + secrets.token_hex(20)
        sid = cp.launch(key)["session_id"]
        row = cp.session_row(sid)
        assert row["machine_key"].startswith("pool-") and row["machine_key"] in pooled_dirs
        events = cp.chat_events(sid, key, "run: echo from-the-pool > pooled.txt && cat pooled.txt")
        assert "from-the-pool" in next(e for e in events if e["type"] == "tool_result")["output"]
        assert (cp.data_dir / "machines" / row["machine_key"] / "workspace" / "pooled.txt").exists()
        wait_for(lambda: cp.get("/health").json()["warm_pool"]["ready"] == 1)

        cp.stop()
        cp.start()  # the unclaimed pool machine is an orphan now and is removed
        dirs = {d.name for d in (cp.data_dir / "machines").iterdir()}
        assert row["machine_key"] in dirs
        assert not (pooled_dirs - {row["machine_key"]}) & dirs
        again = cp.chat_events(sid, key, "run: cat pooled.txt")
        assert "from-the-pool" in next(e for e in again if e["type"] == "tool_result")["output"]
        assert cp.delete(f"/api/agents/sessions/{sid}", key).status_code == 200
        assert not (cp.data_dir / "machines" / row["machine_key"]).exists()
    finally:
        cp.stop()
