"""A loopback TCP proxy that can cut a connection after N response bytes.

It stands between the client and the control plane so a test can drop a stream mid-turn
the way a network does (the socket just dies, mid-frame), with nothing mocked on either
side. Each new connection takes the next limit from ``cuts``; ``None`` or an empty list
means pass everything.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections import deque
from collections.abc import Callable


class CuttingProxy:
    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.cuts: deque[int | None] = deque()
        self.connections = 0
        self.cut = 0
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = self._server.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._closing = False
        threading.Thread(target=self._accept, name="cutting-proxy", daemon=True).start()

    def arm(self, *limits: int | None) -> None:
        with self._lock:
            self.cuts = deque(limits)

    def close(self) -> None:
        self._closing = True
        self._server.close()

    def _accept(self) -> None:
        while not self._closing:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                limit = self.cuts.popleft() if self.cuts else None
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            threading.Thread(target=self._pipe, args=(client, upstream, None), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, limit), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, limit: int | None) -> None:
        sent = 0
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                if limit is not None and sent + len(data) >= limit:
                    sink.sendall(data[: max(0, limit - sent)])
                    with self._lock:
                        self.cut += 1
                    self._reset(client=sink, upstream=source)
                    return
                sink.sendall(data)
                sent += len(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                _quietly(sock.close)

    @staticmethod
    def _reset(client: socket.socket, upstream: socket.socket) -> None:
        """RST to the client (not a clean FIN), and the server sees its client go away.

        ``shutdown`` first: the other direction's thread is blocked in ``recv`` on these
        sockets, and a plain ``close`` would not release them until that returns.
        """
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        _quietly(lambda: client.shutdown(socket.SHUT_RD))
        _quietly(lambda: upstream.shutdown(socket.SHUT_RDWR))


def _quietly(action: Callable[[], object]) -> None:
    with contextlib.suppress(OSError):
        action()
