"""Users, tokens, usage, quotas and the audit log over REST (control/blueprints/team.py and
account.py): the real app, SQLite store and accounts, driven through Flask's test client.
The dashboard's pages over the same routes run in real Chromium (tests/browser/test_team.py)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from control.accounts import MAX_ACTIVE_TOKENS
from control.app import create_app
from control.session_status import SessionStatus
from control.settings import from_env
from control.store import SessionRow


class Team:
    """An app in token mode with an admin (root) and a member (alice), each with a token."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.client: FlaskClient = app.test_client()
        ext = app.extensions["agcluster"]
        self.store, self.accounts = ext.store, ext.accounts
        self.root_id = self.accounts.add_user("root", admin=True).user_id
        self.root_token_id, self.root = self.accounts.create_token("root")
        self.alice_id = self.accounts.add_user("alice").user_id
        self.alice_token_id, self.alice = self.accounts.create_token("alice")

    def call(self, method: str, path: str, token: str | None, **kwargs: Any) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return self.client.open(path, method=method, headers=headers, **kwargs)

    def audit(self, action: str) -> list[dict[str, Any]]:
        return self.store.audit_entries(500, action=action)


def build(tmp_path: Path, **env: str) -> Flask:
    return create_app(from_env({"DATABASE_PATH": str(tmp_path / "agcluster.db"), **env}))


@pytest.fixture()
def team(tmp_path: Path) -> Iterator[Team]:
    app = build(tmp_path, AUTH_MODE="token", QUOTA_MAX_SESSIONS="3", QUOTA_DAILY_TOKENS="1000")
    yield Team(app)
    app.extensions["agcluster"].stop()


ROUTES = [("GET", "/api/users"), ("POST", "/api/users"), ("GET", "/api/tokens"), ("POST", "/api/tokens"),
          ("DELETE", "/api/tokens/tok_x"), ("POST", "/api/users/u_x/tokens"), ("GET", "/api/quotas"),
          ("GET", "/api/usage"), ("GET", "/api/audit"), ("GET", "/api/me")]


def test_every_route_needs_a_valid_token(team: Team) -> None:
    for method, path in ROUTES:
        for token in (None, "agc_not-a-token", "sk-ant-not-ours"):
            resp = team.call(method, path, token, json={"name": "x"})
            assert resp.status_code == 401, (method, path, token)
            assert resp.get_json()["error"]["code"] == "unauthorized"


def test_admin_creates_a_member_and_a_token_the_member_signs_in_with(team: Team) -> None:
    created = team.call("POST", "/api/users", team.root, json={"name": "bob", "admin": False})
    assert created.status_code == 201, created.get_json()
    bob = created.get_json()
    assert bob["name"] == "bob" and bob["role"] == "member" and bob["active_tokens"] == 0
    issued = team.call("POST", f"/api/users/{bob['id']}/tokens", team.root)
    assert issued.status_code == 201
    assert issued.headers["Cache-Control"] == "no-store"
    body = issued.get_json()
    token = body["token"]
    assert token.startswith("agc_") and body["prefix"] == token[:12] and body["user"] == "bob"
    assert body["current"] is False  # made by root's token, for bob

    me = team.call("GET", "/api/me", token).get_json()
    assert me == {"auth_mode": "token", "user": {"id": bob["id"], "name": "bob", "role": "member"}, "admin": False,
                  "token_id": body["id"]}
    mine = team.call("GET", "/api/tokens", token).get_json()
    assert [(t["id"], t["current"], t["active"]) for t in mine["tokens"]] == [(body["id"], True, True)]
    users = {u["name"]: u for u in team.call("GET", "/api/users", team.root).get_json()["users"]}
    assert set(users) == {"root", "alice", "bob"} and users["bob"]["active_tokens"] == 1

    # Each change is in the audit log, with who made it.
    added = team.audit("user.add")
    assert [(e["actor"], e["target"], e["details"]["name"]) for e in added] == [(team.root_id, bob["id"], "bob")]
    made = [e for e in team.audit("token.create") if e["target"] == body["id"]]
    assert made and made[0]["actor"] == team.root_id and made[0]["details"]["user"] == "bob"


