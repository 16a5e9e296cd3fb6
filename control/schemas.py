"""Every marshmallow schema of the public API, in one place.

Request bodies are strict (unknown fields are a 400 naming the field, never a 500) and are
what the routes validate with, so the OpenAPI document built from them cannot drift from
validation. Response shapes are for the document only and are open to additions: clients
must ignore unknown fields. The agent config's own schema is the config system's
(``control.config_schema``) and is used from there.
"""

from __future__ import annotations

from typing import Any

from flask import request
from marshmallow import INCLUDE, RAISE, Schema, ValidationError, fields, validate, validates_schema

from control.config_schema import AgentConfigSchema
from control.session_status import SessionStatus
from wire.errors import ValidationFailed
from wire.events import EVENT_TYPES
from wire.protocol import DECISIONS

MAX_MESSAGE = 200_000


# Request bodies -------------------------------------------------------------------------
class _Strict(Schema):
    class Meta:
        unknown = RAISE


class LaunchSchema(_Strict):
    # Required in AUTH_MODE=none; in token mode it may come as X-Anthropic-Api-Key instead.
    api_key = fields.String(validate=validate.Length(min=8, max=512))
    config_id = fields.String(validate=validate.Length(min=1, max=64))
    config = fields.Dict()
    mcp_env = fields.Dict(keys=fields.String(), values=fields.Dict(keys=fields.String(), values=fields.String()),
                          load_default=dict)

    @validates_schema
    def _one_config(self, data: dict[str, Any], **kwargs: Any) -> None:
        if ("config_id" in data) == ("config" in data):
            raise ValidationError("give exactly one of config_id or config", "config_id")


class ChatSchema(_Strict):
    message = fields.String(required=True, validate=validate.Length(min=1, max=MAX_MESSAGE))


class PermissionAnswerSchema(_Strict):
    decision = fields.String(required=True, validate=validate.OneOf(DECISIONS))
    message = fields.String(load_default="", validate=validate.Length(max=2000))


def load_body(schema: Schema) -> dict[str, Any]:
    body = request.get_json(silent=True)
    if body is None:
        raise ValidationFailed("the body must be JSON (Content-Type: application/json)", code="invalid_json")
    return load(schema, body)


def load(schema: Schema, data: Any) -> dict[str, Any]:
    """``schema.load`` with a failure as the shared 400 (used for WebSocket messages too)."""
    try:
        loaded: dict[str, Any] = schema.load(data)
    except ValidationError as exc:
        details = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
        raise ValidationFailed("the request body is not valid", details=details) from None
    return loaded


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


class WarmPoolSchema(_Open):
    size = fields.Integer(required=True, metadata={"description": "unconfigured machines kept per class (WARM_POOL *)"})
    ready = fields.Integer(required=True)
    hot = fields.Dict(keys=fields.String(), values=fields.Dict(), metadata={
        "description": "per preset in WARM_POOL: {size, ready} machines kept configured for it"})


class HealthSchema(_Open):
    status = fields.String(required=True, validate=validate.OneOf(["healthy"]))
    provider = fields.String(required=True)
    auth_mode = fields.String(required=True, validate=validate.OneOf(["none", "token"]))
    version = fields.String(required=True)
    warm_pool = fields.Nested(WarmPoolSchema)
    enforced = fields.Dict(keys=fields.String(), values=fields.Dict(), required=True,
                           metadata={"description": "per network policy (relay, internet): how this provider "
                                                    "enforces memory, cpu, pids, storage and the network (null: not)"})


class ConfigShareSchema(_Strict):
    shared = fields.Boolean(required=True)


class ConfigSharedSchema(_Open):
    config_id = fields.String(required=True)
    shared = fields.Boolean(required=True)


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
    status = fields.String(required=True, validate=validate.OneOf([str(s) for s in SessionStatus]))
    enforced = fields.Dict(keys=fields.String(), values=fields.String(allow_none=True), required=True,
                           metadata={"description": "how the provider enforces memory, cpu, pids, storage and the "
                                                    "network policy here (null: not enforced)"})
    warnings = fields.List(fields.String(), required=True,
                           metadata={"description": "each limit or policy of the config this provider cannot enforce"})


class UsageSchema(_Open):
    input_tokens = fields.Integer(required=True)
    output_tokens = fields.Integer(required=True)
    cache_read_tokens = fields.Integer(required=True)
    cache_write_tokens = fields.Integer(required=True)
    cost_usd = fields.Float(required=True)


class SessionOwnerSchema(_Open):
    id = fields.String(required=True)
    name = fields.String(allow_none=True)


