"""The machine agent's HTTP/1.1 server: one process, one thread per connection.

Why not gunicorn: its arbiter is a second Python process (~70 MiB) that a machine serving
one session never needs, and its worker import doubled the start-up work. Why not
werkzeug's development server: it closes every connection (no keep-alive) and writes each
chunk in three system calls. What this server does:

- keep-alive for HTTP/1.1, with any unread request body drained before the next request;
- streamed responses in chunked encoding, each chunk (size line, data, CRLF) in one send,
  and the headers in the same send as the first chunk, with ``TCP_NODELAY`` so a small
  frame such as the turn's ``done`` leaves at once instead of waiting for an ACK;
- request bodies by ``Content-Length`` or chunked, never read past their end;
- malformed requests answered with the shared JSON error body, never a traceback;
- a listening socket from ``--host/--port``, ``--unix`` or an inherited ``--listen-fd``.

It serves exactly one WSGI app (Flask) and assumes a trusted-ish peer (the control plane,
authenticated per request by the app), so it has no worker limits or TLS.
"""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import select
import socket
import stat
import sys
import threading
import time
from collections.abc import Callable, Iterable
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import unquote

from werkzeug.exceptions import BadRequest

from wire.errors import error_body

WSGIApp = Callable[..., Iterable[bytes]]

# Idle keep-alive connections and stalled reads/writes give up after this long. Longer than
# any pause inside a request body the control plane streams, shorter than forever.
IO_TIMEOUT = 120.0
BACKLOG = 128
DRAIN_BLOCK = 64 * 1024
MAX_CHUNK_LINE = 1024
_CRLF = b"\r\n"


class BadRequestBody(BadRequest):
    """The request body's framing is broken: a 400 for the app, and the connection is not reused."""


# --------------------------------------------------------------------------- listening sockets

def listen_tcp(host: str, port: int) -> socket.socket:
    """Bind ``host:port``; ``::`` is dual-stack (IPv4 and IPv6), which Fly's 6PN needs."""
    if ":" in host:
        try:
            return socket.create_server((host, port), family=socket.AF_INET6, backlog=BACKLOG,
                                        dualstack_ipv6=host == "::")
        except OSError as exc:
            if host != "::" or exc.errno not in (errno.EAFNOSUPPORT, errno.EADDRNOTAVAIL):
                raise
            host = "0.0.0.0"  # a kernel without IPv6: all IPv4 addresses is what "::" meant
    return socket.create_server((host, port), family=socket.AF_INET, backlog=BACKLOG)


def listen_unix(path: str) -> socket.socket:
    """Bind a Unix socket at ``path``, replacing a stale socket left by a previous run.

    Anything at ``path`` that is not a socket is left alone and reported, so a mistyped
    path never deletes a file.
    """
    try:
        if stat.S_ISSOCK(os.lstat(path).st_mode):
            os.unlink(path)
    except FileNotFoundError:
        pass
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        sock.listen(BACKLOG)
    except BaseException:
        sock.close()
        raise
    return sock


def adopt_fd(fd: int) -> socket.socket:
    """Take over an inherited socket that the parent already bound and put in listening state.

    The family (Unix, IPv4, IPv6) is read from the descriptor itself. The parent owns the
    socket's path, so this process never binds, unlinks or chmods anything; it only stops
    the descriptor from leaking further into the CLI and the agent's tools.
    """
    try:
        sock = socket.socket(fileno=fd)
    except OSError as exc:
        raise ValueError(f"--listen-fd {fd} is not an open socket ({exc.strerror})") from None
    if sock.type != socket.SOCK_STREAM:
        sock.detach()
        raise ValueError(f"--listen-fd {fd} is not a stream socket")
    if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
        sock.detach()
        raise ValueError(f"--listen-fd {fd} is not listening (the parent must bind and listen)")
    sock.set_inheritable(False)
    # Blocking, whatever the parent left on the shared open file: a control plane under
    # gevent makes every socket O_NONBLOCK at the OS level, and an accept loop on such a
    # socket would spin at 100 % CPU while the machine is idle.
    sock.setblocking(True)
    return sock


