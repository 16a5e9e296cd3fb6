"""Agent configurations: presets and custom configs (docs/CONFIGS.md)."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from control.auth import current_principal, require_admin
from control.config_schema import AgentConfigSchema
from control.configs import Owner, summary
from control.context import bearer, ctx
from control.openapi import describe
from control.schemas import (
    ConfigDeletedSchema,
    ConfigListSchema,
    ConfigSharedSchema,
    ConfigShareSchema,
    ConfigValidationSchema,
    load_body,
)
from wire.errors import ValidationFailed

configs_bp = Blueprint("configs", __name__, url_prefix="/api/configs")


def _json_body() -> object:
    try:
        body = request.get_json(silent=True)
    except RecursionError:  # nesting deeper than the JSON decoder can follow
        body = None
    if body is None:
        raise ValidationFailed("the body must be JSON (Content-Type: application/json)", code="invalid_json")
    return body


@configs_bp.get("/")
@describe("List presets and custom configs", response=ConfigListSchema, errors=())
def list_configs() -> Response:
    catalog = ctx().catalog
    configs = [{**summary(c), "preset": c["id"] in catalog.presets} for c in catalog.list(_viewer())]
    return jsonify(configs=configs, total=len(configs))


@configs_bp.get("/<config_id>")
@describe("A full config", response=AgentConfigSchema, errors=(404,),
          path_params={"config_id": "a preset or custom config id (lowercase slug)"})
def get_config(config_id: str) -> Response:
    return jsonify(ctx().catalog.get(config_id, _viewer()))


@configs_bp.post("/validate")
@describe("Validate and normalise a config (defaults filled in) without saving", body=AgentConfigSchema,
          response=ConfigValidationSchema, errors=(400, 413))
def validate_config() -> Response:
    """For the builder UI: the normalised config (defaults filled in), or field errors."""
    catalog = ctx().catalog
    config = catalog.validate(_json_body())
    return jsonify(valid=True, config=config, shadows_preset=config["id"] in catalog.presets)


@configs_bp.post("/")
@describe("Save a custom config (201 new, 200 replaced by its owner)", body=AgentConfigSchema, status=201,
          response=AgentConfigSchema, auth="owner",
          extra_responses={200: {"description": "Replaced", "schema": AgentConfigSchema}},
          errors=(400, 401, 403, 409, 413))
def save_config() -> tuple[Response, int]:
    config, created = ctx().catalog.save(_json_body(), _owner())
    return jsonify(config), 201 if created else 200


@configs_bp.delete("/<config_id>")
@describe("Delete a custom config (owner or admin)", response=ConfigDeletedSchema, auth="owner",
          errors=(400, 401, 403, 404, 409))
def delete_config(config_id: str) -> Response:
    ctx().catalog.delete(config_id, _owner())
    return jsonify(deleted=config_id)


@configs_bp.post("/<config_id>/share")
@describe("Share a custom config with every user, or take the share back (admins, AUTH_MODE=token)",
          body=ConfigShareSchema, response=ConfigSharedSchema, auth="admin", errors=(400, 401, 403, 404, 409))
def share_config(config_id: str) -> Response:
    principal = require_admin()
    if principal is None:
        raise ValidationFailed("sharing applies to AUTH_MODE=token, where configs are private to their owners",
                               code="not_applicable")
    shared = bool(load_body(ConfigShareSchema())["shared"])
    ctx().catalog.share(config_id, shared, Owner(user_id=principal.user_id, is_admin=True))
    ctx().store.audit(principal.user_id, "config.share" if shared else "config.unshare", config_id, "ok", {})
    return jsonify(config_id=config_id, shared=shared)


def _viewer() -> Owner | None:
    """Whose configs are visible: an account in token mode (401 without a token), else all."""
    principal = current_principal()
    return Owner(user_id=principal.user_id, is_admin=principal.is_admin) if principal is not None else None


def _owner() -> Owner:
    principal = current_principal()  # token mode: the account (401 without a token)
    if principal is not None:
        return Owner(user_id=principal.user_id, is_admin=principal.is_admin)
    return Owner(key=bearer())
