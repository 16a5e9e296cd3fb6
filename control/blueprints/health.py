"""Liveness and the machine-readable API description."""

from __future__ import annotations

from flask import Blueprint, jsonify

from control.context import ctx
from control.openapi import openapi_document

health_bp = Blueprint("health", __name__)


@health_bp.get("/health")
def health():  # type: ignore[no-untyped-def]
    app = ctx()
    return jsonify(status="healthy", provider=app.provider.name, auth_mode=app.settings.auth_mode,
                   demo=app.settings.demo, version="0.1.0",
                   warm_pool={"size": app.settings.warm_pool_size, "ready": app.sessions.pool.ready_count()})


@health_bp.get("/openapi.json")
def openapi():  # type: ignore[no-untyped-def]
    return jsonify(openapi_document())
