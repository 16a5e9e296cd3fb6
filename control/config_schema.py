"""The agent configuration schema: one source of truth for presets, custom configs,
inline launch configs, the builder UI's validation and the OpenAPI document.

docs/CONFIGS.md is the reference for every field. Validation errors come back as a nested
object that mirrors the config (``{"mcp_servers": {"github": {"url": ["..."]}}}``), so each
message sits at its field's path; see :func:`error_paths`.
"""

from __future__ import annotations

import re
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, pre_load, validate, validates, validates_schema

from control.settings import parse_size_mb

# Tool names the pinned CLI really offers when a config lists them (probed against the
# bundled Claude Code; see docs/CONFIGS.md). Anything it would silently drop is rejected
# here instead, so "allowed" always means "offered to the model".
CLI_TOOLS = frozenset({
    "Agent", "Bash", "Edit", "Glob", "Grep", "Read", "Write", "NotebookEdit", "WebFetch", "WebSearch",
    "TaskCreate", "TaskGet", "TaskList", "TaskUpdate", "TaskStop", "Skill", "ToolSearch", "Monitor",
    "ListMcpResourcesTool", "ReadMcpResourceTool",
})
# Names configs may keep using (the seed's vocabulary); the machine maps them to the CLI's
# names: Task → Agent, TodoWrite → TaskCreate/TaskUpdate/TaskList/TaskGet, and the MCP
# resource tools gain their "Tool" suffix.
TOOL_ALIASES = frozenset({"Task", "TodoWrite", "ListMcpResources", "ReadMcpResource"})
KNOWN_TOOLS = CLI_TOOLS | TOOL_ALIASES
MCP_RESOURCE_TOOLS = frozenset({"ListMcpResources", "ReadMcpResource", "ListMcpResourcesTool", "ReadMcpResourceTool"})
PERMISSION_MODES = ("default", "acceptEdits", "plan", "bypassPermissions", "dontAsk", "auto")
SETTING_SOURCES = ("user", "project", "local")
SLUG = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}[a-z0-9]$")
MCP_SERVER_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MCP_TOOL = re.compile(r"^mcp__(?P<server>[A-Za-z0-9_-]+?)(__[A-Za-z0-9_*-]+)?$")
ENV_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,256}$")
MODEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@/\[\]-]{0,99}$")
IMAGE = re.compile(r"^[\w./:@-]{1,256}$")
PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# Names that carry credentials: they may only be declared (value null) and filled per
# launch through ``mcp_env``, which is never stored.
SECRET_NAME = re.compile(r"(^|[_-])(TOKEN|SECRET|PASSWORD|PASSWD|API[_-]?KEY|PRIVATE[_-]?KEY|ACCESS[_-]?KEY"
                         r"|CREDENTIALS?)([_-]|$)", re.IGNORECASE)
SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "x-api-key"})
# Variables a config (or mcp_env) may never set: they carry the relay, the sandbox or the
# CLI's identity, or they change how shells, interpreters, loaders, TLS or proxies behave
# (a saved config is someone else's code: BASH_ENV alone would run its script in every
# shell of the launcher's machine). Checked case-insensitively, as names and as prefixes.
RESERVED_ENV = frozenset({
    "HOME", "PATH", "PWD", "USER", "LOGNAME", "SHELL", "IS_SANDBOX", "BASH_ENV", "ENV", "SHELLOPTS", "BASHOPTS",
    "PROMPT_COMMAND", "PS4", "IFS", "CDPATH", "GLOBIGNORE", "HISTFILE", "INPUTRC", "TERMINFO",
    "NODE_OPTIONS", "NODE_PATH", "NODE_EXTRA_CA_CERTS", "NODE_TLS_REJECT_UNAUTHORIZED", "NODE_REPL_EXTERNAL_MODULE",
    "PERL5OPT", "PERL5LIB", "PERLLIB", "PERL5DB", "RUBYOPT", "RUBYLIB", "GEM_HOME", "GEM_PATH",
    "JAVA_TOOL_OPTIONS", "_JAVA_OPTIONS", "JDK_JAVA_OPTIONS", "CLASSPATH",
    "GCONV_PATH", "GLIBC_TUNABLES", "HOSTALIASES", "LOCALDOMAIN", "RES_OPTIONS", "NLSPATH", "TZDIR",
    "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "GIT_SSL_CAINFO",
    "EDITOR", "VISUAL", "PAGER", "GIT_EDITOR", "GIT_PAGER", "GIT_SSH", "GIT_SSH_COMMAND", "GIT_ASKPASS",
    "SSH_ASKPASS", "GIT_EXEC_PATH", "GIT_CONFIG", "GIT_CONFIG_GLOBAL", "GIT_CONFIG_SYSTEM", "GIT_CONFIG_PARAMETERS",
    "GIT_CONFIG_COUNT", "TMPDIR", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_RUNTIME_DIR",
})
RESERVED_ENV_PREFIXES = ("LD_", "DYLD_", "PYTHON", "ANTHROPIC_", "CLAUDE_", "AGCLUSTER_", "MALLOC_", "BUN_",
                         "NPM_CONFIG_", "PIP_", "UV_", "GIT_CONFIG_")
