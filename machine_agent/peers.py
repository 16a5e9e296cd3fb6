"""Only the control plane may call the machine agent (where the provider says who that is).

On Fly every machine of the agents app shares one private network, so another session's
agent can open a connection to this one's port 8080. The machine token already keeps it
from doing anything; this check refuses the request before the token is even looked at
(403 with the standard error body), so a leaked token is not enough from anywhere else.

``AGCLUSTER_CONTROL_PLANE`` (set by the provider when it creates the machine; not a secret)
lists, comma-separated, where the control plane's requests come from: IP addresses and/or
DNS names. On Fly it is ``<control-app>.internal``, whose addresses change whenever the
control plane's machine is replaced or migrates, so names are resolved here, cached for a
few seconds, resolved again on a miss (at most once a second, so a stranger cannot make
us flood the resolver), and a failed lookup keeps the last good answer. Unset, nothing is
checked: the local and Docker providers keep strangers out by other means.
"""

from __future__ import annotations

import ipaddress
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping

from flask import current_app, request

from wire.errors import Forbidden

PEERS_ENV = "AGCLUSTER_CONTROL_PLANE"
EXTENSION = "control_plane_peers"
CACHE_SECONDS = 10.0
MISS_REFRESH_SECONDS = 1.0

Resolver = Callable[[str], set[str]]


def normalize(address: str) -> str | None:
    """One spelling per address: compressed IPv6, IPv4-mapped IPv6 as IPv4, no zone."""
    try:
        parsed = ipaddress.ip_address(address.strip().strip("[]").split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        return str(parsed.ipv4_mapped)
    return str(parsed)


def resolve(name: str) -> set[str]:
    found = set()
    for *_rest, sockaddr in socket.getaddrinfo(name, None, type=socket.SOCK_STREAM):
        address = normalize(str(sockaddr[0]))
        if address:
            found.add(address)
    return found


class ControlPlanePeers:
    """The addresses the control plane calls from, resolved from names when need be."""

    def __init__(self, spec: str, *, resolver: Resolver = resolve,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.fixed: set[str] = set()
        self.names: list[str] = []
        for item in (part.strip() for part in spec.split(",")):
            if not item:
                continue
            address = normalize(item)
            if address:
                self.fixed.add(address)
            else:
                self.names.append(item)
        self._resolver = resolver
        self._clock = clock
        self._resolved: set[str] = set()
        self._resolved_at = -float("inf")
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return bool(self.fixed or self.names)

    def allows(self, peer: str) -> bool:
        if not self.enabled:
            return True
        address = normalize(peer or "")
        if address is None:
            return False
        if address in self.fixed:
            return True
        if not self.names:
            return False
        age = self._clock() - self._resolved_at
        if age >= CACHE_SECONDS or (address not in self._resolved and age >= MISS_REFRESH_SECONDS):
            self._refresh()
        return address in self._resolved

    def _refresh(self) -> None:
        with self._lock:
            fresh: set[str] = set()
            failed = False
            for name in self.names:
                try:
                    fresh |= self._resolver(name)
                except (OSError, UnicodeError):
                    failed = True
            # A resolver hiccup must not lock the control plane out: keep the last answer.
            if fresh or not failed:
                self._resolved = fresh
            self._resolved_at = self._clock()


def from_env(env: Mapping[str, str] | None = None) -> ControlPlanePeers:
    return ControlPlanePeers((os.environ if env is None else env).get(PEERS_ENV, ""))


def require_control_plane() -> None:
    """``before_request``: a peer that is not the control plane gets 403, health included."""
    peers = current_app.extensions.get(EXTENSION)
    if peers is None:
        peers = current_app.extensions[EXTENSION] = from_env()
    if not peers.allows(request.remote_addr or ""):
        raise Forbidden("only the control plane may call this machine agent",
                        details={"peer": request.remote_addr or ""})
