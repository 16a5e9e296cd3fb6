"""``/openapi.json``: built by apispec from the marshmallow schemas and the live URL map.

Request bodies come from the same marshmallow schemas the routes validate with, so the
document cannot drift from validation. Paths come from walking ``app.url_map``, so a route
nobody described still appears (with its path parameters, auth and the shared error
shape) instead of silently missing; ``OPERATIONS`` below adds what a walk cannot know:
summaries, query parameters, request and response bodies, media types. A route added
later can be described next to its code with :func:`describe`, or here in ``OPERATIONS``.

Auth is described for the mode the server runs in, since the header mapping differs:
``AUTH_MODE=none`` opens a session with its launch key as Bearer; ``AUTH_MODE=token``
needs an AgCluster token as Bearer and carries the Anthropic key in ``X-Anthropic-Api-Key``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from http import HTTPStatus
from dataclasses import dataclass, field
from typing import Any, TypeVar

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Flask, current_app
from marshmallow import INCLUDE, Schema, fields, validate
from werkzeug.routing import Rule

from control.blueprints.live import PermissionAnswerSchema
from control.config_schema import AgentConfigSchema, SizeField, SystemPromptField, SystemPromptPreset
from control.schemas import ChatSchema, LaunchSchema
from control.session_status import SessionStatus
from wire.events import EVENT_TYPES

VERSION = "0.1.0"
SKIPPED_METHODS = frozenset({"HEAD", "OPTIONS"})
# Mirrors control.auth: these stay open in AUTH_MODE=token (the relay has its own token).
PUBLIC_PREFIXES = ("/health", "/openapi.json", "/ui/", "/relay/", "/docs")


# Response shapes (documentation only). Open to additions: clients must ignore unknown
# fields, and a new field must not make the server "break its schema".
class _Open(Schema):
    class Meta:
        unknown = INCLUDE


class ErrorDetailSchema(_Open):
    code = fields.String(required=True, metadata={"description": "stable machine-readable code, e.g. validation_error"})
    message = fields.String(required=True, metadata={"description": "for humans; never contains secrets"})
    details = fields.Dict(required=True, metadata={"description": "e.g. field errors for a 400"})


class ErrorSchema(_Open):
    error = fields.Nested(ErrorDetailSchema, required=True)


class AnthropicErrorDetailSchema(_Open):
    type = fields.String(required=True)
    message = fields.String(required=True)


class AnthropicErrorSchema(_Open):
    type = fields.String(required=True, validate=validate.OneOf(["error"]))
    error = fields.Nested(AnthropicErrorDetailSchema, required=True)


class WarmPoolSchema(_Open):
    size = fields.Integer(required=True)
    ready = fields.Integer(required=True)


class HealthSchema(_Open):
    status = fields.String(required=True, validate=validate.OneOf(["healthy"]))
    provider = fields.String(required=True)
    auth_mode = fields.String(required=True, validate=validate.OneOf(["none", "token"]))
    version = fields.String(required=True)
    warm_pool = fields.Nested(WarmPoolSchema)


class ConfigSummarySchema(_Open):
    id = fields.String(required=True)
    name = fields.String(required=True)
    description = fields.String(required=True)
    allowed_tools = fields.List(fields.String(), required=True)
    has_mcp_servers = fields.Boolean(required=True)
    has_sub_agents = fields.Boolean(required=True)
    preset = fields.Boolean()


class ConfigListSchema(_Open):
    configs = fields.List(fields.Nested(ConfigSummarySchema), required=True)
    total = fields.Integer(required=True)


class ConfigValidationSchema(_Open):
    valid = fields.Boolean(required=True)
    config = fields.Nested(AgentConfigSchema, required=True)
    shadows_preset = fields.Boolean()


class ConfigDeletedSchema(_Open):
    deleted = fields.String(required=True)


class LaunchResultSchema(_Open):
    session_id = fields.String(required=True)
    agent_id = fields.String(required=True)
    config_id = fields.String(required=True)
    status = fields.String(required=True)


class UsageSchema(_Open):
    input_tokens = fields.Integer(required=True)
    output_tokens = fields.Integer(required=True)
    cache_read_tokens = fields.Integer(required=True)
    cache_write_tokens = fields.Integer(required=True)
    cost_usd = fields.Float(required=True)


class SessionSchema(_Open):
    session_id = fields.String(required=True)
    agent_id = fields.String(required=True)
    config_id = fields.String(required=True)
    config_name = fields.String(allow_none=True)
    provider = fields.String(required=True)
    machine_id = fields.String(allow_none=True)
    status = fields.String(required=True, validate=validate.OneOf([str(s) for s in SessionStatus]),
                           metadata={"description": "where the session's machine is (running: up, busy or idle)"})
    busy = fields.Boolean(required=True, metadata={"description": "a turn is in progress"})
    status_detail = fields.String()
    created_at = fields.Float(required=True)
    last_active_at = fields.Float(required=True)
    turns = fields.Integer()
    usage = fields.Nested(UsageSchema, required=True)
    resources = fields.Dict(allow_none=True)


class SessionDetailSchema(SessionSchema):
    config = fields.Dict(required=True, metadata={"description": "the config the session was launched with"})
    effective_config = fields.Dict(allow_none=True)


class SessionListSchema(_Open):
    sessions = fields.List(fields.Nested(SessionSchema), required=True)
    total = fields.Integer(required=True)


class SessionDeletedSchema(_Open):
    session_id = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(["deleted"]))


class SessionStoppedSchema(_Open):
    session_id = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(["stopped"]))


class EventSchema(_Open):
    """One event (DESIGN.md §5); type-specific fields sit beside these."""

    type = fields.String(required=True, validate=validate.OneOf(sorted(EVENT_TYPES)))
    seq = fields.Integer(required=True)
    ts = fields.Float(required=True)
    session_id = fields.String(required=True)


class EventPageSchema(_Open):
    session_id = fields.String(required=True)
    events = fields.List(fields.Nested(EventSchema), required=True)
    last_seq = fields.Integer(required=True)


class ChatAnswerSchema(_Open):
    session_id = fields.String(required=True)
    text = fields.String(required=True, metadata={"description": "the main agent's text, concatenated"})
    result = fields.Nested(EventSchema, allow_none=True, required=True)
    errors = fields.List(fields.Nested(EventSchema), required=True)
    events = fields.List(fields.Nested(EventSchema), required=True)


class InterruptedSchema(_Open):
    session_id = fields.String(required=True)
    interrupted = fields.Boolean(required=True)


class PermissionAnsweredSchema(_Open):
    request_id = fields.String(required=True)
    decision = fields.String(required=True)


class FileEntrySchema(_Open):
    name = fields.String(required=True)
    path = fields.String(required=True)
    type = fields.String(required=True)
    size = fields.Integer(allow_none=True)
    children = fields.List(fields.Dict(), metadata={"description": "entries of a directory, same shape"})


class FileTreeSchema(_Open):
    root = fields.String(required=True)
    tree = fields.List(fields.Nested(FileEntrySchema), required=True)


class FilePreviewSchema(_Open):
    path = fields.String(required=True)
    content = fields.String(required=True, allow_none=True)
    language = fields.String(allow_none=True)
    size = fields.Integer(required=True)
    binary = fields.Boolean()
    truncated = fields.Boolean()


class UploadedFileSchema(_Open):
    filename = fields.String(required=True)
    path = fields.String(required=True)
    size = fields.Integer(required=True)


class UploadedSchema(_Open):
    uploaded = fields.List(fields.Nested(UploadedFileSchema), required=True)


class MkdirSchema(Schema):
    class Meta:
        unknown = INCLUDE

    path = fields.String(required=True, metadata={"description": "workspace-relative directory to create"})


class RenameSchema(Schema):
    class Meta:
        unknown = INCLUDE

    source = fields.String(required=True, data_key="from")
    target = fields.String(required=True, data_key="to")


class UploadFormSchema(Schema):
    files = fields.List(fields.Raw(metadata={"type": "string", "format": "binary"}), required=True,
                        metadata={"description": "one part per file; several allowed"})


# Operations -------------------------------------------------------------------------
SchemaRef = type[Schema] | Schema | str | dict[str, Any]


@dataclass(frozen=True)
class Op:
    """What the URL map cannot tell about one endpoint."""

    summary: str
    description: str = ""
    body: SchemaRef | None = None
    body_media: str = "application/json"
    body_required: bool = True
    status: int = 200
    response: SchemaRef | None = None
    media: tuple[str, ...] = ("application/json",)
    response_description: str = "OK"
    extra_responses: dict[int, dict[str, Any]] = field(default_factory=dict)
    query: tuple[dict[str, Any], ...] = ()
    headers: tuple[dict[str, Any], ...] = ()
    path_params: dict[str, str] = field(default_factory=dict)
    auth: str = "api"  # public | api | session | owner | launch | admin | relay | machine | socket
    errors: tuple[int, ...] = (400,)
    tags: tuple[str, ...] = ()


def _q(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


FLAG = {"type": "string", "enum": ["1", "0", "true", "false", "yes", "no", "on", "off"]}
LAST_EVENT_ID = {"name": "Last-Event-ID", "in": "header", "required": False,
                 "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"},
                 "description": "resume after this event seq (SSE reconnect); the message is not resent"}
SESSION_ERRORS = (400, 401, 403, 404)
MACHINE_ERRORS = (*SESSION_ERRORS, 409, 502, 503)
SSE = "text/event-stream"

OPERATIONS: dict[str, Op] = {
    "health.health": Op("Liveness, provider, auth mode and warm pool", response=HealthSchema, auth="public", errors=()),
    "health.openapi": Op("This document", response={"type": "object"}, auth="public", errors=()),
    "metrics": Op("Prometheus metrics (text exposition)", media=("text/plain",), errors=(),
                  response={"type": "string"}),
    "docs.docs": Op("Human-readable API docs rendered from this document", media=("text/html",),
                    response={"type": "string"}, auth="public", errors=()),
    "configs.list_configs": Op("List presets and custom configs", response=ConfigListSchema, errors=()),
    "configs.get_config": Op("A full config", response=AgentConfigSchema, errors=(404,),
                             path_params={"config_id": "a preset or custom config id (lowercase slug)"}),
    "configs.validate_config": Op("Validate and normalise a config (defaults filled in) without saving",
                                  body=AgentConfigSchema, response=ConfigValidationSchema, errors=(400, 413)),
    "configs.save_config": Op("Save a custom config (201 new, 200 replaced by its owner)", body=AgentConfigSchema,
                              status=201, response=AgentConfigSchema, auth="owner",
                              extra_responses={200: {"description": "Replaced", "schema": AgentConfigSchema}},
                              errors=(400, 401, 403, 409, 413)),
    "configs.delete_config": Op("Delete a custom config (owner or admin)", response=ConfigDeletedSchema,
                                auth="owner", errors=(400, 401, 403, 404, 409)),
    "agents.launch": Op("Launch an agent in its own machine", body=LaunchSchema, status=201,
                        response=LaunchResultSchema, auth="launch", errors=(400, 401, 404, 413, 429, 502, 503),
                        description="Give exactly one of config_id or config. In AUTH_MODE=token the Anthropic key "
                                    "may come as X-Anthropic-Api-Key instead of api_key."),
    "agents.list_sessions": Op("List sessions (members see their own)", response=SessionListSchema, errors=()),
    "agents.get_session": Op("Session details, usage and resources", response=SessionDetailSchema, auth="session",
                             errors=SESSION_ERRORS),
    "agents.delete_session": Op("Stop and remove a session and its machine", response=SessionDeletedSchema,
                                auth="session", errors=(*SESSION_ERRORS, 503)),
    "agents.stop_session": Op("Stop the session's machine, keeping workspace, transcript and conversation; "
                              "the next chat wakes it", response=SessionStoppedSchema, auth="session",
                              errors=(*SESSION_ERRORS, 503)),
    "agents.chat": Op("Send a message; the answer streams as SSE with Accept: text/event-stream, else one JSON",
                      body=ChatSchema, body_required=False, response=ChatAnswerSchema, media=("application/json", SSE),
                      headers=(LAST_EVENT_ID,), auth="session", errors=(*MACHINE_ERRORS, 413, 429),
                      description="SSE frames are `id: <seq>`, `event: <type>`, `data: <json event>`; a turn ends "
                                  "with `done`. With Last-Event-ID the running turn is followed and no body is read. "
                                  "A second chat while a turn runs is a 409."),
    "agents.interrupt": Op("Stop the running turn", response=InterruptedSchema, auth="session", errors=MACHINE_ERRORS),
    "agents.events": Op("The transcript after ?after=SEQ (JSON), or replayed then live as SSE",
                        response=EventPageSchema, media=("application/json", SSE), headers=(LAST_EVENT_ID,),
                        query=(_q("after", {"type": "integer", "minimum": 0}, "events with seq greater than this"),
                               _q("limit", {"type": "integer", "minimum": 0}, "at most this many events (JSON)"),
                               _q("follow", {"type": "string", "enum": ["1"]},
                                  "SSE only: keep following after the turn's done")),
                        auth="session", errors=SESSION_ERRORS),
    "agents.export": Op("The transcript as a JSON or Markdown download", response={"type": "object"},
                        media=("application/json", "text/markdown"),
                        query=(_q("format", {"type": "string", "enum": ["json", "markdown"]}, "default json"),),
                        auth="session", errors=SESSION_ERRORS),
    "live.answer_permission": Op("Answer an agent's permission request", body=PermissionAnswerSchema,
                                 response=PermissionAnsweredSchema, auth="session", errors=(*MACHINE_ERRORS, 413),
                                 path_params={"request_id": "from the permission_request event"}),
    "live.channel": Op("WebSocket live channel (events out; send, interrupt, permission answers in)",
                       status=101, media=(), response_description="Switching Protocols", auth="socket",
                       errors=(400,),
                       description="A GET with the WebSocket upgrade headers. The first client message "
                                   "authenticates: {\"api_key\": \"...\", \"after\": SEQ} (browsers cannot set headers "
                                   "on a WebSocket); then {type: send|interrupt|permission, ...}."),
    "files.tree": Op("The workspace tree", response=FileTreeSchema, auth="session", errors=MACHINE_ERRORS,
                     query=(_q("path", {"type": "string"}, "a sub-directory to list"),
                            _q("depth", {"type": "integer", "minimum": 1, "maximum": 64}, "levels to descend"))),
    "files.read": Op("A text preview as JSON; images and ?raw=1 as bytes; ?download=1 as an attachment",
                     response=FilePreviewSchema, media=("application/json", "*/*"), auth="session",
                     errors=(*MACHINE_ERRORS, 413),
                     query=(_q("raw", FLAG, "send the bytes"), _q("download", FLAG, "send as an attachment")),
                     path_params={"path": "workspace-relative file path (may contain /)"}),
    "files.delete": Op("Delete a file or folder", response={"type": "object"}, auth="session", errors=MACHINE_ERRORS,
                       path_params={"path": "workspace-relative path (may contain /)"}),
    "files.download_zip": Op("The whole workspace as a streamed ZIP", media=("application/zip",),
                             response={"type": "string", "format": "binary"}, auth="session", errors=MACHINE_ERRORS),
    "files.upload": Op("Upload files (multipart field 'files', several allowed); streamed to the machine",
                       body=UploadFormSchema, body_media="multipart/form-data", response=UploadedSchema,
                       auth="session", errors=(*MACHINE_ERRORS, 413),
                       query=(_q("target_path", {"type": "string"}, "workspace folder to upload into"),
                              _q("overwrite", FLAG, "replace existing files"))),
    "files.mkdir": Op("Create a folder", body=MkdirSchema, response={"type": "object"}, auth="session",
                      errors=(*MACHINE_ERRORS, 413)),
    "files.rename": Op("Rename or move a file or folder", body=RenameSchema, response={"type": "object"},
                       auth="session", errors=(*MACHINE_ERRORS, 413)),
    "relay.relay": Op("Model relay for machines (Anthropic Messages API shape)", auth="relay",
                      body={"type": "object"}, body_required=False, response={"type": "object"},
                      media=("application/json", SSE), errors=(),
                      description="Machines only: authenticated by the per-session relay token as x-api-key. "
                                  "Errors use Anthropic's shape, since the agent's SDK reads them.",
                      path_params={"path": "the upstream API path, e.g. v1/messages"}),
    "session_store.append": Op("Machines only: append to the session's CLI transcript mirror",
                               body={"type": "object"}, response={"type": "object"}, auth="machine",
                               errors=(400, 401)),
    "session_store.load": Op("Machines only: load the session's CLI transcript mirror", body={"type": "object"},
                             response={"type": "object"}, auth="machine", errors=(400, 401)),
    "session_store.subkeys": Op("Machines only: list the mirror's sub-transcripts", body={"type": "object"},
                                response={"type": "object"}, auth="machine", errors=(400, 401)),
    "account.me": Op("Who am I (token mode) or auth_mode none", response={"type": "object"}, errors=()),
    "account.usage": Op("Token and cost usage, grouped", response={"type": "object"},
                        query=(_q("group_by", {"type": "string", "enum": ["user", "session", "day"]},
                                  "default session"),)),
    "account.audit": Op("The audit log (admins)", response={"type": "object"}, auth="admin",
                        query=(_q("limit", {"type": "integer", "minimum": 1, "maximum": 5000}, "default 200"),
                               _q("actor", {"type": "string"}, "a user id"),
                               _q("action", {"type": "string"}, "e.g. session.launch"))),
    "ui.index": Op("The dashboard", media=("text/html",), response={"type": "string"}, auth="public", errors=()),
    "ui.meta": Op("What the dashboard needs up front: schema choices and limits", response={"type": "object"},
                  auth="public", errors=()),
    "ui.assets": Op("Dashboard assets (HTML, CSS, ES modules)", media=("*/*",), response={"type": "string"},
                    auth="public", errors=(404,), path_params={"path": "asset path under static_ui/"}),
}

_V = TypeVar("_V", bound=Callable[..., Any])


def describe(**kwargs: Any) -> Callable[[_V], _V]:
    """Describe a view next to its code: ``@describe(summary="...", response=MySchema)``."""

    def mark(view: _V) -> _V:
        view._openapi = Op(**kwargs)  # type: ignore[attr-defined]
        return view

    return mark


# Building -------------------------------------------------------------------------------
_ARG = re.compile(r"<(?:(?P<converter>[a-zA-Z_][a-zA-Z0-9_]*)(?:\([^)]*\))?:)?(?P<name>[a-zA-Z_][a-zA-Z0-9_]*)>")
_CONVERTER_TYPES = {"int": {"type": "integer"}, "float": {"type": "number"}, "uuid": {"type": "string", "format": "uuid"}}


def _custom_fields(self: Any, field_: fields.Field, ret: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """apispec attribute function for the config schema's own field types, and for
    ``Length`` on a ``Dict`` (apispec writes maxLength, which JSON Schema ignores on objects)."""
    if isinstance(field_, fields.Dict):
        bounds = {"minLength": "minProperties", "maxLength": "maxProperties"}
        return {bounds[k]: ret.pop(k) for k in list(ret) if k in bounds}
    if isinstance(field_, SizeField):
        return {"oneOf": [{"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?[kKmMgGtT]?$"},
                          {"type": "integer", "minimum": 1}],
                "description": "a size such as 512m or 4g, or a number of bytes"}
    if isinstance(field_, SystemPromptField):
        return {"oneOf": [{"type": "string", "maxLength": 100_000},
                          {"$ref": "#/components/schemas/SystemPromptPreset"}],
                "description": "a whole system prompt, or the Claude Code preset with text appended"}
    return {}


def _auth_schemes(mode: str) -> dict[str, dict[str, Any]]:
    schemes: dict[str, dict[str, Any]] = {
        "relayToken": {"type": "apiKey", "in": "header", "name": "x-api-key",
                       "description": "machines only: the per-session relay token"},
        "relayBearer": {"type": "http", "scheme": "bearer",
                        "description": "machines only: the per-session relay token as Bearer"},
    }
    if mode == "token":
        schemes["agclusterToken"] = {"type": "http", "scheme": "bearer", "bearerFormat": "agc_...",
                                     "description": "an AgCluster API token (agcluster tokens create USER)"}
        schemes["anthropicKey"] = {"type": "apiKey", "in": "header", "name": "X-Anthropic-Api-Key",
                                   "description": "the user's Anthropic key; refreshes the session's key in memory"}
    else:
        schemes["launchKey"] = {"type": "http", "scheme": "bearer",
                                "description": "the api_key the session was launched with (stored only as a hash)"}
        schemes["ownerSecret"] = {"type": "http", "scheme": "bearer",
                                  "description": "any secret of 8+ characters; the one a config was saved with "
                                                 "is the one that can replace or delete it"}
    return schemes


def _security(auth: str, mode: str, path: str) -> list[dict[str, list[str]]]:
    if auth in ("public", "socket") or (auth == "api" and path.startswith(PUBLIC_PREFIXES)):
        return []
    if auth == "relay":
        return [{"relayToken": []}]
    if auth == "machine":
        return [{"relayBearer": []}]
    if mode == "token":
        if auth in ("session", "launch"):
            return [{"agclusterToken": [], "anthropicKey": []}, {"agclusterToken": []}]
        return [{"agclusterToken": []}]
    return {"session": [{"launchKey": []}], "owner": [{"ownerSecret": []}]}.get(auth, [])


def _path_of(rule: Rule) -> tuple[str, list[dict[str, Any]]]:
    params: list[dict[str, Any]] = []

    def sub(match: re.Match[str]) -> str:
        converter, name = match.group("converter") or "default", match.group("name")
        schema = dict(_CONVERTER_TYPES.get(converter, {"type": "string"}))
        if converter == "default":  # werkzeug's default converter: one non-empty segment
            schema["pattern"] = "^[^/]+$"
        params.append({"name": name, "in": "path", "required": True, "schema": schema})
        return "{" + name + "}"

    return _ARG.sub(sub, rule.rule), params


def _op_for(app: Flask, rule: Rule) -> Op:
    view = app.view_functions.get(rule.endpoint)
    described = getattr(view, "_openapi", None)
    if isinstance(described, Op):
        return described
    if rule.endpoint in OPERATIONS:
        return OPERATIONS[rule.endpoint]
    doc = (getattr(view, "__doc__", None) or "").strip().splitlines()
    return Op(summary=doc[0] if doc else rule.endpoint.replace(".", ": ").replace("_", " "),
              response={"type": "object"}, errors=(400, 401, 403, 404),
              auth="machine" if rule.rule.startswith("/relay/") else "api")


def _operation(op: Op, method: str, path: str, mode: str, endpoint: str) -> dict[str, Any]:
    tag = endpoint.split(".")[0]
    out: dict[str, Any] = {"summary": op.summary, "tags": list(op.tags or (tag,)),
                           "operationId": f"{method}_{endpoint.replace('.', '_')}"}
    if op.description:
        out["description"] = op.description
    parameters = [*op.query, *op.headers]
    if parameters:
        out["parameters"] = parameters
    if op.body is not None and method in ("post", "put", "patch"):
        out["requestBody"] = {"required": op.body_required, "content": {op.body_media: {"schema": op.body}}}
    responses: dict[str, Any] = {}
    described = op.response_description
    success: dict[str, Any] = {"description": HTTPStatus(op.status).phrase if described == "OK" else described}
    if op.media:
        success["content"] = {media: {"schema": _media_schema(op, media)} for media in op.media}
    responses[str(op.status)] = success
    for status, extra in op.extra_responses.items():
        responses[str(status)] = {"description": extra["description"],
                                  "content": {"application/json": {"schema": extra["schema"]}}}
    error_ref = "AnthropicError" if op.auth == "relay" else "Error"
    security = _security(op.auth, mode, path)
    if op.auth == "relay":
        responses["401"] = {"$ref": "#/components/responses/AnthropicError"}
    else:
        documented = set(op.errors) | ({401} if security else set())
        for status in sorted(documented):
            responses.setdefault(str(status), {"$ref": "#/components/responses/Error"})
    # Anything else (e.g. 413 for an oversized body, 429, a 503 from a provider) is still
    # the shared error shape: ``default`` says so, and the fuzz test holds us to it.
    responses["default"] = {"$ref": f"#/components/responses/{error_ref}"}
    out["responses"] = responses
    out["security"] = security
    return out


def _media_schema(op: Op, media: str) -> SchemaRef:
    """The body schema for one media type; for SSE, the schema of each event frame."""
    if media == "application/json":
        return op.response or {"type": "object"}
    if media == SSE:
        return "SseEvent" if op.auth != "relay" else {
            "type": "object", "properties": {"event": {"type": "string"}, "data": {"type": "string"}}}
    return {"type": "string", "format": "binary"} if media in ("*/*", "application/zip") else {"type": "string"}


def _description(mode: str) -> str:
    return (
        "Self-hosted Claude Agent SDK agents, one isolated machine per session.\n\n"
        "**Auth header mapping.** `AUTH_MODE=none` (this server: " + ("no" if mode == "token" else "yes") + "): "
        "launch with `api_key` in the body; every session route then needs that key as "
        "`Authorization: Bearer <api_key>`. `AUTH_MODE=token` (this server: " + ("yes" if mode == "token" else "no")
        + "): every API route needs `Authorization: Bearer <AgCluster token>` and the Anthropic key travels as "
        "`X-Anthropic-Api-Key` (at launch, and on chats to refresh it).\n\n"
        "**Errors** are always JSON `{\"error\": {\"code\", \"message\", \"details\"}}` with the status "
        "(400 validation, 401/403 auth, 404, 409 conflict, 413 too large, 429 rate limited with Retry-After, "
        "502/503 upstream); the model relay alone answers in Anthropic's error shape."
    )


def build(app: Flask) -> dict[str, Any]:
    """The whole document for this app (its routes, its auth mode)."""
    ext = app.extensions.get("agcluster")
    mode = getattr(getattr(ext, "settings", None), "auth_mode", "none")
    plugin = MarshmallowPlugin(schema_name_resolver=_schema_name)
    spec = APISpec(title="AgCluster API", version=VERSION, openapi_version="3.0.3", plugins=[plugin],
                   info={"description": _description(mode)})
    plugin.converter.add_attribute_function(_custom_fields)  # type: ignore[union-attr]
    for name, schema in (("SystemPromptPreset", SystemPromptPreset), ("AgentConfig", AgentConfigSchema),
                         ("Launch", LaunchSchema), ("Chat", ChatSchema), ("PermissionAnswer", PermissionAnswerSchema),
                         ("Error", ErrorSchema), ("AnthropicError", AnthropicErrorSchema)):
        spec.components.schema(name, schema=schema)
    _exactly_one_config(spec)
    spec.components.schema("SseEvent", {
        "type": "object", "required": ["event", "data"],
        "description": "One SSE frame: `id: <seq>`, `event: <type>`, `data: <the event as JSON>` (DESIGN.md §5); "
                       "comment lines are keep-alives.",
        "properties": {"id": {"type": "string", "pattern": "^[0-9]+$"},
                       "event": {"type": "string", "enum": sorted(EVENT_TYPES)},
                       "data": {"type": "string", "description": "an Event object as JSON"}}})
    spec.components.response("Error", {"description": "The shared error shape",
                                       "content": {"application/json": {"schema": "Error"}}})
    spec.components.response("AnthropicError", {"description": "Anthropic's error shape (model relay)",
                                                "content": {"application/json": {"schema": "AnthropicError"}}})
    for scheme, definition in _auth_schemes(mode).items():
        spec.components.security_scheme(scheme, definition)

    paths: dict[str, tuple[list[dict[str, Any]], dict[str, Any]]] = {}
    for rule in sorted(app.url_map.iter_rules(), key=_reading_order):
        if rule.endpoint == "static":
            continue
        path, params = _path_of(rule)
        op = _op_for(app, rule)
        for param in params:
            if param["name"] in op.path_params:
                param["description"] = op.path_params[param["name"]]
        _, operations = paths.setdefault(path, (params, {}))
        for method in sorted((rule.methods or set()) - SKIPPED_METHODS):
            operations[method.lower()] = _operation(op, method.lower(), path, mode, rule.endpoint)
    for path, (params, operations) in paths.items():
        spec.path(path=path, parameters=params, operations=operations)
    return spec.to_dict()


# The order a reader wants: the session lifecycle first, plumbing last.
TAG_ORDER = ("agents", "live", "files", "configs", "account", "health", "metrics", "docs", "ui", "relay",
             "session_store")


def _reading_order(rule: Rule) -> tuple[int, str]:
    tag = rule.endpoint.split(".")[0]
    return (TAG_ORDER.index(tag) if tag in TAG_ORDER else len(TAG_ORDER) - 2, rule.rule)


def _schema_name(schema: Any) -> str:
    cls = schema if isinstance(schema, type) else type(schema)
    name = cls.__name__
    return name[: -len("Schema")] if name.endswith("Schema") and name != "Schema" else name


def _exactly_one_config(spec: APISpec) -> None:
    """LaunchSchema's cross-field rule, which marshmallow cannot export by itself."""
    launch = spec.components.schemas["Launch"]
    launch["oneOf"] = [{"required": ["config_id"]}, {"required": ["config"]}]
    launch["properties"]["config"] = {"$ref": "#/components/schemas/AgentConfig"}


def openapi_document(app: Flask | None = None) -> dict[str, Any]:
    """Built once per app, on first use, when every blueprint has been registered."""
    app = app or current_app._get_current_object()  # type: ignore[attr-defined]
    document = app.extensions.get("agcluster_openapi")
    if document is None:
        document = build(app)
        app.extensions["agcluster_openapi"] = document
    return document


__all__ = ["OPERATIONS", "Op", "build", "describe", "openapi_document"]
