"""The session service decides access, rate limits, quotas and audit itself, so REST and
the WebSocket live channel get the same rules (an in-process control plane on a fake
machine; the real paths are in tests/e2e)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import simple_websocket
from flask import Flask

from control.app import create_app
from control.sessions import Caller, SessionService
from control.settings import from_env
from stubs.serving import BackgroundServer
from tests.unit.fakes import FakeMachineAgent, FakeProvider, build_service
from wire.errors import Forbidden, NotFound, RateLimited, Unauthorized

KEY = "sk-ant-test-key-" + "a" * 20
OTHER_KEY = "sk-ant-test-key-" + "b" * 20


@pytest.fixture
def agent() -> Iterator[FakeMachineAgent]:
    fake = FakeMachineAgent()
    yield fake
    fake.close()


@pytest.fixture
def service(tmp_path: Path, agent: FakeMachineAgent) -> SessionService:
    return build_service(tmp_path, FakeProvider(agent.url), RATE_LIMIT_PER_MINUTE="0")


class Served(BackgroundServer):
    """The real app on a real socket (WebSockets need one), started and stopped by the test."""

    def __init__(self, app: Flask) -> None:
        super().__init__()
        self.app = app
        self._serve(app, "control-plane")

    def close(self) -> None:
        self._shutdown()
        self.app.extensions["agcluster"].stop()


@pytest.fixture
def served(tmp_path: Path, agent: FakeMachineAgent) -> Iterator[Served]:
    settings = from_env({"DATABASE_PATH": str(tmp_path / "agcluster.db"), "RATE_LIMIT_PER_MINUTE": "4"})
    server = Served(create_app(settings, provider=FakeProvider(agent.url)))
    yield server
    server.close()


def ws_messages(ws: simple_websocket.Client, until: Any) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    while not seen or not until(seen[-1]):
        raw = ws.receive(timeout=30)
        assert raw is not None, seen
        message = json.loads(raw)
        if message["type"] != "keepalive":
            seen.append(message)
    return seen


def test_a_websocket_send_counts_against_the_same_rate_limit_as_rest(served: Served) -> None:
    launched = requests.post(f"{served.url}/api/agents/launch", json={"api_key": KEY, "config_id": "code-assistant"},
                             timeout=30)  # 1 of 4
    assert launched.status_code == 201, launched.text
    sid = launched.json()["session_id"]
    auth = {"Authorization": f"Bearer {KEY}"}
    answer = requests.post(f"{served.url}/api/agents/{sid}/chat", json={"message": "over rest"}, headers=auth,
                           timeout=30)  # 2 of 4
    assert answer.status_code == 200 and answer.json()["text"] == "echo: over rest", answer.text

    ws = simple_websocket.Client(f"ws://127.0.0.1:{served.port}/api/agents/{sid}/ws")
    try:
        ws.send(json.dumps({"api_key": KEY, "after": answer.json()["events"][-1]["seq"]}))
        ws.send(json.dumps({"type": "send", "message": "over the socket"}))  # 3 of 4
        turn = ws_messages(ws, lambda m: m["type"] == "done")
        assert [m["type"] for m in turn] == ["user", "text", "done"] and turn[1]["text"] == "echo: over the socket"
        ws.send(json.dumps({"type": "send", "message": "again"}))  # 4 of 4
        ws_messages(ws, lambda m: m["type"] == "done")
        ws.send(json.dumps({"type": "send", "message": "one too many"}))
        refused = ws_messages(ws, lambda m: m["type"] == "error")[-1]
        assert refused["code"] == "rate_limited" and refused["details"]["retry_after"] > 0, refused
    finally:
        ws.close()
    # The socket's sends used up the caller's budget for REST too.
    limited = requests.post(f"{served.url}/api/agents/{sid}/chat", json={"message": "rest again"}, headers=auth,
                            timeout=30)
    assert limited.status_code == 429 and "Retry-After" in limited.headers


def test_the_access_check_in_none_mode_is_the_launch_key(service: SessionService) -> None:
    sid = service.launches.launch(Caller(), api_key=KEY, config_id="code-assistant").id
    with pytest.raises(Unauthorized):
        service.open(Caller(), sid)
    with pytest.raises(Forbidden):
        service.open(Caller(key=OTHER_KEY), sid)
    with pytest.raises(NotFound):
        service.open(Caller(key=KEY), "no-such-session")
    service.vault.forget(sid)  # as after a control-plane restart: the key comes back with the next call
    grant = service.open(Caller(key=KEY), sid)
    assert grant.session_id == sid and service.vault.get(sid) == KEY


def test_the_access_check_in_token_mode_is_owner_or_admin(service: SessionService) -> None:
    alice, bob = Caller(user_id="u_alice", key=KEY), Caller(user_id="u_bob")
    sid = service.launches.launch(alice, config_id="code-assistant").id
    assert service.open(Caller(user_id="u_alice"), sid).session_id == sid  # the key is optional
    assert service.open(Caller(user_id="u_root", is_admin=True), sid).session_id == sid
    with pytest.raises(NotFound) as stranger:
        service.open(bob, sid)
    with pytest.raises(NotFound) as missing:
        service.open(bob, "00000000-0000-4000-8000-000000000000")
    assert stranger.value.details == missing.value.details == {}  # a denial never confirms a session exists
    with pytest.raises(Forbidden):
        service.open(Caller(user_id="u_alice", key=OTHER_KEY), sid)
    denials = service.store.audit_entries(actor="u_bob", action="auth.denied")
    assert len(denials) == 2 and denials[0]["outcome"] == "denied"
    assert [s["session_id"] for s in service.list(bob)] == [] and len(service.list(alice)) == 1


def test_the_launch_quota_counts_what_the_service_launched(tmp_path: Path, agent: FakeMachineAgent) -> None:
    service = build_service(tmp_path, FakeProvider(agent.url), QUOTA_LAUNCHES_PER_HOUR="2", RATE_LIMIT_PER_MINUTE="0")
    alice = Caller(user_id="u_alice", key=KEY)
    for _ in range(2):
        service.launches.launch(alice, config_id="code-assistant")
    with pytest.raises(RateLimited) as refused:
        service.launches.launch(alice, config_id="code-assistant")
    assert refused.value.code == "quota_exceeded"
    assert len(service.store.audit_entries(actor="u_alice", action="session.launch")) == 2
    service.launches.launch(Caller(user_id="u_bob", key=KEY), config_id="code-assistant")  # per user


def test_a_stopped_session_wakes_on_the_next_chat_and_a_broken_stream_does_not_fail_it(
        service: SessionService, agent: FakeMachineAgent) -> None:
    caller = Caller(key=KEY)
    sid = service.launches.launch(caller, config_id="code-assistant").id
    grant = service.open(caller, sid)
    service.lifecycle.stop(grant)
    assert service.row(grant).status == "stopped" and not service.turns.busy(sid)
    # An error event that would fail a running machine leaves a stopped one stopped.
    service.turns._observe(sid, {"type": "error", "code": "machine_unreachable", "message": "gone"})
    assert service.row(grant).status == "stopped"
    events = [e for e in service.turns.follow(grant, service.turns.chat(grant, "wake up")) if e is not None]
    assert [e["type"] for e in events] == ["user", "text", "done"]
    assert service.row(grant).status == "running" and agent.configured >= {sid}