def describe(sock: socket.socket) -> str:
    name = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        return f"unix:{name.decode(errors='replace') if isinstance(name, bytes) else name or '<unnamed>'}"
    host, port = name[0], name[1]
    return f"http://[{host}]:{port}" if sock.family == socket.AF_INET6 else f"http://{host}:{port}"


# --------------------------------------------------------------------------- request bodies

class _Body(io.RawIOBase):
    """``wsgi.input``: never reads past the request's own end, so keep-alive stays in step."""

    complete = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self.read(len(buffer))
        memoryview(buffer).cast("B")[: len(data)] = data
        return len(data)

    def readline(self, size: int | None = -1) -> bytes:
        line = bytearray()
        while not line.endswith(b"\n") and (size is None or size < 0 or len(line) < size):
            byte = self.read(1)
            if not byte:
                break
            line += byte
        return bytes(line)

    def drain(self) -> bool:
        """Discard the unread rest so the connection can carry the next request."""
        try:
            while self.read(DRAIN_BLOCK):
                pass
        except (BadRequestBody, OSError):
            return False
        return self.complete


class _LengthBody(_Body):
    """A body of known ``Content-Length``."""

    def __init__(self, rfile: Any, length: int) -> None:
        self._rfile = rfile
        self.remaining = length
        self.complete = length == 0

    def read(self, size: int | None = -1) -> bytes:
        if self.remaining <= 0:
            return b""
        want = self.remaining if size is None or size < 0 else min(size, self.remaining)
        data: bytes = self._rfile.read(want)
        self.remaining -= len(data)
        if len(data) < want:
            self.remaining = -1  # the peer went away mid-body
        self.complete = self.remaining == 0
        return data

    def readline(self, size: int | None = -1) -> bytes:
        if self.remaining <= 0:
            return b""
        want = self.remaining if size is None or size < 0 else min(size, self.remaining)
        data: bytes = self._rfile.readline(want)
        self.remaining -= len(data)
        if not data:
            self.remaining = -1
        self.complete = self.remaining == 0
        return data


class _ChunkedBody(_Body):
    """A ``Transfer-Encoding: chunked`` body; trailers are read and dropped."""

    def __init__(self, rfile: Any) -> None:
        self._rfile = rfile
        self._left = 0  # bytes left in the current chunk
        self.broken = False

    def _fail(self, message: str) -> None:
        self.broken = True
        raise BadRequestBody(message)

    def _next_chunk(self) -> None:
        line = self._rfile.readline(MAX_CHUNK_LINE + 1)
        if not line.endswith(b"\n"):
            self._fail("the request body ended inside a chunk header")
        size = line.split(b";", 1)[0].strip()
        if not size or len(size) > 16 or any(c not in b"0123456789abcdefABCDEF" for c in size):
            self._fail("malformed chunk size in the request body")
        self._left = int(size, 16)
        if self._left == 0:
            while True:  # trailers, up to the empty line
                trailer = self._rfile.readline(MAX_CHUNK_LINE + 1)
                if not trailer.endswith(b"\n"):
                    self._fail("the request body ended inside its trailers")
                if trailer in (b"\r\n", b"\n"):
                    break
            self.complete = True

    def read(self, size: int | None = -1) -> bytes:
        if self.broken:
            raise BadRequestBody("the request body is malformed")
        parts: list[bytes] = []
        want = -1 if size is None or size < 0 else size
        while not self.complete and want != 0:
            if self._left == 0:
                self._next_chunk()
                continue
            take = self._left if want < 0 else min(want, self._left)
            data = self._rfile.read(take)
            if len(data) < take:
                self._fail("the request body ended inside a chunk")
            self._left -= len(data)
            if self._left == 0 and self._rfile.read(2) != _CRLF:
                self._fail("a chunk of the request body is not followed by CRLF")
            parts.append(data)
            if want > 0:
                break  # a sized read may return less than asked, like a socket read
        return b"".join(parts)


# --------------------------------------------------------------------------- the handler

