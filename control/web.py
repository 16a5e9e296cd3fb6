"""Security headers and CORS for every response; the dashboard's routes are in ``control.blueprints.ui``."""

from __future__ import annotations

import json
from pathlib import Path

from flask import Flask, Response, request

from wire.errors import error_body

STATIC_DIR = Path(__file__).resolve().parent.parent / "static_ui"
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "connect-src 'self'; font-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'none'; "
       "form-action 'self'")


def install(app: Flask, cors_origins: tuple[str, ...], allowed_hosts: tuple[str, ...] = ()) -> None:
    allowed = set(cors_origins)
    hosts = frozenset(allowed_hosts)

    @app.before_request
    def _host() -> Response | None:
        # DNS rebinding: a page on evil.example whose name now resolves to 127.0.0.1 still
        # sends "Host: evil.example". A loopback-bound server answers only to its own names.
        if hosts and host_name(request.host) not in hosts:
            body = error_body("host_not_allowed", "this server does not answer to that host name (ALLOWED_HOSTS)",
                              {"host": request.host[:100]})
            return Response(json.dumps(body), status=421, mimetype="application/json")
        return None

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
            resp.headers["Access-Control-Allow-Headers"] = ("Authorization, Content-Type, Last-Event-ID, "
                                                            "X-Anthropic-Api-Key")
            resp.headers["Access-Control-Allow-Methods"] = "GET, POST, DELETE, OPTIONS"
            resp.headers["Access-Control-Expose-Headers"] = "Content-Disposition"
        return resp

    @app.before_request
    def _preflight() -> Response | None:
        if request.method == "OPTIONS":
            return Response(status=204 if request.headers.get("Origin") in allowed else 403)
        return None


def host_name(host: str) -> str:
    """``Host`` without its port, lowercased: ``[::1]:8000`` → ``[::1]``, ``a.b:80`` → ``a.b``."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host
