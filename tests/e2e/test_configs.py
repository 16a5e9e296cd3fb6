"""Agent configs reach the agent: the real CLI, the real sandbox, the stand-in model's request log.

Every claim is read from what the CLI actually sent to ``stubs.anthropic`` (its ``tools``,
``system``, ``model`` and messages) or from the events the session streamed. Launches cost
seconds, so each session is launched once and shared by the checks that need it.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import secrets
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import requests

from stubs.anthropic import StubAnthropic
from stubs.anthropic.conversation import Conversation
from tests.fixtures.bad_configs import BAD_CONFIGS, messages_at
from tests.support import ROOT, ControlPlane, dump, types

FIXTURE_SERVER = ROOT / "tests" / "fixtures" / "mcp_fixture_server.py"
# The CLI always sends this internal entry (defer_loading, "never call this tool").
CLI_PLACEHOLDER = "DeferredToolPlaceholder"
TODO_FAMILY = {"TaskCreate", "TaskUpdate", "TaskList", "TaskGet"}
MCP_RESOURCE_TOOLS = {"ListMcpResourcesTool", "ReadMcpResourceTool"}
# Config names → what the pinned CLI offers the model.
CLI_NAMES = {"Task": {"Agent"}, "TodoWrite": TODO_FAMILY}
PRESETS = ["code-assistant", "research-agent", "data-analysis", "github-code-review", "fullstack-team"]


def new_key() -> str:
    return "sk-ant-api03-" + secrets.token_hex(24)


def expected_tools(config_tools: list[str]) -> set[str]:
    return set().union(*(CLI_NAMES.get(name, {name}) for name in config_tools))


@dataclass
class Session:
    cp: ControlPlane
    model: StubAnthropic
    sid: str
    key: str
    turns: list[list[dict[str, Any]]] = field(default_factory=list)

    def chat(self, message: str) -> list[dict[str, Any]]:
        events = self.cp.chat_events(self.sid, self.key, message)
        assert events[-1]["type"] == "done", dump(events)
        self.turns.append(events)
        return events

    def requests(self) -> list[dict[str, Any]]:
        """Agent-loop requests this session's CLI sent (the relay forwards our key; match its hash)."""
        digest = hashlib.sha256(self.key.encode()).hexdigest()
        return [r for r in self.model.requests()
                if (r.get("credential") or {}).get("sha256") == digest and isinstance(r.get("body"), dict)
                and r["body"].get("tools")]

    def first_request(self) -> dict[str, Any]:
        found = self.requests()
        assert found, "the CLI sent no agent-loop request"
        return found[0]["body"]

    def details(self) -> dict[str, Any]:
        resp = self.cp.get(f"/api/agents/sessions/{self.sid}", self.key)
        assert resp.status_code == 200, resp.text
        return resp.json()

    def workspace(self) -> Path:
        return self.cp.data_dir / "machines" / self.sid / "workspace"


def offered(body: dict[str, Any]) -> set[str]:
    """Every tool the model could call: sent eagerly or announced as deferred."""
    return ({t["name"] for t in body["tools"]} | Conversation(body).deferred_tools) - {CLI_PLACEHOLDER}


def system_text(body: dict[str, Any]) -> str:
    system = body.get("system")
    if isinstance(system, str):
        return system
    return "\n".join(block.get("text", "") for block in system or [] if isinstance(block, dict))


def result_of(events: list[dict[str, Any]]) -> dict[str, Any]:
    return next(e for e in events if e["type"] == "result")


@pytest.fixture(scope="module")
def control_plane(tmp_path_factory: pytest.TempPathFactory, model: StubAnthropic) -> Iterator[ControlPlane]:
    """This module's own control plane: it sends a hundred-odd bad launches, so no rate limit."""
    cp = ControlPlane(tmp_path_factory.mktemp("cp-configs"),
                      {"ANTHROPIC_BASE_URL": model.url, "RATE_LIMIT_PER_MINUTE": "0"}).start()
    yield cp
    cp.stop()


class Launcher:
    """Launches sessions for the module and removes them all at the end."""

    def __init__(self, cp: ControlPlane, model: StubAnthropic) -> None:
        self.cp, self.model = cp, model
        self.sessions: dict[str, Session] = {}

    def launch(self, name: str, **body: Any) -> Session:
        if name not in self.sessions:
            key = new_key()
            launched = self.cp.launch(key, **body)
            self.sessions[name] = Session(self.cp, self.model, launched["session_id"], key)
        return self.sessions[name]

    def drop(self, *names: str) -> None:
        """Remove sessions no later test needs (idle CLIs still cost memory on a small runner)."""
        for name in names:
            session = self.sessions.pop(name, None)
            if session is not None:
                self.cp.delete(f"/api/agents/sessions/{session.sid}", session.key)

    def close(self) -> None:
        self.drop(*list(self.sessions))


