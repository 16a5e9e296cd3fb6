"""One error format for every route: ``{"error": {"code", "message", "details"}}``."""

from __future__ import annotations

import logging

from flask import Flask, Response, jsonify
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from control.providers.base import ProviderError
from wire.errors import ApiError, error_body

log = logging.getLogger(__name__)


def install(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError) -> tuple[Response, int]:
        resp = jsonify(exc.body())
        if exc.status == 429:
            resp.headers["Retry-After"] = str(exc.details.get("retry_after", 60))
        return resp, exc.status

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(exc: RequestEntityTooLarge) -> tuple[Response, int]:
        return jsonify(error_body("too_large", "the request body is too large")), 413

    @app.errorhandler(ProviderError)
    def _provider(exc: ProviderError) -> tuple[Response, int]:
        # A provider failure that no route turned into something better: the machine
        # platform is unavailable, which is not the client's fault and not a crash.
        return jsonify(error_body("provider_unavailable", exc.message)), 503

    @app.errorhandler(RecursionError)
    def _too_deep(exc: RecursionError) -> tuple[Response, int]:
        # Only JSON parsing of a hostile body nests this deep in a request.
        return jsonify(error_body("invalid_json", "the JSON body is nested too deeply")), 400

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> tuple[Response, int]:
        code = (exc.name or "error").lower().replace(" ", "_")
        return jsonify(error_body(code, exc.description or exc.name or "error")), exc.code or 500

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> tuple[Response, int]:
        # Logged (through the redaction filter) for the operator; the client gets no traceback.
        log.exception("unhandled error")
        return jsonify(error_body("internal_error", "an internal error occurred; see the server log")), 500