class _Handler(BaseHTTPRequestHandler):
    """Parses with the standard library, then runs the app with WSGI 1.0 semantics."""

    protocol_version = "HTTP/1.1"
    server: Server  # type: ignore[assignment]  # always our Server; the stdlib declares a BaseServer

    def setup(self) -> None:
        self.connection = self.request
        self.connection.settimeout(IO_TIMEOUT)
        if self.connection.family in (socket.AF_INET, socket.AF_INET6):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.rfile = self.connection.makefile("rb", 64 * 1024)
        self.wfile = self.connection.makefile("wb", 0)

    def handle(self) -> None:
        with contextlib.suppress(ConnectionError, TimeoutError):  # the peer left or went quiet: nothing to answer
            super().handle()

    def handle_one_request(self) -> None:
        self.raw_requestline = self.rfile.readline(65537)
        if not self.raw_requestline:
            self.close_connection = True
            return
        if len(self.raw_requestline) > 65536:
            self.requestline, self.request_version, self.command = "", "HTTP/1.1", ""
            self.send_error(HTTPStatus.REQUEST_URI_TOO_LONG)
            return
        if not self.parse_request():
            return
        if self.request_version < "HTTP/1.1":
            self.close_connection = True
        self._run_app()

    # -- responses that never reach the app ------------------------------------------------
    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Malformed requests get the same JSON error body as everything else."""
        status = HTTPStatus(code)
        body = json.dumps(error_body(status.phrase.lower().replace(" ", "_").replace("-", "_"),
                                     message or status.phrase)).encode()
        self.close_connection = True
        head = (f"HTTP/1.1 {status.value} {status.phrase}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\nDate: {_http_date()}\r\n\r\n")
        with contextlib.suppress(OSError):
            self.connection.sendall(head.encode("latin-1") + body)

    def log_message(self, format: str, *args: Any) -> None:
        """No access log: the control plane logs every call it makes."""

    # -- WSGI --------------------------------------------------------------------------------
    def _body(self) -> _Body | None:
        encoding = self.headers.get("Transfer-Encoding")
        if encoding is not None:
            if encoding.strip().lower() != "chunked":
                self.send_error(HTTPStatus.NOT_IMPLEMENTED, "only the chunked transfer coding is supported")
                return None
            # Both framings at once is how request smuggling starts; chunked wins (RFC 9112
            # §6.3) and the connection is not reused after it.
            if self.headers.get("Content-Length") is not None:
                self.close_connection = True
            return _ChunkedBody(self.rfile)
        lengths = self.headers.get_all("Content-Length") or []
        values = {v.strip() for length in lengths for v in length.split(",")}
        if not values:
            return _LengthBody(self.rfile, 0)
        if len(values) != 1 or not _is_decimal(next(iter(values))):
            self.send_error(HTTPStatus.BAD_REQUEST, "Content-Length must be one non-negative integer")
            return None
        return _LengthBody(self.rfile, int(next(iter(values))))

    def _environ(self, body: _Body) -> dict[str, Any]:
        path, _, query = self.path.partition("?")
        path = path.partition("#")[0]
        if "://" in path:  # an absolute-form target: keep only its path
            path = "/" + path.split("://", 1)[1].partition("/")[2]
        server_name, server_port = self.server.name
        environ: dict[str, Any] = {
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": body,
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": True,
            "wsgi.multiprocess": False,
            "wsgi.run_once": False,
            "SERVER_SOFTWARE": "agcluster-machine",
            "REQUEST_METHOD": self.command,
            "SCRIPT_NAME": "",
            # WSGI strings are bytes decoded as Latin-1; the request line already is.
            "PATH_INFO": unquote(path, encoding="latin-1"),
            "QUERY_STRING": query,
            "RAW_URI": self.path,
            "REQUEST_URI": self.path,
            "SERVER_NAME": server_name,
            "SERVER_PORT": server_port,
            "SERVER_PROTOCOL": self.request_version,
        }
        peer = self.client_address
        if isinstance(peer, tuple) and peer:
            environ["REMOTE_ADDR"], environ["REMOTE_PORT"] = str(peer[0]), str(peer[1])
        else:
            environ["REMOTE_ADDR"], environ["REMOTE_PORT"] = "", ""
        if isinstance(body, _ChunkedBody):
            environ["wsgi.input_terminated"] = True
        for key, value in self.headers.items():
            if "_" in key:
                continue  # X_Forwarded vs X-Forwarded would collide: drop the ambiguous form
            key = key.upper().replace("-", "_")
            value = value.replace("\r\n", "")
            if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
                key = "HTTP_" + key
                if key in environ:
                    value = f"{environ[key]},{value}"
            environ[key] = value
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        if isinstance(body, _ChunkedBody):
            environ.pop("CONTENT_LENGTH", None)
        return environ

    def _run_app(self) -> None:
        body = self._body()
        if body is None:
            return
        self.server.request_started()
        try:
            self._respond(body)
        finally:
            self.server.request_finished()

    def _respond(self, body: _Body) -> None:
        environ = self._environ(body)
        response = _Response(self.connection, self.command, self.request_version, self.close_connection)
        result: Iterable[bytes] | None = None
        try:
            result = self.server.app(environ, response.start_response)
            for data in result:
                response.write(data)
            response.finish()
        except BadRequestBody as exc:
            if not response.head_sent:
                response.discard()
                self.send_error(HTTPStatus.BAD_REQUEST, str(exc))
            self.close_connection = True
        except (ConnectionError, TimeoutError):
            self.close_connection = True
        except Exception:  # noqa: BLE001 - the app already turns its own errors into JSON
            self.server.report_error(f"{self.command} {environ['PATH_INFO']}")
            if not response.head_sent:
                response.discard()
                self.send_error(HTTPStatus.INTERNAL_SERVER_ERROR, "the machine agent failed; see its log")
            self.close_connection = True  # a half-sent response cannot be continued
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:  # noqa: BLE001 - reported; the connection's own outcome stands
                    self.server.report_error("closing a response")
        if response.must_close:
            self.close_connection = True
        if not self.close_connection and not body.drain():
            self.close_connection = True


class _Response:
    """One response's framing: the headers go out with the first body bytes, in one send."""

    def __init__(self, conn: socket.socket, method: str, version: str, close: bool) -> None:
        self._conn = conn
        self._head_request = method == "HEAD"
        self._http11 = version >= "HTTP/1.1"
        self._status: str | None = None
        self._headers: list[tuple[str, str]] = []
        self._head: bytes | None = None  # built at the first write, sent with the first bytes
        self.head_sent = False
        self._no_body = False
        self._chunked = False
        self._length: int | None = None
        self._sent = 0
        self.must_close = close

    def start_response(self, status: str, headers: list[tuple[str, str]],
                       exc_info: Any = None) -> Callable[[bytes], None]:
        if exc_info is not None:
            try:
                if self.head_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self._status is not None:
            raise AssertionError("start_response called twice without exc_info")
        self._status, self._headers, self._head = status, headers, None
        return self.write

    def discard(self) -> None:
        """Forget an unsent response so an error can be answered instead."""
        self._status, self._headers, self._head = None, [], None

    def _build_head(self) -> bytes:
        if self._status is None:
            raise RuntimeError("the app wrote before calling start_response")
        code = int(self._status[:3])
        lines = [f"HTTP/1.1 {self._status}"]
        self._length, self._chunked = None, False
        for key, value in self._headers:
            lower = key.lower()
            if lower in ("connection", "transfer-encoding", "keep-alive"):
                continue  # hop-by-hop: this server decides the framing
            if lower == "content-length":
                self._length = int(value)
            lines.append(f"{key}: {value}")
        self._no_body = self._head_request or code < 200 or code in (204, 304)
        if not self._no_body and self._length is None:
            if self._http11:
                self._chunked = True
                lines.append("Transfer-Encoding: chunked")
            else:
                self.must_close = True  # HTTP/1.0 without a length: closing ends the body
        if self.must_close:
            lines.append("Connection: close")
        lines.append(f"Date: {_http_date()}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def write(self, data: bytes) -> None:
        if self._head is None:
            self._head = self._build_head()
        if not data or self._no_body:
            return  # an empty chunk would end a chunked body; the head waits for real bytes
        if self._chunked:
            frame = b"%x\r\n%b\r\n" % (len(data), data)
        else:
            if self._length is not None and self._sent + len(data) > self._length:
                data = data[: self._length - self._sent]  # never past the declared length
            frame = data
        self._sent += len(data)
        if not self.head_sent:
            frame = self._head + frame
            self.head_sent = True
        self._conn.sendall(frame)

    def finish(self) -> None:
        if self._head is None:
            self._head = self._build_head()
        tail = b"0\r\n\r\n" if self._chunked else b""
        if not self.head_sent:
            tail = self._head + tail
            self.head_sent = True
        if self._length is not None and self._sent < self._length and not self._no_body:
            self.must_close = True  # less than promised: only closing can end the body now
        if tail:
            self._conn.sendall(tail)


def _is_decimal(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= 18


_date_cache: tuple[int, str] = (0, "")


def _http_date() -> str:
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True))
    return _date_cache[1]


