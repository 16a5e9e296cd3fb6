"""The static dashboard and what it needs to know up front."""

from __future__ import annotations

from flask import Blueprint, Response, abort, jsonify, send_from_directory

from control.config_schema import KNOWN_TOOLS, PERMISSION_MODES, SETTING_SOURCES
from control.context import ctx
from control.openapi import describe
from control.session_status import LIVE, SessionStatus
from control.web import STATIC_DIR

ui_bp = Blueprint("ui", __name__)

# The dashboard's browser libraries come from npm (static_ui/node_modules, `make ui`): only
# their script and style files are served, never anything else a package happens to ship.
VENDOR_PACKAGES = ("marked/", "dompurify/", "@highlightjs/cdn-assets/", "yaml/")
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
                   setting_sources=list(SETTING_SOURCES), preset_ids=list(app.catalog.presets),
                   session_statuses=[str(s) for s in SessionStatus], live_statuses=sorted(str(s) for s in LIVE),
                   max_upload_mb=app.settings.max_upload_mb, provider=app.settings.container_provider,
                   demo=app.settings.demo)


@ui_bp.get("/ui/<path:path>")
@describe("Dashboard assets (HTML, CSS, ES modules)", media=("*/*",), response={"type": "string"},
          auth="public", errors=(404,), path_params={"path": "asset path under static_ui/"})
def assets(path: str) -> Response:
    if path.startswith("node_modules/"):
        vendored = path.removeprefix("node_modules/")
        if not vendored.startswith(VENDOR_PACKAGES) or not vendored.endswith(VENDOR_SUFFIXES):
            abort(404)
    return send_from_directory(STATIC_DIR, path)
