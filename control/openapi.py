"""``/openapi.json``: generated from the marshmallow schemas, so it cannot drift from them."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from marshmallow import Schema, fields

from control.config_schema import AgentConfigSchema
from control.schemas import ChatSchema, LaunchSchema

_TYPES: dict[type, dict[str, Any]] = {
    fields.String: {"type": "string"}, fields.Integer: {"type": "integer"}, fields.Float: {"type": "number"},
    fields.Boolean: {"type": "boolean"}, fields.Url: {"type": "string", "format": "uri"},
}


def _field(field: fields.Field) -> dict[str, Any]:
    if isinstance(field, fields.Nested):
        nested = field.nested() if callable(field.nested) and not isinstance(field.nested, type) else field.nested
        return _schema(nested() if isinstance(nested, type) else nested)
    if isinstance(field, fields.List):
        return {"type": "array", "items": _field(field.inner)}
    if isinstance(field, fields.Dict):
        values = field.value_field
        return {"type": "object", "additionalProperties": _field(values) if values else {}}
    for kind, spec in _TYPES.items():
        if isinstance(field, kind):
            return dict(spec)
    return {}


def _schema(schema: Schema) -> dict[str, Any]:
    props = {name: _field(f) for name, f in schema.fields.items()}
    required = [name for name, f in schema.fields.items() if f.required]
    out: dict[str, Any] = {"type": "object", "properties": props, "additionalProperties": False}
    if required:
        out["required"] = required
    return out


def _op(summary: str, body: str | None = None, auth: bool = True, responses: dict[str, str] | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {"summary": summary, "responses": {code: {"description": text} for code, text in
                                                             (responses or {"200": "OK"}).items()}}
    for code in ("400", "401", "403", "404", "409", "413", "502", "503"):
        op["responses"].setdefault(code, {"$ref": "#/components/responses/Error"})
    if body:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{body}"}}}}
    if auth:
        op["security"] = [{"sessionKey": []}]
    return op


SID = {"name": "session_id", "in": "path", "required": True, "schema": {"type": "string"}}


@lru_cache(maxsize=1)
def openapi_document() -> dict[str, Any]:
    paths: dict[str, Any] = {
        "/health": {"get": _op("Liveness", auth=False)},
        "/api/configs/": {"get": _op("List presets and custom configs", auth=False),
                          "post": _op("Save a custom config", "AgentConfig", auth=False, responses={"201": "Saved"})},
        "/api/configs/validate": {"post": _op("Validate and normalise a config", "AgentConfig", auth=False)},
        "/api/configs/{config_id}": {
            "parameters": [{"name": "config_id", "in": "path", "required": True, "schema": {"type": "string"}}],
            "get": _op("A full config", auth=False), "delete": _op("Delete a custom config", auth=False)},
        "/api/agents/launch": {"post": _op("Launch an agent in its own machine", "Launch", auth=False,
                                           responses={"201": "Launched"})},
        "/api/agents/sessions": {"get": _op("List sessions", auth=False)},
        "/api/agents/sessions/{session_id}": {"parameters": [SID], "get": _op("Session details and usage"),
                                              "delete": _op("Stop and remove a session")},
        "/api/agents/sessions/{session_id}/events": {"parameters": [SID], "get": _op("Transcript after ?after=SEQ (JSON or SSE)")},
        "/api/agents/{session_id}/chat": {"parameters": [SID], "post": _op("Send a message; SSE with Accept: text/event-stream", "Chat")},
        "/api/agents/{session_id}/interrupt": {"parameters": [SID], "post": _op("Stop the running turn")},
        "/api/files/{session_id}": {"parameters": [SID], "get": _op("Workspace tree")},
        "/api/files/{session_id}/{path}": {"parameters": [SID, {"name": "path", "in": "path", "required": True, "schema": {"type": "string"}}],
                                           "get": _op("Preview, raw bytes (?raw=1) or download (?download=1)"),
                                           "delete": _op("Delete a file or folder")},
        "/api/files/{session_id}/download": {"parameters": [SID], "post": _op("The workspace as a streamed ZIP")},
        "/api/files/{session_id}/upload": {"parameters": [SID], "post": _op("Upload files (multipart field 'files')")},
    }
    return {
        "openapi": "3.0.3",
        "info": {"title": "AgCluster API", "version": "0.1.0"},
        "paths": paths,
        "components": {
            "schemas": {"AgentConfig": _schema(AgentConfigSchema()), "Launch": _schema(LaunchSchema()),
                        "Chat": _schema(ChatSchema()),
                        "Error": {"type": "object", "properties": {"error": {"type": "object", "properties": {
                            "code": {"type": "string"}, "message": {"type": "string"}, "details": {"type": "object"}}}}}},
            "responses": {"Error": {"description": "Error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}},
            "securitySchemes": {"sessionKey": {"type": "http", "scheme": "bearer", "description": "the key given at launch"}},
        },
    }
