"""The one small interface every machine provider implements.

A provider turns a :class:`MachineSpec` into a running machine agent the control plane can
reach over HTTP, and answers what it is running so start-up can reconcile SQLite with
reality. Providers know nothing about chats, events or keys.
"""

from __future__ import annotations

import abc
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

AGENT_PORT = 8080


class ProviderError(Exception):
    """A provider could not do what was asked; ``message`` is safe to show a user."""

    def __init__(self, message: str, *, retryable: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable


@dataclass(frozen=True)
class ResourceLimits:
    cpus: float = 1.0
    memory_mb: int = 2048
    storage_mb: int | None = None
    pids: int = 512


@dataclass(frozen=True)
class MachineSpec:
    session_id: str
    agent_id: str
    machine_token: str
    image: str | None = None
    resources: ResourceLimits = field(default_factory=ResourceLimits)
    env: dict[str, str] = field(default_factory=dict)
    """Non-secret environment only: never keys or credentials (docs/SECURITY.md)."""
    network: str = "relay"
    """``relay``: the machine reaches only the model relay; ``internet``: also public
    addresses, through the control plane's egress proxy (docs/SECURITY.md)."""


@dataclass(frozen=True)
class Machine:
    machine_id: str
    url: str
    """Base URL of the machine agent as the control plane reaches it."""
    state: str = "started"
    session_id: str | None = None


class Closer(Protocol):
    def close(self) -> None: ...


class MachineLink(Protocol):
    """What the control plane serves to machines that have no network of their own (the
    local provider's): the model relay and the egress proxy, each on a Unix socket of the
    machine's own, so the socket a request arrives on names the machine."""

    def relay_unix(self, path: Path, machine_key: str) -> Closer: ...

    def egress_unix(self, path: Path, machine_key: str) -> Closer: ...


class Provider(abc.ABC):
    name: str = "abstract"

    @abc.abstractmethod
    def start(self, spec: MachineSpec) -> Machine:
        """Create and start a machine and return once its agent answers ``/health``."""

    @abc.abstractmethod
    def destroy(self, machine_id: str) -> None:
        """Stop and remove the machine and its storage. Idempotent."""

    @abc.abstractmethod
    def inspect(self, machine_id: str) -> Machine | None:
        """The machine as it is now, or ``None`` when it no longer exists."""

    @abc.abstractmethod
    def list_machines(self) -> list[Machine]:
        """Every machine this provider labelled as ours, for start-up reconciliation."""

    @abc.abstractmethod
    def relay_url(self) -> str:
        """The model relay's base URL as seen from inside a machine."""

    def attach(self, link: MachineLink) -> None:
        """Receive the control plane's per-machine relay; only providers whose machines
        have no network of their own need it."""
        return None

    def relay_listen_address(self) -> tuple[str, int] | None:
        """Where the control plane must serve the relay (and egress proxy) for machines that
        reach it over a network (Docker's gateway, Fly's 6PN address), or None."""
        return None

    def egress_listen_address(self) -> tuple[str, int] | None:
        """Where the control plane must serve the egress proxy on that network, or None."""
        return None

    def machine_for_peer(self, address: str) -> str | None:
        """The key (``MachineSpec.session_id``) of the machine at this network address, so
        the relay can tell which machine is calling; None for a stranger."""
        return None

    def enforcement(self, network: str = "relay") -> dict[str, str | None]:
        """How this provider enforces each limit and the network policy: a mechanism's
        name, or None where it cannot (the launch answer turns those into warnings)."""
        return {"memory": None, "cpu": None, "pids": None, "storage": None, "network": None}

    def validate_resources(self, limits: ResourceLimits) -> None:
        """Reject limits this provider can never honour, before anything is created (a 400)."""
        return None

    def suspend(self, machine_id: str) -> None:
        """Stop a machine for idleness, keeping its workspace. Default: not supported."""
        raise ProviderError(f"{self.name} cannot suspend machines")

    def resume(self, machine_id: str) -> Machine:
        raise ProviderError(f"{self.name} cannot resume machines")

    def usage(self, machine_id: str) -> dict[str, Any] | None:
        """CPU %, memory used/limit and disk, where the provider can tell."""
        return None

    def close(self) -> None:
        """Release provider resources at control-plane shutdown (machines are left alone)."""
        return None


def wait_healthy(url: str, token: str, timeout: float = 30.0, alive: Any = None,
                 listening: bool = False) -> dict[str, Any]:
    """Poll the agent's ``/health`` until it answers, every 20 ms growing to 100 ms.

    The cap is low because every launch waits here: a refused connect costs microseconds,
    while a 0.5 s cap had cold Docker launches finding a healthy agent ~0.25 s late.

    ``alive`` is an optional callable that returns False once the machine has died, so a
    crash fails fast instead of waiting out the timeout. ``listening``: the machine's socket
    was listening before the agent started (an inherited ``--listen-fd``), so one request
    waits in its backlog and is answered the moment the agent can; a short per-try timeout
    would only abandon it and queue another behind it on a busy host. A crash closes the
    socket, which ends that wait at once.
    """
    import requests  # here, not at import time: the CLI imports providers before gevent patches

    deadline = time.monotonic() + timeout
    delay = 0.02
    last_error = "no answer"
    from control import unixhttp

    with unixhttp.Session() as http:
        while time.monotonic() < deadline:
            if alive is not None and not alive():
                raise ProviderError("the machine exited while starting")
            try:
                wait = max(0.1, deadline - time.monotonic()) if listening else 2
                resp = http.get(f"{url}/health", headers={"Authorization": f"Bearer {token}"}, timeout=(2, wait))
                body = resp.json() if resp.status_code == 200 else None
                if isinstance(body, dict):
                    return body
                last_error = f"HTTP {resp.status_code}"
            except requests.RequestException as exc:
                last_error = type(exc).__name__
            time.sleep(delay)
            delay = min(delay * 1.5, 0.1)
    raise ProviderError(f"the machine agent did not become healthy in {timeout:.0f}s ({last_error})", retryable=True)
