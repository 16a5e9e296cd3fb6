"""Liveness and the machine-readable API description."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from control import __version__
from control.config_schema import NETWORK_POLICIES
from control.context import ctx
from control.openapi import describe, openapi_document
from control.schemas import HealthSchema

health_bp = Blueprint("health", __name__)


@health_bp.get("/health")
@describe("Liveness, provider, auth mode and warm pool", response=HealthSchema, auth="public", errors=())
def health() -> Response:
    app = ctx()
    return jsonify(status="healthy", provider=app.provider.name, auth_mode=app.settings.auth_mode,
                   demo=app.settings.demo, version=__version__,
                   warm_pool={"size": app.settings.warm_pool_size, "ready": app.sessions.pool.ready_count(),
                              "hot": app.sessions.pool.hot_counts()},
                   enforced={policy: app.provider.enforcement(policy) for policy in NETWORK_POLICIES})


@health_bp.get("/openapi.json")
@describe("This document", response={"type": "object"}, auth="public", errors=())
def openapi() -> Response:
    return jsonify(openapi_document())