RESERVED_ENV_SUFFIXES = ("_PROXY",)


def reserved_env(name: str) -> bool:
    upper = name.upper()
    return (upper in RESERVED_ENV or upper.startswith(RESERVED_ENV_PREFIXES)
            or upper.endswith(RESERVED_ENV_SUFFIXES))


NETWORK_POLICIES = ("relay", "internet")
# The machine's name for the main thread when sub-agents need tools it must not have.
RESERVED_AGENT = "agcluster-main"
MAX_PROMPT = 100_000
MAX_DESCRIPTION = 2_000
MAX_SERVERS = 20
MAX_AGENTS = 20
MAX_ENV = 100
MEMORY_RANGE_MB = (128, 64 * 1024)
STORAGE_RANGE_MB = (512, 1024 * 1024)
CPU_QUOTA_RANGE = (10_000, 1_600_000)  # Docker units: 100000 = one CPU


class _Strict(Schema):
    class Meta:
        unknown = RAISE


def _check_tool(name: str) -> None:
    if name in KNOWN_TOOLS or MCP_TOOL.match(name):
        return
    raise ValidationError(f"unknown tool {name!r}; known tools: {', '.join(sorted(KNOWN_TOOLS))}, "
                          "or mcp__<server>__<tool>")


class ToolList(fields.List[str]):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(fields.String(validate=_check_tool), validate=validate.Length(max=100), **kwargs)


class SizeField(fields.Field[str]):
    """``"4g"``, ``"512m"`` or a number of bytes; kept as given."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> str:
        if isinstance(value, bool) or not isinstance(value, (str, int)):
            raise ValidationError("must be a size such as 512m or 4g")
        try:
            parse_size_mb(str(value))
        except ValueError:
            raise ValidationError("must be a size such as 512m or 4g") from None
        return str(value)


def _in_range_mb(value: str, bounds: tuple[int, int]) -> None:
    low, high = bounds
    if not low <= parse_size_mb(value) <= high:
        raise ValidationError(f"must be between {_human(low)} and {_human(high)}")


def _human(mb: int) -> str:
    return f"{mb // 1024}g" if mb % 1024 == 0 and mb >= 1024 else f"{mb}m"


class EnvMap(fields.Dict):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(keys=fields.String(validate=validate.Regexp(ENV_KEY, error="not a valid variable name")),
                         values=fields.String(allow_none=True, validate=validate.Length(max=8192)),
                         validate=validate.Length(max=MAX_ENV), **kwargs)


class SystemPromptPreset(_Strict):
    type = fields.String(validate=validate.OneOf(["preset"]))
    preset = fields.String(required=True, validate=validate.OneOf(["claude_code"]))
    append = fields.String(validate=validate.Length(max=MAX_PROMPT))


class SystemPromptField(fields.Field[str | dict[str, Any]]):
    """A replacement prompt (string), or Claude Code's own prompt plus an ``append``."""

    def _deserialize(self, value: Any, attr: Any, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, str):
            if len(value) > MAX_PROMPT:
                raise ValidationError(f"longer than {MAX_PROMPT} characters")
            return value
        if isinstance(value, dict):
            loaded = SystemPromptPreset().load(value)
            loaded.pop("type", None)
            return loaded
        raise ValidationError("must be a string or {preset: claude_code, append: ...}")