class SessionSchema(_Open):
    session_id = fields.String(required=True)
    owner = fields.Nested(SessionOwnerSchema, allow_none=True,
                          metadata={"description": "who launched it (AUTH_MODE=token); null in none mode"})
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
    enforced = fields.Dict(keys=fields.String(), values=fields.String(allow_none=True), required=True)
    warnings = fields.List(fields.String(), required=True)


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
    """One event (``wire.events`` declares every type and its fields); type-specific fields sit beside these."""

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


# Accounts, tokens, usage and the audit log (AUTH_MODE=token) -----------------------------
class UserCreateSchema(_Strict):
    name = fields.String(required=True, validate=validate.Length(min=1, max=64),
                         metadata={"description": "1-64 letters, digits and _.@- (starting with a letter or digit)"})
    admin = fields.Boolean(load_default=False)


class UserSchema(_Open):
    id = fields.String(required=True)
    name = fields.String(required=True)
    role = fields.String(required=True, validate=validate.OneOf(["admin", "member"]))
    created_at = fields.Float(required=True)
    active_tokens = fields.Integer()


class UserListSchema(_Open):
    users = fields.List(fields.Nested(UserSchema), required=True)
    total = fields.Integer(required=True)


class TokenSchema(_Open):
    id = fields.String(required=True)
    prefix = fields.String(required=True, metadata={"description": "the token's first characters, to recognise it"})
    user_id = fields.String(required=True)
    user = fields.String(required=True)
    created_at = fields.Float(required=True)
    revoked_at = fields.Float(required=True, allow_none=True)
    last_used_at = fields.Float(allow_none=True, metadata={
        "description": "when a request last authenticated with it (to the minute); null: never"})
    active = fields.Boolean(required=True)
    current = fields.Boolean(required=True, metadata={"description": "the token this request was made with"})


class TokenListSchema(_Open):
    tokens = fields.List(fields.Nested(TokenSchema), required=True)
    total = fields.Integer(required=True)


class TokenCreatedSchema(TokenSchema):
    token = fields.String(required=True, metadata={"description": "the token itself: shown in this answer only, "
                                                                  "never again (only its hash is stored)"})


class MeSchema(_Open):
    auth_mode = fields.String(required=True, validate=validate.OneOf(["none", "token"]))
    user = fields.Dict(required=True, allow_none=True, metadata={"description": "id, name, role (token mode)"})
    admin = fields.Boolean(required=True, metadata={"description": "whether the admin routes (audit, everyone's "
                                                                  "usage) answer this caller"})
    token_id = fields.String(allow_none=True)


class UsageRowSchema(_Open):
    key = fields.String(required=True, allow_none=True, metadata={"description": "the user id, session id or day"})
    requests = fields.Integer(required=True)
    input_tokens = fields.Integer(required=True)
    output_tokens = fields.Integer(required=True)
    cache_read_tokens = fields.Integer(required=True)
    cache_write_tokens = fields.Integer(required=True)
    cost_usd = fields.Float(required=True)
    user = fields.String(allow_none=True, metadata={"description": "the user's name (group_by user or session)"})
    config_id = fields.String(allow_none=True, metadata={"description": "group_by session, while the session exists"})
    status = fields.String(allow_none=True, metadata={"description": "group_by session, while the session exists"})


class UsageReportSchema(_Open):
    group_by = fields.String(required=True, validate=validate.OneOf(["user", "session", "day"]))
    scope = fields.String(required=True, validate=validate.OneOf(["own", "everyone"]))
    since = fields.String(allow_none=True, metadata={"description": "first UTC day counted (with ?days=N)"})
    usage = fields.List(fields.Nested(UsageRowSchema), required=True)


class QuotaSchema(_Open):
    name = fields.String(required=True)
    setting = fields.String(required=True, metadata={"description": "the environment variable that sets it"})
    limit = fields.Float(required=True, allow_none=True, metadata={"description": "null: unlimited"})
    used = fields.Float(required=True)
    unit = fields.String(required=True)
    window = fields.String(required=True)


class QuotaReportSchema(_Open):
    user = fields.Dict(required=True, allow_none=True, metadata={"description": "id and name (token mode)"})
    quotas = fields.List(fields.Nested(QuotaSchema), required=True)


class AuditEntrySchema(_Open):
    id = fields.Integer(required=True)
    ts = fields.Float(required=True)
    actor = fields.String(required=True, allow_none=True, metadata={"description": "a user id, 'cli', or null"})
    actor_name = fields.String(allow_none=True)
    action = fields.String(required=True)
    target = fields.String(required=True, allow_none=True)
    outcome = fields.String(required=True)
    details = fields.Dict(required=True)


class AuditListSchema(_Open):
    entries = fields.List(fields.Nested(AuditEntrySchema), required=True)
    total = fields.Integer(required=True)
