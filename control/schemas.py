"""Request bodies. Every route validates its body here, so a bad one is always a 400
naming the field, never a 500."""

from __future__ import annotations

from typing import Any

from flask import request
from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from wire.errors import ValidationFailed

MAX_MESSAGE = 200_000


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


class ConfigSaveSchema(_Strict):
    """Wrapper only for OpenAPI; the body itself is an AgentConfigSchema object."""


def load_body(schema: Schema) -> dict[str, Any]:
    body = request.get_json(silent=True)
    if body is None:
        raise ValidationFailed("the body must be JSON (Content-Type: application/json)", code="invalid_json")
    try:
        return schema.load(body)
    except ValidationError as exc:
        details = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
        raise ValidationFailed("the request body is not valid", details=details) from None
