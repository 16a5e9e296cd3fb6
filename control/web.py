"""Security headers and CORS for every response; the dashboard's routes are in ``control.blueprints.ui``."""

from __future__ import annotations

from pathlib import Path

from flask import Flask, Response, request

STATIC_DIR = Path(__file__).resolve().parent.parent / "static_ui"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "connect-src 'self'; font-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; "
       "form-action 'self'")


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