def test_a_token_is_shown_once_and_stored_only_as_a_hash(team: Team, tmp_path: Path) -> None:
    created = team.call("POST", "/api/tokens", team.alice)
    assert created.status_code == 201
    token = created.get_json()["token"]
    assert team.call("GET", "/api/me", token).get_json()["user"]["name"] == "alice"
    for path, who in (("/api/tokens", team.alice), ("/api/tokens?all=1", team.root),
                      ("/api/audit?limit=5000", team.root), (f"/api/tokens?user={team.alice_id}", team.root)):
        listing = team.call("GET", path, who)
        assert listing.status_code == 200 and token not in listing.get_data(as_text=True), path
        assert "token_hash" not in listing.get_data(as_text=True)
    team.store.close()
    for name in ("agcluster.db", "agcluster.db-wal"):
        db = tmp_path / name
        assert not db.exists() or token.encode() not in db.read_bytes()


def test_a_revoked_token_stops_working_at_once(team: Team) -> None:
    second = team.call("POST", "/api/tokens", team.alice).get_json()
    assert team.call("GET", "/api/me", second["token"]).status_code == 200
    revoked = team.call("DELETE", f"/api/tokens/{second['id']}", team.alice)
    assert revoked.status_code == 200
    assert revoked.get_json()["active"] is False and revoked.get_json()["revoked_at"] is not None
    assert team.call("GET", "/api/me", second["token"]).status_code == 401
    assert team.call("GET", "/api/me", team.alice).status_code == 200  # her other token still works
    again = team.call("DELETE", f"/api/tokens/{second['id']}", team.alice)
    assert again.status_code == 200 and again.get_json()["revoked_at"] == revoked.get_json()["revoked_at"]
    outcomes = [e["outcome"] for e in team.audit("token.revoke") if e["target"] == second["id"]]
    assert outcomes == ["unchanged", "ok"]  # newest first

    # A token can revoke itself: the next request is refused.
    assert team.call("DELETE", f"/api/tokens/{team.alice_token_id}", team.alice).get_json()["current"] is True
    assert team.call("GET", "/api/tokens", team.alice).status_code == 401


def test_a_tokens_last_use_is_recorded_about_once_a_minute(team: Team) -> None:
    fresh = team.call("POST", "/api/tokens", team.alice).get_json()
    assert fresh["last_used_at"] is None  # made with alice's other token, never used itself

    before = time.time()
    assert team.call("GET", "/api/me", fresh["token"]).status_code == 200
    listed = {t["id"]: t for t in team.call("GET", "/api/tokens", fresh["token"]).get_json()["tokens"]}
    first = listed[fresh["id"]]["last_used_at"]
    assert first is not None and first >= before
    # Within the minute another request writes nothing; a minute on, it is recorded again.
    team.call("GET", "/api/me", fresh["token"])
    assert team.store.get_token(fresh["id"])["last_used_at"] == first
    team.store._db.execute("UPDATE api_tokens SET last_used_at = ? WHERE id = ?", (first - 61, fresh["id"]))
    team.call("GET", "/api/me", fresh["token"])
    assert team.store.get_token(fresh["id"])["last_used_at"] >= before
    # A revoked token's use is refused and not recorded.
    team.call("DELETE", f"/api/tokens/{fresh['id']}", team.alice)
    stamp = team.store.get_token(fresh["id"])["last_used_at"]
    assert team.call("GET", "/api/me", fresh["token"]).status_code == 401
    assert team.store.get_token(fresh["id"])["last_used_at"] == stamp