@pytest.fixture(scope="module")
def launcher(control_plane: ControlPlane, model: StubAnthropic) -> Iterator[Launcher]:
    launcher = Launcher(control_plane, model)
    yield launcher
    launcher.close()


def preset_session(launcher: Launcher, preset_id: str) -> Session:
    new = preset_id not in launcher.sessions
    body: dict[str, Any] = {"config_id": preset_id}
    if preset_id == "github-code-review":
        body["mcp_env"] = {"github": {"GITHUB_TOKEN": "ghp_" + secrets.token_hex(18)}}
    session = launcher.launch(preset_id, **body)
    if new:
        session.chat("hello")
    return session


def plant_project_memory(session: Session, marker: str) -> None:
    """A CLAUDE.md the CLI reads, with "project" setting sources, once a file beside it is read.

    (The top-level CLAUDE.md is read when the CLI starts, which is before a test can write
    into the new workspace; a nested one is read on demand.)
    """
    folder = session.workspace() / "docs"
    folder.mkdir(exist_ok=True)
    (folder / "CLAUDE.md").write_text(f"Project rule {marker}.\n")
    (folder / "notes.txt").write_text("notes\n")


# --- presets: tools offered are exactly the allowed set ---------------------------------------
@pytest.mark.parametrize("preset_id", PRESETS)
def test_preset_offers_exactly_its_tools(launcher: Launcher, preset_id: str) -> None:
    session = preset_session(launcher, preset_id)
    config = launcher.cp.get(f"/api/configs/{preset_id}").json()
    body = session.first_request()
    tools = offered(body)
    want = expected_tools(config["allowed_tools"])
    cli = session.details()["effective_config"]["cli"]
    servers = {s["name"]: s.get("status") for s in cli.get("mcp_servers") or []}
    extra = tools - want
    if config["mcp_servers"]:
        assert set(servers) == set(config["mcp_servers"]), cli
        # Only MCP tools may come on top, and only from a server that actually connected.
        assert all(t in MCP_RESOURCE_TOOLS or t.startswith("mcp__github__") for t in extra), extra
        if servers["github"] != "connected":
            assert not any(t.startswith("mcp__") for t in extra), extra
    else:
        assert extra == set(), f"{preset_id} offers tools it does not allow: {extra}"
    assert want <= tools, f"{preset_id} misses {want - tools}"
    assert "TodoWrite" not in tools and "Task" not in tools  # the CLI's names, not the config's
    assert result_of(session.turns[0])["subtype"] == "success"
    if preset_id in ("data-analysis", "github-code-review"):
        launcher.drop(preset_id)


def test_preset_system_prompts_and_settings(launcher: Launcher) -> None:
    coder = preset_session(launcher, "code-assistant")
    config = launcher.cp.get("/api/configs/code-assistant").json()
    text = system_text(coder.first_request())
    append = config["system_prompt"]["append"].strip()
    claude_code = text.index("You are Claude Code")
    assert text.index(append) > claude_code and len(text[:text.index(append)]) > 2000  # kept, then ours
    plant_project_memory(coder, "PRESET-CLAUDE-MD-MARKER")
    events = coder.chat("read docs/notes.txt")
    assert "notes" in next(e for e in events if e["type"] == "tool_result")["output"]
    assert "PRESET-CLAUDE-MD-MARKER" not in json.dumps(coder.requests())  # setting_sources: [] reads no project files
    research = preset_session(launcher, "research-agent")
    custom = launcher.cp.get("/api/configs/research-agent").json()["system_prompt"].strip()
    text = system_text(research.first_request())
    assert custom in text and "You are Claude Code" not in text  # a string prompt replaces Claude Code's
    effective = research.details()["effective_config"]
    assert effective["permission_mode"] == "acceptEdits" and effective["max_turns"] == 60
    assert effective["cli"]["permissionMode"] == "acceptEdits"
    launcher.drop("code-assistant", "research-agent")


