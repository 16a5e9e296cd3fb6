"""AUTH_MODE=token: owners, admins, tokens, metering, budgets and the audit log."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import requests
import simple_websocket

from stubs.anthropic import StubAnthropic
from tests.support import ROOT, ControlPlane, dump, receive_json


def cli(data_dir: Path, *args: str) -> str:
    env = {**os.environ, "DATABASE_PATH": str(data_dir / "agcluster.db")}
    out = subprocess.run([sys.executable, "-m", "control.cli", *args], env=env, cwd=ROOT, capture_output=True,
                         text=True, check=True)
    return out.stdout


def make_user(data_dir: Path, name: str, admin: bool = False) -> str:
    cli(data_dir, "users", "add", name, *(["--admin"] if admin else []))
    return cli(data_dir, "tokens", "create", name).strip().splitlines()[-1]


class Client:
    def __init__(self, cp: ControlPlane, token: str | None, key: str | None = None) -> None:
        self.cp, self.token, self.key = cp, token, key

    def call(self, method: str, path: str, **kwargs) -> requests.Response:
        headers = kwargs.pop("headers", {})
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if self.key:
            headers["X-Anthropic-Api-Key"] = self.key
        return requests.request(method, f"{self.cp.url}{path}", headers=headers, timeout=120, **kwargs)


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory, model: StubAnthropic):
    data_dir = tmp_path_factory.mktemp("team")
    tokens = {"alice": make_user(data_dir, "alice"), "bob": make_user(data_dir, "bob"),
              "root": make_user(data_dir, "root", admin=True)}
    cp = ControlPlane(data_dir, {"ANTHROPIC_BASE_URL": model.url, "AUTH_MODE": "token"}).start()
    yield cp, tokens
    cp.stop()


def test_every_route_refuses_the_wrong_user(team) -> None:
    cp, tokens = team
    alice_key = "sk-ant-api03-" + secrets.token_hex(20)
    alice = Client(cp, tokens["alice"], alice_key)
    bob = Client(cp, tokens["bob"], "sk-ant-api03-" + secrets.token_hex(20))
    root = Client(cp, tokens["root"])
    launched = alice.call("POST", "/api/agents/launch", json={"config_id": "code-assistant"})
    assert launched.status_code == 201, launched.text
    sid = launched.json()["session_id"]
    chat = alice.call("POST", f"/api/agents/{sid}/chat", json={"message": "run: echo owned > mine.txt"})
    assert chat.status_code == 200 and not chat.json()["errors"], chat.text

    routes: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", f"/api/agents/sessions/{sid}", {}), ("DELETE", f"/api/agents/sessions/{sid}", {}),
        ("POST", f"/api/agents/{sid}/chat", {"json": {"message": "hi"}}), ("POST", f"/api/agents/{sid}/interrupt", {}),
        ("GET", f"/api/agents/sessions/{sid}/events", {}), ("GET", f"/api/agents/sessions/{sid}/export", {}),
        ("POST", f"/api/agents/{sid}/permissions/perm_x", {"json": {"decision": "allow"}}),
        ("GET", f"/api/files/{sid}", {}), ("GET", f"/api/files/{sid}/mine.txt", {}),
        ("DELETE", f"/api/files/{sid}/mine.txt", {}), ("POST", f"/api/files/{sid}/download", {}),
        ("POST", f"/api/files/{sid}/upload", {"files": {"files": ("x.txt", b"x")}}),
        ("POST", f"/api/files/{sid}/mkdir", {"json": {"path": "d"}}),
    ]
    for method, path, kwargs in routes:
        denied = bob.call(method, path, **kwargs)
        assert denied.status_code == 404, (method, path, denied.status_code, denied.text)
        # Indistinguishable from a session that does not exist at all.
        ghost = "00000000-0000-4000-8000-000000000000"
        missing = bob.call(method, path.replace(sid, ghost), **kwargs)
        assert denied.text == missing.text.replace(ghost, sid), (method, path)
        anonymous = Client(cp, None).call(method, path, **kwargs)
        assert anonymous.status_code == 401, (method, path)
    assert bob.call("GET", "/api/agents/sessions").json()["total"] == 0
    assert [s["session_id"] for s in alice.call("GET", "/api/agents/sessions").json()["sessions"]] == [sid]

    ws = simple_websocket.Client(f"ws://127.0.0.1:{cp.port}/api/agents/{sid}/ws")
    ws.send(json.dumps({"token": tokens["bob"]}))
    assert receive_json(ws, 30)["code"] == "not_found"
    with pytest.raises(simple_websocket.ConnectionClosed):  # and the server closed the socket
        ws.receive(timeout=30)

    # Usage is metered per user; members see their own, admins everyone's.
    assert bob.call("GET", "/api/usage?group_by=user").json()["usage"] == []
    mine = alice.call("GET", "/api/usage?group_by=session").json()["usage"]
    assert [row["key"] for row in mine] == [sid] and mine[0]["input_tokens"] > 0
    assert {row["user"] for row in root.call("GET", "/api/usage?group_by=user").json()["usage"]} == {"alice"}

    # The admin sees and can delete everything; members cannot read the audit log.
    assert root.call("GET", "/api/agents/sessions").json()["total"] == 1
    assert root.call("GET", f"/api/agents/sessions/{sid}").status_code == 200
    assert bob.call("GET", "/api/audit").status_code == 403
    audit = root.call("GET", "/api/audit?limit=500").json()["entries"]
    actions = {(e["action"], e["outcome"]) for e in audit}
    assert ("session.launch", "ok") in actions and ("auth.denied", "denied") in actions
    assert ("token.create", "ok") in actions
    assert root.call("DELETE", f"/api/agents/sessions/{sid}").status_code == 200
    entries = root.call("GET", "/api/audit").json()["entries"]
    assert ("session.delete", "ok") in {(e["action"], e["outcome"]) for e in entries}


def test_tokens_are_required_and_revocable(team) -> None:
    cp, _ = team
    assert Client(cp, None).call("GET", "/api/agents/sessions").status_code == 401
    assert Client(cp, "agc_not-a-real-token").call("GET", "/api/configs/").status_code == 401
    assert Client(cp, None).call("GET", "/health").status_code == 200
    token = make_user(cp.data_dir, "carol")
    assert Client(cp, token).call("GET", "/api/me").json()["user"]["name"] == "carol"
    cli(cp.data_dir, "tokens", "revoke", token[:12])
    assert Client(cp, token).call("GET", "/api/me").status_code == 401
    listing = cli(cp.data_dir, "tokens", "list")
    assert token not in listing and "revoked" in listing
    carol = next(line for line in listing.splitlines() if token[:12] in line)
    assert "last used 20" in carol  # it signed in once above; a token nobody used says "never"
    db = (cp.data_dir / "agcluster.db").read_bytes()
    assert token.encode() not in db


def test_daily_budget_is_enforced_at_the_relay(tmp_path: Path, model: StubAnthropic) -> None:
    model.reset()
    token = make_user(tmp_path, "dave")
    cp = ControlPlane(tmp_path, {"ANTHROPIC_BASE_URL": model.url, "AUTH_MODE": "token",
                                 "QUOTA_DAILY_TOKENS": "1"}).start()
    try:
        dave = Client(cp, token, "sk-ant-api03-" + secrets.token_hex(20))
        sid = dave.call("POST", "/api/agents/launch", json={"config_id": "code-assistant"}).json()["session_id"]
        answer = dave.call("POST", f"/api/agents/{sid}/chat", json={"message": "run: echo over-budget"}).json()
        everything = json.dumps(answer)
        assert "budget exhausted" in everything, dump(answer["events"])
        assert answer["events"][-1]["type"] == "done"
        # Usage equals what the model reported for the requests it answered.
        reported = [r["usage"] for r in model.requests() if r.get("usage") and r.get("status") == 200]
        usage = dave.call("GET", "/api/usage?group_by=user").json()["usage"][0]
        assert usage["input_tokens"] == sum(u.get("input_tokens", 0) for u in reported)
        assert usage["output_tokens"] == sum(u.get("output_tokens", 0) for u in reported)
        assert usage["requests"] == len(reported) >= 1
    finally:
        cp.stop()
