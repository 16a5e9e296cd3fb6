"""Serve the control plane with gunicorn's gevent worker.

One worker process on purpose: users' keys live only in this process's memory, and
greenlets hold thousands of idle SSE streams cheaply. Nothing heavy is imported here,
because the worker monkey-patches before it loads the app (docs/ARCHITECTURE.md,
"Concurrency"). The worker starts the app's background work after loading it and stops it
when it exits.
"""

from __future__ import annotations

from typing import Any

from gunicorn.app.base import BaseApplication

from control.settings import Settings


class ControlPlaneServer(BaseApplication):
    def __init__(self, settings: Settings, binds: list[str]) -> None:
        self.settings = settings
        self.binds = binds
        super().__init__()

    def load_config(self) -> None:
        options: dict[str, Any] = {
            "bind": self.binds,
            "workers": 1,
            "worker_class": "control.worker.Worker",
            "worker_connections": 4000,
            "timeout": 0,
            "graceful_timeout": 5,
            "control_socket_disable": True,
            "keepalive": 75,
            "accesslog": None,
            "errorlog": "-",
            "loglevel": "info",
            "worker_exit": _worker_exit,
        }
        for key, value in options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        # gunicorn has set up its loggers by now; switch everything to redacted JSON lines.
        from control.logs import configure_logging

        configure_logging()
        _json_parse_errors()
        from control.app import create_app

        app = create_app(self.settings)
        app.extensions["agcluster"].start()
        return app


def _json_parse_errors() -> None:
    """gunicorn answers requests it cannot parse (an over-long URL, a broken header) itself,
    before the app sees them, with an HTML page; give them the one JSON error body instead.
    Its workers look ``util.write_error`` up on each call, so replacing it here is enough."""
    import json

    from gunicorn import util

    def write_error(sock: Any, status_int: int, reason: str, mesg: str) -> None:
        code = reason.lower().replace(" ", "_") or "bad_request"
        body = json.dumps({"error": {"code": code, "message": mesg or reason, "details": {}}}).encode()
        head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode("latin-1")
        util.write_nonblock(sock, head + body)

    util.write_error = write_error


def _worker_exit(server: Any, worker: Any) -> None:
    """Flush and stop background work: the janitor, the warm pool, the provider, SQLite."""
    app = getattr(worker, "wsgi", None)
    if app is not None and "agcluster" in getattr(app, "extensions", {}):
        app.extensions["agcluster"].stop()