def test_fullstack_team_sub_agents_reach_the_cli(launcher: Launcher) -> None:
    session = preset_session(launcher, "fullstack-team")
    team = launcher.cp.get("/api/configs/fullstack-team").json()["agents"]
    cli = session.details()["effective_config"]["cli"]
    assert {"frontend", "backend", "devops"} <= set(cli["agents"]), cli  # the CLI's init message
    body = session.first_request()
    assert "Agent" in offered(body)
    agent_tool = next(t for t in body["tools"] if t["name"] == "Agent")
    assert "agent types" in agent_tool["description"]
    # The pinned CLI lists the agent types for the Agent tool in a system message.
    context = json.dumps(body["messages"], ensure_ascii=False)
    assert "Available agent types for the Agent tool" in context
    for name, spec in team.items():
        listed = f"- {name}: {spec['description']} (Tools: {', '.join(spec['tools'])})"
        assert json.dumps(listed, ensure_ascii=False)[1:-1] in context, name
    assert "agcluster-main" not in context  # the lead's own hidden agent is not offered for delegation
    effective = session.details()["effective_config"]
    assert set(effective["agents"]) == {"frontend", "backend", "devops"}
    assert set(effective["tools"]) == {"Agent", "Read", "Glob", "Grep"} | TODO_FAMILY


def test_fullstack_specialist_runs_with_its_own_prompt_tools_and_model(launcher: Launcher) -> None:
    session = preset_session(launcher, "fullstack-team")
    backend = launcher.cp.get("/api/configs/fullstack-team").json()["agents"]["backend"]
    events = session.chat("agent backend: run: echo built-by-backend")
    delegation = next(e for e in events if e["type"] == "tool_use" and not e.get("parent_tool_use_id"))
    assert delegation["name"] == "Agent" and delegation["input"]["subagent_type"] == "backend", dump(events)
    inner = [e for e in events if e["type"] == "tool_result" and e.get("parent_tool_use_id") == delegation["id"]]
    assert inner and "built-by-backend" in inner[0]["output"], dump(events)  # the specialist really ran Bash
    handed_back = next(e for e in events if e["type"] == "tool_result" and e["tool_use_id"] == delegation["id"])
    assert "built-by-backend" in handed_back["output"]
    first_line = backend["prompt"].splitlines()[0]
    specialist = [r["body"] for r in session.requests() if first_line in system_text(r["body"])]
    assert specialist, "no request carried the backend specialist's prompt"
    assert offered(specialist[0]) == set(backend["tools"])  # its tools, though the lead has no Bash/Write/Edit
    assert specialist[0]["model"].startswith("claude-sonnet")  # its model ("sonnet"), not the lead's
    lead = [r["body"] for r in session.requests() if first_line not in system_text(r["body"])]
    assert all("Bash" not in offered(body) for body in lead)
    assert result_of(events)["subtype"] == "success"
    launcher.drop("fullstack-team")


# --- an inline config with only Read ------------------------------------------------------------
def test_inline_read_only_config_offers_no_bash(launcher: Launcher) -> None:
    session = launcher.launch("read-only", config={"id": "read-only", "name": "Read only", "allowed_tools": ["Read"]})
    events = session.chat("run: echo should-not-run")
    assert "tool_use" not in types(events), dump(events)
    assert "Bash tool is unavailable" in next(e for e in events if e["type"] == "text")["text"]
    assert offered(session.first_request()) == {"Read"}
    details = session.details()
    assert details["config_id"] == "read-only" and details["effective_config"]["tools"] == ["Read"]
    assert details["effective_config"]["cli"]["tools"] == ["Read"]
    launcher.drop("read-only")


# --- a saved custom config with an MCP server, limits, model, prompt and settings -------------
MCP_SECRET = "mcp-fixture-secret-" + secrets.token_hex(12)
MCP_CONFIG = {
    "id": "e2e-mcp-probe",
    "name": "E2E MCP probe",
    "description": "Every field of the schema, reaching the real CLI.",
    "allowed_tools": ["Bash", "Read"],
    "max_turns": 2,
    "model": "claude-sonnet-4-5",
    "system_prompt": {"preset": "claude_code", "append": "APPENDED-BY-AGCLUSTER-E2E"},
    "setting_sources": ["project"],
    "env": {"AGC_E2E_FLAG": "flag-on"},
    "mcp_servers": {"fixture": {"type": "stdio", "command": sys.executable, "args": [str(FIXTURE_SERVER)],
                                "env": {"FIXTURE_SECRET": None, "FIXTURE_MODE": "e2e"}}},
}
OWNER = "owner-secret-" + secrets.token_hex(8)


