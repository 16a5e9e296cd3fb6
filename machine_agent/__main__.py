"""``python -m machine_agent``: serve the agent with gunicorn's threaded worker.

Threads, not greenlets: the SDK needs a real asyncio loop thread, and one machine serves one
session, so a small thread pool is plenty. The machine token is read once and removed from
the environment so the CLI and the agent's tools never inherit it.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from gunicorn.app.base import BaseApplication

TOKEN_ENV = "AGCLUSTER_MACHINE_TOKEN"


class _Server(BaseApplication):  # type: ignore[misc]
    def __init__(self, factory: Any, options: dict[str, Any]) -> None:
        self._factory, self._options = factory, options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        # Called in the worker after fork, so the SDK's loop thread lives in the worker.
        return self._factory()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="machine_agent")
    parser.add_argument("--host", default="::")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--workspace", default="/workspace")
    parser.add_argument("--max-upload-mb", type=int, default=int(os.environ.get("MAX_UPLOAD_MB", "50")))
    args = parser.parse_args(argv)
    token = os.environ.pop(TOKEN_ENV, "")
    if not token:
        sys.exit(f"{TOKEN_ENV} is required")
    from machine_agent.app import create_app

    home = os.environ.get("HOME") or "/home/agent"

    def factory() -> Any:
        return create_app(workspace=args.workspace, token=token, home=home, max_upload_mb=args.max_upload_mb)

    host = f"[{args.host}]" if ":" in args.host else args.host
    _Server(factory, {
        "bind": f"{host}:{args.port}",
        "workers": 1,
        "worker_class": "gthread",
        "threads": 16,
        "timeout": 0,
        "graceful_timeout": 5,
        "control_socket_disable": True,
        "accesslog": None,
        "loglevel": "warning",
        "preload_app": False,
    }).run()


if __name__ == "__main__":
    main()
