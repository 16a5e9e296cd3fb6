"""The config schema, the catalog and config → ClaudeAgentOptions, without processes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from claude_agent_sdk import ClaudeAgentOptions
from marshmallow import ValidationError

from control.config_schema import (
    CLI_TOOLS,
    KNOWN_TOOLS,
    RESERVED_ENV,
    AgentConfigSchema,
    declared_mcp_keys,
    error_paths,
)
from control.configs import ConfigCatalog, Owner, admit_mcp_env, summary
from control.secrets import REDACTOR
from control.store import Store
from machine_agent.options import (
    MAIN_AGENT,
    MCP_AUTO_ALLOWED,
    STRIPPED_FROM_MCP,
    MachineContext,
    build_options,
    effective_summary,
)
from tests.fixtures.bad_configs import BAD_CONFIGS, BASE, messages_at
from wire.errors import Conflict, Forbidden, NotFound, Unauthorized, ValidationFailed

CTX = MachineContext(workspace="/workspace", home="/home/agent", relay_url="http://relay", relay_token="relay-token")
TODO_FAMILY = ["TaskCreate", "TaskUpdate", "TaskList", "TaskGet"]

# What the issue fixes for each preset: config tools, CPUs, memory, storage.
PRESET_SPEC = {
    "code-assistant": (["Bash", "Read", "Write", "Edit", "Grep", "Glob", "Task", "TodoWrite"], 2, "4g", "10g"),
    "research-agent": (["WebFetch", "WebSearch", "Read", "Write", "Grep", "TodoWrite"], 1, "2g", "5g"),
    "data-analysis": (["Bash", "Read", "Write", "Edit", "Grep", "Glob", "NotebookEdit", "TodoWrite"], 2, "6g", "15g"),
    "github-code-review": (["Read", "Write", "Grep", "TodoWrite"], 1, "2g", "5g"),
    "fullstack-team": (["Task", "Read", "Glob", "Grep", "TodoWrite"], 3, "6g", "10g"),
}


def load(config: Any) -> dict[str, Any]:
    return AgentConfigSchema().load(config)


# The SDK's option fields are unions (a path, a preset, None); these configs always give the
# plain form, and the assertions below read it as such.
def agents(options: ClaudeAgentOptions) -> dict[str, Any]:
    assert options.agents is not None
    return options.agents


def servers(options: ClaudeAgentOptions) -> dict[str, Any]:
    assert isinstance(options.mcp_servers, dict)
    return options.mcp_servers


def tools(options: ClaudeAgentOptions) -> list[str]:
    assert isinstance(options.tools, list)
    return options.tools


@pytest.fixture()
def catalog(tmp_path: Path) -> ConfigCatalog:
    return ConfigCatalog(Store(tmp_path / "agcluster.db"))


# --- presets -------------------------------------------------------------------------------
def test_the_five_presets_match_the_spec(catalog: ConfigCatalog) -> None:
    assert set(catalog.presets) == set(PRESET_SPEC)
    for preset_id, (tools, cpus, memory, storage) in PRESET_SPEC.items():
        config = catalog.presets[preset_id]
        assert sorted(config["allowed_tools"]) == sorted(tools), preset_id
        limits = config["resource_limits"]
        got = (limits["cpu_quota"], limits["memory_limit"], limits["storage_limit"])
        assert got == (cpus * 100_000, memory, storage)
        assert config["max_turns"] and config["permission_mode"] in ("bypassPermissions", "acceptEdits")
        prompt = config["system_prompt"]
        text = prompt["append"] if isinstance(prompt, dict) else prompt
        assert "AgCluster" in text and "/workspace" in text, preset_id


def test_preset_specials(catalog: ConfigCatalog) -> None:
    assert catalog.presets["data-analysis"]["image"] == "agcluster/agent-datascience:latest"
    team = catalog.presets["fullstack-team"]["agents"]
    assert set(team) == {"frontend", "backend", "devops"}
    assert len({a["prompt"] for a in team.values()}) == 3 and all(a["tools"] and a["model"] for a in team.values())
    github = catalog.presets["github-code-review"]["mcp_servers"]["github"]
    assert github["type"] == "http" and github["url"].startswith("https://api.githubcopilot.com/")
    assert "GITHUB_TOKEN" in declared_mcp_keys(github)
    assert "${GITHUB_TOKEN}" in github["headers"]["Authorization"]  # a placeholder, never a token


def test_broken_preset_stops_start_up(tmp_path: Path) -> None:
    (tmp_path / "broken.yaml").write_text("id: broken\nname: Broken\nallowed_tools: [Nope]\n")
    with pytest.raises(RuntimeError, match=r"broken\.yaml"):
        ConfigCatalog(Store(tmp_path / "db.sqlite"), presets_dir=tmp_path)


# --- schema ----------------------------------------------------------------------------------
def test_minimal_config_gets_defaults() -> None:
    config = load({"id": "tiny", "name": "Tiny"})
    assert config["allowed_tools"] == [] and config["permission_mode"] == "bypassPermissions"
    assert config["mcp_servers"] == {} and config["agents"] == {} and config["setting_sources"] == []
    assert config["max_turns"] is None and config["system_prompt"] is None


def test_full_config_round_trips_through_json() -> None:
    full = {
        **BASE, "description": "d", "version": "2.1", "allowed_tools": ["Read", "Task", "TodoWrite", "mcp__fx__echo"],
        "disallowed_tools": ["mcp__fx__env_probe"], "permission_mode": "acceptEdits", "max_turns": 5,
        "max_budget_usd": 1.5, "model": "claude-sonnet-4-5", "image": "registry.local/agent:1.2", "env": {"LEVEL": "3"},
        "system_prompt": {"type": "preset", "preset": "claude_code", "append": "Be brief."},
        "mcp_servers": {"fx": {"command": "/usr/bin/python3", "args": ["s.py"], "env": {"FIXTURE_SECRET": None}},
                        "gh": {"type": "http", "url": "https://example.com/mcp",
                               "headers": {"Authorization": "Bearer ${TOKEN}"}}},
        "agents": {"helper": {"description": "Helps", "prompt": "You help.", "tools": ["Read"], "model": "haiku"}},
        "resource_limits": {"cpu_quota": 150_000, "memory_limit": "1536m", "storage_limit": "2g"},
        "setting_sources": ["project", "local"],
    }
    config = load(full)
    assert config["system_prompt"] == {"preset": "claude_code", "append": "Be brief."}
    assert load(json.loads(json.dumps(config))) == config


@pytest.mark.parametrize(("case", "config", "path"), BAD_CONFIGS, ids=[c[0] for c in BAD_CONFIGS])
def test_bad_config_is_reported_at_its_field(case: str, config: Any, path: tuple[str, ...]) -> None:
    with pytest.raises(ValidationError) as info:
        load(config)
    details = json.loads(json.dumps(error_paths(info.value.messages)))
    assert messages_at(details, path), f"{case}: {details}"


def test_bad_config_cases_cover_the_issue() -> None:
    assert len(BAD_CONFIGS) >= 20
    names = " ".join(c[0] for c in BAD_CONFIGS)
    for topic in ("wrong-type", "unknown-tool", "id-", "reserved", "oversize", "unknown-field", "memory",
                  "missing-command", "missing-url"):
        assert topic in names, topic


def test_error_paths_drop_dict_wrappers() -> None:
    with pytest.raises(ValidationError) as info:
        load({**BASE, "mcp_servers": {"fx": {"type": "stdio"}, "Bad Name": {"command": "x"}}})
    details = error_paths(info.value.messages)
    assert details["mcp_servers"]["fx"] == {"command": ["required for stdio servers"]}
    assert details["mcp_servers"]["Bad Name"] == ["letters, digits, _ and - only"]


def test_every_known_tool_maps_to_a_name_the_cli_offers() -> None:
    for tool in sorted(KNOWN_TOOLS):
        servers = {"fx": {"command": "x"}} if "Mcp" in tool else {}
        options = build_options(load({**BASE, "allowed_tools": [tool], "mcp_servers": servers}), CTX)
        assert options.tools and set(options.tools) <= CLI_TOOLS, tool


# --- config → ClaudeAgentOptions --------------------------------------------------------------
def test_tools_map_to_the_cli_names_exactly() -> None:
    options = build_options(load({**BASE, "allowed_tools": ["Read", "Task", "TodoWrite", "Agent"]}), CTX)
    assert options.tools == ["Read", "Agent", *TODO_FAMILY]
    assert options.env["CLAUDE_CODE_ENABLE_TODO_TOOLS"] == "1"
    assert options.allowed_tools == options.tools  # pre-approved outside "default" mode
    none = build_options(load({**BASE, "allowed_tools": []}), CTX)
    assert none.tools == [] and "CLAUDE_CODE_ENABLE_TODO_TOOLS" not in none.env


def test_disallowed_and_subagent_tools_use_the_same_mapping() -> None:
    config = load({**BASE, "allowed_tools": ["Read", "Bash"], "disallowed_tools": ["Task", "TodoWrite"],
                   "agents": {"helper": {"description": "d", "prompt": "p", "tools": ["Read", "TodoWrite"],
                                         "model": "haiku"}}})
    options = build_options(config, CTX)
    assert options.disallowed_tools[:5] == ["Agent", *TODO_FAMILY]
    helper = agents(options)["helper"]
    assert helper.tools == ["Read", *TODO_FAMILY] and helper.model == "haiku" and helper.prompt == "p"


def test_sub_agents_within_the_main_tools_need_no_main_agent() -> None:
    config = load({**BASE, "allowed_tools": ["Read", "Grep", "Task"],
                   "agents": {"helper": {"description": "d", "prompt": "p", "tools": ["Read"]}}})
    options = build_options(config, CTX)
    assert options.tools == ["Read", "Grep", "Agent"] and set(agents(options)) == {"helper"}
    assert options.extra_args == {} and effective_summary(options)["main_agent"] is None


def test_sub_agents_with_more_tools_get_them_and_the_main_thread_does_not() -> None:
    config = load({**BASE, "allowed_tools": ["Task", "Read", "TodoWrite"], "disallowed_tools": ["WebSearch"],
                   "system_prompt": {"preset": "claude_code", "append": "Lead well."},
                   "mcp_servers": {"fx": {"command": "x"}},
                   "agents": {"backend": {"description": "d", "prompt": "p", "tools": ["Read", "Write", "Bash"],
                                          "model": "sonnet"}}})
    options = build_options(config, CTX)
    main = agents(options)[MAIN_AGENT]
    main_tools = ["Agent", "Read", *TODO_FAMILY, *MCP_AUTO_ALLOWED]
    assert main.tools == [*main_tools, "mcp__fx"] and main.prompt == "" and main.model is None
    assert options.extra_args == {"agent": MAIN_AGENT}
    assert options.tools == [*main_tools, "Write", "Bash"]  # the pool the sub-agents draw from
    assert options.disallowed_tools == ["WebSearch", f"Agent({MAIN_AGENT})"]
    assert options.system_prompt == {"type": "preset", "preset": "claude_code", "append": "Lead well."}
    summary_ = effective_summary(options)
    assert summary_["tools"] == main_tools and summary_["main_agent"] == MAIN_AGENT
    assert set(summary_["agents"]) == {"backend"}
    assert summary_["agents"]["backend"]["tools"] == ["Read", "Write", "Bash"]


def test_every_field_reaches_the_options() -> None:
    config = load({**BASE, "max_turns": 7, "max_budget_usd": 0.5, "model": "claude-sonnet-4-5",
                   "permission_mode": "acceptEdits", "setting_sources": ["project"], "env": {"LEVEL": "3"},
                   "system_prompt": {"preset": "claude_code", "append": "Extra."}})
    options = build_options(config, CTX, resume="claude-session-1")
    assert (options.max_turns, options.max_budget_usd, options.model) == (7, 0.5, "claude-sonnet-4-5")
    assert options.permission_mode == "acceptEdits" and options.setting_sources == ["project"]
    assert options.system_prompt == {"type": "preset", "preset": "claude_code", "append": "Extra."}
    assert options.env["LEVEL"] == "3" and options.env["ANTHROPIC_BASE_URL"] == "http://relay"
    assert options.env["ANTHROPIC_API_KEY"] == "relay-token" and options.resume == "claude-session-1"
    assert options.cwd == "/workspace" and options.strict_mcp_config
    summary_ = effective_summary(options)
    assert summary_["system_prompt"] == "preset:claude_code" and summary_["max_turns"] == 7
    plain = build_options(load({**BASE, "system_prompt": "You are terse."}), CTX)
    assert plain.system_prompt == "You are terse." and plain.setting_sources == []


def test_default_mode_preapproves_nothing_but_resource_reads() -> None:
    config = load({**BASE, "permission_mode": "default", "allowed_tools": ["Read", "Bash"],
                   "mcp_servers": {"fx": {"command": "x"}}})
    options = build_options(config, CTX)
    assert options.tools == ["Read", "Bash", *MCP_AUTO_ALLOWED]
    assert options.allowed_tools == MCP_AUTO_ALLOWED


def test_mcp_servers_get_their_launch_secrets() -> None:
    config = load({**BASE, "mcp_servers": {
        "fx": {"command": "/py", "args": ["s.py"], "env": {"FIXTURE_SECRET": None, "MODE": "test", "UNSET": None}},
        "gh": {"type": "http", "url": "https://example.com/mcp",
               "headers": {"Authorization": "Bearer ${GITHUB_TOKEN}", "X-Other": "${MISSING}", "X-Plain": "yes"}},
    }})
    options = build_options(config, CTX,
                            mcp_env={"fx": {"FIXTURE_SECRET": "s3cret"}, "gh": {"GITHUB_TOKEN": "ghp_abc"}})
    # The server runs under `env -u ...`: it never inherits the relay token from the CLI.
    assert servers(options)["fx"] == {"type": "stdio", "command": "env",
                                         "args": [*STRIPPED_FROM_MCP, "--", "/py", "s.py"],
                                         "env": {"FIXTURE_SECRET": "s3cret", "MODE": "test"}}
    assert "ANTHROPIC_API_KEY" in STRIPPED_FROM_MCP and "ANTHROPIC_BASE_URL" in STRIPPED_FROM_MCP
    assert servers(options)["gh"] == {"type": "http", "url": "https://example.com/mcp",
                                         "headers": {"Authorization": "Bearer ghp_abc", "X-Plain": "yes"}}
    assert tools(options)[-2:] == MCP_AUTO_ALLOWED
    assert {"mcp__fx", "mcp__gh", *MCP_AUTO_ALLOWED} <= set(options.allowed_tools)
    summary = json.dumps(effective_summary(options))
    assert "s3cret" not in summary and "ghp_abc" not in summary
    # Without mcp_env the header with an unfilled placeholder is left out, not sent half-empty.
    bare = build_options(config, CTX)
    assert servers(bare)["gh"]["headers"] == {"X-Plain": "yes"} and servers(bare)["fx"]["env"] == {"MODE": "test"}


# --- mcp_env at launch --------------------------------------------------------------------------
MCP_CONFIG = {**BASE, "mcp_servers": {"fx": {"command": "/py", "env": {"FIXTURE_SECRET": None}},
                                      "gh": {"type": "http", "url": "https://example.com/mcp",
                                             "headers": {"Authorization": "Bearer ${GITHUB_TOKEN}"}}}}


@pytest.mark.parametrize(("mcp_env", "path"), [
    ({"ghost": {"X": "1"}}, ("mcp_env", "ghost")),
    ({"fx": {"UNDECLARED": "1"}}, ("mcp_env", "fx", "UNDECLARED")),
    ({"fx": {"PATH": "/evil"}}, ("mcp_env", "fx", "PATH")),
    ({"gh": {"ANTHROPIC_API_KEY": "x"}}, ("mcp_env", "gh", "ANTHROPIC_API_KEY")),
    ({"gh": {"GITHUB_TOKEN": "x" * 9000}}, ("mcp_env", "gh", "GITHUB_TOKEN")),
], ids=["unknown-server", "undeclared-key", "reserved-env", "reserved-core", "oversize-value"])
def test_bad_mcp_env_is_reported_at_its_key(mcp_env: dict[str, Any], path: tuple[str, ...]) -> None:
    with pytest.raises(ValidationFailed) as info:
        admit_mcp_env(load(MCP_CONFIG), mcp_env)
    assert messages_at(json.loads(json.dumps(info.value.details)), path)


def test_good_mcp_env_is_registered_for_redaction() -> None:
    secret = "mcp-secret-value-123"
    admit_mcp_env(load(MCP_CONFIG), {"fx": {"FIXTURE_SECRET": secret}, "gh": {"GITHUB_TOKEN": "tok-abcdef"}})
    assert secret not in REDACTOR.redact(f"the server said {secret}")
    assert not RESERVED_ENV & declared_mcp_keys(MCP_CONFIG["mcp_servers"]["fx"])


# --- the catalog -------------------------------------------------------------------------------
def test_lookups_are_slugs_only(catalog: ConfigCatalog) -> None:
    for bad in ("../etc/passwd", "..%2Fetc%2Fpasswd", "/etc/passwd", "code-assistant/../x", "", "A", None, 5):
        with pytest.raises(NotFound):
            catalog.get(bad, None)
    assert catalog.get("code-assistant", None)["id"] == "code-assistant"


def test_custom_configs_are_owned_and_cannot_shadow_presets(catalog: ConfigCatalog) -> None:
    alice, bob = Owner(key="alice-secret-1"), Owner(key="bob-secret-22")
    config, created = catalog.save({**BASE, "id": "mine"}, alice)
    assert created and catalog.get("mine", None) == config
    assert summary(config)["has_mcp_servers"] is False
    _, created = catalog.save({**BASE, "id": "mine", "name": "Renamed"}, alice)
    assert not created and catalog.get("mine", None)["name"] == "Renamed"
    with pytest.raises(Conflict):
        catalog.save({**BASE, "id": "mine"}, bob)
    with pytest.raises(ValidationFailed) as info:
        catalog.save({**BASE, "id": "code-assistant"}, alice)
    assert "id" in info.value.details
    with pytest.raises(ValidationFailed):
        catalog.validate_inline({**BASE, "id": "research-agent"})
    with pytest.raises(Unauthorized):
        catalog.save({**BASE, "id": "anon"}, Owner())
    with pytest.raises(Forbidden):
        catalog.delete("mine", bob)
    with pytest.raises(Conflict):
        catalog.delete("code-assistant", alice)
    catalog.delete("mine", alice)
    with pytest.raises(NotFound):
        catalog.get("mine", None)
    stored = catalog.store.get_config_owner
    catalog.save({**BASE, "id": "team"}, Owner(user_id="u1"))
    assert stored("team") == "user:u1"
    with pytest.raises(Forbidden):
        catalog.delete("team", Owner(user_id="u2"))
    catalog.delete("team", Owner(user_id="u2", is_admin=True))
    assert "alice-secret-1" not in (catalog.store.path.read_bytes().decode(errors="replace"))