@pytest.fixture(scope="module")
def mcp_session(launcher: Launcher) -> Session:
    saved = launcher.cp.post("/api/configs/", OWNER, json=MCP_CONFIG)
    assert saved.status_code == 201, saved.text
    return launcher.launch("mcp", config_id="e2e-mcp-probe", mcp_env={"fixture": {"FIXTURE_SECRET": MCP_SECRET}})


def test_mcp_tools_are_offered_and_called(mcp_session: Session) -> None:
    events = mcp_session.chat('mcp fixture.env_probe {"name": "FIXTURE_SECRET"}')
    call = next(e for e in events if e["type"] == "tool_use")
    assert call["name"] == "mcp__fixture__env_probe", dump(events)
    result = next(e for e in events if e["type"] == "tool_result")
    digest = hashlib.sha256(MCP_SECRET.encode()).hexdigest()
    assert result["tool_use_id"] == call["id"] and not result["is_error"]
    assert f"env FIXTURE_SECRET: set sha256={digest}" in result["output"], dump(events)
    events = mcp_session.chat('mcp fixture.echo {"text": "hello-fixture"}')
    assert "fixture-echo: hello-fixture" in next(e for e in events if e["type"] == "tool_result")["output"]
    body = mcp_session.first_request()
    assert offered(body) == {"Bash", "Read", "mcp__fixture__echo", "mcp__fixture__env_probe"} | MCP_RESOURCE_TOOLS
    cli = mcp_session.details()["effective_config"]["cli"]
    assert [(s["name"], s["status"]) for s in cli["mcp_servers"]] == [("fixture", "connected")]


def test_model_prompt_env_and_setting_sources_reach_the_cli(mcp_session: Session) -> None:
    if not mcp_session.turns:
        mcp_session.chat("hello")
    body = mcp_session.first_request()
    assert all(r["body"]["model"] == "claude-sonnet-4-5" for r in mcp_session.requests())
    text = system_text(body)
    assert text.index("You are Claude Code") < text.index("APPENDED-BY-AGCLUSTER-E2E")
    plant_project_memory(mcp_session, "SETTING-SOURCES-PROJECT-MARKER")
    mcp_session.chat("read docs/notes.txt")
    assert "SETTING-SOURCES-PROJECT-MARKER" in json.dumps(mcp_session.requests()[-1]["body"]["messages"])
    events = mcp_session.chat("run: echo flag=$AGC_E2E_FLAG mode=${FIXTURE_MODE:-unset}")
    output = next(e for e in events if e["type"] == "tool_result")["output"]
    # The config's env reaches the agent; the server's own env stays with the server.
    assert "flag=flag-on" in output and "mode=unset" in output
    assert MCP_SECRET not in output
    effective = mcp_session.details()["effective_config"]
    assert effective["model"] == "claude-sonnet-4-5" and effective["setting_sources"] == ["project"]
    assert effective["system_prompt"] == "preset:claude_code" and effective["mcp_servers"] == ["fixture"]


def test_max_turns_stops_a_loop(mcp_session: Session) -> None:
    events = mcp_session.chat("loop")
    result = result_of(events)
    assert result["subtype"] == "error_max_turns" and result["is_error"], dump(events)
    assert types(events).count("tool_use") == 2
    # The session is still usable after the limit.
    events = mcp_session.chat("run: echo still-alive")
    assert "still-alive" in next(e for e in events if e["type"] == "tool_result")["output"]


def test_mcp_env_appears_nowhere_else(launcher: Launcher, mcp_session: Session) -> None:
    if not mcp_session.turns:
        mcp_session.chat('mcp fixture.env_probe {"name": "FIXTURE_SECRET"}')
    cp = launcher.cp
    seen = [
        json.dumps(mcp_session.details()),
        cp.get("/api/agents/sessions").text,
        cp.get(f"/api/agents/sessions/{mcp_session.sid}/events", mcp_session.key).text,
        cp.get("/api/configs/e2e-mcp-probe").text,
        cp.get("/api/configs/").text,
        json.dumps(launcher.model.requests()),
        cp.log(),
    ]
    assert all(MCP_SECRET not in text for text in seen)
    for path in cp.data_dir.glob("agcluster.db*"):  # the database, its WAL and shared memory
        assert MCP_SECRET.encode() not in path.read_bytes(), path.name


