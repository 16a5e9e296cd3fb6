"""A hot-pool machine holds a relay token before any user exists: it must open nothing until a
launch claims the machine, and nothing again once that session is deleted."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from control.secrets import TokenMinter, load_server_secret
from stubs.anthropic import StubAnthropic
from tests.security.conftest import post_on_relay_socket
from tests.support import ControlPlane, processes_with, wait_for

BODY = json.dumps({"model": "claude-sonnet-4-5", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]})


@pytest.fixture(scope="module")
def hot_cp(tmp_path_factory: pytest.TempPathFactory, model: StubAnthropic) -> Iterator[ControlPlane]:
    cp = ControlPlane(tmp_path_factory.mktemp("hot-sec"), {"ANTHROPIC_BASE_URL": model.url,
                                                           "WARM_POOL": "code-assistant:1"}).start()
    try:
        yield cp
    finally:
        cp.stop()


def ready_machine(cp: ControlPlane) -> str:
    wait_for(lambda: cp.get("/health").json()["warm_pool"]["hot"]["code-assistant"]["ready"] == 1)
    sessions = cp.get("/api/agents/sessions").json()["sessions"]
    claimed = {cp.session_row(s["session_id"])["machine_key"] for s in sessions}
    [key] = {d.name for d in (cp.data_dir / "machines").iterdir() if d.name.startswith("pool-")} - claimed
    return key


def relay_socket(machine_key: str) -> Path:
    """The host side of the relay socket bound into this machine (its sandbox's command line)."""
    for pid in processes_with("bwrap", f"/machines/{machine_key}/"):
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
        for i, arg in enumerate(argv[:-2]):
            if arg == "--ro-bind" and argv[i + 2] == "/run/agcluster":
                return Path(argv[i + 1]) / "relay.sock"
    raise AssertionError(f"no sandbox found for machine {machine_key}")


def post_relay(path: Path, token: str) -> int:
    """A model call on the machine's own relay socket with this token (0: refused)."""
    return post_on_relay_socket(path, BODY, {
        "x-api-key": token, "content-type": "application/json", "anthropic-version": "2023-06-01"})


def test_a_hot_machines_relay_token_opens_nothing_before_the_claim_or_after_delete(
        hot_cp: ControlPlane, model: StubAnthropic) -> None:
    machine_key = ready_machine(hot_cp)
    token = TokenMinter(load_server_secret(hot_cp.data_dir)).relay_token(machine_key)
    sock = relay_socket(machine_key)
    calls = len(model.requests(path="/v1/messages"))
    # Configured, CLI running, token in hand, but no session has claimed it: refused.
    assert post_relay(sock, token) == 401
    assert len(model.requests(path="/v1/messages")) == calls

    key = "sk-ant-api03-" + secrets.token_hex(20)
    sid = hot_cp.launch(key)["session_id"]
    assert hot_cp.session_row(sid)["machine_key"] == machine_key
    model.require_api_key(key)
    try:
        assert post_relay(sock, token) == 200  # now it speaks for the claiming user, with their key
    finally:
        model.require_api_key(None)
    assert len(model.requests(path="/v1/messages")) == calls + 1

    assert hot_cp.delete(f"/api/agents/sessions/{sid}", key).status_code == 200
    assert post_relay(sock, token) in (0, 401)  # the socket is gone with its machine, or refuses
    assert len(model.requests(path="/v1/messages")) == calls + 1
    # The machine that took its place in the pool holds a different token.
    assert ready_machine(hot_cp) != machine_key
