"""The control plane closes its connections to a machine when it is done with them, not
when the garbage collector gets to them.

A connection left open is closed later, at whatever moment a collection runs: if the
machine is gone by then, the FIN goes to a dead address that Docker hands to the next
machine, and the host's unresolved neighbour entry for it held that machine's first
packets for up to a second (docs/PERFORMANCE.md). The collector is switched off in these
tests so that "later" is never.
"""

from __future__ import annotations

import gc
import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from control import unixhttp
from control.machine_client import MachineClient
from control.sessions import Caller
from tests.unit.fakes import FakeProvider, build_service

KEY = "sk-ant-test-key-" + "c" * 20
HEALTH = {"status": "ok", "configured": True, "effective_config": {}}


class CountingMachine:
    """A keep-alive HTTP/1.1 server on loopback that answers every request with a healthy
    machine's JSON and knows which of its connections the client has closed."""

    def __init__(self) -> None:
        self._server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._server.getsockname()[1]}"
        self._lock = threading.Lock()
        self._open = 0
        self.accepted = 0
        self.all_closed = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def open_connections(self) -> int:
        with self._lock:
            return self._open

    def close(self) -> None:
        self._server.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            with self._lock:
                self._open += 1
                self.accepted += 1
                self.all_closed.clear()
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn, conn.makefile("rb") as reader:
            while True:
                request_line = reader.readline()
                if not request_line:
                    break  # the client closed the connection
                length = 0
                while (line := reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = line.decode("latin-1").partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value.strip())
                reader.read(length)
                body = json.dumps(HEALTH).encode()
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        with self._lock:
            self._open -= 1
            if self._open == 0:
                self.all_closed.set()


@pytest.fixture
def machine() -> Iterator[CountingMachine]:
    server = CountingMachine()
    yield server
    server.close()


@pytest.fixture(autouse=True)
def no_garbage_collection() -> Iterator[None]:
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def test_closing_a_session_closes_its_connections_at_once(machine: CountingMachine) -> None:
    http = unixhttp.Session()
    for _ in range(3):
        assert http.get(f"{machine.url}/health", timeout=10).json() == HEALTH
    assert machine.open_connections == 1  # kept alive and reused
    http.close()
    assert machine.all_closed.wait(10), "the connection stayed open after close()"


def test_a_machine_client_closes_the_connections_it_owns_and_only_those(machine: CountingMachine) -> None:
    with MachineClient(machine.url, "token") as client:
        assert client.health() == HEALTH
    assert machine.all_closed.wait(10), "the client's own connection stayed open"

    shared = unixhttp.Session()
    client = MachineClient(machine.url, "token", shared)
    assert client.health() == HEALTH
    client.close()
    assert machine.open_connections == 1  # the owner's pooled connection is the owner's to close
    shared.close()
    assert machine.all_closed.wait(10)


class DestroyWatcher(FakeProvider):
    """Records whether the control plane had closed its connections to the machine when it
    asked for the machine to be stopped or removed (the server may take a moment to read
    the FIN, hence the wait; a connection still open is never read as closed)."""

    def __init__(self, machine: CountingMachine) -> None:
        super().__init__(machine.url)
        self.counting = machine
        self.closed_at: dict[str, bool] = {}

    def destroy(self, machine_id: str) -> None:
        self.closed_at["destroy"] = self.counting.all_closed.wait(10)
        super().destroy(machine_id)

    def suspend(self, machine_id: str) -> None:
        self.closed_at["suspend"] = self.counting.all_closed.wait(10)
        super().suspend(machine_id)


def test_a_machine_is_stopped_and_removed_only_after_our_connections_to_it_are_closed(
        tmp_path: Path, machine: CountingMachine) -> None:
    provider = DestroyWatcher(machine)
    service = build_service(tmp_path, provider, RATE_LIMIT_PER_MINUTE="0")
    caller = Caller(key=KEY)
    sid = service.launches.launch(caller, config_id="code-assistant").id
    assert machine.accepted >= 1  # configured over a pooled connection
    grant = service.open(caller, sid)
    service.lifecycle.stop(grant)
    service.lifecycle.delete(grant)
    assert provider.closed_at == {"suspend": True, "destroy": True}