# --- budget -------------------------------------------------------------------------------------
def test_max_budget_stops_a_loop(launcher: Launcher) -> None:
    session = launcher.launch("budget", config={"id": "tiny-budget", "name": "Tiny budget", "allowed_tools": ["Bash"],
                                                "max_budget_usd": 0.0001})
    events = session.chat("loop")
    result = result_of(events)
    assert result["subtype"] == "error_max_budget_usd" and result["is_error"], dump(events)
    assert result["total_cost_usd"] > 0.0001
    assert session.details()["effective_config"]["max_budget_usd"] == 0.0001
    launcher.drop("budget")


# --- the config endpoints -----------------------------------------------------------------------
def test_list_and_get_configs(control_plane: ControlPlane) -> None:
    listing = control_plane.get("/api/configs/").json()
    by_id = {c["id"]: c for c in listing["configs"]}
    assert set(PRESETS) <= set(by_id) and listing["total"] == len(listing["configs"])
    assert by_id["fullstack-team"]["has_sub_agents"] and by_id["github-code-review"]["has_mcp_servers"]
    assert by_id["github-code-review"]["mcp_servers"]["github"] == ["Authorization", "GITHUB_TOKEN", "X-MCP-Toolsets"]
    assert all(by_id[p]["preset"] for p in PRESETS)
    full = control_plane.get("/api/configs/fullstack-team").json()
    assert set(full["agents"]) == {"frontend", "backend", "devops"}
    missing = control_plane.get("/api/configs/no-such-config")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize("raw_path", [
    "/api/configs/..%2F..%2F..%2Fetc%2Fpasswd", "/api/configs/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "/api/configs/../../etc/passwd", "/api/configs/..%252Fetc%252Fpasswd", "/api/configs/%2Fetc%2Fpasswd",
    "/api/configs/code-assistant%2F..%2F..%2Fpyproject.toml", "/api/configs/..", "/api/configs/.%2e",
])
def test_config_ids_cannot_escape_to_the_filesystem(control_plane: ControlPlane, raw_path: str) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", control_plane.port, timeout=30)
    conn.request("GET", raw_path)  # sent byte for byte: no client-side normalisation
    resp = conn.getresponse()
    body = resp.read().decode(errors="replace")
    conn.close()
    assert resp.status in (400, 404), (raw_path, resp.status, body[:200])
    assert "root:" not in body and "[project]" not in body and "preset" not in body.lower()
    assert json.loads(body)["error"]["code"]


def test_launch_config_id_cannot_escape_either(control_plane: ControlPlane) -> None:
    for config_id in ("../etc/passwd", "..%2Fetc%2Fpasswd", "/etc/passwd", "../presets/code-assistant"):
        resp = control_plane.post("/api/agents/launch", json={"api_key": new_key(), "config_id": config_id})
        assert resp.status_code in (400, 404), resp.text
        assert "root:" not in resp.text and "config_id" in resp.json()["error"]["details"]


def test_save_get_replace_and_delete_a_custom_config(control_plane: ControlPlane) -> None:
    config = {"id": "e2e-custom", "name": "Custom", "allowed_tools": ["Read", "TodoWrite"]}
    owner, other = "owner-" + secrets.token_hex(8), "other-" + secrets.token_hex(8)
    assert control_plane.post("/api/configs/", json=config).status_code == 401
    saved = control_plane.post("/api/configs/", owner, json=config)
    assert saved.status_code == 201 and saved.json()["permission_mode"] == "bypassPermissions"
    assert control_plane.get("/api/configs/e2e-custom").json() == saved.json()
    listed = {c["id"]: c for c in control_plane.get("/api/configs/").json()["configs"]}
    assert listed["e2e-custom"]["preset"] is False
    replaced = control_plane.post("/api/configs/", owner, json={**config, "name": "Renamed"})
    assert replaced.status_code == 200 and control_plane.get("/api/configs/e2e-custom").json()["name"] == "Renamed"
    taken = control_plane.post("/api/configs/", other, json=config)
    assert taken.status_code == 409 and "id" in taken.json()["error"]["details"]
    shadow = control_plane.post("/api/configs/", owner, json={**config, "id": "code-assistant"})
    assert shadow.status_code == 400 and messages_at(shadow.json()["error"]["details"], ("id",))
    assert control_plane.get("/api/configs/code-assistant").json()["name"] == "Code Assistant"
    assert control_plane.delete("/api/configs/e2e-custom").status_code == 401
    assert control_plane.delete("/api/configs/e2e-custom", other).status_code == 403
    assert control_plane.delete("/api/configs/code-assistant", owner).status_code == 409
    assert control_plane.delete("/api/configs/e2e-custom", owner).status_code == 200
    assert control_plane.get("/api/configs/e2e-custom").status_code == 404
    assert control_plane.delete("/api/configs/e2e-custom", owner).status_code == 404
    assert control_plane.post("/api/configs/", owner, json={**config, "id": "e2e-owner-hash"}).status_code == 201
    for path in control_plane.data_dir.glob("agcluster.db*"):  # the database, its WAL and shared memory
        assert owner.encode() not in path.read_bytes()  # only a salted hash of the owner's secret


