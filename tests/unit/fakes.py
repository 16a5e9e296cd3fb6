"""An in-process stand-in for machines, for unit tests of the session service.

One small HTTP server speaks the machine protocol's few calls the control plane makes
(docs/MACHINE_PROTOCOL.md: /health, /prepare, /configure, /chat as SSE, /interrupt), and a provider
hands out "machines" that are all that server. The real machine agent and providers are
exercised by the e2e suites; this is for counting what the control plane keeps in memory.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

from flask import Flask, Response, jsonify, request

from control.providers.base import Machine, MachineSpec, Provider
from stubs.serving import BackgroundServer
from wire import sse
from wire.events import make_event


class FakeMachineAgent(BackgroundServer):
    """Answers like a configured machine agent; ``/chat`` replies with one text and done."""

    def __init__(self) -> None:
        super().__init__()
        self.configured: set[str] = set()
        self.chats = 0
        self._lock = threading.Lock()
        app = Flask(__name__)
        app.add_url_rule("/health", view_func=self._health)
        app.add_url_rule("/prepare", "prepare", lambda: jsonify(status="prepared"), methods=["POST"])
        app.add_url_rule("/configure", view_func=self._configure, methods=["POST"])
        app.add_url_rule("/chat", view_func=self._chat, methods=["POST"])
        app.add_url_rule("/interrupt", "interrupt", lambda: jsonify(interrupted=True), methods=["POST"])
        self._serve(app, "fake-machine-agent")

    def close(self) -> None:
        self._shutdown()

    def _health(self) -> Response:
        return jsonify(status="ok", configured=True, effective_config={})

    def _configure(self) -> Response:
        body: dict[str, Any] = request.get_json(force=True)
        with self._lock:
            self.configured.add(body["session_id"])
        return jsonify(ok=True)

    def _chat(self) -> Response:
        with self._lock:
            self.chats += 1
        message = (request.get_json(force=True) or {}).get("message", "")

        def frames() -> Iterator[bytes]:
            for event in (make_event("user", text=message), make_event("text", text=f"echo: {message}"),
                          make_event("done")):
                yield sse.frame(event)

        return Response(frames(), mimetype="text/event-stream")


class FakeProvider(Provider):
    """Machines that all answer at ``url`` (a FakeMachineAgent's); remembers what exists,
    like a real provider."""

    name = "fake"

    def __init__(self, url: str) -> None:
        self.url = url
        self.machines: dict[str, Machine] = {}
        self.started = 0

    def start(self, spec: MachineSpec) -> Machine:
        self.started += 1
        machine = Machine(f"m-{spec.session_id}", self.url, "started", spec.session_id)
        self.machines[machine.machine_id] = machine
        return machine

    def destroy(self, machine_id: str) -> None:
        self.machines.pop(machine_id, None)

    def inspect(self, machine_id: str) -> Machine | None:
        return self.machines.get(machine_id)

    def list_machines(self) -> list[Machine]:
        return list(self.machines.values())

    def relay_url(self) -> str:
        return "http://127.0.0.1:9/relay"

    def suspend(self, machine_id: str) -> None:
        self._set_state(machine_id, "stopped")

    def resume(self, machine_id: str) -> Machine:
        return self._set_state(machine_id, "started")

    def _set_state(self, machine_id: str, state: str) -> Machine:
        old = self.machines[machine_id]
        self.machines[machine_id] = Machine(old.machine_id, old.url, state, old.session_id)
        return self.machines[machine_id]


def events_of(raw: bytes) -> list[dict[str, Any]]:
    return [json.loads(line[5:]) for line in raw.split(b"\n") if line.startswith(b"data:")]


def build_service(tmp_path: Any, provider: Provider, **env: str) -> Any:
    """A SessionService on a fresh database, wired as the app factory wires it."""
    from control.configs import ConfigCatalog
    from control.quotas import Quotas
    from control.secrets import KeyVault, TokenMinter
    from control.sessions import SessionService
    from control.settings import from_env
    from control.store import Store

    settings = from_env({"DATABASE_PATH": str(tmp_path / "agcluster.db"), **env})
    store = Store(settings.database_path)
    return SessionService(settings=settings, store=store, provider=provider, catalog=ConfigCatalog(store),
                          vault=KeyVault(), minter=TokenMinter(b"k" * 32), quotas=Quotas(settings, store))
