"""The static dashboard and what it needs to know up front."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, abort, jsonify, send_from_directory
from marshmallow import Schema, validate

from control.config_schema import (
    KNOWN_TOOLS,
    NETWORK_POLICIES,
    PERMISSION_MODES,
    SETTING_SOURCES,
    AgentConfigSchema,
    McpServerSchema,
)
from control.context import ctx
from control.openapi import describe
from control.session_status import LIVE, SessionStatus
from control.web import STATIC_DIR

ui_bp = Blueprint("ui", __name__)

# The dashboard's browser libraries come from npm (static_ui/node_modules, `make ui`): only
# their script and style files are served, never anything else a package happens to ship.
VENDOR_PACKAGES = ("marked/", "dompurify/", "@highlightjs/cdn-assets/", "yaml/", "chart.js/dist/chart.umd")
VENDOR_SUFFIXES = (".js", ".mjs", ".css")


@ui_bp.get("/")
@describe("The dashboard", media=("text/html",), response={"type": "string"}, auth="public", errors=())
def index() -> Response:
    return send_from_directory(STATIC_DIR, "index.html")


@ui_bp.get("/ui/meta.json")
@describe("What the dashboard needs up front: schema choices, session states and limits",
          response={"type": "object"}, auth="public", errors=())
def meta() -> Response:
    """The server is the one source of these lists; the dashboard keeps no copies."""
    app = ctx()
    return jsonify(known_tools=sorted(KNOWN_TOOLS), permission_modes=list(PERMISSION_MODES),
                   setting_sources=list(SETTING_SOURCES), network_policies=list(NETWORK_POLICIES),
                   mcp_transports=_choices(McpServerSchema(), "type"), config_defaults=_defaults(AgentConfigSchema()),
                   preset_ids=list(app.catalog.presets),
                   session_statuses=[str(s) for s in SessionStatus], live_statuses=sorted(str(s) for s in LIVE),
                   max_upload_mb=app.settings.max_upload_mb, provider=app.settings.container_provider,
                   demo=app.settings.demo)


def _choices(schema: Schema, name: str) -> list[str]:
    """A field's allowed values, read off the schema that validates it."""
    return [str(c) for v in schema.fields[name].validators if isinstance(v, validate.OneOf) for c in v.choices]


def _defaults(schema: Schema) -> dict[str, Any]:
    """What a config gets for each scalar field it leaves out (the builder's blank form)."""
    defaults = {name: f.load_default for name, f in schema.fields.items()}
    return {name: value for name, value in defaults.items() if isinstance(value, (str, int, float, bool))}


@ui_bp.get("/ui/<path:path>")
@describe("Dashboard assets (HTML, CSS, ES modules)", media=("*/*",), response={"type": "string"},
          auth="public", errors=(404,), path_params={"path": "asset path under static_ui/"})
def assets(path: str) -> Response:
    if path.startswith("node_modules/"):
        vendored = path.removeprefix("node_modules/")
        if not vendored.startswith(VENDOR_PACKAGES) or not vendored.endswith(VENDOR_SUFFIXES):
            abort(404)
    return send_from_directory(STATIC_DIR, path)
