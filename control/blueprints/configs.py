"""Agent configurations: presets and custom configs (docs/CONFIGS.md)."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from control.auth import current_principal
from control.configs import Owner, summary
from control.context import bearer, ctx
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
def list_configs():  # type: ignore[no-untyped-def]
    catalog = ctx().catalog
    configs = [{**summary(c), "preset": c["id"] in catalog.presets} for c in catalog.list()]
    return jsonify(configs=configs, total=len(configs))


@configs_bp.get("/<config_id>")
def get_config(config_id: str):  # type: ignore[no-untyped-def]
    return jsonify(ctx().catalog.get(config_id))


@configs_bp.post("/validate")
def validate_config():  # type: ignore[no-untyped-def]
    """For the builder UI: the normalised config (defaults filled in), or field errors."""
    catalog = ctx().catalog
    config = catalog.validate(_json_body())
    return jsonify(valid=True, config=config, shadows_preset=config["id"] in catalog.presets)


@configs_bp.post("/")
def save_config():  # type: ignore[no-untyped-def]
    config, created = ctx().catalog.save(_json_body(), _owner())
    return jsonify(config), 201 if created else 200


@configs_bp.delete("/<config_id>")
def delete_config(config_id: str):  # type: ignore[no-untyped-def]
    ctx().catalog.delete(config_id, _owner())
    return jsonify(deleted=config_id)


def _owner() -> Owner:
    principal = current_principal()  # token mode: the account (401 without a token)
    if principal is not None:
        return Owner(user_id=principal.user_id, is_admin=principal.is_admin)
    return Owner(key=bearer())
