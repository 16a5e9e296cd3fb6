"""Finding 9: the smaller holes, each attacked the way it was found."""

from __future__ import annotations

import http.client
import json
import secrets
import signal
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from stubs.anthropic import StubAnthropic
from tests.e2e.test_multi_user import Client, make_user
from tests.security.conftest import Agent
from tests.support import ControlPlane


def raw_request(cp: ControlPlane, method: str, path: str, headers: dict[str, str],
                body: bytes = b"") -> tuple[int, Any]:
    conn = http.client.HTTPConnection("127.0.0.1", cp.port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, json.loads(data) if data.startswith(b"{") else data
    finally:
        conn.close()


def test_dns_rebinding_gets_nothing(local_cp: ControlPlane, agent: Agent) -> None:
    """A page on evil.example whose name now points at 127.0.0.1 sends its own Host."""
    for path in ("/api/agents/sessions", f"/api/agents/sessions/{agent.sid}", "/health", "/"):
        status, body = raw_request(local_cp, "GET", path, {"Host": "evil.example:8000",
                                                            "Authorization": f"Bearer {agent.key}"})
        assert status == 421 and body["error"]["code"] == "host_not_allowed", (path, body)
    status, _ = raw_request(local_cp, "GET", "/health", {"Host": f"localhost:{local_cp.port}"})
    assert status == 200


def test_admin_routes_are_closed_without_accounts(local_cp: ControlPlane) -> None:
    for path in ("/api/audit", "/api/usage", "/api/usage?group_by=user"):
        resp = local_cp.get(path)
        assert resp.status_code == 403, (path, resp.text)
        assert "AUTH_MODE=token" in resp.json()["error"]["message"]


def test_huge_numbers_are_a_400(local_cp: ControlPlane, agent: Agent) -> None:
    base = f"/api/agents/sessions/{agent.sid}/events"
    for query in ("?limit=100000000000000000000", "?after=100000000000000000000", "?after=%C2%B2", "?limit=-1"):
        resp = local_cp.get(base + query, agent.key)
        assert resp.status_code == 400, (query, resp.text)
    for header in ("100000000000000000000", "²", "1e5"):
        resp = requests.get(f"{local_cp.url}{base}", timeout=30, headers={
            "Authorization": f"Bearer {agent.key}", "Accept": "text/event-stream", "Last-Event-ID": header})
        assert resp.status_code == 400, (header, resp.text)


def test_a_lone_surrogate_is_a_400(local_cp: ControlPlane) -> None:
    body = b'{"api_key": "sk-ant-api03-aaaaaaaaaaaaaaaaaaaaaaaa", "config": {"id": "surrogate", ' \
           b'"name": "\\ud800", "allowed_tools": ["Bash"]}}'
    status, answer = raw_request(local_cp, "POST", "/api/agents/launch",
                                 {"Content-Type": "application/json", "Host": "127.0.0.1"}, body)
    assert status == 400, answer
    status, answer = raw_request(local_cp, "POST", "/api/configs/validate",
                                 {"Content-Type": "application/json", "Host": "127.0.0.1"},
                                 b'{"id": "abc", "name": "x", "description": "\\udc00"}')
    assert status == 400, answer


@pytest.fixture()
def token_cp(tmp_path_factory: pytest.TempPathFactory, model: StubAnthropic) -> Iterator[tuple[ControlPlane, str]]:
    data_dir = tmp_path_factory.mktemp("sec-restart")
    token = make_user(data_dir, "erin")
    cp = ControlPlane(data_dir, {"ANTHROPIC_BASE_URL": model.url, "AUTH_MODE": "token"}).start()
    yield cp, token
    cp.stop()


def test_a_chat_without_the_key_after_a_restart_fails_at_once(token_cp: tuple[ControlPlane, str]) -> None:
    cp, token = token_cp
    erin = Client(cp, token, "sk-ant-api03-" + secrets.token_hex(20))
    sid = erin.call("POST", "/api/agents/launch", json={"config_id": "code-assistant"}).json()["session_id"]
    cp.stop(signal.SIGKILL)
    cp.start()
    no_key = Client(cp, token)
    resp = no_key.call("POST", f"/api/agents/{sid}/chat", json={"message": "run: echo hi"})
    assert resp.status_code == 200, resp.text
    errors = resp.json()["errors"]
    assert [e["code"] for e in errors] == ["key_required"], resp.json()
    assert resp.json()["events"][-1]["type"] == "done"
    # With the key the session carries on.
    again = erin.call("POST", f"/api/agents/{sid}/chat", json={"message": "run: echo back"}).json()
    assert not again["errors"] and "back" in json.dumps(again["events"])
