"""A validated agent config → ``ClaudeAgentOptions``. Every field must reach the SDK."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from claude_agent_sdk import AgentDefinition, ClaudeAgentOptions

# The pinned CLI silently drops TodoWrite from ``tools``; with this switch it offers the
# Task* family instead, which ``todos.TodoTracker`` folds back into one list.
TODO_REPLACEMENTS = ["TaskCreate", "TaskUpdate", "TaskList", "TaskGet"]
# The CLI renamed the sub-agent tool; configs keep saying "Task" as the seed did.
SUBAGENT_ALIASES = ["Task", "Agent"]
MCP_AUTO_ALLOWED = ["ListMcpResources", "ReadMcpResource"]
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class MachineContext:
    workspace: str
    home: str
    relay_url: str
    relay_token: str


def build_options(config: dict[str, Any], ctx: MachineContext, *, mcp_env: dict[str, str] | None = None,
                  resume: str | None = None, stderr: Any = None, can_use_tool: Any = None) -> ClaudeAgentOptions:
    allowed = list(config.get("allowed_tools") or [])
    builtin = [t for t in allowed if not t.startswith("mcp__")]
    tools = _expand_tools(builtin)
    mcp_servers = _mcp_servers(config.get("mcp_servers") or {}, mcp_env or {})
    # In "default" mode nothing is pre-approved beyond the CLI's own read-only rules, so
    # every other call reaches can_use_tool and becomes a permission_request for the user.
    asks_user = config.get("permission_mode") == "default"
    auto_allowed = [] if asks_user else list(dict.fromkeys(tools + [t for t in allowed if t.startswith("mcp__")]))
    if mcp_servers:
        tools += MCP_AUTO_ALLOWED
        auto_allowed += MCP_AUTO_ALLOWED + ([] if asks_user else [f"mcp__{name}" for name in mcp_servers])
    env = {k: str(v) for k, v in (config.get("env") or {}).items()}
    env.update({
        "ANTHROPIC_BASE_URL": ctx.relay_url,
        "ANTHROPIC_API_KEY": ctx.relay_token,
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_AUTOUPDATER": "1",
        "HOME": ctx.home,
        "IS_SANDBOX": "1",
    })
    if "TodoWrite" in builtin:
        env["CLAUDE_CODE_ENABLE_TODO_TOOLS"] = "1"
    options = ClaudeAgentOptions(
        tools=tools,
        allowed_tools=auto_allowed,
        disallowed_tools=list(config.get("disallowed_tools") or []),
        system_prompt=_system_prompt(config.get("system_prompt")),
        permission_mode=config.get("permission_mode") or "bypassPermissions",
        max_turns=config.get("max_turns"),
        max_budget_usd=config.get("max_budget_usd"),
        model=config.get("model"),
        agents=_agents(config.get("agents") or {}),
        mcp_servers=mcp_servers,
        strict_mcp_config=True,
        setting_sources=list(config.get("setting_sources") or []),
        cwd=ctx.workspace,
        env=env,
        include_partial_messages=True,
        resume=resume,
        stderr=stderr,
        can_use_tool=can_use_tool,
    )
    return options


def effective_summary(options: ClaudeAgentOptions) -> dict[str, Any]:
    """What the machine reports in ``/health``: the config as the SDK got it, minus secrets."""
    return {
        "tools": options.tools,
        "allowed_tools": options.allowed_tools,
        "disallowed_tools": options.disallowed_tools,
        "permission_mode": options.permission_mode,
        "max_turns": options.max_turns,
        "max_budget_usd": options.max_budget_usd,
        "model": options.model,
        "agents": sorted((options.agents or {}).keys()),
        "mcp_servers": sorted(options.mcp_servers.keys()) if isinstance(options.mcp_servers, dict) else [],
        "setting_sources": options.setting_sources,
        "system_prompt": "preset:claude_code" if isinstance(options.system_prompt, dict) else "custom",
    }


def _expand_tools(builtin: list[str]) -> list[str]:
    tools: list[str] = []
    for name in builtin:
        if name == "TodoWrite":
            tools += TODO_REPLACEMENTS
        elif name in SUBAGENT_ALIASES:
            tools += SUBAGENT_ALIASES
        else:
            tools.append(name)
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


def _mcp_servers(servers: dict[str, Any], mcp_env: dict[str, str]) -> dict[str, Any]:
    """Fill declared ``env``/``headers`` keys from the launch's secret ``mcp_env``."""
    result: dict[str, Any] = {}
    for name, spec in servers.items():
        values = mcp_env.get(name, {}) if isinstance(mcp_env.get(name), dict) else {}
        kind = spec.get("type", "stdio")
        if kind == "stdio":
            env = {k: str(values.get(k, v if v is not None else "")) for k, v in (spec.get("env") or {}).items()}
            entry: dict[str, Any] = {"type": "stdio", "command": spec["command"], "args": list(spec.get("args") or [])}
            if env:
                entry["env"] = env
        else:
            headers = {k: _substitute(str(values.get(k, v if v is not None else "")), values)
                       for k, v in (spec.get("headers") or {}).items()}
            entry = {"type": kind, "url": spec["url"]}
            if headers:
                entry["headers"] = headers
        result[name] = entry
    return result


def _substitute(text: str, values: dict[str, str]) -> str:
    return _VAR.sub(lambda m: str(values.get(m.group(1), "")), text)
