"""Structured logs: one JSON object per line, a request id on every request, and an
access line that can never carry a secret.

Every record goes through ``control.secrets.REDACTOR`` (on the handler, so nothing can
bypass it) and every string field is redacted again when the line is built, because
fields such as the path come from the client and are not part of the message the filter
sees. The access line is assembled from an allow-list (method, path, masked query,
status, duration, size): request headers are never logged, so ``Authorization`` and
``X-Anthropic-Api-Key`` cannot reach a log by construction, not by filtering alone.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import IO, Any

from flask import Flask, Response, g, has_request_context, request

from control.secrets import REDACTOR

REQUEST_ID_HEADER = "X-Request-Id"
# Long enough for UUIDs and trace ids, short and plain enough to be safe in a header and a log.
SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
# Query parameters whose values are masked in the access log, whatever the route.
SENSITIVE_QUERY = re.compile(r"(?i)(key|token|secret|passw|auth|signature|sig$|credential|cookie)")
QUIET_PATHS = frozenset({"/health", "/metrics"})
MAX_FIELD = 512
FIELDS = ("request_id", "method", "path", "query", "status", "duration_ms", "bytes", "remote_addr")

access_log = logging.getLogger("agcluster.access")


class JsonFormatter(logging.Formatter):
    """``{"ts","level","logger","message", ...request fields}`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                data[name] = value
        if "request_id" not in data and has_request_context():
            request_id = g.get("request_id")
            if request_id:
                data["request_id"] = request_id
        if record.exc_info:  # only when no redaction filter folded it into the message
            data["exc"] = self.formatException(record.exc_info)
        return json.dumps({k: REDACTOR.redact(v) if isinstance(v, str) else v for k, v in data.items()},
                          ensure_ascii=False, default=str)


class _JsonHandler(logging.StreamHandler[IO[str]]):
    """The handler ``configure_logging`` installs, told apart from anyone else's by its class."""


def configure_logging(level: int | str = "INFO", stream: IO[str] | None = None) -> logging.Handler:
    """Make the root logger (and gunicorn's, when present) write redacted JSON lines.

    Idempotent: calling it again replaces the handler it installed before, so a process
    that builds the app twice does not print every line twice.
    """
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _JsonHandler)]:
        root.removeHandler(old)
    handler = _JsonHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(REDACTOR)
    root.addHandler(handler)
    root.setLevel(level)
    # gunicorn keeps its own non-propagating handlers; give them the same format and filter.
    for name in ("gunicorn.error", "gunicorn.access"):
        for gunicorn_handler in logging.getLogger(name).handlers:
            gunicorn_handler.setFormatter(JsonFormatter())
            if REDACTOR not in gunicorn_handler.filters:
                gunicorn_handler.addFilter(REDACTOR)
    return handler


def request_id_from(header: str | None) -> str:
    """Honour the caller's id when it is a plain token; otherwise make one, so a hostile
    header can neither forge log structure nor smuggle text into our response headers."""
    if header and SAFE_REQUEST_ID.match(header) and REDACTOR.redact(header) == header:
        return header
    return uuid.uuid4().hex


def masked_query(args: Any) -> str:
    """The query string with every sensitive-looking value replaced."""
    parts = []
    for key, value in args.items(multi=True):
        shown = "[REDACTED]" if SENSITIVE_QUERY.search(key) else value
        parts.append(f"{key}={shown}")
    return "&".join(parts)[:MAX_FIELD]


def install(app: Flask) -> None:
    """Request ids and one access line per request.

    A streamed response (SSE, file pass-through, ZIP) is logged when the server closes it,
    so its duration covers the whole stream; any other response is logged at once.
    """
    if app.extensions.get("agcluster_logs"):
        return
    app.extensions["agcluster_logs"] = True

    @app.before_request
    def _begin() -> None:
        g.request_id = request_id_from(request.headers.get(REQUEST_ID_HEADER))
        g.request_started = time.perf_counter()

    @app.after_request
    def _finish(resp: Response) -> Response:
        # A before_request hook registered ahead of ours may have refused the request.
        request_id = g.get("request_id") or request_id_from(request.headers.get(REQUEST_ID_HEADER))
        resp.headers[REQUEST_ID_HEADER] = request_id
        fields = {
            "request_id": request_id,
            "method": request.method[:16],
            "path": request.path[:MAX_FIELD],
            "query": masked_query(request.args) or None,
            "status": resp.status_code,
            "remote_addr": request.remote_addr,
        }
        started = g.get("request_started") or time.perf_counter()
        if resp.is_streamed:
            resp.call_on_close(lambda: _access(fields, started, None))
        else:
            _access(fields, started, resp.content_length)
        return resp


def _access(fields: dict[str, Any], started: float, size: int | None) -> None:
    status = int(fields["status"])
    level = logging.ERROR if status >= 500 else logging.DEBUG if fields["path"] in QUIET_PATHS else logging.INFO
    if not access_log.isEnabledFor(level):
        return
    duration_ms = round((time.perf_counter() - started) * 1000, 2)
    access_log.log(level, "%s %s %s", fields["method"], fields["path"], status,
                   extra={**fields, "duration_ms": duration_ms, "bytes": size})
