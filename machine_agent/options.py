"""A validated agent config → ``ClaudeAgentOptions``. Every field must reach the SDK."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from claude_agent_sdk import AgentDefinition, ClaudeAgentOptions

# Config tool names → the names the pinned CLI offers (probed; docs/CONFIGS.md):
# - it never offers TodoWrite; its task list is TaskCreate/TaskUpdate/TaskList/TaskGet,
#   which ``todos.TodoTracker`` folds back into one list for the dashboard;
# - its sub-agent tool is "Agent" (it still accepts and reports the old name "Task");
# - its MCP resource tools carry a "Tool" suffix and exist only when MCP servers do.
TODO_REPLACEMENTS = ["TaskCreate", "TaskUpdate", "TaskList", "TaskGet"]
TOOL_MAP: dict[str, list[str]] = {
    "TodoWrite": TODO_REPLACEMENTS,
    "Task": ["Agent"],
    "ListMcpResources": ["ListMcpResourcesTool"],
    "ReadMcpResource": ["ReadMcpResourceTool"],
}
MCP_AUTO_ALLOWED = ["ListMcpResourcesTool", "ReadMcpResourceTool"]
# The hidden agent the main thread runs as when sub-agents need tools it must not have.
MAIN_AGENT = "agcluster-main"
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# ``env -u NAME`` for every variable that carries the relay or the CLI's identity.
STRIPPED_FROM_MCP = [arg for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL",
                                      "CLAUDE_CODE_OAUTH_TOKEN") for arg in ("-u", name)]


@dataclass(frozen=True)
class MachineContext:
    workspace: str
    home: str
    relay_url: str
    relay_token: str


def build_options(config: dict[str, Any], ctx: MachineContext, *, mcp_env: dict[str, dict[str, str]] | None = None,
                  resume: str | None = None, stderr: Any = None, can_use_tool: Any = None) -> ClaudeAgentOptions:
    allowed = list(config.get("allowed_tools") or [])
    builtin = [t for t in allowed if not t.startswith("mcp__")]
    tools = _expand_tools(builtin)
    mcp_servers = _mcp_servers(config.get("mcp_servers") or {}, mcp_env or {})
    if mcp_servers:
        tools = list(dict.fromkeys(tools + MCP_AUTO_ALLOWED))
    agents = _agents(config.get("agents") or {})
    disallowed = _expand_tools(list(config.get("disallowed_tools") or []))
    extra_args: dict[str, str | None] = {}
    # The CLI's ``tools`` is the pool every agent draws from: a sub-agent only gets the
    # tools it lists that are also in the pool. When specialists need more than the main
    # agent may have (fullstack-team: the lead only delegates, the specialists edit and
    # build), the pool becomes the union and the main thread runs as a hidden agent that
    # lists exactly its own tools. Its empty prompt keeps the configured system prompt.
    sub_tools = [t for agent in (agents or {}).values() for t in (agent.tools or [])]
    if agents and not set(sub_tools) <= set(tools):
        agents[MAIN_AGENT] = AgentDefinition(
            description="This session's main agent (internal; never delegate to it).", prompt="",
            tools=tools + [f"mcp__{name}" for name in mcp_servers])
        extra_args["agent"] = MAIN_AGENT
        disallowed.append(f"Agent({MAIN_AGENT})")  # also keeps it out of the agent listing
        tools = list(dict.fromkeys(tools + sub_tools))
    # In "default" mode nothing is pre-approved beyond the CLI's own read-only rules, so
    # every other call reaches can_use_tool and becomes a permission_request for the user.
    asks_user = config.get("permission_mode") == "default"
    if asks_user:
        auto_allowed = list(MCP_AUTO_ALLOWED) if mcp_servers else []
    else:
        auto_allowed = list(dict.fromkeys(tools + [t for t in allowed if t.startswith("mcp__")]
                                          + [f"mcp__{name}" for name in mcp_servers]))
    env = {k: str(v) for k, v in (config.get("env") or {}).items() if v is not None}
    env.update({
        "ANTHROPIC_BASE_URL": ctx.relay_url,
        "ANTHROPIC_API_KEY": ctx.relay_token,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
        "HOME": ctx.home,
        "IS_SANDBOX": "1",
    })
    if set(TODO_REPLACEMENTS) & set(tools):
        # The CLI gates its task-list tools on this for some models; set it whenever the
        # config asks for a task list so every model gets the same tools.
        env["CLAUDE_CODE_ENABLE_TODO_TOOLS"] = "1"
    return ClaudeAgentOptions(
        tools=tools,
        allowed_tools=auto_allowed,
        disallowed_tools=disallowed,
        system_prompt=_system_prompt(config.get("system_prompt")),
        permission_mode=config.get("permission_mode") or "bypassPermissions",
        max_turns=config.get("max_turns"),
        max_budget_usd=config.get("max_budget_usd"),
        model=config.get("model"),
        agents=agents,
        mcp_servers=mcp_servers,
        strict_mcp_config=True,
        setting_sources=list(config.get("setting_sources") or []),
        cwd=ctx.workspace,
        env=env,
        include_partial_messages=True,
        resume=resume,
        stderr=stderr,
        can_use_tool=can_use_tool,
        extra_args=extra_args,
    )


def effective_summary(options: ClaudeAgentOptions) -> dict[str, Any]:
    """What the machine reports in ``/health``: the config as the SDK got it, minus secrets.

    ``tools`` is what the main agent is offered; ``tool_pool`` adds what only sub-agents get.
    """
    agents = dict(options.agents or {})
    main = agents.pop(MAIN_AGENT, None)
    pool = list(options.tools) if isinstance(options.tools, list) else options.tools
    return {
        "tools": [t for t in main.tools or [] if not t.startswith("mcp__")] if main else pool,
        "tool_pool": pool,
        "allowed_tools": options.allowed_tools,
        "disallowed_tools": options.disallowed_tools,
        "permission_mode": options.permission_mode,
        "max_turns": options.max_turns,
        "max_budget_usd": options.max_budget_usd,
        "model": options.model,
        "agents": {name: {"tools": agent.tools, "model": agent.model} for name, agent in sorted(agents.items())},
        "main_agent": MAIN_AGENT if main else None,
        "mcp_servers": sorted(options.mcp_servers.keys()) if isinstance(options.mcp_servers, dict) else [],
        "setting_sources": options.setting_sources,
        "system_prompt": "preset:claude_code" if isinstance(options.system_prompt, dict) else
                         ("custom" if options.system_prompt else "none"),
    }


def _expand_tools(names: list[str]) -> list[str]:
    """Config names → CLI names, order kept, duplicates dropped; mcp__ patterns pass through."""
    tools: list[str] = []
    for name in names:
        tools += TOOL_MAP.get(name, [name])
    return list(dict.fromkeys(tools))


def _system_prompt(value: Any) -> Any:
    if isinstance(value, dict):
        prompt: dict[str, Any] = {"type": "preset", "preset": "claude_code"}
        if value.get("append"):
            prompt["append"] = value["append"]
        return prompt
    return value or None


def _agents(agents: dict[str, Any]) -> dict[str, AgentDefinition] | None:
    if not agents:
        return None
    return {
        name: AgentDefinition(
            description=spec["description"],
            prompt=spec["prompt"],
            tools=_expand_tools(spec["tools"]) if spec.get("tools") else None,
            model=spec.get("model"),
        )
        for name, spec in agents.items()
    }


def _fill(template: str, values: dict[str, Any]) -> str | None:
    """``template`` with each ``${VAR}`` replaced from ``values``; None if one is missing."""
    if not all(var in values for var in _VAR.findall(template)):
        return None
    return _VAR.sub(lambda m: str(values[m.group(1)]), template)


def _mcp_servers(servers: dict[str, Any], mcp_env: dict[str, Any]) -> dict[str, Any]:
    """Fill declared ``env``/``headers`` keys from the launch's secret ``mcp_env``.

    A declared key left without a value is omitted (the server sees it unset), and so is a
    header whose ``${VAR}`` placeholders were not all supplied.
    """
    result: dict[str, Any] = {}
    for name, spec in servers.items():
        given = mcp_env.get(name)
        values: dict[str, Any] = given if isinstance(given, dict) else {}
        kind = spec.get("type", "stdio")
        if kind == "stdio":
            # The CLI starts MCP servers with its own environment, relay token included; a
            # server (someone else's code, when the config is shared) gets it cleared.
            entry: dict[str, Any] = {"type": "stdio", "command": "env",
                                     "args": [*STRIPPED_FROM_MCP, "--", spec["command"], *(spec.get("args") or [])]}
            env = {}
            for key, default in (spec.get("env") or {}).items():
                value = values.get(key, default)
                if value is not None:
                    env[key] = str(value)
            if env:
                entry["env"] = env
        else:
            entry = {"type": kind, "url": spec["url"]}
            headers = {}
            for header, default in (spec.get("headers") or {}).items():
                template = values.get(header, default)
                if template is None:
                    continue
                filled = _fill(str(template), values)
                if filled is not None:
                    headers[header] = filled
            if headers:
                entry["headers"] = headers
        result[name] = entry
    return result