def test_a_member_cannot_see_or_revoke_anothers_tokens(team: Team) -> None:
    for path in ("/api/tokens?all=1", f"/api/tokens?user={team.root_id}", f"/api/quotas?user={team.root_id}",
                 "/api/users", "/api/audit"):
        denied = team.call("GET", path, team.alice)
        assert denied.status_code == 403, path
    assert team.call("POST", f"/api/users/{team.root_id}/tokens", team.alice).status_code == 403
    assert team.call("POST", "/api/users", team.alice, json={"name": "mallory", "admin": True}).status_code == 403
    assert team.store.get_user(name="mallory") is None
    denials = team.store.audit_entries(500, actor=team.alice_id, action="auth.denied")
    assert len(denials) == 7

    # Someone else's token is indistinguishable from one that does not exist.
    theirs = team.call("DELETE", f"/api/tokens/{team.root_token_id}", team.alice)
    ghost = team.call("DELETE", "/api/tokens/tok_000000000000", team.alice)
    assert theirs.status_code == ghost.status_code == 404
    assert theirs.get_data(as_text=True) == ghost.get_data(as_text=True).replace("tok_000000000000", team.root_token_id)
    assert team.call("GET", "/api/me", team.root).status_code == 200  # still works
    assert [e["outcome"] for e in team.audit("token.revoke")] == ["denied", "denied"]

    # An admin sees and revokes anyone's.
    everyone = team.call("GET", "/api/tokens?all=1", team.root).get_json()["tokens"]
    assert {t["user"] for t in everyone} == {"root", "alice"}
    assert team.call("DELETE", f"/api/tokens/{team.alice_token_id}", team.root).status_code == 200
    assert team.call("GET", "/api/me", team.alice).status_code == 401


def test_bad_input_is_a_clear_error(team: Team) -> None:
    cases = [
        ({"name": "bad name!"}, 400, "validation_error"), ({"name": ""}, 400, "validation_error"),
        ({"name": "x" * 65}, 400, "validation_error"), ({"name": "ok", "role": "admin"}, 400, "validation_error"),
        ({"admin": True}, 400, "validation_error"), ({"name": "alice"}, 409, "conflict"),
        ({"name": "ok", "admin": "maybe"}, 400, "validation_error"),
    ]
    for body, status, code in cases:
        resp = team.call("POST", "/api/users", team.root, json=body)
        assert (resp.status_code, resp.get_json()["error"]["code"]) == (status, code), body
    not_json = team.call("POST", "/api/users", team.root, data="name=x", content_type="text/plain")
    assert not_json.status_code == 400 and not_json.get_json()["error"]["code"] == "invalid_json"
    assert team.call("POST", "/api/users/u_nobody/tokens", team.root).status_code == 404
    assert team.call("GET", "/api/quotas?user=u_nobody", team.root).status_code == 404
    for path in ("/api/tokens?all=perhaps", "/api/usage?days=0", "/api/usage?days=x", "/api/usage?group_by=model"):
        resp = team.call("GET", path, team.root)
        assert resp.status_code == 400 and resp.get_json()["error"]["code"] == "validation_error", path


def test_active_tokens_are_capped_per_user(team: Team) -> None:
    for _ in range(MAX_ACTIVE_TOKENS - 1):  # alice already has one
        assert team.call("POST", "/api/tokens", team.alice).status_code == 201
    refused = team.call("POST", "/api/tokens", team.alice)
    assert refused.status_code == 409 and refused.get_json()["error"]["code"] == "too_many_tokens"
    one = team.call("GET", "/api/tokens", team.alice).get_json()["tokens"][0]  # newest first: not her own
    team.call("DELETE", f"/api/tokens/{one['id']}", team.alice)
    assert team.call("POST", "/api/tokens", team.alice).status_code == 201


def _session(team: Team, session_id: str, owner: str) -> None:
    now = time.time()
    team.store.insert_session(SessionRow(id=session_id, agent_id="a", config_id="code-assistant", config_json="{}",
                                         provider="local", machine_id=None, machine_url=None,
                                         status=SessionStatus.STARTING, status_detail="", key_salt="", key_hash="",
                                         claude_session_id=None, created_at=now, last_active_at=now, owner=owner))


