"""The egress proxy for machines whose config says ``network: internet``.

Such a machine still has no route of its own to anything: its HTTP(S) clients are pointed
at this proxy (``HTTP_PROXY``/``HTTPS_PROXY``), which connects only to public addresses.
Every name is resolved here and *every* address it resolves to must be public (not
loopback, private, link-local/metadata, shared CGNAT space, multicast, reserved, or one
of this host's own addresses), and the connection goes to the address that was checked,
so a DNS answer that changes between check and use (rebinding) gains nothing.

HTTPS goes through ``CONNECT`` tunnels (the proxy never sees inside them); plain HTTP is
forwarded with ``Connection: close``. Raw TCP and UDP have no way out. This is the same
shape as Anthropic's own sandbox runtime on Linux: a network namespace with nothing in it
and a filtering proxy reached over a Unix socket.
"""

from __future__ import annotations

import contextlib
import ipaddress
import itertools
import logging
import socket
import socketserver
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from control.relay.listener import Listener, unlinker

log = logging.getLogger(__name__)

MAX_HEADER_LINES = 100
MAX_LINE = 16 * 1024
CONNECT_TIMEOUT = 10.0
_DROPPED_HEADERS = {"proxy-authorization", "proxy-connection", "connection", "keep-alive"}

Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def refusal(address: str, denied: frozenset[str] = frozenset()) -> str | None:
    """Why a connection to ``address`` is refused, or None when it is a public address."""
    try:
        ip: Address = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return f"{address!r} is not an IP address"
    embedded = _embedded_ipv4(ip)
    if embedded is not None:
        ip = embedded
    if str(ip) in denied:
        return f"{ip} is this control plane's own address"
    if ip.is_loopback:
        return f"{ip} is a loopback address"
    if ip.is_link_local:
        return f"{ip} is link-local (cloud metadata lives there)"
    if ip.is_private or ip in _SHARED_SPACE:
        return f"{ip} is a private address"
    if ip.is_multicast or ip.is_reserved or ip.is_unspecified or not ip.is_global:
        return f"{ip} is not a public unicast address"
    return None


_SHARED_SPACE = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _embedded_ipv4(ip: Address) -> ipaddress.IPv4Address | None:
    """IPv4 hidden inside IPv6 (mapped, 6to4, Teredo, NAT64) is judged as itself."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if ip in _NAT64:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def resolve_public(host: str, port: int, denied: frozenset[str] = frozenset()) -> tuple[Any, str | None]:
    """The first address of ``host`` to connect to, or a reason to refuse.

    A name with any non-public address is refused outright: a resolver that mixes a
    public and a private answer is an attack, not a fallback.
    """
    if not host or len(host) > 253 or not 0 < port < 65536:
        return None, "not a valid host and port"
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        return None, f"cannot resolve {host!r} ({exc})"
    for info in infos:
        reason = refusal(str(info[4][0]), denied)
        if reason is not None:
            return None, f"{host} resolves to {reason}"
    return infos[0], None


def local_addresses() -> frozenset[str]:
    """This host's own addresses (a public one included), which no agent may reach through
    the proxy: read from the kernel's tables, no extra dependency."""
    found: set[str] = set()
    try:
        lines = Path("/proc/net/fib_trie").read_text().splitlines()
        for previous, line in itertools.pairwise(lines):
            if "/32 host LOCAL" in line:
                found.add(previous.strip().split()[-1])
    except OSError:
        pass
    try:
        for line in Path("/proc/net/if_inet6").read_text().splitlines():
            raw = line.split()[0]
            found.add(str(ipaddress.IPv6Address(int(raw, 16))))
    except (OSError, ValueError, IndexError):
        pass
    return frozenset(found)


