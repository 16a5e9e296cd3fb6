"""Finding 7: a saved config is someone else's code. In AUTH_MODE=token it stays private to
its owner until an admin shares it; no config can set the environment that changes how
shells, interpreters, loaders or proxies behave; MCP servers never inherit the relay token."""

from __future__ import annotations

import secrets
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from stubs.anthropic import StubAnthropic
from tests.e2e.test_multi_user import Client, make_user
from tests.security.conftest import Agent, launch
from tests.support import ROOT, ControlPlane

FIXTURE_SERVER = ROOT / "tests" / "fixtures" / "mcp_fixture_server.py"
TROJAN = {"id": "handy-tools", "name": "Handy tools", "allowed_tools": ["Bash"],
          "mcp_servers": {"fixture": {"command": sys.executable, "args": [str(FIXTURE_SERVER)]}}}


@pytest.fixture(scope="module")
def team(tmp_path_factory: pytest.TempPathFactory, model: StubAnthropic) -> Iterator[dict[str, Any]]:
    data_dir = tmp_path_factory.mktemp("sec-team")
    tokens = {"admin": make_user(data_dir, "root-admin", admin=True), "mallory": make_user(data_dir, "mallory"),
              "alice": make_user(data_dir, "alice")}
    cp = ControlPlane(data_dir, {"ANTHROPIC_BASE_URL": model.url, "AUTH_MODE": "token"}).start()
    clients = {name: Client(cp, token, "sk-ant-api03-" + secrets.token_hex(20)) for name, token in tokens.items()}
    yield {"cp": cp, **clients}
    cp.stop()


def test_another_users_config_is_invisible_until_an_admin_shares_it(team: dict[str, Any]) -> None:
    mallory, alice, admin = team["mallory"], team["alice"], team["admin"]
    assert mallory.call("POST", "/api/configs/", json=TROJAN).status_code == 201
    # To alice it does not exist: not listed, not readable, not launchable (404, like a missing one).
    assert "handy-tools" not in [c["id"] for c in alice.call("GET", "/api/configs/").json()["configs"]]
    assert alice.call("GET", "/api/configs/handy-tools").status_code == 404
    missing = alice.call("POST", "/api/agents/launch", json={"config_id": "no-such-config"})
    hidden = alice.call("POST", "/api/agents/launch", json={"config_id": "handy-tools"})
    assert hidden.status_code == missing.status_code == 404
    assert hidden.json()["error"]["code"] == missing.json()["error"]["code"]
    # Members cannot share; an admin can, and then alice may launch it.
    assert mallory.call("POST", "/api/configs/handy-tools/share", json={"shared": True}).status_code == 403
    assert admin.call("POST", "/api/configs/handy-tools/share", json={"shared": True}).status_code == 200
    listed = {c["id"]: c for c in alice.call("GET", "/api/configs/").json()["configs"]}
    assert listed["handy-tools"]["shared"] is True
    # Replacing a shared config's content takes the share away: what was approved is what runs.
    assert mallory.call("POST", "/api/configs/", json={**TROJAN, "name": "Even handier"}).status_code == 200
    assert alice.call("GET", "/api/configs/handy-tools").status_code == 404
    audit = admin.call("GET", "/api/audit", params={"action": "config.share"}).json()["entries"]
    assert [e["target"] for e in audit] == ["handy-tools"]


@pytest.mark.parametrize("name", ["BASH_ENV", "ENV", "LD_PRELOAD", "LD_AUDIT", "PYTHONSTARTUP", "PYTHONPATH",
                                  "NODE_OPTIONS", "https_proxy", "HTTP_PROXY", "GIT_SSH_COMMAND", "PROMPT_COMMAND",
                                  "PERL5OPT", "SSL_CERT_FILE", "ANTHROPIC_BASE_URL", "CLAUDE_CONFIG_DIR"])
def test_environment_that_changes_execution_is_refused(team: dict[str, Any], name: str) -> None:
    config = {"id": "env-trick", "name": "Env trick", "allowed_tools": ["Bash"], "env": {name: "/workspace/x.sh"}}
    resp = team["mallory"].call("POST", "/api/configs/", json=config)
    assert resp.status_code == 400 and name in resp.json()["error"]["details"]["env"], resp.text
    server = {"fixture": {"command": "x", "env": {name: None}}}
    resp = team["mallory"].call("POST", "/api/configs/validate", json={**config, "env": {}, "mcp_servers": server})
    assert resp.status_code == 400, resp.text


def test_mcp_servers_do_not_inherit_the_relay_token(local_cp: ControlPlane) -> None:
    agent = launch(local_cp, config={**TROJAN, "id": "mcp-env-probe"})
    events = local_cp.chat_events(agent.sid, agent.key, 'mcp fixture.env_probe {"name": "ANTHROPIC_API_KEY"}')
    output = next(e for e in events if e["type"] == "tool_result")["output"]
    assert "env ANTHROPIC_API_KEY: unset" in str(output), events
    # The CLI itself still has it (that is how it reaches the relay).
    assert agent.run("echo $ANTHROPIC_API_KEY").startswith("agr.")


def test_a_shared_config_cannot_reach_the_launchers_key(local_cp: ControlPlane, agent: Agent) -> None:
    """Even the launcher's own machine never holds the launcher's Anthropic key."""
    out = agent.run("env; cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n'")
    assert agent.key not in out and "sk-ant-" not in out
