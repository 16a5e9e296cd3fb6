"""``/openapi.json``: built by apispec from the marshmallow schemas and the live URL map.

Each route is described next to its view with :func:`describe` (summary, body and answer
schemas from ``control.schemas``, query parameters, media types, auth), so a route and its
description change together. Paths come from walking ``app.url_map``, so a route nobody
described still appears (with its path parameters, auth and the shared error shape)
instead of silently missing, and a test fails until it is described.

Auth is described for the mode the server runs in, since the header mapping differs:
``AUTH_MODE=none`` opens a session with its launch key as Bearer; ``AUTH_MODE=token``
needs an AgCluster token as Bearer and carries the Anthropic key in ``X-Anthropic-Api-Key``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, TypeVar

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Flask, current_app
from marshmallow import Schema, fields
from werkzeug.routing import Rule

from control import __version__
from control.auth import PUBLIC_PREFIXES
from control.config_schema import AgentConfigSchema, SizeField, SystemPromptField, SystemPromptPreset
from control.schemas import ChatSchema, ErrorSchema, LaunchSchema, PermissionAnswerSchema
from wire.events import EVENT_TYPES

SKIPPED_METHODS = frozenset({"HEAD", "OPTIONS"})


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
    auth: str = "api"  # public | api | session | owner | launch | admin | socket
    errors: tuple[int, ...] = (400,)
    tags: tuple[str, ...] = ()


def query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": schema, "description": description}


FLAG = {"type": "string", "enum": ["1", "0", "true", "false", "yes", "no", "on", "off"]}
LAST_EVENT_ID = {"name": "Last-Event-ID", "in": "header", "required": False,
                 "schema": {"type": "string", "pattern": "^[0-9]{1,18}$"},
                 "description": "resume after this event seq (SSE reconnect); the message is not resent"}
SESSION_ERRORS = (400, 401, 403, 404)
MACHINE_ERRORS = (*SESSION_ERRORS, 409, 502, 503)
SSE = "text/event-stream"

_V = TypeVar("_V", bound=Callable[..., Any])


def describe(summary: str, **kwargs: Any) -> Callable[[_V], _V]:
    """Describe a view for ``/openapi.json`` next to its code:
    ``@describe("Launch an agent", body=LaunchSchema, response=LaunchResultSchema, auth="launch")``."""
    op = Op(summary, **kwargs)

    def mark(view: _V) -> _V:
        view._openapi = op  # type: ignore[attr-defined]  # a mark on the function; functools.wraps copies it
        return view

    return mark


def described(app: Flask, endpoint: str) -> Op | None:
    """The description of an endpoint, or None when nobody wrote one."""
    op = getattr(app.view_functions.get(endpoint), "_openapi", None)
    return op if isinstance(op, Op) else None


# Building -------------------------------------------------------------------------------
_ARG = re.compile(r"<(?:(?P<converter>[a-zA-Z_][a-zA-Z0-9_]*)(?:\([^)]*\))?:)?(?P<name>[a-zA-Z_][a-zA-Z0-9_]*)>")
_CONVERTER_TYPES = {"int": {"type": "integer"}, "float": {"type": "number"},
                    "uuid": {"type": "string", "format": "uuid"}}


def _custom_fields(self: Any, field_: fields.Field[Any], ret: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
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
    schemes: dict[str, dict[str, Any]] = {}
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
    if mode == "token":
        if auth in ("session", "launch"):
            return [{"agclusterToken": [], "anthropicKey": []}, {"agclusterToken": []}]
        return [{"agclusterToken": []}]
    by_auth: dict[str, list[dict[str, list[str]]]] = {"session": [{"launchKey": []}], "owner": [{"ownerSecret": []}]}
    return by_auth.get(auth, [])


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
    op = described(app, rule.endpoint)
    if op is not None:
        return op
    doc = (getattr(app.view_functions.get(rule.endpoint), "__doc__", None) or "").strip().splitlines()
    return Op(summary=doc[0] if doc else rule.endpoint.replace(".", ": ").replace("_", " "),
              response={"type": "object"}, errors=(400, 401, 403, 404),
              auth="api")


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
    security = _security(op.auth, mode, path)
    documented = set(op.errors) | ({401} if security else set())
    for status in sorted(documented):
        responses.setdefault(str(status), {"$ref": "#/components/responses/Error"})
    # Anything else (e.g. 413 for an oversized body, 429, a 503 from a provider) is still
    # the shared error shape: ``default`` says so, and the fuzz test holds us to it.
    responses["default"] = {"$ref": "#/components/responses/Error"}
    out["responses"] = responses
    out["security"] = security
    return out


def _media_schema(op: Op, media: str) -> SchemaRef:
    """The body schema for one media type; for SSE, the schema of each event frame."""
    if media == "application/json":
        return op.response or {"type": "object"}
    if media == SSE:
        return "SseEvent"
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
        "502/503 upstream). Machines reach the model relay on listeners of their own; it is not part of this API."
    )


def build(app: Flask) -> dict[str, Any]:
    """The whole document for this app (its routes, its auth mode)."""
    ext = app.extensions.get("agcluster")
    mode = getattr(getattr(ext, "settings", None), "auth_mode", "none")
    plugin = MarshmallowPlugin(schema_name_resolver=_schema_name)
    spec = APISpec(title="AgCluster API", version=__version__, openapi_version="3.0.3", plugins=[plugin],
                   info={"description": _description(mode)})
    if plugin.converter is None:  # APISpec(plugins=[plugin]) has just set it
        raise RuntimeError("the marshmallow plugin was not initialised")
    plugin.converter.add_attribute_function(_custom_fields)  # type: ignore[no-untyped-call]  # apispec leaves it unannotated
    for name, schema in (("SystemPromptPreset", SystemPromptPreset), ("AgentConfig", AgentConfigSchema),
                         ("Launch", LaunchSchema), ("Chat", ChatSchema), ("PermissionAnswer", PermissionAnswerSchema),
                         ("Error", ErrorSchema)):
        spec.components.schema(name, schema=schema)
    _exactly_one_config(spec)
    spec.components.schema("SseEvent", {
        "type": "object", "required": ["event", "data"],
        "description": "One SSE frame: `id: <seq>`, `event: <type>`, `data: <the event as JSON>`; "
                       "comment lines are keep-alives.",
        "properties": {"id": {"type": "string", "pattern": "^[0-9]+$"},
                       "event": {"type": "string", "enum": sorted(EVENT_TYPES)},
                       "data": {"type": "string", "description": "an Event object as JSON"}}})
    spec.components.response("Error", {"description": "The shared error shape",
                                       "content": {"application/json": {"schema": "Error"}}})
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
TAG_ORDER = ("agents", "live", "files", "configs", "account", "team", "health", "metrics", "docs", "ui")


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
    app = app or current_app
    document = app.extensions.get("agcluster_openapi")
    if document is None:
        document = build(app)
        app.extensions["agcluster_openapi"] = document
    return document


__all__ = ["Op", "build", "describe", "described", "openapi_document", "query"]
