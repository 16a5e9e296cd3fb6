"""The agent configuration schema: one source of truth for presets, custom configs,
inline launch configs, the builder UI's validation and the OpenAPI document."""

from __future__ import annotations

import re
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, pre_load, validate, validates, validates_schema

from control.settings import parse_size_mb

KNOWN_TOOLS = frozenset({
    "Bash", "BashOutput", "KillShell", "Read", "Write", "Edit", "MultiEdit", "Glob", "Grep", "LS",
    "NotebookEdit", "NotebookRead", "WebFetch", "WebSearch", "Task", "Agent", "TodoWrite", "ExitPlanMode",
    "ListMcpResources", "ReadMcpResource", "TaskCreate", "TaskUpdate", "TaskList", "TaskGet", "Skill",
})
PERMISSION_MODES = ("default", "acceptEdits", "plan", "bypassPermissions", "dontAsk")
SETTING_SOURCES = ("user", "project", "local")
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}[a-z0-9]$")
MCP_TOOL = re.compile(r"^mcp__[A-Za-z0-9_-]+(__[A-Za-z0-9_*-]+)?$")
ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
# Variables a config may never set: they carry the relay, the sandbox or the CLI's identity.
RESERVED_ENV = frozenset({
    "ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL", "CLAUDE_CODE_OAUTH_TOKEN",
    "AGCLUSTER_MACHINE_TOKEN", "HOME", "PATH", "PWD", "USER", "SHELL", "LD_PRELOAD", "LD_LIBRARY_PATH",
    "PYTHONPATH", "IS_SANDBOX", "CLAUDE_CODE_ENTRYPOINT", "CLAUDE_AGENT_SDK_VERSION",
})
MAX_PROMPT = 100_000


class _Strict(Schema):
    class Meta:
        unknown = RAISE


def _check_tool(name: str) -> None:
    if name not in KNOWN_TOOLS and not MCP_TOOL.match(name):
        raise ValidationError(f"unknown tool {name!r}")


class ToolList(fields.List):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(fields.String(validate=_check_tool), validate=validate.Length(max=100), **kwargs)