class McpServerSchema(_Strict):
    type = fields.String(load_default="stdio", validate=validate.OneOf(["stdio", "sse", "http"]))
    command = fields.String(validate=validate.Length(min=1, max=1024))
    args = fields.List(fields.String(validate=validate.Length(max=4096)), validate=validate.Length(max=64))
    env = EnvMap()
    url = fields.Url(schemes={"http", "https"}, require_tld=False)
    headers = fields.Dict(keys=fields.String(validate=validate.Regexp(HEADER_NAME, error="not a valid header name")),
                          values=fields.String(allow_none=True, validate=validate.Length(max=8192)),
                          validate=validate.Length(max=MAX_ENV))

    @validates_schema
    def _by_type(self, data: dict[str, Any], **kwargs: Any) -> None:
        # A list of messages per field, or per key for env and headers.
        errors: dict[str, list[str] | dict[str, list[str]]] = {}
        if data.get("type", "stdio") == "stdio":
            if not data.get("command"):
                errors["command"] = ["required for stdio servers"]
            for name in ("url", "headers"):
                if name in data:
                    errors[name] = ["stdio servers take command/args/env, not url/headers"]
        else:
            if not data.get("url"):
                errors["url"] = ["required for sse/http servers"]
            for name in ("command", "args", "env"):
                if name in data:
                    errors[name] = ["sse/http servers take url/headers, not command/args/env"]
        env_errors: dict[str, list[str]] = {}
        for key, value in (data.get("env") or {}).items():
            if reserved_env(key):
                env_errors[key] = [f"{key} is reserved and cannot be set"]
            elif value and SECRET_NAME.search(key):
                env_errors[key] = ["looks like a credential: declare it with null and supply it at launch in mcp_env"]
        if env_errors:
            errors["env"] = env_errors
        header_errors: dict[str, list[str]] = {}
        for name, value in (data.get("headers") or {}).items():
            secret = name.lower() in SECRET_HEADERS or SECRET_NAME.search(name)
            if secret and value and not PLACEHOLDER.search(value):
                header_errors[name] = ["looks like a credential: use null or a ${VAR} placeholder filled by mcp_env"]
        if header_errors:
            errors["headers"] = header_errors
        if errors:
            raise ValidationError(errors)


class SubAgentSchema(_Strict):
    description = fields.String(required=True, validate=validate.Length(min=1, max=MAX_DESCRIPTION))
    prompt = fields.String(required=True, validate=validate.Length(min=1, max=MAX_PROMPT))
    tools = ToolList()
    model = fields.String(validate=validate.Regexp(MODEL,
                                                   error="not a model name (sonnet, opus, haiku, inherit or an id)"))


class ResourceLimitsSchema(_Strict):
    cpu_quota = fields.Integer(strict=True, validate=validate.Range(*CPU_QUOTA_RANGE))
    memory_limit = SizeField()
    storage_limit = SizeField()

    @validates("memory_limit")
    def _memory(self, value: str, **kwargs: Any) -> None:
        _in_range_mb(value, MEMORY_RANGE_MB)

    @validates("storage_limit")
    def _storage(self, value: str, **kwargs: Any) -> None:
        _in_range_mb(value, STORAGE_RANGE_MB)


