"""Agent configurations: presets and custom configs."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from control.configs import summary
from control.context import ctx
from wire.errors import ValidationFailed

configs_bp = Blueprint("configs", __name__, url_prefix="/api/configs")


def _json_body() -> object:
    body = request.get_json(silent=True)
    if body is None:
        raise ValidationFailed("the body must be JSON (Content-Type: application/json)", code="invalid_json")
    return body


@configs_bp.get("/")
def list_configs():  # type: ignore[no-untyped-def]
    configs = [summary(c) for c in ctx().catalog.list()]
    return jsonify(configs=configs, total=len(configs))


@configs_bp.get("/<config_id>")
def get_config(config_id: str):  # type: ignore[no-untyped-def]
    return jsonify(ctx().catalog.get(config_id))


@configs_bp.post("/validate")
def validate_config():  # type: ignore[no-untyped-def]
    return jsonify(valid=True, config=ctx().catalog.validate(_json_body()))


@configs_bp.post("/")
def save_config():  # type: ignore[no-untyped-def]
    return jsonify(ctx().catalog.save(_json_body())), 201


@configs_bp.delete("/<config_id>")
def delete_config(config_id: str):  # type: ignore[no-untyped-def]
    ctx().catalog.delete(config_id)
    return jsonify(deleted=config_id)
