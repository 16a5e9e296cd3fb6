"""The session state machine: every legal move is allowed, every other one refused, and the
store applies it to each status write (nothing can write a status around it)."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from control.secrets import hash_key
from control.session_status import LIVE, TRANSITIONS, IllegalTransition, SessionStatus, transition
from control.store import SessionRow, Store

S = SessionStatus
LEGAL = {
    (S.STARTING, S.STARTING), (S.STARTING, S.RUNNING), (S.STARTING, S.STOPPED), (S.STARTING, S.FAILED),
    (S.STARTING, S.DELETING),
    (S.RUNNING, S.RUNNING), (S.RUNNING, S.STARTING), (S.RUNNING, S.STOPPED), (S.RUNNING, S.FAILED),
    (S.RUNNING, S.DELETING),
    (S.STOPPED, S.STOPPED), (S.STOPPED, S.STARTING), (S.STOPPED, S.DELETING),
    (S.FAILED, S.FAILED), (S.FAILED, S.STARTING), (S.FAILED, S.STOPPED), (S.FAILED, S.DELETING),
    (S.DELETING, S.DELETING),
}


def new_row(status: SessionStatus = S.STARTING) -> SessionRow:
    salt, digest = hash_key("sk-ant-test-key-123")
    now = time.time()
    return SessionRow(id=str(uuid.uuid4()), agent_id="agent-x", config_id="code-assistant", config_json="{}",
                      provider="local", machine_id=None, machine_url=None, status=status, status_detail="",
                      key_salt=salt, key_hash=digest, claude_session_id=None, created_at=now, last_active_at=now)


@pytest.mark.parametrize("source", list(S))
@pytest.mark.parametrize("target", list(S))
def test_exactly_the_table_is_allowed(source: SessionStatus, target: SessionStatus) -> None:
    if (source, target) in LEGAL:
        assert transition(source, target) is target
    else:
        with pytest.raises(IllegalTransition) as refused:
            transition(source, target)
        assert refused.value.status == 409 and refused.value.details == {"from": source, "to": target}


def test_the_table_is_the_documented_one() -> None:
    assert {(a, b) for a, targets in TRANSITIONS.items() for b in targets} == LEGAL
    assert {S.STARTING, S.RUNNING} == LIVE
    assert [str(s) for s in S] == ["starting", "running", "stopped", "failed", "deleting"]


def test_a_session_begins_as_starting() -> None:
    assert transition(None, "starting") is S.STARTING
    for status in set(S) - {S.STARTING}:
        with pytest.raises(IllegalTransition):
            transition(None, status)
    with pytest.raises(ValueError):
        transition("ready", "running")  # the old "ready" is not a state any more


def test_the_store_writes_statuses_only_through_the_state_machine(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite")
    with pytest.raises(IllegalTransition):
        store.insert_session(new_row(S.RUNNING))
    row = new_row()
    store.insert_session(row)
    with pytest.raises(ValueError):
        store.update_session(row.id, status="running")
    with pytest.raises(ValueError):
        store.update_session(row.id, status_detail="sneaky")

    assert store.set_status(row.id, S.RUNNING, machine_url="http://127.0.0.1:9")
    current = store.get_session(row.id)
    assert current is not None and current.status is S.RUNNING and current.machine_url == "http://127.0.0.1:9"
    assert store.set_status(row.id, S.STOPPED, "stopped by the user")
    with pytest.raises(IllegalTransition):
        store.set_status(row.id, S.FAILED, "the stream broke")
    stopped = store.get_session(row.id)
    assert stopped is not None and stopped.status is S.STOPPED and stopped.status_detail == "stopped by the user"

    assert store.set_status(row.id, S.DELETING)
    for status in (S.STARTING, S.RUNNING, S.STOPPED, S.FAILED):
        with pytest.raises(IllegalTransition):
            store.set_status(row.id, status)
    assert store.set_status("no-such-session", S.STOPPED) is False


def test_old_databases_have_ready_sessions_migrated_to_running(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite")
    row = new_row()
    store.insert_session(row)
    store.set_status(row.id, S.RUNNING)
    with store._tx() as db:  # what a database written before the state machine holds
        db.execute("UPDATE sessions SET status = 'ready' WHERE id = ?", (row.id,))
        db.execute("ALTER TABLE custom_configs DROP COLUMN shared")  # added by a later migration
        db.execute("PRAGMA user_version = 4")
    store.close()
    migrated = Store(tmp_path / "db.sqlite").get_session(row.id)
    assert migrated is not None and migrated.status is S.RUNNING