class AgentConfigSchema(_Strict):
    id = fields.String(required=True,
                       validate=validate.Regexp(SLUG, error="must be a lowercase slug (a-z, 0-9, -; 3-64 chars)"))
    name = fields.String(required=True, validate=validate.Length(min=1, max=200))
    description = fields.String(load_default="", validate=validate.Length(max=MAX_DESCRIPTION))
    version = fields.String(load_default="1.0", validate=validate.Length(min=1, max=32))
    system_prompt = SystemPromptField(load_default=None, allow_none=True)
    allowed_tools = ToolList(load_default=list)
    disallowed_tools = ToolList(load_default=list)
    permission_mode = fields.String(load_default="bypassPermissions", validate=validate.OneOf(PERMISSION_MODES))
    max_turns = fields.Integer(strict=True, load_default=None, allow_none=True,
                               validate=validate.Range(min=1, max=1000))
    max_budget_usd = fields.Float(load_default=None, allow_none=True,
                                  validate=validate.Range(min=0, max=10_000, min_inclusive=False))
    model = fields.String(load_default=None, allow_none=True,
                          validate=validate.Regexp(MODEL, error="not a model name (an alias such as sonnet, or an id)"))
    image = fields.String(load_default=None, allow_none=True,
                          validate=validate.Regexp(IMAGE, error="not an image reference"))
    env = EnvMap(load_default=dict)
    mcp_servers = fields.Dict(keys=fields.String(validate=validate.Regexp(MCP_SERVER_NAME,
                                                                          error="letters, digits, _ and - only")),
                              values=fields.Nested(McpServerSchema), load_default=dict,
                              validate=validate.Length(max=MAX_SERVERS))
    agents = fields.Dict(keys=fields.String(validate=validate.Regexp(r"^[a-z0-9][a-z0-9_-]{0,63}$",
                                                                      error="lowercase letters, digits, _ and - only")),
                         values=fields.Nested(SubAgentSchema), load_default=dict,
                         validate=validate.Length(max=MAX_AGENTS))
    resource_limits = fields.Nested(ResourceLimitsSchema, load_default=dict)
    setting_sources = fields.List(fields.String(validate=validate.OneOf(SETTING_SOURCES)), load_default=list,
                                  validate=validate.Length(max=len(SETTING_SOURCES)))
    network = fields.String(load_default="relay", validate=validate.OneOf(NETWORK_POLICIES))

    @pre_load
    def _object(self, data: Any, **kwargs: Any) -> Any:
        if not isinstance(data, dict):
            raise ValidationError("a config must be an object")
        return data

    @validates("env")
    def _env(self, value: dict[str, str], **kwargs: Any) -> None:
        errors: dict[str, list[str]] = {}
        for key in value:
            if reserved_env(key):
                errors[key] = [f"{key} is reserved and cannot be set"]
            elif SECRET_NAME.search(key):
                errors[key] = ["env is for non-secret settings; credentials go to an MCP server's env via mcp_env"]
        if errors:
            raise ValidationError(errors)

    @validates("agents")
    def _agent_names(self, value: dict[str, Any], **kwargs: Any) -> None:
        if RESERVED_AGENT in value:
            raise ValidationError({RESERVED_AGENT: ["reserved for the session's main agent"]})

    @validates("setting_sources")
    def _unique_sources(self, value: list[str], **kwargs: Any) -> None:
        if len(set(value)) != len(value):
            raise ValidationError("each source at most once")

    @validates_schema
    def _cross_field(self, data: dict[str, Any], **kwargs: Any) -> None:
        servers = set(data.get("mcp_servers") or {})
        errors: dict[str, Any] = {}
        for field_name in ("allowed_tools", "disallowed_tools"):
            for index, tool in enumerate(data.get(field_name) or []):
                match = MCP_TOOL.match(tool)
                if match and _server_of(tool) not in servers:
                    problem = f"{tool!r} names an MCP server this config does not define"
                elif field_name == "allowed_tools" and tool in MCP_RESOURCE_TOOLS and not servers:
                    problem = f"{tool} needs mcp_servers (it is added automatically when there are any)"
                else:
                    continue
                errors.setdefault(field_name, {})[index] = [problem]
        if errors:
            raise ValidationError(errors)


def _server_of(tool: str) -> str:
    return tool[len("mcp__"):].split("__", 1)[0]


def declared_mcp_keys(server: dict[str, Any]) -> set[str]:
    """Keys ``mcp_env`` may fill for a server: its env keys, header names and ``${VAR}``s."""
    keys = set(server.get("env") or {}) | set(server.get("headers") or {})
    for value in (server.get("headers") or {}).values():
        keys |= set(PLACEHOLDER.findall(value or ""))
    return keys


def error_paths(messages: Any, schema: Schema | None = None) -> Any:
    """marshmallow's messages, with the ``key``/``value`` wrappers of dict fields removed.

    ``{"mcp_servers": {"gh": {"value": {"url": [..]}}}}`` becomes
    ``{"mcp_servers": {"gh": {"url": [..]}}}``; an invalid key's messages sit at the key.
    """
    schema = schema or AgentConfigSchema()
    if not isinstance(messages, dict):
        return messages
    out: dict[str, Any] = {}
    for name, value in messages.items():
        out[str(name)] = _clean_field(schema.fields.get(name) if isinstance(name, str) else None, value)
    return out


def _clean_field(field: fields.Field[Any] | None, value: Any) -> Any:
    if isinstance(field, fields.Nested) and isinstance(value, dict):
        return error_paths(value, field.schema)
    if isinstance(field, fields.Dict) and isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, entry in value.items():
            if not isinstance(entry, dict) or not set(entry) <= {"key", "value"}:
                out[str(key)] = entry
                continue
            merged: Any = list(entry.get("key") or [])
            if "value" in entry:
                cleaned = _clean_field(field.value_field, entry["value"])
                if merged:
                    merged = {"_key": merged, **(cleaned if isinstance(cleaned, dict) else {"_value": cleaned})}
                else:
                    merged = cleaned
            out[str(key)] = merged
        return out
    if isinstance(field, fields.List) and isinstance(value, dict):
        return {str(index): _clean_field(field.inner, item) for index, item in value.items()}
    if isinstance(value, dict):
        return {str(k): v for k, v in value.items()}
    return value