# --------------------------------------------------------------------------- the server

class Server:
    """Accepts on one listening socket and serves each connection in its own thread."""

    def __init__(self, sock: socket.socket, app: WSGIApp) -> None:
        self.socket = sock
        self.app = app
        self._busy = 0  # requests being answered (idle keep-alive connections do not count)
        self._idle = threading.Condition()
        self._closing = False
        self._accepting: threading.Thread | None = None
        if sock.family == socket.AF_UNIX:
            self.name = ("localhost", "80")
        else:
            host, port = sock.getsockname()[:2]
            self.name = (str(host), str(port))

    def serve_forever(self) -> None:
        """Accept until :meth:`close` or a signal handler raises in this (the main) thread."""
        self._accepting = threading.current_thread()
        while not self._closing:
            try:
                conn, peer = self.socket.accept()
                if self._closing:
                    conn.close()
                    return
            except BlockingIOError:
                select.select([self.socket], [], [], 1.0)  # never spin, even on a non-blocking socket
                continue
            except OSError as exc:
                if self._closing or exc.errno in (errno.EBADF, errno.EINVAL):
                    return
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    time.sleep(0.05)  # out of descriptors: let some connections finish first
                continue
            threading.Thread(target=self._serve_connection, args=(conn, peer), daemon=True,
                             name="http-conn").start()

    def _serve_connection(self, conn: socket.socket, peer: Any) -> None:
        try:
            _Handler(conn, peer if isinstance(peer, tuple) else ("", 0), self)  # type: ignore[arg-type]  # not a socketserver, but all the handler asks of one
        except Exception:  # noqa: BLE001 - one connection's failure must not reach the others
            self.report_error("serving a connection")
        finally:
            with contextlib.suppress(OSError):
                conn.close()

    def request_started(self) -> None:
        with self._idle:
            self._busy += 1

    def request_finished(self) -> None:
        with self._idle:
            self._busy -= 1
            if self._busy == 0:
                self._idle.notify_all()

    def close(self) -> None:
        """Stop accepting; requests in flight carry on (see :meth:`wait_idle`)."""
        self._closing = True
        if self._accepting is not None and self._accepting is not threading.current_thread():
            # close() does not wake an accept() blocked in another thread, and shutdown()
            # would also stop a socket the parent shares with us: connect once instead.
            try:
                with socket.socket(self.socket.family, socket.SOCK_STREAM) as waker:
                    waker.settimeout(2)
                    waker.connect(self.socket.getsockname())
            except OSError:
                pass
            self._accepting.join(5)
        self.socket.close()

    def wait_idle(self, timeout: float) -> bool:
        """Wait up to ``timeout`` for requests in flight to finish; True when none is left."""
        with self._idle:
            return self._idle.wait_for(lambda: self._busy == 0, timeout)

    @staticmethod
    def report_error(what: str) -> None:
        import traceback

        print(f"machine agent: error {what}:\n{traceback.format_exc()}", file=sys.stderr, flush=True)
