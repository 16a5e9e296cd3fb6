"""Findings 4, 5 and 6 at the relay itself: what reaches the upstream with the user's key,
whose budget it counts against, and who may present a relay token."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from control.app import create_app
from control.relay import routes
from control.relay.routes import PEER_ENVIRON
from control.session_status import SessionStatus
from control.settings import from_env
from stubs.anthropic import StubAnthropic
from tests.unit.test_metrics import insert_session

BODY = json.dumps({"model": "claude-sonnet-4-5", "max_tokens": 8,
                   "messages": [{"role": "user", "content": "hello"}]}).encode()


def relay_for(tmp_path: Path, model: StubAnthropic, peer: str | None, **env: str) -> tuple[FlaskClient, str, object]:
    app = create_app(from_env({"DATABASE_PATH": str(tmp_path / "agcluster.db"), "ANTHROPIC_BASE_URL": model.url,
                               **env}))
    ext = app.extensions["agcluster"]
    session_id = insert_session(ext.store, SessionStatus.RUNNING)
    ext.vault.put(session_id, "sk-ant-the-users-real-key")
    client = ext.relay_app.test_client()
    client.environ_base[PEER_ENVIRON] = session_id if peer == "own" else peer
    return client, ext.minter.relay_token(session_id), ext


def test_dot_segments_and_other_routes_never_reach_the_upstream(tmp_path: Path, model: StubAnthropic) -> None:
    model.reset()
    client, token, _ = relay_for(tmp_path, model, "own")
    for path in ("./v1/messages", "v1/x/../messages", "v1/models", "v1/files", "v1/messages/batches",
                 "_stub/script", "v1/organizations/me"):
        resp = client.post(f"/relay/{path}", data=BODY, headers={"x-api-key": token})
        assert resp.status_code == 404, path
        assert resp.get_json()["type"] == "error"  # Anthropic's shape: the CLI reads it
    assert model.requests() == []
    ok = client.post("/relay/v1/messages?beta=true", data=BODY, headers={"x-api-key": token,
                                                                         "content-type": "application/json"})
    assert ok.status_code == 200 and [r["path"] for r in model.requests()] == ["/v1/messages"]
    # The user's key went upstream, not the relay token.
    assert model.requests()[0]["credential"]["sha256"] == hashlib.sha256(b"sk-ant-the-users-real-key").hexdigest()


def test_the_budget_counts_on_the_route_that_spends(tmp_path: Path, model: StubAnthropic) -> None:
    client, token, _ = relay_for(tmp_path, model, "own", QUOTA_DAILY_TOKENS="1")
    first = client.post("/relay/v1/messages", data=BODY, headers={"x-api-key": token})
    assert first.status_code == 200
    first.get_data()
    second = client.post("/relay/v1/messages", data=BODY, headers={"x-api-key": token})
    assert second.status_code == 400 and "budget" in second.get_json()["error"]["message"]
    for sneaky in ("./v1/messages", "v1/messages/", "v1//messages"):
        assert client.post(f"/relay/{sneaky}", data=BODY, headers={"x-api-key": token}).status_code == 404


@pytest.mark.parametrize("peer", [None, "some-other-machine", ""])
def test_a_token_from_anywhere_but_its_machine_is_refused(tmp_path: Path, model: StubAnthropic,
                                                          peer: str | None) -> None:
    model.reset()
    client, token, _ = relay_for(tmp_path, model, peer)
    resp = client.post("/relay/v1/messages", data=BODY, headers={"x-api-key": token})
    assert resp.status_code == 401 and model.requests() == []
    mirror = client.post("/relay/_store/load", json={"key": {"project_key": "p", "session_id": "s"}},
                         headers={"Authorization": f"Bearer {token}"})
    assert mirror.status_code == 401


def test_the_transcript_mirror_has_a_per_session_cap(tmp_path: Path, model: StubAnthropic,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    client, token, _ = relay_for(tmp_path, model, "own")
    monkeypatch.setattr(routes, "MAX_MIRROR_PER_SESSION", 64 * 1024)
    entry = {"uuid": "", "type": "user", "text": "x" * 4000}
    key = {"project_key": "p", "session_id": "s"}
    statuses = []
    for n in range(40):
        resp = client.post("/relay/_store/append", headers={"Authorization": f"Bearer {token}"},
                           json={"key": key, "entries": [{**entry, "uuid": f"u{n}"}]})
        statuses.append(resp.status_code)
    assert statuses[0] == 200 and statuses[-1] == 413, statuses
    assert client.post("/relay/_store/append", headers={"Authorization": f"Bearer {token}"},
                       json={"key": key, "entries": [entry]}).get_json()["error"]["code"] == "mirror_full"


def test_the_public_api_has_no_relay(tmp_path: Path, model: StubAnthropic) -> None:
    app = create_app(from_env({"DATABASE_PATH": str(tmp_path / "agcluster.db"), "ANTHROPIC_BASE_URL": model.url}))
    ext = app.extensions["agcluster"]
    session_id = insert_session(ext.store, SessionStatus.RUNNING)
    ext.vault.put(session_id, "sk-ant-the-users-real-key")
    resp = app.test_client().post("/relay/v1/messages", data=BODY,
                                  headers={"x-api-key": ext.minter.relay_token(session_id)})
    assert resp.status_code == 404
