"""Loopback TCP → Unix socket forwarders, for machines with no network of their own.

A local machine lives in an empty network namespace: the only ways out are Unix sockets
the control plane binds into its sandbox (the model relay, and the egress proxy when the
config allows the internet). The CLI and the agent's tools speak TCP, so the machine agent
listens on the sandbox's own loopback and pipes each connection to its socket.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterable


def parse(spec: str) -> tuple[int, str]:
    """``"PORT=/path/to.sock"`` → ``(PORT, "/path/to.sock")``."""
    port, sep, path = spec.partition("=")
    if not sep or not port.isdigit() or not path.startswith("/"):
        raise ValueError(f"a forward is PORT=/absolute/socket/path, got {spec!r}")
    return int(port), path


def start(forwards: Iterable[tuple[int, str]], host: str = "127.0.0.1") -> list[socket.socket]:
    """Listen on each port and serve in daemon threads; returns the listening sockets."""
    listeners = []
    for port, path in forwards:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        listener.listen(128)
        threading.Thread(target=_accept, args=(listener, path), name=f"forward-{port}", daemon=True).start()
        listeners.append(listener)
    return listeners


def _accept(listener: socket.socket, path: str) -> None:
    while True:
        try:
            client, _ = listener.accept()
        except OSError:
            return
        threading.Thread(target=_serve, args=(client, path), name="forward-conn", daemon=True).start()


def _serve(client: socket.socket, path: str) -> None:
    upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        upstream.connect(path)
    except OSError:
        client.close()
        upstream.close()
        return
    pump = threading.Thread(target=_pipe, args=(client, upstream), name="forward-up", daemon=True)
    pump.start()
    _pipe(upstream, client)
    pump.join()
    client.close()
    upstream.close()


def _pipe(source: socket.socket, target: socket.socket) -> None:
    try:
        while chunk := source.recv(65536):
            target.sendall(chunk)
    except OSError:
        pass
    finally:
        with contextlib.suppress(OSError):
            target.shutdown(socket.SHUT_WR)
