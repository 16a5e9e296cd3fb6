"""Request helpers shared by the machine agent's blueprints: auth and the error body."""

from __future__ import annotations

import hmac

from flask import Flask, Response, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from wire.errors import ApiError, Unauthorized, error_body


def require_machine_token() -> None:
    """Every request, health included, must carry the session's machine token."""
    expected: str = current_app.config["MACHINE_TOKEN"]
    header = request.headers.get("Authorization", "")
    supplied = header[7:] if header.startswith("Bearer ") else ""
    if not expected or not hmac.compare_digest(supplied.encode(), expected.encode()):
        raise Unauthorized("missing or wrong machine token")


def install_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> tuple[Response, int]:
        return jsonify(exc.body()), exc.status

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> tuple[Response, int]:
        code = (exc.name or "error").lower().replace(" ", "_")
        return jsonify(error_body(code, exc.description or exc.name)), exc.code or 500

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> tuple[Response, int]:
        app.logger.exception("unhandled error")
        return jsonify(error_body("internal_error", "the machine agent failed; see its log")), 500