def test_validate_returns_the_normalised_config(control_plane: ControlPlane) -> None:
    resp = control_plane.post("/api/configs/validate", json={"id": "draft", "name": "Draft",
                                                             "system_prompt": {"preset": "claude_code"}})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["valid"] and body["config"]["allowed_tools"] == [] and body["config"]["max_turns"] is None
    assert body["config"]["system_prompt"] == {"preset": "claude_code"} and body["shadows_preset"] is False
    checked = control_plane.post("/api/configs/validate", json={"id": "code-assistant", "name": "x"}).json()
    assert checked["shadows_preset"]
    assert control_plane.get("/api/configs/draft").status_code == 404  # validating stores nothing
    not_json = requests.post(f"{control_plane.url}/api/configs/validate", data="{",
                             headers={"Content-Type": "application/json"}, timeout=30)
    assert not_json.status_code == 400 and not_json.json()["error"]["code"] == "invalid_json"


# --- bad configs: 400 with the field path, on every route that takes a config -----------------
@pytest.mark.parametrize(("case", "config", "path"), BAD_CONFIGS, ids=[c[0] for c in BAD_CONFIGS])
def test_bad_config_gives_400_with_its_field_path(control_plane: ControlPlane, case: str, config: Any,
                                                  path: tuple[str, ...]) -> None:
    key = new_key()
    attempts = {
        "validate": control_plane.post("/api/configs/validate", json=config),
        "save": control_plane.post("/api/configs/", key, json=config),
        "launch": control_plane.post("/api/agents/launch", json={"api_key": key, "config": config})
        if isinstance(config, dict) else None,
    }
    for route, resp in attempts.items():
        if resp is None:
            continue
        assert resp.status_code == 400, (case, route, resp.status_code, resp.text[:300])
        error = resp.json()["error"]
        assert error["code"] == "validation_error"
        assert messages_at(error["details"], path), (case, route, error["details"])


LAUNCH_CASES = [
    ("inline-shadows-preset", {"config": {"id": "code-assistant", "name": "Impostor", "allowed_tools": ["Bash"]}},
     ("id",)),
    ("mcp-env-unknown-server", {"config_id": "code-assistant", "mcp_env": {"github": {"GITHUB_TOKEN": "x"}}},
     ("mcp_env", "github")),
    ("mcp-env-undeclared-key", {"config_id": "github-code-review", "mcp_env": {"github": {"OTHER_TOKEN": "x"}}},
     ("mcp_env", "github", "OTHER_TOKEN")),
    ("mcp-env-reserved-key", {"config_id": "github-code-review", "mcp_env": {"github": {"ANTHROPIC_BASE_URL": "http://x"}}},
     ("mcp_env", "github", "ANTHROPIC_BASE_URL")),
    ("mcp-env-not-strings", {"config_id": "github-code-review", "mcp_env": {"github": {"GITHUB_TOKEN": 5}}},
     ("mcp_env",)),
    ("mcp-env-not-an-object", {"config_id": "github-code-review", "mcp_env": ["GITHUB_TOKEN"]}, ("mcp_env",)),
]


@pytest.mark.parametrize(("case", "body", "path"), LAUNCH_CASES, ids=[c[0] for c in LAUNCH_CASES])
def test_bad_launch_gives_400_with_its_field_path(control_plane: ControlPlane, case: str, body: dict[str, Any],
                                                  path: tuple[str, ...]) -> None:
    before = len(control_plane.get("/api/agents/sessions").json()["sessions"])
    resp = control_plane.post("/api/agents/launch", json={"api_key": new_key(), **body})
    assert resp.status_code == 400, (case, resp.text[:300])
    assert messages_at(resp.json()["error"]["details"], path), resp.json()
    assert len(control_plane.get("/api/agents/sessions").json()["sessions"]) == before  # nothing started