def test_usage_is_your_own_and_everyones_for_admins(team: Team) -> None:
    _session(team, "s-alice", team.alice_id)
    _session(team, "s-root", team.root_id)
    team.store.add_usage("s-alice", input_tokens=100, output_tokens=20, cost_usd=0.25, owner=team.alice_id)
    team.store.add_usage("s-alice", input_tokens=10, output_tokens=2, cost_usd=0.5, owner=team.alice_id)
    team.store.add_usage("s-root", input_tokens=7, output_tokens=1, cost_usd=1.0, owner=team.root_id)
    team.store.add_usage("s-gone", input_tokens=1, output_tokens=1, cost_usd=0.0, owner=team.alice_id)

    mine = team.call("GET", "/api/usage?group_by=session", team.alice).get_json()
    assert mine["scope"] == "own"
    rows = {r["key"]: r for r in mine["usage"]}
    assert set(rows) == {"s-alice", "s-gone"}
    assert (rows["s-alice"]["input_tokens"], rows["s-alice"]["requests"], rows["s-alice"]["cost_usd"]) == (110, 2, 0.75)
    assert (rows["s-alice"]["user"], rows["s-alice"]["config_id"], rows["s-alice"]["status"]) == \
        ("alice", "code-assistant", "starting")
    assert rows["s-gone"]["config_id"] is None  # usage outlives a deleted session
    own = team.call("GET", "/api/usage?group_by=user", team.alice).get_json()["usage"]
    assert [r["user"] for r in own] == ["alice"]

    everyone = team.call("GET", "/api/usage?group_by=user", team.root).get_json()
    assert everyone["scope"] == "everyone"
    assert {r["user"]: r["cost_usd"] for r in everyone["usage"]} == {"alice": 0.75, "root": 1.0}
    days = team.call("GET", "/api/usage?group_by=day&days=7", team.root).get_json()
    today = time.strftime("%Y-%m-%d", time.gmtime())
    assert days["since"] <= today and [r["key"] for r in days["usage"]] == [today]
    assert days["usage"][0]["input_tokens"] == 118


def test_quotas_report_how_much_of_each_is_used(team: Team) -> None:
    _session(team, "s-1", team.alice_id)
    team.store.add_usage("s-1", input_tokens=300, output_tokens=50, cost_usd=0.1, owner=team.alice_id)
    report = team.call("GET", "/api/quotas", team.alice).get_json()
    assert report["user"] == {"id": team.alice_id, "name": "alice"}
    quotas = {q["name"]: q for q in report["quotas"]}
    assert (quotas["max_sessions"]["limit"], quotas["max_sessions"]["used"]) == (3, 1)
    assert (quotas["daily_tokens"]["limit"], quotas["daily_tokens"]["used"]) == (1000, 350)
    assert quotas["daily_usd"]["limit"] is None and quotas["daily_usd"]["used"] == pytest.approx(0.1)
    assert quotas["launches_per_hour"]["setting"] == "QUOTA_LAUNCHES_PER_HOUR"
    # The admin can look at alice's; root's own are separate.
    assert team.call("GET", f"/api/quotas?user={team.alice_id}", team.root).get_json() == report
    root = {q["name"]: q["used"] for q in team.call("GET", "/api/quotas", team.root).get_json()["quotas"]}
    assert root["max_sessions"] == 0 and root["daily_tokens"] == 0


def test_audit_entries_name_their_actor(team: Team) -> None:
    team.call("POST", "/api/users", team.root, json={"name": "carol"})
    entries = team.call("GET", "/api/audit?action=user.add", team.root).get_json()["entries"]
    assert [(e["actor_name"], e["details"]["name"]) for e in entries] == [("root", "carol")]


def test_no_accounts_in_none_mode(tmp_path: Path) -> None:
    app = build(tmp_path)
    client = app.test_client()
    for method, path in ROUTES[:6]:
        resp = client.open(path, method=method, json={"name": "x"})
        assert resp.status_code == 404 and resp.get_json()["error"]["code"] == "accounts_disabled", (method, path)
    assert client.get("/api/me").get_json() == {"auth_mode": "none", "user": None, "admin": False, "token_id": None}
    for path in ("/api/quotas", "/api/usage", "/api/audit"):
        assert client.get(path).get_json()["error"]["code"] == "admin_only"


def test_local_admin_opens_usage_and_quotas_from_loopback_only(tmp_path: Path) -> None:
    client = build(tmp_path, AGCLUSTER_LOCAL_ADMIN="1").test_client()
    assert client.get("/api/me").get_json()["admin"] is True
    quotas = client.get("/api/quotas").get_json()
    assert quotas["user"] is None and {q["name"] for q in quotas["quotas"]} >= {"max_sessions", "daily_usd"}
    assert client.get("/api/usage?group_by=day").get_json()["scope"] == "everyone"
    remote = {"REMOTE_ADDR": "192.0.2.7"}
    assert client.get("/api/me", environ_base=remote).get_json()["admin"] is False
    assert client.get("/api/quotas", environ_base=remote).status_code == 403