class _Handler(socketserver.StreamRequestHandler):
    server: _EgressServer
    timeout = 300

    def handle(self) -> None:
        try:
            request_line = self.rfile.readline(MAX_LINE).decode("latin-1").rstrip("\r\n")
            headers = self._headers()
        except (OSError, ValueError):
            return
        parts = request_line.split(" ")
        if len(parts) != 3 or headers is None:
            return self._reply(400, "malformed proxy request")
        method, target, _version = parts
        if not self.server.allowed(self.client_address):
            return self._reply(403, "this machine has no internet access (config network: relay)")
        if method == "CONNECT":
            host, _, port_text = target.rpartition(":")
            host = host.strip("[]")
            path = None
        else:
            url = urlsplit(target)
            if url.scheme != "http" or not url.hostname:
                return self._reply(400, "only http:// URLs and CONNECT tunnels are proxied")
            host, port_text = url.hostname, str(url.port or 80)
            path = (url.path or "/") + (f"?{url.query}" if url.query else "")
        try:
            port = int(port_text)
        except ValueError:
            return self._reply(400, "bad port")
        info, reason = resolve_public(host, port, self.server.denied)
        if reason is not None:
            log.info("egress refused: %s:%s (%s)", host[:100], port, reason)
            return self._reply(403, f"egress refused: {reason}")
        family, kind, proto, _, address = info
        upstream = socket.socket(family, kind, proto)
        upstream.settimeout(CONNECT_TIMEOUT)
        try:
            upstream.connect(address)
        except OSError as exc:
            upstream.close()
            return self._reply(502, f"cannot connect to {host}:{port} ({exc.strerror or exc})")
        upstream.settimeout(None)
        with upstream:
            if path is None:
                self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                self.wfile.flush()
            else:
                lines = [f"{method} {path} HTTP/1.1"]
                lines += [f"{k}: {v}" for k, v in headers if k.lower() not in _DROPPED_HEADERS]
                lines.append("Connection: close")
                upstream.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            _splice(self.rfile, self.connection, upstream)

    def _headers(self) -> list[tuple[str, str]] | None:
        headers: list[tuple[str, str]] = []
        for _ in range(MAX_HEADER_LINES):
            line = self.rfile.readline(MAX_LINE).decode("latin-1").rstrip("\r\n")
            if not line:
                return headers
            name, sep, value = line.partition(":")
            if not sep:
                return None
            headers.append((name.strip(), value.strip()))
        return None

    def _reply(self, status: int, message: str) -> None:
        reason = {400: "Bad Request", 403: "Forbidden", 502: "Bad Gateway"}.get(status, "Error")
        body = (message + "\n").encode()
        head = (f"HTTP/1.1 {status} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n").encode()
        with contextlib.suppress(OSError):
            self.wfile.write(head + body)


def _splice(client_in: Any, client: socket.socket, upstream: socket.socket) -> None:
    """Copy both ways until either side closes."""

    def up() -> None:
        try:
            while chunk := client_in.read1(65536):
                upstream.sendall(chunk)
        except OSError:
            pass
        finally:
            _shutdown_write(upstream)

    pump = threading.Thread(target=up, name="egress-up", daemon=True)
    pump.start()
    try:
        while chunk := upstream.recv(65536):
            client.sendall(chunk)
    except OSError:
        pass
    finally:
        _shutdown_write(client)
        pump.join(timeout=5)


def _shutdown_write(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_WR)


class _EgressServer(socketserver.ThreadingMixIn, socketserver.BaseServer):
    daemon_threads = True
    allowed: Callable[[Any], bool]
    denied: frozenset[str]


class _UnixEgress(_EgressServer, socketserver.UnixStreamServer):
    pass


class _TcpEgress(_EgressServer, socketserver.TCPServer):
    allow_reuse_address = True


def serve_unix(path: Path, denied: Iterable[str] = (), mode: int = 0o666) -> Listener:
    import os

    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    server = _UnixEgress(str(path), _Handler)
    os.chmod(path, mode)
    server.allowed = lambda _address: True
    server.denied = frozenset(denied)
    return Listener(server, "egress", unlinker(path))


def serve_tcp(host: str, port: int, allowed: Callable[[str], bool], denied: Iterable[str] = ()) -> Listener:
    """The proxy on the agents' network: only machines whose config allows the internet."""

    class Server(_TcpEgress):
        address_family = socket.AF_INET6 if ":" in host else socket.AF_INET

    server = Server((host, port), _Handler)
    server.allowed = lambda address: bool(allowed(str(address[0])))
    server.denied = frozenset(denied)
    return Listener(server, f"egress-tcp-{port}")
