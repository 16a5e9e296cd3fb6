"""Security headers, CORS and the static dashboard."""

from __future__ import annotations

from pathlib import Path

from flask import Blueprint, Flask, Response, abort, jsonify, request, send_from_directory

STATIC_DIR = Path(__file__).resolve().parent.parent / "static_ui"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "connect-src 'self'; font-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; "
       "form-action 'self'")

ui_bp = Blueprint("ui", __name__)


@ui_bp.get("/")
def index():  # type: ignore[no-untyped-def]
    return send_from_directory(STATIC_DIR, "index.html")


@ui_bp.get("/ui/meta.json")
def meta():  # type: ignore[no-untyped-def]
    """What the dashboard needs to know up front: schema choices and the upload limit."""
    from control.config_schema import KNOWN_TOOLS, PERMISSION_MODES, SETTING_SOURCES
    from control.context import ctx
    from control.session_status import LIVE, SessionStatus

    app = ctx()
    return jsonify(known_tools=sorted(KNOWN_TOOLS), permission_modes=list(PERMISSION_MODES),
                   setting_sources=list(SETTING_SOURCES), preset_ids=list(app.catalog.presets),
                   session_statuses=[str(s) for s in SessionStatus], live_statuses=sorted(str(s) for s in LIVE),
                   max_upload_mb=app.settings.max_upload_mb, provider=app.settings.container_provider,
                   demo=app.settings.demo)


# The dashboard's browser libraries come from npm (static_ui/node_modules, `make ui`): only
# their script and style files are served, never anything else a package happens to ship.
VENDOR_PACKAGES = ("marked/", "dompurify/", "@highlightjs/cdn-assets/", "yaml/")
VENDOR_SUFFIXES = (".js", ".mjs", ".css")


@ui_bp.get("/ui/<path:path>")
def assets(path: str):  # type: ignore[no-untyped-def]
    if path.startswith("node_modules/"):
        vendored = path.removeprefix("node_modules/")
        if not vendored.startswith(VENDOR_PACKAGES) or not vendored.endswith(VENDOR_SUFFIXES):
            abort(404)
    return send_from_directory(STATIC_DIR, path)


def install(app: Flask, cors_origins: tuple[str, ...]) -> None:
    allowed = set(cors_origins)

    @app.after_request
    def _headers(resp: Response) -> Response:
        resp.headers.setdefault("X-Content-Type-Options", "nosniff")
        resp.headers.setdefault("Referrer-Policy", "no-referrer")
        if not request.path.startswith(("/api/files/", "/relay/")):
            resp.headers.setdefault("Content-Security-Policy", CSP)
            resp.headers.setdefault("X-Frame-Options", "DENY")
        origin = request.headers.get("Origin")
        if origin and origin in allowed:
            resp.headers["Access-Control-Allow-Origin"] = origin
            resp.headers["Vary"] = "Origin"
            resp.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type, Last-Event-ID, X-Anthropic-Api-Key"
            resp.headers["Access-Control-Allow-Methods"] = "GET, POST, DELETE, OPTIONS"
            resp.headers["Access-Control-Expose-Headers"] = "Content-Disposition"
        return resp

    @app.before_request
    def _preflight():  # type: ignore[no-untyped-def]
        if request.method == "OPTIONS":
            return Response(status=204 if request.headers.get("Origin") in allowed else 403)
        return None
