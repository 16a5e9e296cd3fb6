"""The hot pool: machines configured for a preset before any user exists, claimed by launches.

A claim binds the session to a machine whose CLI is already running; the CLI is not
restarted, the relay speaks for the claiming user only from then on, a preset's machine goes
to no other config, and the pool fills itself again.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stubs.anthropic import StubAnthropic
from tests.support import ControlPlane, dump, processes_with, wait_for

CLI_MARKER = "--output-format"  # on the Claude Code CLI's command line (the SDK starts it so)


def new_key() -> str:
    return "sk-ant-api03-" + secrets.token_hex(20)


def hot(cp: ControlPlane, preset: str = "code-assistant") -> int:
    counts: dict[str, int] = cp.get("/health").json()["warm_pool"]["hot"].get(preset, {})
    return counts.get("ready", 0)


def pool_keys(cp: ControlPlane) -> set[str]:
    return {d.name for d in (cp.data_dir / "machines").iterdir() if d.name.startswith("pool-")}


def cli_pids(cp: ControlPlane, machine_key: str) -> set[int]:
    """The CLI processes running inside one machine's sandbox."""
    roots = set(processes_with("bwrap", f"/machines/{machine_key}/"))
    return {pid for pid in processes_with(CLI_MARKER, "stream-json") if roots & _ancestors(pid)}


def _ancestors(pid: int) -> set[int]:
    seen: set[int] = set()
    while pid > 1 and pid not in seen:
        seen.add(pid)
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            break
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    return seen


@pytest.fixture(scope="module")
def hot_cp(tmp_path_factory: pytest.TempPathFactory, model: StubAnthropic) -> Iterator[ControlPlane]:
    cp = ControlPlane(tmp_path_factory.mktemp("hot"), {"ANTHROPIC_BASE_URL": model.url,
                                                       "WARM_POOL": "code-assistant:1"}).start()
    try:
        wait_for(lambda: hot(cp) == 1)
        yield cp
    finally:
        cp.stop()


def test_a_hot_machine_serves_the_claiming_user_without_restarting_its_cli(hot_cp: ControlPlane,
                                                                            model: StubAnthropic) -> None:
    wait_for(lambda: hot(hot_cp) == 1)
    [ready_key] = pool_keys(hot_cp) - {r["machine_key"] for r in _rows(hot_cp)}
    before = cli_pids(hot_cp, ready_key)
    assert len(before) == 1, "the hot machine's CLI runs before any launch"
    key = new_key()
    launched = hot_cp.launch(key)
    row = hot_cp.session_row(launched["session_id"])
    assert launched["status"] == "running" and row["machine_key"] == ready_key
    model.require_api_key(key)  # the model now refuses any key but the claiming user's
    try:
        events = hot_cp.chat_events(launched["session_id"], key, "run: echo hot-claimed > hot.txt && cat hot.txt")
    finally:
        model.require_api_key(None)
    assert "hot-claimed" in next(e for e in events if e["type"] == "tool_result")["output"], dump(events)
    assert all(e["session_id"] == launched["session_id"] for e in events)
    assert (hot_cp.data_dir / "machines" / ready_key / "workspace" / "hot.txt").exists()
    assert cli_pids(hot_cp, ready_key) == before, "the claim did not restart the CLI"
    assert hot_cp.delete(f"/api/agents/sessions/{launched['session_id']}", key).status_code == 200


def test_the_pool_refills_after_a_claim(hot_cp: ControlPlane) -> None:
    wait_for(lambda: hot(hot_cp) == 1)
    known = pool_keys(hot_cp)
    key = new_key()
    sid = hot_cp.launch(key)["session_id"]
    assert hot_cp.session_row(sid)["machine_key"] in known
    wait_for(lambda: hot(hot_cp) == 1)
    fresh = pool_keys(hot_cp) - known
    assert len(fresh) == 1 and cli_pids(hot_cp, fresh.pop())
    assert hot_cp.delete(f"/api/agents/sessions/{sid}", key).status_code == 200


def test_a_preset_machine_goes_to_no_other_config(hot_cp: ControlPlane) -> None:
    """Another preset, or the same content under another id, starts a machine of its own
    (an inline config cannot take a preset's id at all: tests/e2e/test_configs.py)."""
    wait_for(lambda: hot(hot_cp) == 1)
    [ready_key] = pool_keys(hot_cp) - {r["machine_key"] for r in _rows(hot_cp)}
    preset = _preset("code-assistant")
    launched = []
    for body in ({"config_id": "data-analysis"}, {"config": {**preset, "id": "code-assistant-copy"}}):
        key = new_key()
        answer = hot_cp.launch(key, **body)
        launched.append((answer["session_id"], key))
        assert hot_cp.session_row(answer["session_id"])["machine_key"] != ready_key, body
        assert hot(hot_cp) == 1
    key = new_key()
    answer = hot_cp.launch(key)
    launched.append((answer["session_id"], key))
    assert hot_cp.session_row(answer["session_id"])["machine_key"] == ready_key
    effective = hot_cp.get(f"/api/agents/sessions/{answer['session_id']}", key).json()["effective_config"]
    assert (effective["max_turns"], effective["permission_mode"]) == (preset["max_turns"], preset["permission_mode"])
    for sid, k in launched:
        assert hot_cp.delete(f"/api/agents/sessions/{sid}", k).status_code == 200


def _preset(preset_id: str) -> dict[str, Any]:
    import yaml

    from control.configs import PRESETS_DIR

    loaded: dict[str, Any] = yaml.safe_load((PRESETS_DIR / f"{preset_id}.yaml").read_text())
    return loaded


def _rows(cp: ControlPlane) -> list[dict[str, Any]]:
    import sqlite3
    from contextlib import closing

    with closing(sqlite3.connect(cp.db_path, timeout=10)) as db:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute("SELECT id, machine_key FROM sessions")]
