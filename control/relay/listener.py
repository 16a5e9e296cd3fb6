"""Where machines reach the relay: never the public API's listener.

* Local machines have no network at all (their own empty network namespace); each gets a
  Unix socket of its own, bound into its sandbox read-only, so the listener itself names
  the machine.
* Docker and Fly machines reach one TCP listener on the agents' network (the Docker
  gateway, Fly's 6PN address); there the peer address names the machine, through the
  provider's ``machine_for_peer``.

The servers are werkzeug's threaded WSGI servers. Under gunicorn's gevent worker the
standard library is monkey-patched before this module is imported, so their "threads"
are greenlets; in unit tests they are real threads. Either way one slow model stream never
holds up another.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import socketserver
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Flask
from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler

from control.relay.routes import PEER_ENVIRON

log = logging.getLogger(__name__)

PeerLookup = Callable[[str], "str | None"]


class _Handler(WSGIRequestHandler):
    server: _Server
    # Buffered: werkzeug writes each streamed chunk as size line, data and CRLF, then
    # flushes. Unbuffered that was three sends per model event, the relay's largest cost
    # in a fast stream; buffered it is one.
    wbufsize = 64 * 1024

    def make_environ(self) -> Any:
        environ = super().make_environ()
        environ[PEER_ENVIRON] = self.server.identify(self.client_address)
        return environ

    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        """Access lines come from the app's own request log, with secrets redacted."""

    def log_error(self, format: str, *args: Any) -> None:
        log.debug("relay listener: " + format, *args)


class _Server(ThreadedWSGIServer):
    daemon_threads = True
    identify: Callable[[Any], str | None]


class Listener:
    """One running server (a relay's, or the egress proxy's); ``close()`` stops accepting
    and open connections finish on their own."""

    def __init__(self, server: socketserver.BaseServer, name: str, cleanup: Callable[[], None] | None = None) -> None:
        self._server = server
        self._cleanup = cleanup
        self.address = server.server_address
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name=name, daemon=True)
        self._thread.start()

    def close(self) -> None:
        threading.Thread(target=self._stop, name="listener-stop", daemon=True).start()

    def _stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._cleanup is not None:
            self._cleanup()


def serve_unix(app: Flask, path: Path, machine_key: str, mode: int = 0o666) -> Listener:
    """A relay socket for one machine at ``path`` (its directory must not be writable by
    the machine). ``mode`` lets the sandbox's own uid connect."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(str(path))
        os.chmod(path, mode)
        sock.listen(64)
        server = _Server(f"unix://{path}", 0, app, handler=_Handler, fd=sock.fileno())
    finally:
        sock.close()  # the server holds its own duplicate
    server.identify = lambda _address: machine_key
    return Listener(server, f"relay-{machine_key[:12]}", unlinker(path))


def unlinker(path: Path) -> Callable[[], None]:
    """Remove the socket file later, unless a newer socket has taken its path meanwhile (a
    machine restarted at once gets a new listener before the old one is closed)."""
    inode = path.stat().st_ino

    def cleanup() -> None:
        try:
            if path.stat().st_ino == inode:
                path.unlink()
        except FileNotFoundError:
            pass

    return cleanup


def serve_tcp(app: Flask, host: str, port: int, machine_for_peer: PeerLookup) -> Listener:
    """The relay on the agents' network; a peer the provider does not know gets nothing."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(256)
        server = _Server(host, port, app, handler=_Handler, fd=sock.fileno())
    finally:
        sock.close()

    def identify(address: Any) -> str | None:
        try:
            return machine_for_peer(str(address[0]))
        except Exception:  # noqa: BLE001 - an unknown peer is simply nobody
            log.warning("could not identify relay peer %s", address[0])
            return None

    server.identify = identify
    return Listener(server, f"relay-tcp-{port}")
