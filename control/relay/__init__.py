"""The model relay: the only door from a machine to the model API and the control plane.

``routes`` holds the two surfaces (the Messages API, narrowed by ``policy``, and the CLI's
session-store mirror); ``listener`` serves them to machines on their own sockets, never on
the public API's listener; ``egress`` is the filtering proxy for ``network: internet``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask

from control.relay import egress, listener
from control.relay.routes import relay_bp

__all__ = ["RelayLink", "create_relay_app", "relay_bp", "serve_machine_network"]


def create_relay_app(agcluster: Any) -> Flask:
    """The relay as an app of its own, sharing the control plane's objects (keys live in
    this one process's memory), so the public API's app never serves it."""
    from control import errors, logs
    from control.jsonio import StrictJSONProvider

    app = Flask("control.relay")
    app.json = StrictJSONProvider(app)
    app.config["MAX_CONTENT_LENGTH"] = None  # the routes check their own limits
    logs.install(app)
    errors.install(app)
    app.extensions["agcluster"] = agcluster
    app.register_blueprint(relay_bp)
    return app


class RelayLink:
    """What a provider whose machines have no network gets (``providers.base.MachineLink``)."""

    def __init__(self, app: Flask, denied: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.denied = denied

    def relay_unix(self, path: Path, machine_key: str) -> listener.Listener:
        return listener.serve_unix(self.app, path, machine_key)

    def egress_unix(self, path: Path, machine_key: str) -> listener.Listener:
        return egress.serve_unix(path, self.denied)


def serve_machine_network(agcluster: Any, app: Flask) -> list[Any]:
    """Start the relay and egress listeners a provider's networked machines need (Docker's
    gateway, Fly's 6PN address); returns them for ``close()`` at shutdown."""
    provider = agcluster.provider
    started: list[Any] = []
    relay_at = provider.relay_listen_address()
    if relay_at is not None:
        started.append(listener.serve_tcp(app, relay_at[0], relay_at[1], provider.machine_for_peer))
    egress_at = provider.egress_listen_address()
    if egress_at is not None:
        def allowed(address: str) -> bool:
            key = provider.machine_for_peer(address)
            row = agcluster.store.session_for_machine(key) if key else None
            return bool(row is not None and row.config.get("network") == "internet")

        started.append(egress.serve_tcp(egress_at[0], egress_at[1], allowed, egress.local_addresses()))
    return started
