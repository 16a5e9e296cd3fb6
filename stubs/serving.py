"""Start-up code both stand-ins share: a WSGI app on a threaded werkzeug server in a
background thread (in-process, for tests and benchmarks), or in the foreground until
SIGTERM or Ctrl-C (``python -m stubs.<name>``).

A threaded werkzeug server is enough: each request gets its own thread, and werkzeug writes
each chunk of a streamed response as soon as the generator yields it, so SSE is unbuffered.
"""

from __future__ import annotations

import signal
import threading
from typing import Any, Protocol

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server


class QuietHandler(WSGIRequestHandler):
    """Per-request access lines would drown test output; each stand-in keeps its own record."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        return None


class BackgroundServer:
    """Serves one WSGI app on ``http://host:port`` (``port=0`` picks a free port)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self._server: BaseWSGIServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self._server.server_port}"

    @property
    def serving(self) -> bool:
        return self._server is not None

    def _serve(self, app: Any, name: str) -> None:
        server = make_server(self.host, self.port, app, threaded=True, request_handler=QuietHandler)
        self._server = server
        self.port = server.server_port
        # A short poll interval keeps stopping quick; tests start and stop stand-ins often.
        self._thread = threading.Thread(target=server.serve_forever, args=(0.05,), name=name, daemon=True)
        self._thread.start()

    def _shutdown(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = None
        self._thread = None


class Stoppable(Protocol):
    @property
    def url(self) -> str: ...

    def stop(self) -> None: ...


def serve_until_signalled(stub: Stoppable, name: str, note: str = "") -> None:
    """Block until SIGTERM or Ctrl-C, then stop the stand-in (so nothing it started, such
    as machines, outlives it). The resolved URL goes to stdout first, so a parent that
    passed ``--port 0`` can find it."""
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    print(f"{name} listening on {stub.url}{note}", flush=True)
    try:
        done.wait()
    except KeyboardInterrupt:
        pass
    finally:
        stub.stop()