class SizeField(fields.Field):
    """``"4g"``, ``"512m"`` or a number of bytes; serialised back as given."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> str:
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise ValidationError("must be a size such as 512m or 4g")
        try:
            parse_size_mb(str(value))
        except ValueError:
            raise ValidationError("must be a size such as 512m or 4g") from None
        return str(value)


class EnvMap(fields.Dict):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(keys=fields.String(validate=validate.Regexp(ENV_KEY, error="not a valid variable name")),
                         values=fields.String(allow_none=True, validate=validate.Length(max=8192)), **kwargs)


class SystemPromptPreset(_Strict):
    preset = fields.String(required=True, validate=validate.OneOf(["claude_code"]))
    append = fields.String(validate=validate.Length(max=MAX_PROMPT))


class SystemPromptField(fields.Field):
    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, str):
            if len(value) > MAX_PROMPT:
                raise ValidationError(f"longer than {MAX_PROMPT} characters")
            return value
        if isinstance(value, dict):
            return SystemPromptPreset().load(value)
        raise ValidationError("must be a string or {preset: claude_code, append: ...}")


class McpServerSchema(_Strict):
    type = fields.String(load_default="stdio", validate=validate.OneOf(["stdio", "sse", "http"]))
    command = fields.String(validate=validate.Length(min=1, max=1024))
    args = fields.List(fields.String(validate=validate.Length(max=4096)), validate=validate.Length(max=64))
    env = EnvMap()
    url = fields.Url(schemes={"http", "https"}, require_tld=False)
    headers = fields.Dict(keys=fields.String(validate=validate.Length(min=1, max=256)),
                          values=fields.String(allow_none=True, validate=validate.Length(max=8192)))

    @validates_schema
    def _by_type(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("type", "stdio") == "stdio":
            if not data.get("command"):
                raise ValidationError("required for stdio servers", "command")
            if data.get("url") or data.get("headers"):
                raise ValidationError("stdio servers take command/args/env, not url/headers", "url")
        else:
            if not data.get("url"):
                raise ValidationError("required for sse/http servers", "url")
            if data.get("command"):
                raise ValidationError("sse/http servers take url/headers, not command", "command")
        for key in (data.get("env") or {}):
            if key in RESERVED_ENV:
                raise ValidationError(f"{key} is reserved and cannot be set", "env")


class SubAgentSchema(_Strict):
    description = fields.String(required=True, validate=validate.Length(min=1, max=2000))
    prompt = fields.String(required=True, validate=validate.Length(min=1, max=MAX_PROMPT))
    tools = ToolList()
    model = fields.String(validate=validate.Length(min=1, max=100))


class ResourceLimitsSchema(_Strict):
    cpu_quota = fields.Integer(validate=validate.Range(min=1_000, max=1_600_000))
    memory_limit = SizeField()
    storage_limit = SizeField()

    @validates("memory_limit")
    def _memory(self, value: str, **kwargs: Any) -> None:
        if not 128 <= parse_size_mb(value) <= 65_536:
            raise ValidationError("must be between 128m and 64g")


class AgentConfigSchema(_Strict):
    id = fields.String(required=True, validate=validate.Regexp(SLUG, error="must be a lowercase slug (a-z, 0-9, -; 3-64 chars)"))
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    description = fields.String(load_default="", validate=validate.Length(max=2000))
    version = fields.String(load_default="1.0", validate=validate.Length(max=32))
    system_prompt = SystemPromptField(load_default=None, allow_none=True)
    allowed_tools = ToolList(load_default=list)
    disallowed_tools = ToolList(load_default=list)
    permission_mode = fields.String(load_default="bypassPermissions", validate=validate.OneOf(PERMISSION_MODES))
    max_turns = fields.Integer(load_default=None, allow_none=True, validate=validate.Range(min=1, max=1000))
    max_budget_usd = fields.Float(load_default=None, allow_none=True, validate=validate.Range(min=0, max=10_000))
    model = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=1, max=100))
    image = fields.String(load_default=None, allow_none=True, validate=validate.Regexp(r"^[\w./:@-]{1,256}$"))
    env = EnvMap(load_default=dict)
    mcp_servers = fields.Dict(keys=fields.String(validate=validate.Regexp(r"^[A-Za-z0-9_-]{1,64}$")),
                              values=fields.Nested(McpServerSchema), load_default=dict)
    agents = fields.Dict(keys=fields.String(validate=validate.Regexp(r"^[a-z0-9][a-z0-9_-]{0,63}$")),
                         values=fields.Nested(SubAgentSchema), load_default=dict)
    resource_limits = fields.Nested(ResourceLimitsSchema, load_default=dict)
    setting_sources = fields.List(fields.String(validate=validate.OneOf(SETTING_SOURCES)), load_default=list)

    @pre_load
    def _object(self, data: Any, **kwargs: Any) -> Any:
        if not isinstance(data, dict):
            raise ValidationError("a config must be an object")
        return data

    @validates("env")
    def _env(self, value: dict[str, str], **kwargs: Any) -> None:
        reserved = sorted(set(value) & RESERVED_ENV)
        if reserved:
            raise ValidationError(f"reserved variables cannot be set: {', '.join(reserved)}")

    @validates_schema
    def _mcp_tools_exist(self, data: dict[str, Any], **kwargs: Any) -> None:
        servers = set(data.get("mcp_servers") or {})
        for tool in data.get("allowed_tools") or []:
            if tool.startswith("mcp__") and tool.split("__")[1] not in servers:
                raise ValidationError(f"{tool!r} names an MCP server this config does not define", "allowed_tools")


def declared_mcp_keys(server: dict[str, Any]) -> set[str]:
    """Keys ``mcp_env`` may fill for a server: its env keys, header names and ``${VAR}``s."""
    keys = set(server.get("env") or {}) | set(server.get("headers") or {})
    for value in (server.get("headers") or {}).values():
        keys |= set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", value or ""))
    return keys
